//! The worker: one claim step ([`Worker::process_one`]) and the small loop around it, plus the
//! background duties that keep jobs safe — lease renewal (one round trip per tool for all of
//! this worker's jobs), reaping (due jobs, lapsed leases), heartbeats, cancellation, and the
//! drain on shutdown.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_redis::Pool;
use redis::aio::MultiplexedConnection;
use scanq::breaker::{OpenCache, Transition};
use scanq::catalog::{Catalog, Executor};
use scanq::config::Config;
use scanq::domain::{ErrorInfo, ErrorType, ToolName};
use scanq::keys::{Keys, ToolKeys};
use scanq::metrics::Metrics;
use scanq::queue::{Listener, cancelled_error, script_settings};
use scanq::scripts::{BreakerArgs, ClaimedJob, RenewStatus, ScriptSettings, Scripts};
use scanq::validate::{Resolver, SystemResolver, TargetPolicy};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::completer::{self, Finished};
use crate::execute;

/// Why a running job's token was fired.
pub(crate) mod stop {
    pub const NONE: u8 = 0;
    /// A client cancelled it.
    pub const CANCEL: u8 = 1;
    /// Its lease was taken over: drop the result.
    pub const LOST: u8 = 2;
    /// The worker is shutting down: hand it back.
    pub const HANDBACK: u8 = 3;
}

/// A job this worker is running (or whose result it has not yet written).
#[derive(Debug, Clone)]
pub(crate) struct RunningJob {
    pub tool: ToolName,
    pub job_ref: String,
    pub fence: u64,
    pub cancel: CancellationToken,
    pub reason: Arc<AtomicU8>,
}

impl RunningJob {
    pub fn stop(&self, reason: u8) {
        let _ =
            self.reason
                .compare_exchange(stop::NONE, reason, Ordering::SeqCst, Ordering::SeqCst);
        self.cancel.cancel();
    }
}

/// What one claim step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    /// Jobs were claimed and started.
    Claimed(usize),
    /// Nothing was ready; the stream ids to block on, per tool.
    Empty,
    /// Every slot is busy.
    Full,
}

pub(crate) struct Inner {
    pub cfg: Config,
    pub catalog: Catalog,
    pub keys: Keys,
    pub scripts: Scripts,
    pub settings: ScriptSettings,
    pub pool: Pool,
    pub client: redis::Client,
    pub id: String,
    pub tools: Vec<(ToolName, ToolKeys)>,
    pub running: Mutex<HashMap<String, RunningJob>>,
    pub round: AtomicU64,
    pub metrics: Metrics,
    pub targets: TargetPolicy,
    pub resolver: Arc<dyn Resolver>,
    pub finished: mpsc::UnboundedSender<Finished>,
    pub slot_freed: Notify,
    pub disabled: Mutex<HashSet<String>>,
    pub last_ids: Mutex<HashMap<String, String>>,
    pub listener: Listener,
    pub blocking: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    /// Each tool's breaker settings as the scripts take them (JSON).
    pub breaker_json: HashMap<ToolName, String>,
    pub held_error_json: String,
    /// Tools whose breaker refused recently, until when (no Redis call per job while open).
    pub open: OpenCache,
}

/// A worker process's shared state; cheap to clone.
#[derive(Clone)]
pub struct Worker {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.inner.id)
            .finish()
    }
}

fn default_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "worker".into());
    format!("{host}:{}:{:04x}", std::process::id(), fastrand::u16(..))
}

impl Worker {
    /// Connects to Redis and prepares the queues of every catalog tool.
    pub async fn connect(cfg: Config, catalog: Catalog) -> anyhow::Result<Self> {
        Self::connect_with_resolver(cfg, catalog, Arc::new(SystemResolver)).await
    }

    pub async fn connect_with_resolver(
        cfg: Config,
        catalog: Catalog,
        resolver: Arc<dyn Resolver>,
    ) -> anyhow::Result<Self> {
        let keys = Keys::new(&cfg.key_prefix);
        let pool = scanq::queue::pool(&cfg).map_err(anyhow::Error::msg)?;
        let client = scanq::queue::client(&cfg).map_err(anyhow::Error::msg)?;
        let targets = TargetPolicy::parse(&cfg.allowed_targets, &cfg.denied_targets, cfg.max_hosts)
            .map_err(|e| anyhow::anyhow!("allowed_targets/denied_targets: {e}"))?;
        let tools: Vec<(ToolName, ToolKeys)> = catalog
            .tools()
            .filter(|(_, spec)| spec.enabled)
            .map(|(name, _)| (name.clone(), keys.tool(name)))
            .collect();
        let breaker_json = catalog
            .tools()
            .map(|(name, spec)| (name.clone(), spec.breaker.to_json()))
            .collect();
        let held_error_json = serde_json::to_string(&ErrorInfo::new(
            ErrorType::CircuitBreakerOpen,
            "the tool's circuit breaker is open; the job waits until it may run",
        ))
        .expect("serializable");
        let (tx, rx) = mpsc::unbounded_channel();
        let listener = Listener::start(client.clone(), keys.cancel_channel());
        let inner = Arc::new(Inner {
            settings: script_settings(&cfg, &keys),
            id: cfg.worker_id.clone().unwrap_or_else(default_id),
            scripts: Scripts::new(),
            catalog,
            keys,
            pool,
            client,
            tools,
            running: Mutex::default(),
            round: AtomicU64::new(fastrand::u64(..1000)),
            metrics: Metrics::new(),
            targets,
            resolver,
            finished: tx,
            slot_freed: Notify::new(),
            disabled: Mutex::default(),
            last_ids: Mutex::default(),
            listener,
            blocking: tokio::sync::Mutex::new(None),
            breaker_json,
            held_error_json,
            open: OpenCache::new(),
            cfg,
        });
        let worker = Self { inner };
        tokio::spawn(completer::run(worker.clone(), rx));
        worker.ensure_groups().await;
        Ok(worker)
    }

    pub fn id(&self) -> &str {
        &self.inner.id
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// A snapshot of the jobs running (or finishing) on this worker.
    pub(crate) fn running_jobs(&self) -> Vec<RunningJob> {
        self.inner
            .running
            .lock()
            .expect("running lock")
            .values()
            .cloned()
            .collect()
    }

    /// Jobs running (or finishing) on this worker.
    pub fn running(&self) -> usize {
        self.inner.running.lock().expect("running lock").len()
    }

    /// Creates the consumer group of every stream, so queue lag is visible before the first
    /// claim (KEDA's `redis-streams` scaler reads it).
    async fn ensure_groups(&self) {
        let Ok(mut con) = self.inner.pool.get().await else {
            return;
        };
        for (_, tk) in &self.inner.tools {
            for s in tk.streams() {
                let _: redis::RedisResult<()> = redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(&s)
                    .arg(scanq::keys::GROUP)
                    .arg("0")
                    .arg("MKSTREAM")
                    .query_async(&mut con)
                    .await;
            }
        }
    }

    /// One claim step: fill the free slots from the ready queues of every tool and start the jobs.
    pub async fn process_one(&self) -> anyhow::Result<Processed> {
        let inner = &self.inner;
        let concurrency = inner.cfg.worker_concurrency as usize;
        let mut free = concurrency.saturating_sub(self.running());
        if free == 0 {
            return Ok(Processed::Full);
        }
        let round = inner.round.fetch_add(1, Ordering::Relaxed);
        let n = inner.tools.len();
        let mut con = inner.pool.get().await?;
        let mut started = 0;
        for i in 0..n {
            let (tool, tk) = &inner.tools[(round as usize + i) % n];
            if free == 0 {
                break;
            }
            if inner
                .disabled
                .lock()
                .expect("disabled lock")
                .contains(tool.as_str())
                || inner.open.is_open(tool.as_str()).is_some()
            {
                continue;
            }
            let breaker = BreakerArgs {
                settings_json: inner
                    .breaker_json
                    .get(tool)
                    .map(String::as_str)
                    .unwrap_or("{}"),
                held_error_json: &inner.held_error_json,
            };
            let claimed = inner
                .scripts
                .claim(
                    &mut con,
                    tk,
                    &inner.settings,
                    &inner.id,
                    free,
                    round,
                    tool.as_str(),
                    breaker,
                )
                .await?;
            self.note_transitions(tool, &claimed.transitions);
            if claimed.retry_after_ms > 0 {
                inner
                    .open
                    .note_rejected(tool.as_str(), claimed.retry_after_ms);
                inner
                    .metrics
                    .breaker_calls
                    .with_label_values(&[tool.as_str(), "rejected"])
                    .inc();
            }
            if !claimed.last_ids.is_empty() {
                let mut ids = inner.last_ids.lock().expect("last ids lock");
                for (s, id) in tk.streams().into_iter().zip(claimed.last_ids) {
                    ids.insert(s, id);
                }
            }
            free = free.saturating_sub(claimed.jobs.len());
            started += claimed.jobs.len();
            for job in claimed.jobs {
                self.start(tool.clone(), job);
            }
        }
        Ok(if started > 0 {
            Processed::Claimed(started)
        } else {
            Processed::Empty
        })
    }

    /// Logs and counts breaker transitions reported by a script.
    pub(crate) fn note_transitions(&self, tool: &ToolName, transitions: &[String]) {
        for t in transitions {
            let Ok(t) = serde_json::from_str::<Transition>(t) else {
                continue;
            };
            tracing::warn!(tool = %tool, from = %t.from, to = %t.to, reason = %t.reason, generation = t.generation, "Breaker transition");
            let m = &self.inner.metrics;
            m.breaker_transitions
                .with_label_values(&[tool.as_str(), t.from.as_str(), t.to.as_str()])
                .inc();
            m.breaker_state
                .with_label_values(&[tool.as_str()])
                .set(t.to.gauge_value());
            if matches!(t.to.as_str(), "closed" | "disabled" | "half_open") {
                self.inner.open.clear(tool.as_str());
            }
        }
    }

    fn start(&self, tool: ToolName, job: ClaimedJob) {
        let running = RunningJob {
            tool: tool.clone(),
            job_ref: job.job_ref.clone(),
            fence: job.fence,
            cancel: CancellationToken::new(),
            reason: Arc::new(AtomicU8::new(stop::NONE)),
        };
        let tag = format!("{tool}/{}", job.job_ref);
        self.inner
            .running
            .lock()
            .expect("running lock")
            .insert(tag.clone(), running.clone());
        let m = &self.inner.metrics;
        m.jobs_running.with_label_values(&[tool.as_str()]).inc();
        if let Some(wait_ms) = job
            .fields
            .get("queue_wait_ms")
            .and_then(|w| w.parse::<u64>().ok())
        {
            m.queue_wait
                .with_label_values(&[tool.as_str()])
                .observe(wait_ms as f64 / 1000.0);
        }
        let started = std::time::Instant::now();
        let cid = job.fields.get("cid").cloned().unwrap_or_default();
        let span = tracing::info_span!("job", correlation_id = %cid, tool = %tool);
        let worker = self.clone();
        tokio::spawn(
            async move {
                let outcome = execute::attempt(&worker, &running, &job).await;
                worker
                    .inner
                    .metrics
                    .jobs_running
                    .with_label_values(&[tool.as_str()])
                    .dec();
                match outcome {
                    Some(completion) => {
                        let _ = worker.inner.finished.send(Finished {
                            tag,
                            tool,
                            completion,
                            started,
                            span: tracing::Span::current(),
                        });
                    }
                    None => worker.forget(&tag),
                }
            }
            .instrument(span),
        );
    }

    /// Drops a job from the running set (its result is written, or it is no longer ours).
    pub(crate) fn forget(&self, tag: &str) {
        self.inner.running.lock().expect("running lock").remove(tag);
        self.inner.slot_freed.notify_one();
    }

    /// Blocks (on a dedicated connection without response timeout) until a new entry arrives
    /// on any queue stream, or `timeout` passes.
    async fn wait_for_work(&self, timeout: Duration) {
        let ids: Vec<(String, String)> = {
            let last = self.inner.last_ids.lock().expect("last ids lock");
            self.inner
                .tools
                .iter()
                .flat_map(|(_, tk)| tk.streams())
                .map(|s| {
                    let id = last.get(&s).cloned().unwrap_or_else(|| "$".into());
                    (s, id)
                })
                .collect()
        };
        let mut guard = self.inner.blocking.lock().await;
        if guard.is_none() {
            let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
            match self
                .inner
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
        for (s, _) in &ids {
            cmd.arg(s);
        }
        for (_, id) in &ids {
            cmd.arg(id);
        }
        let res: redis::RedisResult<redis::Value> = cmd.query_async(con).await;
        if res.is_err() {
            *guard = None;
        }
    }

    /// The claim loop with its background duties; returns after the drain.
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let stop = CancellationToken::new();
        {
            let stop = stop.clone();
            tokio::spawn(async move {
                shutdown.await;
                stop.cancel();
            });
        }
        let duties = [
            tokio::spawn(self.clone().renew_loop()),
            tokio::spawn(self.clone().reap_loop()),
            tokio::spawn(self.clone().heartbeat_loop()),
        ];
        tracing::info!(worker = %self.inner.id, tools = ?self.inner.catalog.names(), concurrency = self.inner.cfg.worker_concurrency, "Worker started");
        let mut failing = false;
        let idle_wait = Duration::from_millis(self.inner.cfg.reap_interval_ms.clamp(100, 2000));
        while !stop.is_cancelled() {
            match self.process_one().await {
                Ok(Processed::Claimed(_)) => failing = false,
                Ok(Processed::Full) => {
                    tokio::select! {
                        _ = self.inner.slot_freed.notified() => {}
                        _ = stop.cancelled() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
                Ok(Processed::Empty) => {
                    failing = false;
                    tokio::select! {
                        _ = self.wait_for_work(idle_wait) => {}
                        _ = stop.cancelled() => {}
                    }
                }
                Err(err) => {
                    if !failing {
                        tracing::warn!(error = %err, "Claim failed; retrying with back-off");
                        failing = true;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(250 + fastrand::u64(..250))) => {}
                        _ = stop.cancelled() => {}
                    }
                }
            }
        }
        self.drain().await;
        for d in duties {
            d.abort();
        }
        self.deregister().await;
        tracing::info!(worker = %self.inner.id, "Worker stopped");
    }

    /// Graceful shutdown: running jobs get the grace period, then the rest are killed and handed
    /// back at once (not after a lease timeout).
    async fn drain(&self) {
        let grace = Duration::from_secs(self.inner.cfg.worker_grace_sec);
        tracing::info!(
            running = self.running(),
            grace_sec = grace.as_secs(),
            "Draining"
        );
        let deadline = tokio::time::Instant::now() + grace;
        while self.running() > 0 && tokio::time::Instant::now() < deadline {
            tokio::select! {
                _ = self.inner.slot_freed.notified() => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
        let left = self.running_jobs();
        if !left.is_empty() {
            tracing::info!(jobs = left.len(), "Handing back unfinished jobs");
        }
        for job in &left {
            job.stop(stop::HANDBACK);
        }
        // The sandbox needs its kill grace; the completer then writes the hand-backs.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while self.running() > 0 && tokio::time::Instant::now() < deadline {
            tokio::select! {
                _ = self.inner.slot_freed.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    /// Renews the leases of all running jobs, one pipelined round trip for all tools.
    async fn renew_loop(self) {
        let every = Duration::from_millis((self.inner.cfg.lease_sec * 1000 / 3).max(200));
        loop {
            tokio::time::sleep(every).await;
            if let Err(err) = self.renew_once().await {
                tracing::warn!(error = %err, "Lease renewal failed");
            }
        }
    }

    pub(crate) async fn renew_once(&self) -> anyhow::Result<()> {
        let jobs = self.running_jobs();
        if jobs.is_empty() {
            return Ok(());
        }
        let mut by_tool: HashMap<ToolName, Vec<RunningJob>> = HashMap::new();
        for j in jobs {
            by_tool.entry(j.tool.clone()).or_default().push(j);
        }
        let by_tool: Vec<(ToolName, Vec<RunningJob>)> = by_tool.into_iter().collect();
        let request: Vec<_> = by_tool
            .iter()
            .map(|(tool, jobs)| {
                let pairs = jobs.iter().map(|j| (j.job_ref.clone(), j.fence)).collect();
                (self.inner.keys.tool(tool), pairs)
            })
            .collect();
        let mut con = self.inner.pool.get().await?;
        let replies = self
            .inner
            .scripts
            .renew_all(&mut con, &self.inner.settings, &request)
            .await?;
        for ((_, jobs), statuses) in by_tool.iter().zip(replies) {
            for (job, status) in jobs.iter().zip(statuses) {
                match status {
                    RenewStatus::Ok => {}
                    RenewStatus::Cancel => job.stop(stop::CANCEL),
                    RenewStatus::Lost => {
                        tracing::warn!(job = %job.job_ref, "Lease lost to another worker; stopping the tool");
                        job.stop(stop::LOST);
                    }
                }
            }
        }
        Ok(())
    }

    /// Promotes due jobs and takes over lapsed leases, for every tool; refreshes disabled tools.
    async fn reap_loop(self) {
        let base = self.inner.cfg.reap_interval_ms;
        let lost = serde_json::to_string(&ErrorInfo::new(
            ErrorType::WorkerLost,
            "the worker running this job stopped renewing its lease",
        ))
        .expect("serializable");
        let cancelled = cancelled_error();
        let mut failing = false;
        loop {
            tokio::time::sleep(Duration::from_millis(base / 2 + fastrand::u64(..=base))).await;
            let res: anyhow::Result<()> = async {
                let mut con = self.inner.pool.get().await?;
                for (tool, tk) in &self.inner.tools {
                    let report = self
                        .inner
                        .scripts
                        .reap(&mut con, tk, &self.inner.settings, tool.as_str(), 500, &lost, &cancelled)
                        .await?;
                    for (job, state) in report.taken_over {
                        tracing::warn!(tool = %tool, job = %job, state = %state, "Lease lapsed; job taken over");
                    }
                }
                let mut pipe = redis::pipe();
                for (_, tk) in &self.inner.tools {
                    pipe.exists(tk.disabled());
                }
                let flags: Vec<bool> = pipe.query_async(&mut con).await?;
                let disabled: HashSet<String> = self
                    .inner
                    .tools
                    .iter()
                    .zip(flags)
                    .filter(|(_, d)| *d)
                    .map(|((t, _), _)| t.to_string())
                    .collect();
                *self.inner.disabled.lock().expect("disabled lock") = disabled;
                Ok(())
            }
            .await;
            match res {
                Ok(()) if failing => {
                    tracing::info!("Redis reachable again");
                    failing = false;
                }
                Ok(()) => {}
                Err(err) if !failing => {
                    tracing::warn!(error = %err, "Reaping failed; Redis unreachable?");
                    failing = true;
                }
                Err(_) => {}
            }
        }
    }

    async fn heartbeat_loop(self) {
        let every = Duration::from_secs(self.inner.cfg.heartbeat_sec);
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        loop {
            let _ = self.heartbeat(started).await;
            tokio::time::sleep(every).await;
        }
    }

    async fn heartbeat(&self, started_ms: u64) -> anyhow::Result<()> {
        let inner = &self.inner;
        let running: Vec<String> = inner
            .running
            .lock()
            .expect("running lock")
            .keys()
            .cloned()
            .collect();
        let tools: HashMap<String, bool> = inner
            .catalog
            .tools()
            .map(|(name, spec)| {
                let present =
                    spec.executor != Executor::Exec || execute::binary_present(&spec.command);
                (name.to_string(), present)
            })
            .collect();
        let doc = serde_json::json!({
            "id": inner.id,
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "started_ms": started_ms,
            "concurrency": inner.cfg.worker_concurrency,
            "running": running,
            "tools": tools,
        });
        let ttl_ms = inner.cfg.heartbeat_sec * 3000;
        let mut con = inner.pool.get().await?;
        let now: (u64, u64) = redis::cmd("TIME").query_async(&mut con).await?;
        let now_ms = now.0 * 1000 + now.1 / 1000;
        let _: () = redis::pipe()
            .cmd("SET")
            .arg(inner.keys.worker(&inner.id))
            .arg(doc.to_string())
            .arg("PX")
            .arg(ttl_ms)
            .ignore()
            .zadd(inner.keys.workers(), &inner.id, now_ms + ttl_ms)
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(inner.keys.workers())
            .arg("-inf")
            .arg(now_ms)
            .ignore()
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    async fn deregister(&self) {
        if let Ok(mut con) = self.inner.pool.get().await {
            let _: redis::RedisResult<()> = redis::pipe()
                .del(self.inner.keys.worker(&self.inner.id))
                .zrem(self.inner.keys.workers(), &self.inner.id)
                .query_async(&mut con)
                .await;
        }
    }
}
