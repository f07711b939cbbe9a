//! The keys of one partition of a tool's queue (`P:{<tool>[@<zone>][~<n>]}:…`): its streams,
//! leases, counts, jobs and the rest, all under one hash tag so every job script touches one
//! cluster slot.

use super::{EVENTS_SEGMENT, INBOX_SEGMENT, JOB_SEGMENT, TALLY_SEGMENT};
use crate::domain::Priority;

/// The field of [`ToolKeys::counts`] that says until when (ms) a worker's offer stands
/// (`OFFER_UNTIL` in common.lua; docs/queue.md "Direct start").
pub const OFFER_UNTIL: &str = "offer_until";

/// Keys of one partition of a tool's queue; all share its hash tag (`{tool}` for the home
/// partition).
#[derive(Debug, Clone)]
pub struct ToolKeys {
    pub(super) base: String,
}

impl ToolKeys {
    pub fn stream(&self, priority: Priority) -> String {
        format!("{}:q:{}", self.base, priority.as_str())
    }

    /// The three priority streams of the plain lane, highest first.
    pub fn streams(&self) -> [String; 3] {
        [
            self.stream(Priority::High),
            self.stream(Priority::Normal),
            self.stream(Priority::Low),
        ]
    }

    /// The raw lane's three streams (`q:<priority>:raw`, read by raw-capable workers only).
    pub fn raw_streams(&self) -> [String; 3] {
        self.streams().map(|s| s + ":raw")
    }

    /// The ready stream of a job of `priority` in the raw lane (`raw`) or the plain one.
    pub fn lane_stream(&self, priority: Priority, raw: bool) -> String {
        self.stream(priority) + if raw { ":raw" } else { "" }
    }

    /// What a worker claims from: the plain lane, and the raw lane too when raw-capable.
    pub fn claimable_streams(&self, raw_capable: bool) -> Vec<String> {
        let mut out = self.streams().to_vec();
        if raw_capable {
            out.extend(self.raw_streams());
        }
        out
    }

    pub fn job(&self, job_ref: &str) -> String {
        format!("{}{JOB_SEGMENT}{}", self.job_prefix(), job_ref)
    }

    /// `job(ref) == job_prefix() + ref`; passed to scripts that reach jobs found in a zset.
    pub fn job_prefix(&self) -> String {
        format!("{}:", self.base)
    }

    /// The chunks of parent `parent_ref` that live in this partition, by state (`<state>` →
    /// count, `hosts_done`), kept by the chunks' own scripts (`count` in common.lua).
    pub fn chunk_tally(&self, parent_ref: &str) -> String {
        format!("{}{TALLY_SEGMENT}{}", self.job_prefix(), parent_ref)
    }

    /// Parents of big scans in this partition that are not finished, score = when they are
    /// next due for a check (the reconciler, `queue/parent.rs`).
    pub fn open_parents(&self) -> String {
        format!("{}:parents", self.base)
    }

    pub fn events(&self, job_ref: &str) -> String {
        format!("{}{EVENTS_SEGMENT}{}", self.job_prefix(), job_ref)
    }

    pub fn scheduled(&self) -> String {
        format!("{}:scheduled", self.base)
    }

    pub fn leases(&self) -> String {
        format!("{}:leases", self.base)
    }

    /// Running jobs to stop when their engagement's window ends (`stop_at_window_end`).
    pub fn window_ends(&self) -> String {
        format!("{}:ends", self.base)
    }

    pub fn dead(&self) -> String {
        format!("{}:dead", self.base)
    }

    pub fn counts(&self) -> String {
        format!("{}:counts", self.base)
    }

    /// The ID of the worker whose offer to take a job directly stands here (offer.lua; its
    /// lapse time is [`OFFER_UNTIL`] in [`ToolKeys::counts`]).
    pub fn offer(&self) -> String {
        format!("{}:offer", self.base)
    }

    /// Worker `worker`'s inbox: the jobs enqueue.lua started on its offer.
    pub fn inbox(&self, worker: &str) -> String {
        format!("{}{INBOX_SEGMENT}{worker}", self.job_prefix())
    }

    pub fn backlog_prefix(&self) -> String {
        format!("{}:backlog:", self.base)
    }

    pub fn breaker(&self) -> String {
        format!("{}:breaker", self.base)
    }

    /// The number of partitions the fleet spreads this tool's jobs over (home partition only;
    /// see `queue::layout`).
    pub fn layout(&self) -> String {
        format!("{}:partitions", self.base)
    }

    pub fn breaker_history(&self) -> String {
        format!("{}:breaker:hist", self.base)
    }

    pub fn breaker_probes(&self) -> String {
        format!("{}:breaker:probes", self.base)
    }

    pub fn breaker_window(&self) -> String {
        format!("{}:breaker:window", self.base)
    }

    /// The four breaker keys in the shape the breaker module takes.
    pub fn breaker_keys(&self) -> crate::breaker::BreakerKeys {
        crate::breaker::BreakerKeys {
            state: self.breaker(),
            hist: self.breaker_history(),
            probes: self.breaker_probes(),
            window: self.breaker_window(),
        }
    }

    /// Running jobs of this tool per tenant (for per-tenant running caps).
    pub fn running_by_tenant(&self) -> String {
        format!("{}:running_by", self.base)
    }

    /// Running jobs of this partition per target group (politeness; `claim.lua` counts up,
    /// `complete.lua` and `reap.lua` down).
    pub fn group_running(&self) -> String {
        format!("{}:group_running", self.base)
    }

    /// Start of the lists of jobs parked while their target group was at its cap (`+ group`).
    pub fn group_wait_prefix(&self) -> String {
        format!("{}:gwait:", self.base)
    }

    /// The jobs parked for `group` (see [`ToolKeys::group_wait_prefix`]).
    pub fn group_wait(&self, group: &str) -> String {
        self.group_wait_prefix() + group
    }

    /// Present while the tool is disabled cluster-wide (read by `claim.lua`).
    pub fn disabled(&self) -> String {
        format!("{}:disabled", self.base)
    }

    pub fn wait_samples(&self) -> String {
        format!("{}:stats:wait", self.base)
    }

    pub fn run_samples(&self) -> String {
        format!("{}:stats:run", self.base)
    }

    /// The last hour, per minute: jobs finished (`done:<minute>`, by `complete.lua`) and the
    /// queue's depth and wait/run p95 as sampled by an API (`depth:`, `wait95:`, `run95:`).
    pub fn series(&self) -> String {
        format!("{}:stats:series", self.base)
    }
}
