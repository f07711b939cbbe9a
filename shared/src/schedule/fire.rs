//! Firing due schedules: one step ([`Scheduler::tick`]) that claims each due schedule, applies
//! its overlap and catch-up policies, enqueues the run through the normal submit path
//! ([`Queue::admit`], the same validation as `POST /v1/jobs`; a big scan's run is one parent
//! job), and commits the slot. Every API and worker process runs [`Scheduler::run`]; there is
//! no leader.
//!
//! Each step judges templates against the configuration in force (a SIGHUP reload reaches the
//! next step), and a run counts against its tenant's caps like any submit: the caps are those
//! the APIs publish to Redis, read through [`Queue::tenant_standing`] (a worker has no tokens
//! file). A revoked tenant's schedule is parked; caps that cannot be read refuse the slot
//! (fail closed).
//!
//! **Fault isolation:** one schedule never stops the others. A schedule whose stored entry is
//! unreadable or out of bounds, whose slot arithmetic fails, or whose engagement expired or was
//! deleted (DESIGN §14), is parked (out of the due set,
//! `parked_reason` on its document, `scanq_schedules_parked_total{reason}`); each firing runs
//! under `catch_unwind`, so a panic parks that schedule and the step goes on; a failed step
//! is logged and the loop continues.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use super::store::{Claim, Claimed, ScheduleStore, StoreError};
use super::{Overlap, ScheduleDef, SlotError};
use crate::config::Config;
use crate::domain::{CorrelationId, TenantId};
use crate::queue::{Queue, QueueError, Standing};
use crate::reload::Live;
use crate::request::CallerScope;

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
    /// tenant is at its cap on waiting jobs, say, or its caps could not be read).
    Refused { schedule: String, reason: String },
    /// The schedule cannot be fired and was taken out of the due set until it is replaced or
    /// resumed; `detail` is on its document.
    Parked {
        schedule: String,
        reason: ParkReason,
        detail: String,
    },
}

/// Why a schedule was parked (the `reason` label of `scanq_schedules_parked_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParkReason {
    /// Its stored entry is unreadable or out of bounds.
    Unfit,
    /// Its slots cannot be computed (arithmetic out of range).
    Slot,
    /// Firing it panicked.
    Panic,
    /// Its tenant is no longer in the tokens file.
    Revoked,
    /// The engagement its template names expired or was deleted (DESIGN §14).
    Engagement,
}

impl ParkReason {
    pub fn label(self) -> &'static str {
        match self {
            Self::Unfit => "unfit",
            Self::Slot => "slot",
            Self::Panic => "panic",
            Self::Revoked => "revoked",
            Self::Engagement => "engagement",
        }
    }
}

/// Why a triggered run was not enqueued.
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
            Self::Parked { .. } => "parked",
        }
    }

    /// The park reason, when the schedule was parked.
    pub fn parked(&self) -> Option<ParkReason> {
        match self {
            Self::Parked { reason, .. } => Some(*reason),
            _ => None,
        }
    }
}

/// Why one firing step ended without a result: the store is unreachable, or the schedule must
/// be parked.
#[derive(Debug)]
enum FireError {
    Store(StoreError),
    Park(ParkReason, String),
}

impl From<StoreError> for FireError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<QueueError> for FireError {
    fn from(e: QueueError) -> Self {
        Self::Store(e.into())
    }
}

impl From<SlotError> for FireError {
    fn from(e: SlotError) -> Self {
        Self::Park(ParkReason::Slot, e.0)
    }
}

/// The text of a panic's payload.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs `fut`, turning a panic inside it into `Err(its message)`: one schedule's firing (or
/// one step) that panics never unwinds into the loop.
async fn isolated<T>(fut: impl std::future::Future<Output = T>) -> Result<T, String> {
    AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .map_err(|p| panic_text(&*p))
}

pub(super) fn refusal(e: &crate::request::RequestError) -> String {
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
    pub(super) queue: Queue,
    tick: Duration,
    /// `SCANQ_SCHEDULE_MIN_EVERY_SEC`.
    pub(super) min_every_sec: u64,
    /// `SCANQ_TENANT_MAX_SCHEDULES`.
    pub(super) max_per_tenant: u64,
    /// Told when `cancel_previous` finished a previous run (a big scan's parent then gets its
    /// webhook events: `webhook::JobEvents` implements it). None: nobody is told.
    pub(super) events: Option<std::sync::Arc<dyn RunFinished>>,
}

/// What the scheduler tells when one of its actions left a run final.
pub trait RunFinished: Send + Sync {
    fn after_action<'a>(
        &'a self,
        tenant: &'a TenantId,
        cid: &'a CorrelationId,
    ) -> futures::future::BoxFuture<'a, ()>;

    /// A run was created awaiting a person's approval (DESIGN §14): `job.awaiting_approval`.
    fn awaiting_approval(&self, _tenant: &TenantId, _doc: &crate::domain::JobDocument) {}
}

impl Scheduler {
    pub fn new(queue: Queue, cfg: &Config) -> Self {
        Self {
            store: ScheduleStore::new(queue.pool().clone(), queue.keys().prefix()),
            events: None,
            queue,
            tick: Duration::from_millis(cfg.schedule_tick_ms),
            min_every_sec: cfg.schedule_min_every_sec,
            max_per_tenant: cfg.tenant_max_schedules,
        }
    }

    /// Tells `events` of the runs that `cancel_previous` finished.
    pub fn with_events(mut self, events: std::sync::Arc<dyn RunFinished>) -> Self {
        self.events = Some(events);
        self
    }

    /// Fires every due schedule (at most 100 per step), judging templates against `live`;
    /// `on_result` sees each outcome. A schedule that cannot be fired is parked and the step
    /// goes on; only a store that cannot be reached ends it early.
    pub async fn tick(
        &self,
        live: &Live,
        on_result: &(dyn Fn(&FireResult) + Sync),
    ) -> Result<usize, StoreError> {
        let mut fired = 0;
        for _ in 0..100 {
            let c = match self.store.claim(CLAIM_LEASE_MS).await? {
                Claim::Idle(_) => break,
                Claim::Unfit { member, reason } => {
                    let r = self.park(&member, ParkReason::Unfit, reason).await?;
                    on_result(&r);
                    fired += 1;
                    continue;
                }
                Claim::Due(c) => c,
            };
            let result = match isolated(self.fire(live, &c)).await {
                Ok(Ok(r)) => r,
                Ok(Err(FireError::Park(reason, detail))) => {
                    self.park(&c.member, reason, detail).await?
                }
                Ok(Err(FireError::Store(err))) => {
                    // Its claim lapses and it is tried again; the others go on.
                    tracing::warn!(schedule = %c.member, error = %err, "Schedule firing failed; retried after its lease");
                    continue;
                }
                Err(panic) => {
                    let detail = format!("firing panicked: {panic}");
                    self.park(&c.member, ParkReason::Panic, detail).await?
                }
            };
            on_result(&result);
            fired += 1;
        }
        Ok(fired)
    }

    /// Parks a schedule (see the module doc) and says so.
    async fn park(
        &self,
        member: &str,
        reason: ParkReason,
        detail: String,
    ) -> Result<FireResult, StoreError> {
        let detail: String = detail.chars().take(500).collect();
        tracing::error!(schedule = %member, reason = reason.label(), detail = %detail, "Schedule parked: it fires no more until it is replaced or resumed");
        self.store.park(member, &detail).await?;
        Ok(FireResult::Parked {
            schedule: member.to_owned(),
            reason,
            detail,
        })
    }

    /// Runs [`Scheduler::tick`] forever, every `SCANQ_SCHEDULE_TICK_MS` (with jitter), each
    /// step with the configuration `live` gives then.
    pub async fn run(self, live: impl Fn() -> Arc<Live>, on_result: impl Fn(&FireResult) + Sync) {
        let base = self.tick.as_millis() as u64;
        loop {
            // Even a panic outside one schedule's firing ends only this step, never the loop.
            match isolated(self.tick(&live(), &on_result)).await {
                Ok(Ok(_)) => {}
                Ok(Err(err)) => tracing::debug!(error = %err, "Schedule tick failed"),
                Err(panic) => tracing::error!(%panic, "Schedule tick panicked; continuing"),
            }
            tokio::time::sleep(Duration::from_millis(base / 2 + fastrand::u64(..=base))).await;
        }
    }

    /// The next (slot, due ms) strictly after `after_ms`, `Ok(None)` when the schedule ended.
    pub fn next_due(
        def: &ScheduleDef,
        id: &str,
        after_ms: u64,
        anchor_ms: u64,
    ) -> Result<Option<(u64, u64)>, SlotError> {
        let Some(s) = def.next_slot(after_ms, anchor_ms)? else {
            return Ok(None);
        };
        let due = s
            .checked_add(def.jitter_ms(id, s))
            .ok_or_else(|| SlotError("slot arithmetic overflows".into()))?;
        Ok(Some((s, due)))
    }

    #[tracing::instrument(skip_all, fields(schedule = %c.member))]
    async fn fire(&self, live: &Live, c: &Claimed) -> Result<FireResult, FireError> {
        let schedule = c.member.clone();
        let (slot, next) = if c.retry {
            // An earlier claimant died mid-fire: fire its slot as is (same run ID), never lose it.
            (
                c.firing,
                Self::next_due(&c.def, &c.id, c.now_ms.max(c.firing), c.anchor_ms)?,
            )
        } else {
            // Catch-up: only the latest due slot, and only if it is young enough.
            let slot = c
                .def
                .latest_slot(c.slot.saturating_sub(1), c.now_ms, c.anchor_ms)?
                .unwrap_or(c.slot);
            let next = Self::next_due(&c.def, &c.id, c.now_ms.max(slot), c.anchor_ms)?;
            let grace = c
                .def
                .catchup_sec
                .saturating_mul(1000)
                .max(ON_TIME_GRACE_MS + c.def.jitter_ms(&c.id, slot));
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
            && self
                .queue
                .job_fields(&c.tenant, &cid, &["state"])
                .await?
                .is_some()
        {
            // The claimant that died had enqueued this slot's run: record it, fire nothing new.
            self.store.commit(c, Some((&run, slot)), next).await?;
            return Ok(FireResult::Fired { schedule, run });
        }
        // The tenant's standing: revoked parks the schedule; unreadable refuses this slot.
        let (caps, narrow) = match self.queue.tenant_standing(&c.tenant).await? {
            Standing::Open => (None, CallerScope::default()),
            // Its `allowed_targets` and `require_engagement` apply to its runs (DESIGN §14).
            Standing::Active(caps) => (Some(caps), self.queue.tenant_scope(&c.tenant).await?),
            Standing::Revoked => {
                return Err(FireError::Park(
                    ParkReason::Revoked,
                    "tenant revoked".into(),
                ));
            }
            Standing::Unknown => {
                let reason = "the tenant's caps cannot be read (not yet published by an API); \
                              refused this slot (fail closed)"
                    .to_owned();
                tracing::warn!(schedule = %c.member, reason = %reason, "Scheduled run refused");
                self.store.commit(c, None, next).await?;
                return Ok(FireResult::Refused { schedule, reason });
            }
        };
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
            Ok(cid) => match c.def.run_spec(
                &narrow.policy(live.policy(), &narrow.scope(&live.targets)),
                &cid,
            ) {
                Ok(mut spec) => {
                    // Stored with the job from its creation, so even a run that finishes at
                    // once is known as this schedule's.
                    spec.schedule_id = Some(c.id.clone());
                    // No token submits a run: no token is barred from approving it.
                    spec.submitted_by = Some(format!("schedule:{}", c.id));
                    match self.queue.admit(&c.tenant, &spec, caps).await {
                        Ok(s) => {
                            if let (true, Some(events)) = (s.created, &self.events) {
                                events.awaiting_approval(&c.tenant, &s.document);
                            }
                            Ok(())
                        }
                        Err(e) if e.is_unavailable() => return Err(e.into()),
                        // Its engagement expired or was deleted: no later slot can run either.
                        Err(QueueError::Refused(v)) if v.field == "engagement" => {
                            return Err(FireError::Park(ParkReason::Engagement, v.to_string()));
                        }
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
                tracing::info!(schedule = %c.member, schedule_id = %c.id, tenant = %c.tenant, correlation_id = %run, "Scheduled run fired");
                Ok(FireResult::Fired { schedule, run })
            }
            Err(reason) => {
                tracing::warn!(schedule = %c.member, reason = %reason, "Scheduled run refused");
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
        // The state only: never the previous run's (possibly large) result.
        let fields = self.queue.job_fields(tenant, &cid, &["state"]).await?;
        let Some(state) = fields
            .as_ref()
            .and_then(|f| f.get("state"))
            .and_then(|s| s.parse::<crate::domain::JobState>().ok())
        else {
            return Ok(true);
        };
        if state.is_terminal() {
            return Ok(true);
        }
        Ok(match overlap {
            Overlap::Skip | Overlap::QueueOne => false,
            Overlap::CancelPrevious => {
                match self.queue.cancel(tenant, &cid).await {
                    // A big scan's parent this cancel left final gets its webhook events.
                    Ok(_) => {
                        if let Some(events) = &self.events {
                            events.after_action(tenant, &cid).await;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, run = %prev, "Could not cancel the previous run")
                    }
                }
                true
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_inside_a_firing_is_an_error_with_its_message_not_an_unwind() {
        let every: u64 = std::hint::black_box(0);
        let r = isolated(async move { 1000 / every }).await;
        assert!(r.unwrap_err().contains("divide by zero"));
        let r: Result<(), String> = isolated(async { panic!("hostile {}", 42) }).await;
        assert_eq!(r.unwrap_err(), "hostile 42");
        assert_eq!(isolated(async { 7 }).await, Ok(7));
    }
}
