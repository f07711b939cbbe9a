//! Stopping running jobs at their engagement's window end (`stop_at_window_end`, DESIGN §14),
//! checked by the fleet and not by one worker's clock: the worker that starts such a job
//! registers its end in the queue's `ends` zset ([`Consumer::register_window_end`]); every
//! worker's duty loop sweeps the due members of every queue it reaps by Redis' clock
//! ([`Consumer::sweep_window_ends`]), flagging the job (`cancel_requested`, `stop_reason =
//! window_closed`) and telling its worker on the cancel channel; the running worker also arms
//! its own timer, which stops the job through the same script ([`Consumer::end_window_now`]).
//! A worker that dies mid-sweep loses nothing: the members stay until swept.

use redis::AsyncCommands;

use super::consumer::Consumer;
use crate::domain::{JobId, ToolName, Zone};

/// The member of the `ends` zset for one attempt.
fn member(id: &JobId, fence: u64) -> String {
    format!("{fence}:{}", id.job_ref())
}

impl Consumer {
    /// Registers attempt `fence` of job `id` to be stopped at `end_ms` (ms since the epoch,
    /// compared with Redis' clock).
    pub async fn register_window_end(
        &self,
        id: &JobId,
        fence: u64,
        end_ms: u64,
    ) -> Result<(), super::QueueError> {
        let mut con = self.pool.get().await?;
        let _: i64 = con
            .zadd(
                self.keys.job_keys(id).window_ends(),
                member(id, fence),
                end_ms,
            )
            .await?;
        Ok(())
    }

    /// Stops attempt `fence` of job `id` now, as the sweep would at its end (the running
    /// worker's own timer). True when the job was asked to stop here.
    pub async fn end_window_now(&self, id: &JobId, fence: u64) -> Result<bool, super::QueueError> {
        let mut con = self.pool.get().await?;
        let tk = self.keys.job_keys(id);
        let m = member(id, fence);
        let stopped = self
            .scripts
            .window_ends(&mut con, &tk, &self.settings, id.tool.as_str(), 1, Some(&m))
            .await?;
        Ok(!stopped.is_empty())
    }

    /// Stops the due jobs of every queue this worker reaps (up to `limit` per queue), by Redis'
    /// clock, whichever worker runs them, in one round trip. Returns the jobs asked to stop.
    pub async fn sweep_window_ends(
        &self,
        limit: usize,
    ) -> Result<Vec<(ToolName, Zone, String)>, super::QueueError> {
        let queues: Vec<(&ToolName, &Zone, &crate::keys::ToolKeys)> = self
            .tools
            .iter()
            .flat_map(|t| t.reaped.iter().map(move |(z, tk)| (&t.name, z, tk)))
            .collect();
        let calls: Vec<_> = queues.iter().map(|(n, _, tk)| (*tk, n.as_str())).collect();
        let mut con = self.pool.get().await?;
        let replies = self
            .scripts
            .window_ends_all(&mut con, &self.settings, &calls, limit)
            .await?;
        Ok(queues
            .iter()
            .zip(replies)
            .flat_map(|((name, zone, _), refs)| {
                refs.into_iter()
                    .map(move |r| ((*name).clone(), (*zone).clone(), r))
            })
            .collect())
    }
}
