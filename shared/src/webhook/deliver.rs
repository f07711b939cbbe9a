//! The events of a finished job ([`on_job_finished`], called by the worker once a result is
//! written, and for a big scan's parent once it finishes — by the worker's settler or, after a
//! cancel or retry that finished it, [`JobEvents::after_action`]; delivery is `dispatch.rs`). Nothing here can block or fail a job: emission errors
//! are logged, delivery runs apart.

use std::time::Duration;

use serde_json::json;

use super::EventType;
use super::store::{HookError, WebhookStore};
use crate::domain::{CorrelationId, JobId, JobState, TenantId};
use crate::nmap::{diff_reports, finished_report};
use crate::queue::Queue;
use crate::schedule::ScheduleStore;

/// What a process needs to emit the events of finished jobs; cheap to clone.
#[derive(Clone)]
pub struct JobEvents {
    pub queue: Queue,
    pub schedules: ScheduleStore,
    pub hooks: WebhookStore,
    /// Tenant → whether it had subscriptions, and when that was read: a finished job costs no
    /// Redis read while the answer is under [`SUBS_FRESH`] old.
    subs: std::sync::Arc<
        std::sync::Mutex<std::collections::HashMap<TenantId, (std::time::Instant, bool)>>,
    >,
}

/// How long a tenant's "has subscriptions" answer stands. A subscription made just now may
/// miss the events of jobs finishing within this time.
const SUBS_FRESH: Duration = Duration::from_secs(1);

/// Whether `cid` can name a scheduled run: the scheduler names runs `<schedule>.<slot>` and
/// `<schedule>.t<ms>` (`schedule/fire.rs`), so an ID without a dot is no run and needs no read.
fn may_be_scheduled_run(cid: &CorrelationId) -> bool {
    cid.as_str().contains('.')
}

impl JobEvents {
    pub fn new(queue: Queue) -> Self {
        let prefix = queue.keys().prefix().to_owned();
        Self {
            schedules: ScheduleStore::new(queue.pool().clone(), &prefix),
            hooks: WebhookStore::new(queue.pool().clone(), &prefix),
            queue,
            subs: Default::default(),
        }
    }

    fn cached_subs(&self, tenant: &TenantId) -> Option<bool> {
        self.subs
            .lock()
            .expect("subs lock")
            .get(tenant)
            .filter(|(at, _)| at.elapsed() < SUBS_FRESH)
            .map(|(_, has)| *has)
    }

    /// [`on_job_finished`] in the background: never blocks or fails the caller. Two small
    /// reads first, so a job of a tenant without subscriptions that no schedule started costs
    /// no read of its (possibly large) document.
    pub fn finished(&self, job: JobId) {
        // The common case — no subscriptions, no schedule — costs nothing at all.
        if self.cached_subs(&job.tenant) == Some(false) && !may_be_scheduled_run(&job.cid) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let (tenant, cid) = (job.tenant.clone(), job.cid.clone());
            let result = match me.concerned(&job).await {
                Ok(true) => {
                    on_job_finished(&me.queue, &me.schedules, &me.hooks, &tenant, &cid).await
                }
                Ok(false) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(err) = result {
                tracing::warn!(error = %err, correlation_id = %cid, "Could not emit the job's webhook events");
            }
        });
    }

    /// After an action on job `cid` succeeded (a cancel, a retry — from the API or a schedule's
    /// `cancel_previous`): when `cid` is a big scan's parent that the action left final (a cancel
    /// of a parent one of whose chunks had failed for good and none ran: `failed` at once), its
    /// events, as the worker's settler gives them to a parent its chunks finish. The action
    /// succeeded, so the parent was not final before it; events are keyed by job, so a settler
    /// finishing the same parent at the same moment delivers nothing twice. Two field reads.
    pub async fn after_action(&self, tenant: &TenantId, cid: &CorrelationId) {
        let fields = self
            .queue
            .job_fields(tenant, cid, &["state", "chunks"])
            .await;
        let Ok(Some(f)) = fields else {
            return;
        };
        let state = f.get("state").and_then(|s| s.parse::<JobState>().ok());
        if !f.contains_key("chunks") || !state.is_some_and(JobState::is_terminal) {
            return;
        }
        if let Ok(Some((tool, zone))) = self.queue.locate(tenant, cid).await {
            tracing::info!(correlation_id = %cid, state = ?state, "Big scan finished by a cancel or retry");
            self.finished(JobId::new(tool, zone, tenant.clone(), cid.clone()));
        }
    }

    /// `job.awaiting_approval` for a job just created (or retried) awaiting a person's
    /// approval, in the background: never blocks or fails the caller. `at` tells one wait from
    /// the next of the same job (a retry of a rejected job waits again).
    pub fn awaiting_approval(&self, tenant: &TenantId, doc: &crate::domain::JobDocument, at: u64) {
        if self.cached_subs(tenant) == Some(false) || doc.state != JobState::AwaitingApproval {
            return;
        }
        let me = self.clone();
        let tenant = tenant.clone();
        let e = EventType::JobAwaitingApproval;
        let cid = doc.correlation_id.clone();
        let event_id = format!("{e}:{cid}:{at}");
        let data = json!({
            "correlation_id": doc.correlation_id, "tool": doc.tool, "target": doc.target,
            "state": doc.state, "submitted_by": doc.submitted_by, "schedule_id": doc.schedule_id,
            "created_at": doc.created_at,
            "approve": format!("/v1/jobs/{cid}/approve"), "reject": format!("/v1/jobs/{cid}/reject"),
        });
        let body = json!({"id": event_id, "type": e.as_str(), "data": data}).to_string();
        let schedule = doc.schedule_id.clone();
        tokio::spawn(async move {
            if let Err(err) = me
                .hooks
                .emit(&tenant, e, &event_id, schedule.as_deref(), &body)
                .await
            {
                tracing::warn!(error = %err, correlation_id = %cid, "Could not emit the job's webhook events");
            }
        });
    }

    /// Whether the job's tenant has subscriptions or a schedule started the job.
    async fn concerned(&self, job: &JobId) -> Result<bool, HookError> {
        let has = match self.cached_subs(&job.tenant) {
            Some(has) => has,
            None => {
                let has = self.hooks.has_subscriptions(&job.tenant).await?;
                self.subs
                    .lock()
                    .expect("subs lock")
                    .insert(job.tenant.clone(), (std::time::Instant::now(), has));
                has
            }
        };
        if has {
            return Ok(true);
        }
        if !may_be_scheduled_run(&job.cid) {
            return Ok(false);
        }
        let mut con = self.queue.pool().get().await?;
        let schedule: Option<String> = redis::cmd("HGET")
            .arg(self.queue.keys().job(job))
            .arg("schedule_id")
            .query_async(&mut con)
            .await?;
        Ok(schedule.is_some_and(|s| !s.is_empty()))
    }
}

/// The events of a job that reached a terminal state: `job.succeeded`, `job.failed` (and
/// `job.dead` once its attempts are used up); for a scheduled run that succeeded, its change
/// summary against the schedule's previous succeeded run (stored as the job's `change`) and
/// `schedule.changed` when it differs. Errors are the caller's to log; the job is unaffected.
pub async fn on_job_finished(
    queue: &Queue,
    schedules: &ScheduleStore,
    hooks: &WebhookStore,
    tenant: &TenantId,
    cid: &CorrelationId,
) -> Result<(), HookError> {
    let Ok(Some((tool, doc))) = queue.get(tenant, cid).await else {
        return Ok(());
    };
    let schedule = doc.schedule_id.as_deref();
    let data = json!({
        "correlation_id": doc.correlation_id, "tool": doc.tool, "target": doc.target,
        "state": doc.state, "attempt": doc.attempt, "max_attempts": doc.max_attempts,
        "finished_at": doc.finished_at, "schedule_id": doc.schedule_id, "error": doc.error,
    });
    let mut events = Vec::new();
    match doc.state {
        JobState::Succeeded => events.push(EventType::JobSucceeded),
        JobState::Failed => {
            events.push(EventType::JobFailed);
            // A big scan's parent fails only once a chunk failed for good (its own attempts
            // count nothing): it is a dead letter like any job out of attempts.
            if doc.attempt >= doc.max_attempts || doc.chunks.is_some() {
                events.push(EventType::JobDead);
            }
        }
        _ => {}
    }
    for e in events {
        let body =
            json!({"id": format!("{e}:{cid}"), "type": e.as_str(), "data": data}).to_string();
        hooks
            .emit(tenant, e, &format!("{e}:{cid}"), schedule, &body)
            .await?;
    }
    let (Some(schedule), JobState::Succeeded) = (schedule, doc.state) else {
        return Ok(());
    };
    // The previous succeeded run of the same schedule (this run may not be listed yet).
    let Ok(runs) = schedules.runs(tenant, schedule, 50).await else {
        return Ok(());
    };
    let older = match runs.iter().position(|(c, _)| c == cid.as_str()) {
        Some(pos) => &runs[pos + 1..],
        None => &runs[..],
    };
    // Only each run's state is read until the one that succeeded; then that run's document.
    let mut previous = None;
    for (c, _) in older {
        let Ok(c) = CorrelationId::parse(c) else {
            continue;
        };
        let state = queue.job_fields(tenant, &c, &["state"]).await;
        if let Ok(Some(f)) = state
            && f.get("state").map(String::as_str) == Some(JobState::Succeeded.as_str())
        {
            previous = queue.get(tenant, &c).await.ok().flatten().map(|(_, d)| d);
            break;
        }
    }
    let Some(prev) = previous else {
        return Ok(());
    };
    let (Ok(a), Ok(b)) = (finished_report(&prev), finished_report(&doc)) else {
        return Ok(());
    };
    let d = diff_reports(&a, &b);
    let change =
        json!({"against": prev.correlation_id, "changed": !d.is_empty(), "summary": d.summary});
    queue
        .record_change(tenant, &tool, cid, &change.to_string())
        .await?;
    if !d.is_empty() {
        let e = EventType::ScheduleChanged;
        let body = json!({"id": format!("{e}:{cid}"), "type": e.as_str(), "data": {
            "schedule_id": schedule, "run": cid.as_str(), "against": prev.correlation_id,
            "summary": d.summary, "hosts": d.hosts,
        }})
        .to_string();
        hooks
            .emit(tenant, e, &format!("{e}:{cid}"), Some(schedule), &body)
            .await?;
    }
    Ok(())
}

impl crate::schedule::RunFinished for JobEvents {
    fn after_action<'a>(
        &'a self,
        tenant: &'a TenantId,
        cid: &'a CorrelationId,
    ) -> futures::future::BoxFuture<'a, ()> {
        Box::pin(JobEvents::after_action(self, tenant, cid))
    }

    fn awaiting_approval(&self, tenant: &TenantId, doc: &crate::domain::JobDocument) {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        JobEvents::awaiting_approval(self, tenant, doc, at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_run_the_scheduler_names_passes_the_cheap_filter() {
        let run = |s: &str| CorrelationId::parse(s).unwrap();
        assert!(may_be_scheduled_run(&run(&crate::schedule::run_id(
            "nightly",
            1_800_000_000_000
        ))));
        assert!(may_be_scheduled_run(&run("nightly.t1800000000000")));
        assert!(!may_be_scheduled_run(&run("scan-1")));
    }
}
