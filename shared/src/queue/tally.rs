//! A tenant's own jobs tallied per queue from its listing (the tenant's view of `GET /v1/stats`).

use super::listing::MAX_TOOLS;
use super::{Queue, QueueError};
use crate::domain::{JobState, TenantId};

impl Queue {
    /// The tenant's own jobs tallied per queue (tool, zone: the listing score's number says
    /// both) and state from its listing, newest first, at
    /// most `cap` jobs (one `HGET state` per job, pipelined in pages). Feeds the tenant's view
    /// of `GET /v1/stats`; `truncated` says the cap was reached.
    pub async fn tenant_tally(
        &self,
        tenant: &TenantId,
        cap: usize,
    ) -> Result<TenantTally, QueueError> {
        const PAGE: usize = 500;
        let mut con = self.connection().await?;
        let list = self.keys.tenant_jobs(tenant);
        let mut tally = TenantTally::default();
        let mut max = "+inf".to_owned();
        let mut seen = 0;
        while seen < cap {
            let page: Vec<(String, f64)> = redis::cmd("ZRANGE")
                .arg(&list)
                .arg(&max)
                .arg("-inf")
                .arg("BYSCORE")
                .arg("REV")
                .arg("LIMIT")
                .arg(0)
                .arg(PAGE.min(cap - seen))
                .arg("WITHSCORES")
                .query_async(&mut con)
                .await?;
            let Some((_, last)) = page.last() else {
                return Ok(tally);
            };
            max = format!("({last}");
            seen += page.len();
            let mut pipe = redis::pipe();
            let mut ids = Vec::new();
            for (member, score) in &page {
                if let Some(id) = self.listed(tenant, member, *score).await? {
                    pipe.hget(self.keys.job(&id), "state");
                    ids.push((id, (*score as u64) / MAX_TOOLS));
                }
            }
            let states: Vec<Option<String>> = pipe.query_async(&mut con).await?;
            for (state, (id, created_ms)) in states.into_iter().zip(ids) {
                let Some(state) = state.and_then(|s| s.parse::<JobState>().ok()) else {
                    continue;
                };
                let place = (id.tool.to_string(), id.zone.to_string());
                let tool = tally.tools.entry(place).or_default();
                *tool.counts.entry(state.as_str().to_owned()).or_default() += 1;
                if state == JobState::Queued {
                    tool.oldest_queued_ms = Some(
                        tool.oldest_queued_ms
                            .map_or(created_ms, |o: u64| o.min(created_ms)),
                    );
                }
            }
        }
        tally.truncated = true;
        Ok(tally)
    }
}

/// A tenant's jobs per queue, as [`Queue::tenant_tally`] counted them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TenantTally {
    /// Keyed by (tool, zone), as `ToolStats` names them.
    pub tools: std::collections::BTreeMap<(String, String), ToolTally>,
    /// The listing held more jobs than were counted.
    pub truncated: bool,
}

/// One queue's (tool in a zone) share of a [`TenantTally`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ToolTally {
    /// Jobs per state name.
    pub counts: std::collections::BTreeMap<String, i64>,
    /// Creation time (ms) of the tenant's oldest queued job of this tool in this zone.
    pub oldest_queued_ms: Option<u64>,
}
