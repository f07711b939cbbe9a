//! Writing a big scan's parent from its chunks (DESIGN §12; the model is in `parent.rs`):
//! [`Queue::settle_parent`] reads the chunks' tallies (one HGETALL per partition) and writes
//! what they mean; when every chunk has finished it merges their results into the parent's.
//! [`Queue::reconcile_parents`] is the safety net every worker runs: parents not looked at for
//! a while are settled again, and a parent whose submit stopped half-way gets its chunks.

use std::collections::HashMap;

use redis::AsyncCommands;

use super::chunks::ChunkSet;
use super::parent::{SPAWN_GRACE_MS, progress_json, tally_key};
use super::{Queue, QueueError, listing};
use crate::domain::{
    ChunkTally, ErrorInfo, ErrorType, JobId, JobResult, JobState, ToolName, Zone, chunk_id,
};
use crate::nmap::{ChunkOutcome, merge_chunks};
use crate::scripts::Settlement;

/// How often an open parent is looked at by the reconciler when nothing settled it.
pub(super) const CHECK_EVERY_MS: u64 = 10_000;
/// Largest merged XML kept in a parent's result (its hosts stay complete in `parsed`).
const MAX_MERGED_STDOUT: usize = 64 * 1024 * 1024;

impl Queue {
    /// Writes parent `id`'s state, tally and progress from its chunks, and its merged result
    /// once every chunk has finished. Returns (state before, state after); `None` when `id` is
    /// no parent. Idempotent: any process may call it any time.
    pub async fn settle_parent(
        &self,
        id: &JobId,
    ) -> Result<Option<(JobState, JobState)>, QueueError> {
        let Some(h) = self
            .parent_fields(id, &["state", "hosts", "cancel_requested"])
            .await?
        else {
            return Ok(None);
        };
        let Some(old) = h.get("state").and_then(|s| s.parse::<JobState>().ok()) else {
            return Ok(None);
        };
        let cancelling = h.get("cancel_requested").is_some_and(|v| v == "1");
        if old.is_terminal() || (old == JobState::AwaitingApproval && !cancelling) {
            // A parent awaiting approval has no chunk yet: nothing to settle until it is
            // approved (or cancelled).
            return Ok(Some((old, old)));
        }
        let num = |k: &str| h.get(k).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
        let (tally, hosts_done) = self.read_tally(id, &ChunkSet::from_fields(&h)).await?;
        let new = if h.get("cancel_requested").is_some_and(|v| v == "1") {
            tally.parent_state_cancelled()
        } else {
            tally.parent_state()
        };
        let (result, error) = if new.is_terminal() {
            self.merged(id, &tally, new).await?
        } else {
            (String::new(), String::new())
        };
        let tally_json = serde_json::to_string(&tally).expect("serializable");
        let progress = progress_json(&tally, hosts_done, num("hosts"));
        let mut con = self.connection().await?;
        let out = self
            .scripts
            .parent_settle(
                &mut con,
                &self.keys.job_keys(id),
                &self.settings,
                &id.job_ref(),
                id.tool.as_str(),
                &Settlement {
                    tally_json: &tally_json,
                    state: new.as_str(),
                    progress_json: &progress,
                    result_json: &result,
                    error_json: &error,
                    next_check_ms: CHECK_EVERY_MS,
                },
            )
            .await?;
        Ok(out.and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?))))
    }

    /// The chunks' tallies summed over the partitions of the tool in each of the chunks'
    /// zones, and the hosts of finished chunks.
    async fn read_tally(
        &self,
        id: &JobId,
        set: &ChunkSet,
    ) -> Result<(ChunkTally, u64), QueueError> {
        let mut tally = ChunkTally {
            total: set.total,
            ..Default::default()
        };
        let mut hosts_done = 0;
        let mut con = self.connection().await?;
        let parts = set
            .zones(id)
            .into_iter()
            .flat_map(|z| self.keys.partitions_of(&id.tool, &z));
        for tk in parts {
            let h: HashMap<String, i64> = con.hgetall(tally_key(&tk, id)).await?;
            for (k, v) in h {
                let v = v.max(0) as u64;
                match k.parse::<JobState>() {
                    Ok(state) => tally.add(state, v),
                    Err(_) if k == "hosts_done" => hosts_done += v,
                    Err(_) => {}
                }
            }
        }
        Ok((tally, hosts_done))
    }

    /// The parent's final result (the chunks' results merged) and error, as JSON.
    async fn merged(
        &self,
        id: &JobId,
        tally: &ChunkTally,
        state: JobState,
    ) -> Result<(String, String), QueueError> {
        let rows = self
            .chunk_fields(id, &["state", "target", "result", "error"])
            .await?;
        let results: Vec<Option<JobResult>> = rows
            .iter()
            .map(|r| {
                r.as_ref()
                    .and_then(|r| r.get("result"))
                    .and_then(|j| serde_json::from_str(j).ok())
            })
            .collect();
        let outcomes: Vec<ChunkOutcome<'_>> = rows
            .iter()
            .zip(&results)
            .enumerate()
            .map(|(n, (row, result))| ChunkOutcome {
                index: n as u32,
                target: row
                    .as_ref()
                    .and_then(|r| r.get("target"))
                    .map(String::as_str)
                    .unwrap_or(""),
                state: row
                    .as_ref()
                    .and_then(|r| r.get("state"))
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(JobState::Failed),
                result: result.as_ref(),
            })
            .collect();
        let merged = merge_chunks(&outcomes, MAX_MERGED_STDOUT);
        let result = merged.stored();
        let error = match state {
            JobState::Failed => {
                let first = rows.iter().enumerate().find(|(_, r)| {
                    r.as_ref().and_then(|r| r.get("state")).map(String::as_str) != Some("succeeded")
                });
                let (n, why) = match first {
                    Some((n, r)) => (
                        n,
                        r.as_ref()
                            .and_then(|r| r.get("error"))
                            .and_then(|e| serde_json::from_str::<ErrorInfo>(e).ok())
                            .map(|e| e.message)
                            .unwrap_or_else(|| "no result".to_owned()),
                    ),
                    None => (0, String::new()),
                };
                let e = ErrorInfo::new(
                    ErrorType::ExecutionError,
                    format!(
                        "{} of {} chunks failed for good (first: {}: {why}); the result holds \
                         the hosts of the {} that succeeded (partial); retry re-runs only the \
                         chunks that did not succeed",
                        tally.failed,
                        tally.total,
                        chunk_id(&id.cid, n as u64),
                        tally.succeeded
                    ),
                );
                serde_json::to_string(&e).expect("serializable")
            }
            JobState::Cancelled => super::cancelled_error(),
            _ => String::new(),
        };
        Ok((result, error))
    }

    /// Settles up to `budget` parents of `tool` in `zone` per partition that are due for a
    /// check (no settle for a while: a crash lost one, or nothing moved), and queues the
    /// missing chunks of a parent whose submit stopped half-way. Returns the parents that
    /// finished here (the caller emits their events).
    pub async fn reconcile_parents(
        &self,
        tool: &ToolName,
        zone: &Zone,
        budget: usize,
    ) -> Result<Vec<JobId>, QueueError> {
        let now = listing::now_ms();
        let mut finished = Vec::new();
        for tk in self.keys.partitions_of(tool, zone) {
            let mut con = self.connection().await?;
            let due: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                .arg(tk.open_parents())
                .arg("-inf")
                .arg(now)
                .arg("LIMIT")
                .arg(0)
                .arg(budget)
                .query_async(&mut con)
                .await?;
            for r in due {
                let Some(id) = JobId::from_ref(tool, zone, &r) else {
                    let _: () = con.zrem(tk.open_parents(), &r).await?;
                    continue;
                };
                let Some(h) = self
                    .parent_fields(&id, &["created_ms", "cancel_requested"])
                    .await?
                else {
                    // Expired or deleted: nothing left to watch.
                    let _: () = con.zrem(tk.open_parents(), &r).await?;
                    continue;
                };
                let num = |k: &str| h.get(k).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
                let (tally, _) = self.read_tally(&id, &ChunkSet::from_fields(&h)).await?;
                let cancelled = h.get("cancel_requested").is_some_and(|v| v == "1");
                if !cancelled
                    && tally.counted() < tally.total
                    && num("created_ms") + SPAWN_GRACE_MS < now
                {
                    tracing::warn!(correlation_id = %id.cid, queued = tally.counted(), chunks = tally.total, "A big scan's submit stopped half-way; queuing its missing chunks");
                    self.spawn_chunks(&id, 0, None).await?;
                }
                if let Some((a, b)) = self.settle_parent(&id).await?
                    && b.is_terminal()
                    && !a.is_terminal()
                {
                    finished.push(id);
                }
            }
        }
        Ok(finished)
    }
}
