//! The worker: one claim step ([`Worker::process_one`]) and the small loop around it, and the
//! drain on shutdown. The background duties that keep jobs safe (lease renewal, reaping,
//! heartbeats) are in `duties`; every Redis call goes through the queue's [`Consumer`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use scanq::catalog::Catalog;
use scanq::config::Config;
use scanq::domain::{StopReason, ToolName};
use scanq::metrics::Metrics;
use scanq::queue::{Consumer, Listener, StartedJob};
use scanq::reload::{Live, LiveCell};
use scanq::validate::{Resolver, SystemResolver};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::completer;
use crate::execute;
use crate::state::{Finished, RunningJob, Shared, SharedRef};

/// What one claim step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    /// Jobs were claimed and started; `drained` when the queues are known to be empty after
    /// the claim (the loop then waits for work instead of claiming again at once).
    Claimed { started: usize, drained: bool },
    /// Nothing was ready.
    Empty,
    /// Every slot is busy.
    Full,
}

/// A worker process's shared state; cheap to clone.
#[derive(Clone)]
pub struct Worker {
    pub(crate) shared: SharedRef,
    round: Arc<AtomicU64>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.shared.queue.id())
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
        // Before Redis: a worker that must confine and cannot refuses to start at once.
        let (confinement, egress) = crate::confine::setup(&cfg).await?;
        // Nor does one whose exec tools would run as its own uid, unless the operator allows it.
        let unconfined = crate::unconfined::check(&cfg, &catalog, confinement)
            .map_err(|e| e.context("refusing to start"))?;
        let cgroups = run_cgroups();
        if let Some(egress) = &egress {
            egress.runs_in_cgroups(cgroups.is_some());
        }
        let id = cfg.worker_id.clone().unwrap_or_else(default_id);
        // Raw jobs are claimed only where raw-socket runs are confined.
        let capabilities = scanq::domain::Capabilities {
            raw_sockets: egress.as_ref().is_some_and(|e| e.raw_ready()),
            run_cgroups: cgroups.is_some(),
            unconfined,
        };
        // It claims its zone's jobs only, and keeps every zone of the map reaped.
        let zones = cfg.zone_map().map_err(anyhow::Error::from)?.zones();
        let queue = Consumer::new(&cfg, &catalog, id, capabilities)
            .map_err(anyhow::Error::msg)?
            .with_zones(cfg.worker_zone.clone(), &zones);
        let cancels = Listener::start(queue.pool().clone(), queue.keys().cancel_channel());
        let (tx, rx) = mpsc::unbounded_channel();
        // The API's half of the queue, for firing schedules and reading finished jobs: same
        // connection, same partitions as the catalog says.
        let job_events = scanq::webhook::JobEvents::new(scanq::queue::Queue::with_catalog(
            queue.pool().clone(),
            &cfg,
            &catalog,
        ));
        job_events
            .queue
            .check_layout_at_start(&catalog)
            .await
            .map_err(anyhow::Error::msg)?;
        let live = Live::new(cfg.clone(), catalog).map_err(anyhow::Error::msg)?;
        let shared = Arc::new(Shared {
            job_events,
            settler: Default::default(),
            cfg,
            live: LiveCell::new(live),
            queue,
            metrics: Metrics::new(),
            resolver,
            cancels,
            running: Mutex::new(HashMap::new()),
            finished: tx,
            slot_freed: Notify::new(),
            confinement,
            capabilities,
            egress,
            cgroups,
        });
        tokio::spawn(completer::run(shared.clone(), rx));
        shared.queue.ensure_groups().await;
        Ok(Self {
            shared,
            round: Arc::new(AtomicU64::new(fastrand::u64(..1000))),
        })
    }

    pub fn id(&self) -> &str {
        self.shared.queue.id()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Jobs running (or finishing) on this worker.
    pub fn running(&self) -> usize {
        self.shared.running_count()
    }

    /// One claim step: fill the free slots from the ready queues of every tool and start the jobs.
    pub async fn process_one(&self) -> anyhow::Result<Processed> {
        let w = &self.shared;
        // (The slots kept by standing offers are among these: the claim settles the offers.)
        let free = (w.cfg.worker_concurrency as usize).saturating_sub(self.running());
        if free == 0 {
            return Ok(Processed::Full);
        }
        let round = self.round.fetch_add(1, Ordering::Relaxed);
        let claimed = w.queue.claim(free, round).await?;
        for (tool, t) in &claimed.transitions {
            w.note_transition(tool, t);
        }
        for tool in &claimed.refused {
            w.metrics
                .breaker_calls
                .with_label_values(&[tool.as_str(), w.queue.zone().as_str(), "rejected"])
                .inc();
        }
        for (tool, n) in &claimed.parked {
            w.metrics
                .group_parked
                .with_label_values(&[tool.as_str()])
                .inc_by(*n);
        }
        for (tool, n) in &claimed.handed {
            self.count_direct(tool, *n as u64);
        }
        let n = claimed.started.len();
        for job in claimed.started {
            self.start(job);
        }
        Ok(if n > 0 {
            Processed::Claimed {
                started: n,
                drained: claimed.drained,
            }
        } else {
            Processed::Empty
        })
    }

    /// Counts `n` jobs of `tool` an enqueue started on this worker's offers.
    fn count_direct(&self, tool: &ToolName, n: u64) {
        let zone = self.shared.queue.zone().as_str();
        self.shared
            .metrics
            .direct_starts
            .with_label_values(&[tool.as_str(), zone])
            .inc_by(n);
    }

    /// Starts jobs an enqueue started on this worker's offers (read from its inboxes).
    fn start_handed(&self, handed: Vec<StartedJob>) {
        for job in handed {
            self.count_direct(&job.id.tool, 1);
            self.start(job);
        }
    }

    /// Waits for work (see `Consumer::wait_for_work`) and starts the jobs an enqueue started on
    /// this worker's offers meanwhile; true when a ready stream may hold jobs (claim next), false
    /// when the wait brought only such jobs (wait again: nothing else is known to wait).
    async fn wait_for_work(&self, idle_wait: Duration) -> bool {
        let w = &self.shared;
        let free = (w.cfg.worker_concurrency as usize)
            .saturating_sub(self.running() + w.queue.offers_standing());
        let woken = w.queue.wait_for_work(idle_wait, free).await;
        let again = woken.ready || woken.handed.is_empty();
        self.start_handed(woken.handed);
        again
    }

    fn start(&self, started: StartedJob) {
        let StartedJob { id, job, .. } = started;
        if !job.parent.is_empty() {
            self.shared.settler.touch(&id, &job.parent);
        }
        let parent = job.parent.clone();
        let running = RunningJob::new(id.clone(), job.fence);
        self.shared
            .running
            .lock()
            .expect("running lock")
            .insert(id.tag(), running.clone());
        let m = &self.shared.metrics;
        let tool = id.tool.clone();
        let zone = id.zone.clone();
        m.jobs_running
            .with_label_values(&[tool.as_str(), zone.as_str()])
            .inc();
        m.queue_wait
            .with_label_values(&[tool.as_str(), zone.as_str()])
            .observe(job.queue_wait_ms as f64 / 1000.0);
        let started = std::time::Instant::now();
        let span = tracing::info_span!("job", correlation_id = %id.cid, tool = %tool);
        let w = self.shared.clone();
        tokio::spawn(
            async move {
                let outcome = execute::attempt(&w, &running, &job).await;
                w.metrics
                    .jobs_running
                    .with_label_values(&[tool.as_str(), zone.as_str()])
                    .dec();
                match outcome {
                    Some(completion) => {
                        let _ = w.finished.send(Finished {
                            id,
                            parent,
                            completion,
                            started,
                            span: tracing::Span::current(),
                        });
                    }
                    None => w.forget(&id),
                }
            }
            .instrument(span),
        );
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
        let duties = crate::duties::spawn(self.shared.clone());
        let w = &self.shared;
        tracing::info!(worker = %self.id(), tools = ?w.live.current().catalog.names(), concurrency = w.cfg.worker_concurrency, "Worker started");
        let mut failing = false;
        let idle_wait = Duration::from_millis(w.cfg.reap_interval_ms.clamp(100, 2000));
        while !stop.is_cancelled() {
            match self.process_one().await {
                Ok(Processed::Claimed { drained: false, .. }) => failing = false,
                Ok(Processed::Full) => {
                    tokio::select! {
                        _ = w.slot_freed.notified() => {}
                        _ = stop.cancelled() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
                // Nothing (more) is ready: wait on the ready streams. The wait reads them from
                // `0-0`, so an entry added since the claim ends it at once. (A claim that filled
                // fewer slots than it asked for is not enough to tell: under a tenant's
                // fair-share window the claim itself refills the streams from its backlog.)
                Ok(Processed::Empty | Processed::Claimed { drained: true, .. }) => {
                    failing = false;
                    // A wake that brought only jobs started on this worker's offers waits
                    // again at once: the claim would find nothing.
                    loop {
                        tokio::select! {
                            claim = self.wait_for_work(idle_wait) => if claim { break },
                            _ = stop.cancelled() => break,
                        }
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
        w.queue.deregister().await;
        if let Some(egress) = &w.egress {
            // Finished runs' rules still waiting for a claim go now.
            egress.flush().await;
        }
        tracing::info!(worker = %self.id(), "Worker stopped");
    }

    /// Graceful shutdown: running jobs get the grace period, then the rest are killed and handed
    /// back at once (not after a lease timeout).
    async fn drain(&self) {
        let w = &self.shared;
        // Offers still standing are taken back; a job an enqueue started on one runs like the
        // others (docs/queue.md "Direct start").
        if w.queue.offers_standing() > 0 {
            let round = self.round.fetch_add(1, Ordering::Relaxed);
            match w.queue.settle_offers(round).await {
                Ok(handed) => self.start_handed(handed),
                Err(err) => {
                    tracing::warn!(error = %err, "Could not take back this worker's offers; a job started on one returns when its lease lapses");
                }
            }
        }
        let grace = Duration::from_secs(w.cfg.worker_grace_sec);
        tracing::info!(
            running = self.running(),
            grace_sec = grace.as_secs(),
            "Draining"
        );
        let deadline = tokio::time::Instant::now() + grace;
        while self.running() > 0 && tokio::time::Instant::now() < deadline {
            tokio::select! {
                _ = w.slot_freed.notified() => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
        let left = w.running_jobs();
        if !left.is_empty() {
            tracing::info!(jobs = left.len(), "Handing back unfinished jobs");
        }
        for job in &left {
            job.stop(StopReason::Handback);
        }
        // The sandbox needs its kill grace; the completer then writes the hand-backs.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while self.running() > 0 && tokio::time::Instant::now() < deadline {
            tokio::select! {
                _ = w.slot_freed.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }
}

/// A cgroup per run where this worker can make them (a writable cgroup v2 with `cgroup.kill`),
/// after removing what dead workers left; otherwise runs go without (said once, here).
fn run_cgroups() -> Option<Arc<crate::sandbox::CgroupRoot>> {
    match crate::sandbox::CgroupRoot::detect() {
        Ok(root) => {
            let stale = root.clear_stale();
            tracing::info!(dir = %root.dir().display(), stale_removed = stale, "Each tool run gets a cgroup of its own");
            Some(Arc::new(root))
        }
        Err(why) => {
            tracing::warn!(reason = %why, "No cgroup per run: a process that leaves the tool's group is found by its uid only");
            None
        }
    }
}
