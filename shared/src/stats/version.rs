//! The tag (`ETag`) of `GET /v1/stats` (DESIGN §15), read without the sample lists: every
//! queue's counts hash (the scripts change it with every state change, in the same step that
//! pushes a wait or run sample, so the percentiles cannot move without it), the length of its
//! series hash (an API's minute sample), the minute (the last hour's window moves), the second
//! while any job is queued (the oldest queued age grows), and for a tenant's view its listing's
//! size. One round trip for every queue. A tenant's job that expires is seen by its view at
//! the next minute, or when the sweeper drops it from the listing, whichever comes first.

use std::collections::BTreeMap;

use super::Stats;

/// The next reply of a pipeline, typed.
fn take<T: redis::FromRedisValue>(
    it: &mut impl Iterator<Item = redis::Value>,
) -> Result<T, QueueError> {
    let v = it.next().unwrap_or(redis::Value::Nil);
    Ok(redis::from_redis_value(v).map_err(redis::RedisError::from)?)
}
use crate::domain::{ETag, JobState, Tagger, TenantId, ToolName, Zone};
use crate::keys::OFFER_UNTIL;
use crate::queue::QueueError;

impl Stats {
    /// The stats' tag for these queues; `tenant` for a tenant's view (its listing counted).
    pub async fn version(
        &self,
        places: &[(ToolName, Zone)],
        tenant: Option<&TenantId>,
    ) -> Result<ETag, QueueError> {
        let mut con = self.connection().await?;
        let mut pipe = redis::pipe();
        pipe.cmd("TIME");
        for (tool, zone) in places {
            for tk in self.keys.partitions_of(tool, zone) {
                pipe.hgetall(tk.counts());
            }
            pipe.hlen(self.keys.home(tool, zone).series());
        }
        if let Some(t) = tenant {
            pipe.zcard(self.keys.tenant_jobs(t));
        }
        let replies: Vec<redis::Value> = pipe.query_async(&mut con).await?;
        let mut it = replies.into_iter();
        let (s, _us): (u64, u64) = take(&mut it)?;
        let mut t = Tagger::new("t");
        t.str(tenant.map_or("", |t| t.as_str()));
        let mut queued = false;
        for (tool, zone) in places {
            t.str(tool.as_str()).str(zone.as_str());
            for _ in self.keys.partitions_of(tool, zone) {
                let counts: BTreeMap<String, i64> = take(&mut it)?;
                queued |= counts
                    .get(JobState::Queued.as_str())
                    .is_some_and(|n| *n > 0);
                // (`offer_until` moves with every idle worker's wait, not with the jobs.)
                for (k, v) in counts.iter().filter(|(k, _)| k.as_str() != OFFER_UNTIL) {
                    t.str(k).num(*v as u64);
                }
            }
            let series: u64 = take(&mut it)?;
            t.num(series);
        }
        if tenant.is_some() {
            let listed: u64 = take(&mut it)?;
            t.num(listed);
        }
        t.num(s / 60);
        if queued {
            t.num(s);
        }
        Ok(t.finish())
    }
}
