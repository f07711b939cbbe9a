//! The worker's half of the queue: every Redis command a worker sends goes through
//! [`Consumer`]. One claim step asks each of the worker's tools (rotating, skipping disabled
//! tools and tools whose breaker recently refused) for ready jobs; results go back in batches
//! with the correlation-ID index's retention in the same round trip; leases are renewed for
//! all tools at once; idle workers block on the ready streams on a dedicated connection.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use super::Conn;
use super::connect::{Pool, cancelled_error, pool, script_settings};
use crate::breaker::{OpenCache, Transition};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::domain::{Capabilities, ErrorInfo, ErrorType, JobId, ToolName, Zone};
use crate::keys::{GROUP, Keys, ToolKeys};
use crate::scripts::{
    ClaimedJob, Completed, Completion, ReapReport, RenewStatus, ScriptSettings, Scripts,
};

/// A job this worker claimed: who it is, and what it needs to run.
#[derive(Debug, Clone)]
pub struct StartedJob {
    pub id: JobId,
    pub job: ClaimedJob,
    /// The job needs raw sockets: it came from its tool's raw lane, which only a consumer built
    /// with `raw_sockets: true` reads.
    pub needs_raw: bool,
}

/// What one claim step did.
#[derive(Debug, Default)]
pub struct ClaimRound {
    pub started: Vec<StartedJob>,
    /// Breaker transitions the claims made, per tool.
    pub transitions: Vec<(ToolName, Transition)>,
    /// Tools whose breaker refused (their jobs wait as `scheduled`).
    pub refused: Vec<ToolName>,
    /// Per tool, jobs parked because their target group was at its cap (politeness).
    pub parked: Vec<(ToolName, u64)>,
    /// Every queue the step could claim from is known to be empty after it (each claim said
    /// so, and none was left unasked for want of free slots): the worker waits for work
    /// instead of claiming again at once.
    pub drained: bool,
    /// Per tool, how many of `started` an enqueue started on this worker's offers
    /// (docs/queue.md "Direct start").
    pub handed: Vec<(ToolName, usize)>,
}

/// How often (every how many reap calls) a worker reaps the zones other than its own.
pub const OTHER_ZONES_EVERY: u64 = 10;

pub(super) struct ToolQueue {
    pub(super) name: ToolName,
    /// Its queue's partitions in the worker's zone, the home (breaker) first.
    pub(super) parts: Vec<ToolKeys>,
    /// The tool-wide switch (`disabled` in the home of zone `default`).
    pub(super) switch: String,
    /// Its partitions in every zone the worker reaps (its own first): due jobs and lapsed
    /// leases need no network, so a zone whose workers are all gone is still kept up. Other
    /// zones are reaped every [`OTHER_ZONES_EVERY`]-th call only (their own workers reap them
    /// every call), so a fleet of many zones does not multiply its reaping by their number.
    pub(super) reaped: Vec<(Zone, ToolKeys)>,
    pub(super) breaker_json: String,
    pub(super) breaker: crate::breaker::BreakerSettings,
    /// Its cap of running jobs per target group (catalog, else the fleet's; 0 = none), passed
    /// to every claim (politeness, docs/queue.md).
    pub(super) group_cap: u32,
}

pub struct Consumer {
    pub(super) pool: Pool,
    pub(super) keys: Keys,
    pub(super) scripts: Scripts,
    pub(super) settings: ScriptSettings,
    pub(super) id: String,
    pub(super) tools: Vec<ToolQueue>,
    pub(super) held_error_json: String,
    lost_error_json: String,
    cancelled_error_json: String,
    pub(super) open: OpenCache,
    pub(super) disabled: Mutex<HashSet<ToolName>>,
    pub(super) blocking: tokio::sync::Mutex<Vec<Conn>>,
    /// Replicas that must acknowledge a claim or a result (0 = none), and the wait for them.
    pub(super) replicas: (u32, u64),
    /// The home breaker of each partitioned tool as last read (see `claim.rs`).
    pub(super) home: Mutex<HashMap<ToolName, (std::time::Instant, crate::scripts::HomeBreaker)>>,
    pub(super) breakers: crate::breaker::Breaker,
    /// The zone whose jobs this worker claims (DESIGN §13).
    pub(super) zone: Zone,
    /// Calls of [`Consumer::reap`] so far.
    reap_round: std::sync::atomic::AtomicU64,
    /// What this worker can do: with `raw_sockets` it also claims from the raw lanes.
    pub(super) capabilities: Capabilities,
    /// The tools in whose home partition this worker's offer to take a job directly may stand
    /// (made by [`Consumer::wait_for_work`], settled by the next claim or by the wait reading
    /// the job started on it): each keeps a slot free (docs/queue.md "Direct start").
    pub(super) offers: Mutex<HashSet<ToolName>>,
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
    /// A consumer for the enabled tools of `catalog`, named `id`, for a worker with
    /// `capabilities` (a raw-capable one also claims jobs that need raw sockets).
    pub fn new(
        cfg: &Config,
        catalog: &Catalog,
        id: String,
        capabilities: Capabilities,
    ) -> Result<Self, String> {
        let keys = Keys::for_fleet(cfg, Some(catalog));
        let tools = catalog
            .tools()
            .filter(|(_, spec)| spec.enabled)
            .map(|(name, spec)| ToolQueue {
                name: name.clone(),
                parts: keys.partitions_of(name, &Zone::default()),
                switch: keys.tool(name).disabled(),
                reaped: keys
                    .partitions_of(name, &Zone::default())
                    .into_iter()
                    .map(|tk| (Zone::default(), tk))
                    .collect(),
                breaker_json: spec.breaker.to_json(),
                breaker: spec.breaker.clone(),
                group_cap: catalog.max_running_per_group(name, cfg.target_group_max_running),
            })
            .collect();
        Ok(Self {
            pool: pool(cfg)?,
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
            blocking: tokio::sync::Mutex::new(Vec::new()),
            replicas: (
                cfg.redis_min_replicas_ack,
                cfg.redis_min_replicas_timeout_ms,
            ),
            home: Mutex::default(),
            breakers: crate::breaker::Breaker::new(),
            zone: Zone::default(),
            reap_round: Default::default(),
            capabilities,
            offers: Mutex::default(),
        })
    }

    /// Claims the jobs of `zone` only (DESIGN §13), and reaps `zone`, `default` and `others`
    /// (the other zones of the map, which names `default` only implicitly: see
    /// [`ToolQueue::reaped`]).
    pub fn with_zones(mut self, zone: Zone, others: &[Zone]) -> Self {
        let mut zones = vec![zone.clone()];
        for z in std::iter::once(Zone::default()).chain(others.iter().cloned()) {
            if !zones.contains(&z) {
                zones.push(z);
            }
        }
        for t in &mut self.tools {
            t.parts = self.keys.partitions_of(&t.name, &zone);
            t.reaped = zones
                .iter()
                .flat_map(|z| {
                    self.keys
                        .partitions_of(&t.name, z)
                        .into_iter()
                        .map(move |tk| (z.clone(), tk))
                })
                .collect();
        }
        self.zone = zone;
        self
    }

    /// The zone whose jobs this worker claims.
    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// What this worker can do (as built).
    pub fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The connections (for the worker's cancel-channel listener).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub(super) fn tool(&self, name: &ToolName) -> Option<&ToolQueue> {
        self.tools.iter().find(|t| &t.name == name)
    }

    /// Creates the consumer group of every stream, so queue lag is visible before the first
    /// claim (KEDA's `redis-streams` scaler reads it). Best effort.
    pub async fn ensure_groups(&self) {
        let Ok(mut con) = self.pool.get().await else {
            return;
        };
        for t in &self.tools {
            for s in t
                .parts
                .iter()
                .flat_map(|p| p.claimable_streams(self.capabilities.raw_sockets))
            {
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
        // One group per partition (a script call each, all in one pipeline).
        let mut groups: Vec<(ToolKeys, Vec<usize>)> = Vec::new();
        for (i, (id, _)) in jobs.iter().enumerate() {
            let tk = self.keys.job_keys(id);
            match groups
                .iter_mut()
                .find(|(t, _)| t.job_prefix() == tk.job_prefix())
            {
                Some((_, v)) => v.push(i),
                None => groups.push((tk, vec![i])),
            }
        }
        let request: Vec<(ToolKeys, Vec<(String, u64)>)> = groups
            .iter()
            .map(|(tk, idx)| {
                let pairs = idx
                    .iter()
                    .map(|&i| (jobs[i].0.job_ref(), jobs[i].1))
                    .collect();
                (tk.clone(), pairs)
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
                &self.keys.job_keys(id),
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

    /// Writes a batch of one tool's outcomes: one script call per partition the jobs are in.
    /// Outcomes of jobs outside the home partition are then reported to the home breaker.
    pub async fn complete(
        &self,
        tool: &ToolName,
        batch: &[Completion],
    ) -> Result<Completed, super::QueueError> {
        let mut by_part: Vec<(u16, Vec<usize>)> = Vec::new();
        for (i, c) in batch.iter().enumerate() {
            let p = JobId::from_ref(tool, &self.zone, &c.job_ref)
                .map_or(0, |id| self.keys.partition_of(&id));
            match by_part.iter_mut().find(|(q, _)| *q == p) {
                Some((_, v)) => v.push(i),
                None => by_part.push((p, vec![i])),
            }
        }
        if let [(p, _)] = by_part.as_slice() {
            return self.complete_in(tool, *p, batch).await;
        }
        let mut out = Completed {
            states: vec![crate::scripts::CompleteStatus::Stale; batch.len()],
            breaker: vec![None; batch.len()],
            ..Completed::default()
        };
        for (p, idx) in by_part {
            let part: Vec<Completion> = idx.iter().map(|&i| batch[i].clone()).collect();
            let done = self.complete_in(tool, p, &part).await?;
            for (k, &i) in idx.iter().enumerate() {
                out.states[i] = done.states[k];
                out.breaker[i] = done.breaker[k];
            }
            out.transitions.extend(done.transitions);
        }
        Ok(out)
    }

    /// [`Consumer::complete`] for the jobs of partition `p`.
    async fn complete_in(
        &self,
        tool: &ToolName,
        p: u16,
        batch: &[Completion],
    ) -> Result<Completed, super::QueueError> {
        let t = self.tool(tool);
        // Outside the home partition the breaker lives in another slot: the script reports
        // what to tell it instead (see `claim.rs`).
        let breaker_json = match t {
            Some(t) if p == 0 => t.breaker_json.as_str(),
            Some(_) => "",
            None => "{}",
        };
        let mut con = self.pool.get().await?;
        let tk = self.keys.partition(tool, &self.zone, p);
        let mut done = self
            .scripts
            .complete(
                &mut con,
                &tk,
                &self.settings,
                tool.as_str(),
                breaker_json,
                &self.id,
                batch,
            )
            .await?;
        if !self.replicated(&mut con, &tk).await {
            // Written to the primary only: a failover now could lose these results and run the
            // jobs again. The caller writes them again (fenced, so a result that did arrive
            // answers `stale`) until they are confirmed.
            return Err(super::QueueError::NotReplicated {
                acked: 0,
                wanted: self.replicas.0,
            });
        }
        if let Some(t) = t.filter(|_| p > 0) {
            self.report_to_home(&mut con, t, batch, &mut done).await?;
        }
        Ok(done)
    }

    /// The queue's clock work for every tool (due jobs, lapsed leases) in the worker's zone,
    /// and in the other zones every [`OTHER_ZONES_EVERY`]-th call; and a refresh of which
    /// tools are disabled cluster-wide.
    pub async fn reap(
        &self,
        limit: usize,
    ) -> Result<Vec<(ToolName, Zone, ReapReport)>, super::QueueError> {
        let round = self
            .reap_round
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let others = round.is_multiple_of(OTHER_ZONES_EVERY);
        let mut con = self.pool.get().await?;
        let mut out = Vec::with_capacity(self.tools.len());
        for t in &self.tools {
            for (zone, tk) in &t.reaped {
                if *zone != self.zone && !others {
                    continue;
                }
                let report = self
                    .scripts
                    .reap(
                        &mut con,
                        tk,
                        &self.settings,
                        t.name.as_str(),
                        limit,
                        &self.lost_error_json,
                        &self.cancelled_error_json,
                    )
                    .await?;
                out.push((t.name.clone(), zone.clone(), report));
            }
        }
        let mut pipe = redis::pipe();
        for t in &self.tools {
            pipe.exists(&t.switch);
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
}

#[cfg(test)]
#[path = "consumer_zone_tests.rs"]
mod zone_tests;
