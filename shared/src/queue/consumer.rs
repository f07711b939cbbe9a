//! The worker's half of the queue: every Redis command a worker sends goes through
//! [`Consumer`]. One claim step asks each of the worker's tools (rotating, skipping disabled
//! tools and tools whose breaker recently refused) for ready jobs; results go back in batches
//! with the correlation-ID index's retention in the same round trip; leases are renewed for
//! all tools at once; idle workers block on the ready streams on a dedicated connection.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::MultiplexedConnection;

use super::connect::{Pool, cancelled_error, client, pool, script_settings};
use crate::breaker::{OpenCache, Transition};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::domain::{ErrorInfo, ErrorType, JobId, ToolName};
use crate::keys::{GROUP, Keys, ToolKeys};
use crate::scripts::{
    BreakerArgs, ClaimedJob, Completed, Completion, ReapReport, RenewStatus, ScriptSettings,
    Scripts,
};

/// A job this worker claimed: who it is, and what it needs to run.
#[derive(Debug, Clone)]
pub struct StartedJob {
    pub id: JobId,
    pub job: ClaimedJob,
}

/// What one claim step did.
#[derive(Debug, Default)]
pub struct ClaimRound {
    pub started: Vec<StartedJob>,
    /// Breaker transitions the claims made, per tool.
    pub transitions: Vec<(ToolName, Transition)>,
    /// Tools whose breaker refused (their jobs wait as `scheduled`).
    pub refused: Vec<ToolName>,
}

/// A worker's self-description, written with each heartbeat (`GET /v1/workers`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Heartbeat {
    pub id: String,
    pub version: &'static str,
    pub pid: u32,
    pub started_ms: u64,
    pub concurrency: u32,
    /// Egress confinement of its tool runs: `nftables`, `unconfined` or `off`.
    pub confinement: &'static str,
    /// Tags of the jobs running here.
    pub running: Vec<String>,
    /// Tool → its binary is present on this worker.
    pub tools: HashMap<String, bool>,
}

struct ToolQueue {
    name: ToolName,
    keys: ToolKeys,
    breaker_json: String,
}

pub struct Consumer {
    pool: Pool,
    client: redis::Client,
    keys: Keys,
    scripts: Scripts,
    settings: ScriptSettings,
    id: String,
    tools: Vec<ToolQueue>,
    held_error_json: String,
    lost_error_json: String,
    cancelled_error_json: String,
    open: OpenCache,
    disabled: Mutex<HashSet<ToolName>>,
    blocking: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").field("id", &self.id).finish()
    }
}

fn error_json(kind: ErrorType, message: &str) -> String {
    serde_json::to_string(&ErrorInfo::new(kind, message)).expect("serializable")
}

impl Consumer {
    /// A consumer for the enabled tools of `catalog`, named `id`.
    pub fn new(cfg: &Config, catalog: &Catalog, id: String) -> Result<Self, String> {
        let keys = Keys::new(&cfg.key_prefix);
        let tools = catalog
            .tools()
            .filter(|(_, spec)| spec.enabled)
            .map(|(name, spec)| ToolQueue {
                name: name.clone(),
                keys: keys.tool(name),
                breaker_json: spec.breaker.to_json(),
            })
            .collect();
        Ok(Self {
            pool: pool(cfg)?,
            client: client(cfg)?,
            settings: script_settings(cfg, &keys),
            keys,
            scripts: Scripts::new(),
            id,
            tools,
            held_error_json: error_json(
                ErrorType::CircuitBreakerOpen,
                "the tool's circuit breaker is open; the job waits until it may run",
            ),
            lost_error_json: error_json(
                ErrorType::WorkerLost,
                "the worker running this job stopped renewing its lease",
            ),
            cancelled_error_json: cancelled_error(),
            open: OpenCache::new(),
            disabled: Mutex::default(),
            blocking: tokio::sync::Mutex::new(None),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The Redis client (for the worker's cancel-channel listener).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    fn tool(&self, name: &ToolName) -> Option<&ToolQueue> {
        self.tools.iter().find(|t| &t.name == name)
    }

    /// Creates the consumer group of every stream, so queue lag is visible before the first
    /// claim (KEDA's `redis-streams` scaler reads it). Best effort.
    pub async fn ensure_groups(&self) {
        let Ok(mut con) = self.pool.get().await else {
            return;
        };
        for t in &self.tools {
            for s in t.keys.streams() {
                let _: redis::RedisResult<()> = redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(&s)
                    .arg(GROUP)
                    .arg("0")
                    .arg("MKSTREAM")
                    .query_async(&mut con)
                    .await;
            }
        }
    }

    /// One claim step for up to `free` jobs across the worker's tools, starting with the tool
    /// `round` points at.
    pub async fn claim(&self, free: usize, round: u64) -> Result<ClaimRound, super::QueueError> {
        let mut out = ClaimRound::default();
        let n = self.tools.len();
        if n == 0 || free == 0 {
            return Ok(out);
        }
        let mut free = free;
        let mut con = self.pool.get().await?;
        for i in 0..n {
            let t = &self.tools[(round as usize + i) % n];
            if free == 0 {
                break;
            }
            if self
                .disabled
                .lock()
                .expect("disabled lock")
                .contains(&t.name)
                || self.open.is_open(t.name.as_str()).is_some()
            {
                continue;
            }
            let breaker = BreakerArgs {
                settings_json: &t.breaker_json,
                held_error_json: &self.held_error_json,
            };
            let claimed = self
                .scripts
                .claim(
                    &mut con,
                    &t.keys,
                    &self.settings,
                    &self.id,
                    free,
                    round,
                    t.name.as_str(),
                    breaker,
                )
                .await?;
            for tr in &claimed.transitions {
                if let Ok(tr) = serde_json::from_str::<Transition>(tr) {
                    out.transitions.push((t.name.clone(), tr));
                }
            }
            if claimed.retry_after_ms > 0 {
                self.open
                    .note_rejected(t.name.as_str(), claimed.retry_after_ms);
                out.refused.push(t.name.clone());
            }
            free = free.saturating_sub(claimed.jobs.len());
            for job in claimed.jobs {
                let Some(id) = JobId::from_ref(&t.name, &job.job_ref) else {
                    tracing::error!(job = %job.job_ref, "Claimed a job with a malformed ref");
                    continue;
                };
                out.started.push(StartedJob { id, job });
            }
        }
        Ok(out)
    }

    /// Notes a breaker transition (from a claim or a completion) for the open-breaker memory:
    /// a breaker that closed or half-opened is asked again at once.
    pub fn note_transition(&self, tool: &ToolName, tr: &Transition) {
        if matches!(tr.to.as_str(), "closed" | "disabled" | "half_open") {
            self.open.clear(tool.as_str());
        }
    }

    /// Renews the leases of `jobs` (id, fence), one round trip for all tools; one status each,
    /// in the order given.
    pub async fn renew(
        &self,
        jobs: &[(JobId, u64)],
    ) -> Result<Vec<RenewStatus>, super::QueueError> {
        if jobs.is_empty() {
            return Ok(vec![]);
        }
        let mut groups: Vec<(ToolName, Vec<usize>)> = Vec::new();
        for (i, (id, _)) in jobs.iter().enumerate() {
            match groups.iter_mut().find(|(t, _)| t == &id.tool) {
                Some((_, v)) => v.push(i),
                None => groups.push((id.tool.clone(), vec![i])),
            }
        }
        let request: Vec<(ToolKeys, Vec<(String, u64)>)> = groups
            .iter()
            .map(|(tool, idx)| {
                let pairs = idx
                    .iter()
                    .map(|&i| (jobs[i].0.job_ref(), jobs[i].1))
                    .collect();
                (self.keys.tool(tool), pairs)
            })
            .collect();
        let mut con = self.pool.get().await?;
        let replies = self
            .scripts
            .renew_all(&mut con, &self.settings, &request)
            .await?;
        let mut out = vec![RenewStatus::Ok; jobs.len()];
        for ((_, idx), statuses) in groups.iter().zip(replies) {
            for (&i, s) in idx.iter().zip(statuses) {
                out[i] = s;
            }
        }
        Ok(out)
    }

    /// Appends a progress or output event for a running attempt; `None` when fenced out.
    pub async fn event(
        &self,
        id: &JobId,
        fence: u64,
        kind: &str,
        data_json: &str,
        progress_json: &str,
    ) -> Result<Option<u64>, super::QueueError> {
        let mut con = self.pool.get().await?;
        Ok(self
            .scripts
            .event(
                &mut con,
                &self.keys.tool(&id.tool),
                &self.settings,
                &id.job_ref(),
                fence,
                kind,
                data_json,
                progress_json,
                id.tool.as_str(),
            )
            .await?)
    }

    /// Writes a batch of one tool's outcomes (one script call).
    pub async fn complete(
        &self,
        tool: &ToolName,
        batch: &[Completion],
    ) -> Result<Completed, super::QueueError> {
        let breaker_json = self.tool(tool).map_or("{}", |t| t.breaker_json.as_str());
        let mut con = self.pool.get().await?;
        Ok(self
            .scripts
            .complete(
                &mut con,
                &self.keys.tool(tool),
                &self.settings,
                tool.as_str(),
                breaker_json,
                &self.id,
                batch,
            )
            .await?)
    }

    /// The queue's clock work for every tool (due jobs, lapsed leases), and a refresh of which
    /// tools are disabled cluster-wide.
    pub async fn reap(
        &self,
        limit: usize,
    ) -> Result<Vec<(ToolName, ReapReport)>, super::QueueError> {
        let mut con = self.pool.get().await?;
        let mut out = Vec::with_capacity(self.tools.len());
        for t in &self.tools {
            let report = self
                .scripts
                .reap(
                    &mut con,
                    &t.keys,
                    &self.settings,
                    t.name.as_str(),
                    limit,
                    &self.lost_error_json,
                    &self.cancelled_error_json,
                )
                .await?;
            out.push((t.name.clone(), report));
        }
        let mut pipe = redis::pipe();
        for t in &self.tools {
            pipe.exists(t.keys.disabled());
        }
        let flags: Vec<bool> = pipe.query_async(&mut con).await?;
        *self.disabled.lock().expect("disabled lock") = self
            .tools
            .iter()
            .zip(flags)
            .filter(|(_, d)| *d)
            .map(|(t, _)| t.name.clone())
            .collect();
        Ok(out)
    }

    /// Writes the worker's self-description with an expiry of `ttl` and drops workers whose
    /// heartbeat has lapsed from the live set.
    pub async fn heartbeat(&self, doc: &Heartbeat, ttl: Duration) -> Result<(), super::QueueError> {
        let ttl_ms = ttl.as_millis() as u64;
        let mut con = self.pool.get().await?;
        let now: (u64, u64) = redis::cmd("TIME").query_async(&mut con).await?;
        let now_ms = now.0 * 1000 + now.1 / 1000;
        let json = serde_json::to_string(doc).expect("serializable");
        let _: () = redis::pipe()
            .cmd("SET")
            .arg(self.keys.worker(&self.id))
            .arg(json)
            .arg("PX")
            .arg(ttl_ms)
            .ignore()
            .zadd(self.keys.workers(), &self.id, now_ms + ttl_ms)
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(self.keys.workers())
            .arg("-inf")
            .arg(now_ms)
            .ignore()
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    /// Leaves the live set (on shutdown). Best effort.
    pub async fn deregister(&self) {
        if let Ok(mut con) = self.pool.get().await {
            let _: redis::RedisResult<()> = redis::pipe()
                .del(self.keys.worker(&self.id))
                .zrem(self.keys.workers(), &self.id)
                .query_async(&mut con)
                .await;
        }
    }

    /// Blocks (on a dedicated connection without response timeout) until any of the worker's
    /// claimable ready streams holds an entry, or `timeout` passes. A ready stream holds only
    /// unclaimed entries (the claim deletes what it takes), so reading from `0-0` returns at once
    /// while work is waiting and blocks while there is none: no entry can slip in between a
    /// claim and the wait. Disabled tools and tools whose breaker refused are left out (their
    /// entries would wake the worker for nothing).
    pub async fn wait_for_work(&self, timeout: Duration) {
        let streams: Vec<String> = {
            let disabled = self.disabled.lock().expect("disabled lock");
            self.tools
                .iter()
                .filter(|t| {
                    !disabled.contains(&t.name) && self.open.is_open(t.name.as_str()).is_none()
                })
                .flat_map(|t| t.keys.streams())
                .collect()
        };
        if streams.is_empty() {
            tokio::time::sleep(timeout).await;
            return;
        }
        let mut guard = self.blocking.lock().await;
        if guard.is_none() {
            let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
            match self
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await
            {
                Ok(con) => *guard = Some(con),
                Err(_) => {
                    tokio::time::sleep(timeout.min(Duration::from_millis(500))).await;
                    return;
                }
            }
        }
        let Some(con) = guard.as_mut() else { return };
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("BLOCK")
            .arg(timeout.as_millis() as u64)
            .arg("COUNT")
            .arg(1)
            .arg("STREAMS");
        for s in &streams {
            cmd.arg(s);
        }
        for _ in &streams {
            cmd.arg("0-0");
        }
        let res: redis::RedisResult<redis::Value> = cmd.query_async(con).await;
        if res.is_err() {
            *guard = None;
        }
    }
}
