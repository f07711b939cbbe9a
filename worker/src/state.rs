//! What every part of a worker shares: its configuration, its half of the queue
//! ([`Consumer`]), the catalog and target policy, metrics, and the set of jobs it runs. The
//! parts (`runner`, `execute`, `live`, `completer`, `duties`) depend on this module and not on
//! each other's internals.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use scanq::breaker::Transition;
use scanq::config::Config;
use scanq::domain::{JobId, StopReason, ToolName};
use scanq::metrics::Metrics;
use scanq::queue::{Consumer, Listener};
use scanq::reload::LiveCell;
use scanq::scripts::Completion;
use scanq::validate::Resolver;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

/// A job this worker is running (or whose result it has not yet written).
#[derive(Debug, Clone)]
pub struct RunningJob {
    pub id: JobId,
    pub fence: u64,
    pub cancel: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
}

impl RunningJob {
    pub fn new(id: JobId, fence: u64) -> Self {
        Self {
            id,
            fence,
            cancel: CancellationToken::new(),
            reason: Arc::default(),
        }
    }

    /// Stops the attempt; the first reason given wins.
    pub fn stop(&self, reason: StopReason) {
        self.reason
            .lock()
            .expect("stop reason lock")
            .get_or_insert(reason);
        self.cancel.cancel();
    }

    /// Why the attempt was stopped, if it was.
    pub fn stopped(&self) -> Option<StopReason> {
        *self.reason.lock().expect("stop reason lock")
    }
}

/// The worker's shared state.
pub struct Shared {
    /// The configuration the worker started with (keys fixed at start).
    pub cfg: Config,
    /// The reloadable set in force: catalog, target scope, `allow_intrusive` (SIGHUP swaps it).
    pub live: LiveCell,
    pub queue: Consumer,
    pub metrics: Metrics,
    pub resolver: Arc<dyn Resolver>,
    /// Wakes attempts whose job got a cancel request (tag → waiter).
    pub cancels: Listener,
    /// Jobs running (or finishing) here, by tag.
    pub running: Mutex<HashMap<String, RunningJob>>,
    /// Finished attempts on their way to the completer.
    pub finished: mpsc::UnboundedSender<Finished>,
    pub slot_freed: Notify,
    /// How tool runs are confined, and the confinement when it is on.
    pub confinement: crate::confine::Status,
    /// What this worker can do (in its heartbeat; `raw_sockets` decides whether its queue
    /// claims from the raw lanes, fixed when the [`Consumer`] is built).
    pub capabilities: scanq::domain::Capabilities,
    pub egress: Option<Arc<crate::confine::Egress>>,
    /// Where each run gets a cgroup of its own (`None`: no writable cgroup v2 here).
    pub cgroups: Option<Arc<crate::sandbox::CgroupRoot>>,
    /// Emits webhook events and change summaries of finished jobs (never blocks a job).
    pub job_events: scanq::webhook::JobEvents,
    /// Parents of big scans whose chunks moved here, to settle.
    pub settler: Settler,
}

impl Shared {
    pub fn running_jobs(&self) -> Vec<RunningJob> {
        self.running
            .lock()
            .expect("running lock")
            .values()
            .cloned()
            .collect()
    }

    pub fn running_count(&self) -> usize {
        self.running.lock().expect("running lock").len()
    }

    /// Drops a job from the running set (its result is written, or it is no longer ours).
    pub fn forget(&self, id: &JobId) {
        self.running.lock().expect("running lock").remove(&id.tag());
        self.slot_freed.notify_one();
    }
}

pub type SharedRef = Arc<Shared>;

/// A finished attempt waiting to be written.
#[derive(Debug)]
pub struct Finished {
    pub id: JobId,
    /// A chunk of a big scan: its parent's correlation ID ('' otherwise).
    pub parent: String,
    pub completion: Completion,
    /// When the attempt was claimed (for `scanq_job_run_seconds`).
    pub started: std::time::Instant,
    pub span: tracing::Span,
}

/// Breaker transitions reported by a script: logged, counted and passed to the queue's cache.
impl Shared {
    /// Logs and counts breaker transitions reported by a script.
    pub fn note_transitions(&self, tool: &ToolName, transitions: &[String]) {
        for t in transitions {
            if let Ok(t) = serde_json::from_str::<Transition>(t) {
                self.note_transition(tool, &t);
            }
        }
    }

    pub fn note_transition(&self, tool: &ToolName, t: &Transition) {
        let zone = self.queue.zone().as_str();
        tracing::warn!(tool = %tool, from = %t.from, to = %t.to, reason = %t.reason, generation = t.generation, "Breaker transition");
        self.metrics
            .breaker_transitions
            .with_label_values(&[tool.as_str(), zone, t.from.as_str(), t.to.as_str()])
            .inc();
        self.metrics
            .breaker_state
            .with_label_values(&[tool.as_str(), zone])
            .set(t.to.gauge_value());
        self.queue.note_transition(tool, t);
    }
}

/// Parents of big scans waiting for a settle (`settler.rs` settles them).
#[derive(Debug, Default)]
pub struct Settler {
    marked: Mutex<std::collections::HashSet<JobId>>,
}

impl Settler {
    /// Marks the parent of chunk `chunk` (whose `parent` field is `parent`). The mark names
    /// the chunk's zone; the settle finds the parent's own (`Queue::placed`).
    pub fn touch(&self, chunk: &JobId, parent: &str) {
        let Ok(cid) = scanq::domain::CorrelationId::parse(parent) else {
            return;
        };
        let id = chunk.sibling(chunk.zone.clone(), cid);
        self.marked.lock().expect("settler lock").insert(id);
    }

    /// Marks parent `id` (again).
    pub fn mark(&self, id: JobId) {
        self.marked.lock().expect("settler lock").insert(id);
    }

    /// The marked parents, unmarked.
    pub fn take(&self) -> Vec<JobId> {
        self.marked.lock().expect("settler lock").drain().collect()
    }
}
