//! Firing due schedules: one step ([`Scheduler::tick`]) that claims each due schedule, applies
//! its overlap and catch-up policies, enqueues the run through the normal submit path
//! ([`Queue::submit`], the same validation as `POST /v1/jobs`), and commits the slot. Every API
//! and worker process runs [`Scheduler::run`]; there is no leader.
//!
//! Each step judges templates against the configuration in force (a SIGHUP reload reaches the
//! next step), and a run counts against its tenant's caps like any submit: the caps are those
//! the APIs publish to Redis (`Queue::publish_caps`), since a worker has no tokens file.

use std::sync::Arc;
use std::time::Duration;

use super::store::{Claimed, ScheduleStore, StoreError};
use super::{Overlap, ScheduleDef};
use crate::config::Config;
use crate::domain::{CorrelationId, TenantId};
use crate::queue::{Queue, QueueError};
use crate::reload::Live;
use crate::scripts::TenantCaps;

/// How long a claim holds a schedule before another process may fire the same slot.
const CLAIM_LEASE_MS: u64 = 5_000;
/// How soon a held slot (`queue_one`) looks at the previous run again.
const HOLD_RECHECK_MS: u64 = 250;
/// A slot at most this late is not "missed", whatever `catchup_sec` says.
const ON_TIME_GRACE_MS: u64 = 2_000;

/// What one claimed slot did (also the `result` label of `scanq_schedule_runs_total`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FireResult {
    /// A run was enqueued (or found, when a crashed claimant had enqueued it).
    Fired { schedule: String, run: String },
    /// The previous run was still queued or running (`overlap: skip`).
    Skipped { schedule: String },
    /// The previous run was still queued or running; the slot waits for it (`queue_one`).
    Held { schedule: String },
    /// The slot was older than `catchup_sec`.
    Missed { schedule: String },
    /// The template no longer passes validation (policy changed) or the queue refused it (the
    /// tenant is at its cap on waiting jobs, say).
    Refused { schedule: String, reason: String },
}

/// Why a run was not enqueued.
#[derive(Debug)]
pub enum Refusal {
    /// The template no longer passes validation.
    Template(String),
    /// The queue refused the job (the tenant's cap, the tool's queue length).
    Queue(QueueError),
}

impl FireResult {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Fired { .. } => "fired",
            Self::Skipped { .. } => "skipped",
            Self::Held { .. } => "held",
            Self::Missed { .. } => "missed",
            Self::Refused { .. } => "refused",
        }
    }
}

fn refusal(e: &crate::request::RequestError) -> String {
    match e {
        crate::request::RequestError::UnknownTool(t) => format!("unknown tool `{t}`"),
        crate::request::RequestError::Invalid(v) => v.to_string(),
    }
}

/// The correlation ID of a schedule's run for a slot: the same for every claimant.
pub fn run_id(schedule: &str, slot_ms: u64) -> String {
    format!("{schedule}.{}", slot_ms / 1000)
}

/// Fires due schedules; cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    pub store: ScheduleStore,
    queue: Queue,
    tick: Duration,
}

impl Scheduler {
    pub fn new(queue: Queue, cfg: &Config) -> Self {
        Self {
            store: ScheduleStore::new(queue.pool().clone(), queue.keys().prefix()),
            queue,
            tick: Duration::from_millis(cfg.schedule_tick_ms),
        }
    }

    /// Fires every due schedule (at most 100 per step), judging templates against `live`;
    /// `on_result` sees each outcome.
    pub async fn tick(
        &self,
        live: &Live,
        on_result: &(dyn Fn(&FireResult) + Sync),
    ) -> Result<usize, StoreError> {
        let mut fired = 0;
        for _ in 0..100 {
            let Ok(c) = self.store.claim(CLAIM_LEASE_MS).await? else {
                break;
            };
            let result = self.fire(live, &c).await?;
            on_result(&result);
            fired += 1;
        }
        Ok(fired)
    }

    /// Runs [`Scheduler::tick`] forever, every `SCANQ_SCHEDULE_TICK_MS` (with jitter), each
    /// step with the configuration `live` gives then.
    pub async fn run(self, live: impl Fn() -> Arc<Live>, on_result: impl Fn(&FireResult) + Sync) {
        let base = self.tick.as_millis() as u64;
        loop {
            if let Err(err) = self.tick(&live(), &on_result).await {
                tracing::debug!(error = %err, "Schedule tick failed");
            }
            tokio::time::sleep(Duration::from_millis(base / 2 + fastrand::u64(..=base))).await;
        }
    }

    /// The next (slot, due ms) strictly after `after_ms`, or `None` when the schedule ended.
    pub fn next_due(
        def: &ScheduleDef,
        id: &str,
        after_ms: u64,
        anchor_ms: u64,
    ) -> Option<(u64, u64)> {
        def.next_slot(after_ms, anchor_ms)
            .map(|s| (s, s + def.jitter_ms(id, s)))
    }

    #[tracing::instrument(skip_all, fields(schedule = %c.member))]
    async fn fire(&self, live: &Live, c: &Claimed) -> Result<FireResult, StoreError> {
        let schedule = c.member.clone();
        let (slot, next) = if c.retry {
            // An earlier claimant died mid-fire: fire its slot as is (same run ID), never lose it.
            (
                c.firing,
                Self::next_due(&c.def, &c.id, c.now_ms.max(c.firing), c.anchor_ms),
            )
        } else {
            // Catch-up: only the latest due slot, and only if it is young enough.
            let slot = c
                .def
                .latest_slot(c.slot.saturating_sub(1), c.now_ms, c.anchor_ms)
                .unwrap_or(c.slot);
            let next = Self::next_due(&c.def, &c.id, c.now_ms.max(slot), c.anchor_ms);
            let grace =
                (c.def.catchup_sec * 1000).max(ON_TIME_GRACE_MS + c.def.jitter_ms(&c.id, slot));
            if c.now_ms.saturating_sub(slot) > grace {
                tracing::info!(slot, "Schedule slot missed beyond catchup_sec; not fired");
                self.store.commit(c, None, next).await?;
                return Ok(FireResult::Missed { schedule });
            }
            if slot != c.firing {
                self.store.mark_firing(c, slot).await?;
            }
            (slot, next)
        };
        let run = run_id(&c.id, slot);
        if c.retry
            && let Ok(cid) = CorrelationId::parse(&run)
            && self.queue.get(&c.tenant, &cid).await?.is_some()
        {
            // The claimant that died had enqueued this slot's run: record it, fire nothing new.
            self.store.commit(c, Some((&run, slot)), next).await?;
            return Ok(FireResult::Fired { schedule, run });
        }
        if let Some(prev) = &c.last_run
            && !self.previous_allows(&c.tenant, prev, c.def.overlap).await?
        {
            if c.def.overlap == Overlap::QueueOne {
                // Keep this slot (its `firing` stays set) and look again shortly.
                self.store.defer(c, c.now_ms + HOLD_RECHECK_MS).await?;
                return Ok(FireResult::Held { schedule });
            }
            self.store.commit(c, None, next).await?;
            return Ok(FireResult::Skipped { schedule });
        }
        let enqueued = match CorrelationId::parse(&run) {
            Ok(cid) => match c.def.run_spec(&live.policy(), &cid) {
                Ok(mut spec) => {
                    // Stored with the job from its creation, so even a run that finishes at
                    // once is known as this schedule's.
                    spec.schedule_id = Some(c.id.clone());
                    let caps = self.queue.published_caps(&c.tenant).await?;
                    match self.queue.submit_within(&c.tenant, &spec, caps).await {
                        Ok(_) => Ok(()),
                        Err(e) if e.is_unavailable() => return Err(e.into()),
                        Err(e) => Err(e.to_string()),
                    }
                }
                Err(e) => Err(refusal(&e)),
            },
            Err(e) => Err(e.0),
        };
        match enqueued {
            Ok(()) => {
                self.store.commit(c, Some((&run, slot)), next).await?;
                Ok(FireResult::Fired { schedule, run })
            }
            Err(reason) => {
                tracing::warn!(reason = %reason, "Scheduled run refused");
                self.store.commit(c, None, next).await?;
                Ok(FireResult::Refused { schedule, reason })
            }
        }
    }

    /// Whether a new run may start given the previous one, cancelling it for `cancel_previous`.
    async fn previous_allows(
        &self,
        tenant: &TenantId,
        prev: &str,
        overlap: Overlap,
    ) -> Result<bool, StoreError> {
        let Ok(cid) = CorrelationId::parse(prev) else {
            return Ok(true);
        };
        let state = match self.queue.get(tenant, &cid).await {
            Ok(Some((_, doc))) => doc.state,
            Ok(None) => return Ok(true),
            Err(e) => return Err(e.into()),
        };
        if state.is_terminal() {
            return Ok(true);
        }
        Ok(match overlap {
            Overlap::Skip | Overlap::QueueOne => false,
            Overlap::CancelPrevious => {
                if let Err(e) = self.queue.cancel(tenant, &cid).await {
                    tracing::warn!(error = %e, run = %prev, "Could not cancel the previous run");
                }
                true
            }
        })
    }

    /// Enqueues a run now (`POST /v1/schedules/{id}/trigger`), outside the cadence, judged
    /// against `live` and under the caller's tenant caps.
    pub async fn trigger(
        &self,
        live: &Live,
        tenant: &TenantId,
        caps: Option<TenantCaps>,
        id: &str,
        def: &ScheduleDef,
    ) -> Result<Result<String, Refusal>, StoreError> {
        let now = self.store.now_ms().await?;
        let run = format!("{id}.t{now}");
        let cid = CorrelationId::parse(&run).map_err(|e| StoreError::Corrupt(e.0))?;
        let mut spec = match def.run_spec(&live.policy(), &cid) {
            Ok(s) => s,
            Err(e) => return Ok(Err(Refusal::Template(refusal(&e)))),
        };
        spec.schedule_id = Some(id.to_owned());
        match self.queue.submit_within(tenant, &spec, caps).await {
            Ok(_) => {}
            Err(e) if e.is_unavailable() => return Err(e.into()),
            Err(e) => return Ok(Err(Refusal::Queue(e))),
        }
        self.store.record_run(tenant, id, &run, now).await?;
        Ok(Ok(run))
    }
}
