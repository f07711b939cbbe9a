//! The tenant's job listing (`P:jobs:<tenant>`, members `<tool>/<cid>`, score = created ms) and
//! its upkeep. A listing entry is written at submit; jobs expire on their own TTLs (a minute to
//! a week), so the sweeper walks every listing oldest-first in bounded steps and removes the
//! members whose job is gone: a listing shrinks with the jobs it points to, whatever their TTL.

use std::collections::HashMap;

use redis::AsyncCommands;

use super::{Queue, QueueError};
use crate::domain::{JobDocument, JobId, JobState, TenantId, ToolName};

pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Where the sweeper is: the SCAN cursor over listings, and the position in the current one.
#[derive(Debug, Default)]
pub(super) struct SweepCursor {
    scan: u64,
    lists: Vec<String>,
    /// Score after which the current list (`lists[0]`) continues.
    after: Option<f64>,
}

/// What one sweep step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub checked: usize,
    pub removed: usize,
}

impl Queue {
    /// The tenant's jobs, newest first. `cursor` is the created-ms bound of the previous page.
    pub async fn list(
        &self,
        tenant: &TenantId,
        state: Option<JobState>,
        tool: Option<&ToolName>,
        limit: usize,
        cursor: Option<u64>,
    ) -> Result<(Vec<JobDocument>, Option<u64>), QueueError> {
        let mut con = self.connection().await?;
        let list = self.keys.tenant_jobs(tenant);
        let mut out = Vec::new();
        let mut max = cursor.map_or("+inf".to_owned(), |c| format!("({c}"));
        // Filters are applied after reading; read in pages until the page is full.
        for _ in 0..20 {
            let page: Vec<(String, f64)> = redis::cmd("ZRANGE")
                .arg(&list)
                .arg(&max)
                .arg("-inf")
                .arg("BYSCORE")
                .arg("REV")
                .arg("LIMIT")
                .arg(0)
                .arg(limit * 2)
                .arg("WITHSCORES")
                .query_async(&mut con)
                .await?;
            if page.is_empty() {
                return Ok((out, None));
            }
            let mut pipe = redis::pipe();
            let mut refs = Vec::new();
            for (member, score) in &page {
                let Some(id) = JobId::from_member(tenant, member) else {
                    continue;
                };
                pipe.hgetall(self.keys.job(&id));
                refs.push((member.clone(), *score));
            }
            let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut con).await?;
            let mut gone = Vec::new();
            for (h, (member, score)) in hashes.iter().zip(refs) {
                max = format!("({score}");
                let Some(doc) = JobDocument::from_hash(h) else {
                    gone.push(member);
                    continue;
                };
                if state.is_some_and(|s| s != doc.state)
                    || tool.is_some_and(|t| t.as_str() != doc.tool)
                {
                    continue;
                }
                out.push(doc);
                if out.len() == limit {
                    break;
                }
            }
            if !gone.is_empty() {
                let _: () = con.zrem(&list, gone).await?;
            }
            if out.len() == limit {
                let last = max.trim_start_matches('(').parse::<f64>().unwrap_or(0.0);
                return Ok((out, Some(last as u64)));
            }
        }
        Ok((out, None))
    }

    /// One bounded step of the listing sweeper: checks up to `budget` listing members, oldest
    /// first, and removes those whose job has expired (plus, cheaply, every member older than
    /// any job can live). Any number of API processes may run it.
    pub async fn sweep_listings(&self, budget: usize) -> Result<Swept, QueueError> {
        let mut con = self.connection().await?;
        let mut done = Swept::default();
        let mut cur = std::mem::take(&mut *self.sweep.lock().expect("sweep lock"));
        let res = async {
            while done.checked < budget {
                if cur.lists.is_empty() {
                    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cur.scan)
                        .arg("MATCH")
                        .arg(self.keys.tenant_jobs_pattern())
                        .arg("COUNT")
                        .arg(100)
                        .query_async(&mut con)
                        .await?;
                    cur.scan = next;
                    cur.lists = keys;
                    cur.after = None;
                    if cur.lists.is_empty() {
                        if next == 0 {
                            break; // a whole pass done
                        }
                        continue;
                    }
                }
                let list = cur.lists[0].clone();
                let tenant = list
                    .strip_prefix(&self.keys.tenant_jobs_pattern().replace('*', ""))
                    .and_then(|t| TenantId::parse(t).ok());
                let Some(tenant) = tenant else {
                    cur.lists.remove(0);
                    continue;
                };
                if cur.after.is_none() {
                    let oldest =
                        now_ms().saturating_sub(self.job_ttl_ms.max(self.settings.dead_ttl_ms));
                    let _: () = redis::cmd("ZREMRANGEBYSCORE")
                        .arg(&list)
                        .arg("-inf")
                        .arg(format!("({oldest}"))
                        .query_async(&mut con)
                        .await?;
                }
                let from = cur.after.map_or("-inf".to_owned(), |a| format!("({a}"));
                let step = (budget - done.checked).clamp(1, 500);
                let page: Vec<(String, f64)> = redis::cmd("ZRANGE")
                    .arg(&list)
                    .arg(&from)
                    .arg("+inf")
                    .arg("BYSCORE")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(step)
                    .arg("WITHSCORES")
                    .query_async(&mut con)
                    .await?;
                let mut pipe = redis::pipe();
                let mut gone: Vec<&String> = Vec::new();
                let mut asked: Vec<&String> = Vec::new();
                for (member, _) in &page {
                    match JobId::from_member(&tenant, member) {
                        Some(id) => {
                            pipe.exists(self.keys.job(&id));
                            asked.push(member);
                        }
                        None => gone.push(member),
                    }
                }
                let alive: Vec<i64> = pipe.query_async(&mut con).await?;
                gone.extend(
                    asked
                        .into_iter()
                        .zip(&alive)
                        .filter(|(_, a)| **a == 0)
                        .map(|(m, _)| m),
                );
                done.checked += page.len();
                done.removed += gone.len();
                if !gone.is_empty() {
                    let _: () = con.zrem(&list, gone).await?;
                }
                if page.len() < step {
                    cur.lists.remove(0);
                    cur.after = None;
                } else {
                    cur.after = page.last().map(|(_, s)| *s);
                }
            }
            Ok::<_, QueueError>(())
        }
        .await;
        *self.sweep.lock().expect("sweep lock") = cur;
        res.map(|_| done)
    }
}
