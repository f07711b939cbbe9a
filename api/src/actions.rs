//! The job actions that REST and MCP share: submit, cancel and retry. Each goes through the
//! queue's one admission path (`Queue::admit`, `Queue::admit_retry`: gate, tenant caps, queue
//! length, fair share), writes one audit line and counts itself, the same way from every front
//! door; the front doors only map the outcome to their own shape.

use scanq::domain::approval::Reason;
use scanq::domain::{CorrelationId, Decision, JobDocument, JobState};
use scanq::queue::{QueueError, Submitted};
use scanq::request::JobSpec;
use scanq::scripts::CancelOutcome;

use crate::audit::{self, Subject};
use crate::error::AppError;
use crate::extract::Caller;
use crate::state::AppState;

/// Enqueues a checked job for the caller.
pub async fn submit(
    state: &AppState,
    caller: &Caller,
    spec: &JobSpec,
) -> Result<Submitted, QueueError> {
    let caps = state.inner.auth.caps_for(&caller.tenant, &state.inner.cfg);
    let mut spec = spec.clone();
    // The one token that may not approve it (DESIGN §14).
    spec.submitted_by = Some(caller.name.clone());
    let submitted = state.queue().admit(&caller.tenant, &spec, caps).await;
    match &submitted {
        Ok(s) => {
            let doc = &s.document;
            let outcome = if s.created { "created" } else { "existing" };
            audit::record("submit", caller, job_subject(doc), outcome);
            if s.created && doc.state == JobState::AwaitingApproval {
                awaiting(state, caller, doc);
            }
            if s.created {
                state
                    .inner
                    .metrics
                    .jobs_submitted
                    .with_label_values(&[doc.tool.as_str(), doc.zone.as_str()])
                    .inc();
            }
        }
        Err(err) => {
            let cid = spec.correlation_id.as_ref().map(|c| c.to_string());
            let target = spec.target.to_string();
            let subject = Subject {
                correlation_id: cid.as_deref().unwrap_or(""),
                tool: spec.tool.as_str(),
                target: &target,
                ..Subject::default()
            };
            audit::record("submit", caller, subject, audit::refusal(err));
        }
    }
    submitted
}

/// [`submit`] that then waits up to `wait` seconds (`Prefer: wait`; already capped at the
/// server's `max_wait_sec`) for the job to reach a terminal state: the job as it is then. No
/// wait (None or 0) is a plain [`submit`].
pub async fn submit_waiting(
    state: &AppState,
    caller: &Caller,
    spec: &JobSpec,
    wait: Option<u64>,
) -> Result<Submitted, QueueError> {
    let Some(wait) = wait.filter(|w| *w > 0) else {
        return submit(state, caller, spec).await;
    };
    state
        .queue()
        .submit_and_wait(
            &state.inner.listener,
            &caller.tenant,
            spec,
            std::time::Duration::from_secs(wait),
            |spec| async move { submit(state, caller, &spec).await },
        )
        .await
}

/// Queues a failed or cancelled job again, under every check a new job passes.
pub async fn retry(
    state: &AppState,
    caller: &Caller,
    cid: &CorrelationId,
) -> Result<JobDocument, QueueError> {
    let caps = state.inner.auth.caps_for(&caller.tenant, &state.inner.cfg);
    let out = state.queue().admit_retry(&caller.tenant, cid, caps).await;
    match &out {
        Ok(doc) => {
            let outcome = if doc.state == JobState::AwaitingApproval {
                awaiting(state, caller, doc);
                "awaiting_approval"
            } else {
                "queued"
            };
            audit::record("retry", caller, job_subject(doc), outcome);
            // A big scan's parent this retry left final gets its webhook events.
            state
                .inner
                .job_events
                .after_action(&caller.tenant, cid)
                .await;
        }
        Err(e) => audit::record("retry", caller, id_subject(cid), audit::refusal(e)),
    }
    out
}

/// Cancels a job; answers with what happened and the job as it is now.
pub async fn cancel(
    state: &AppState,
    caller: &Caller,
    cid: &CorrelationId,
) -> Result<(CancelOutcome, Option<JobDocument>), QueueError> {
    let out = state.queue().cancel(&caller.tenant, cid).await;
    let doc = match &out {
        Ok(_) => state
            .queue()
            .get(&caller.tenant, cid)
            .await?
            .map(|(_, d)| d),
        Err(_) => None,
    };
    if out.is_ok() {
        // A big scan's parent this cancel left final gets its webhook events.
        state
            .inner
            .job_events
            .after_action(&caller.tenant, cid)
            .await;
    }
    let outcome = match &out {
        Ok(o) => cancel_outcome(o),
        Err(e) => audit::refusal(e),
    };
    let subject = doc.as_ref().map_or_else(|| id_subject(cid), job_subject);
    audit::record("cancel", caller, subject, outcome);
    out.map(|o| (o, doc))
}

/// A job now awaits a person's approval: `job.awaiting_approval` to the tenant's webhooks.
fn awaiting(state: &AppState, caller: &Caller, doc: &JobDocument) {
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    state
        .inner
        .job_events
        .awaiting_approval(&caller.tenant, doc, at);
}

/// A person's decision on a job awaiting approval (DESIGN §14): approved, it is admitted like a
/// new job (gate, the tenant's caps, queue length, fair share, its window); rejected, it is
/// cancelled with the reason. Refused (403) in open mode, where every caller is the same
/// identity, and for the token that submitted the job.
pub async fn decide(
    state: &AppState,
    caller: &Caller,
    cid: &CorrelationId,
    decision: Decision,
    reason: Option<&Reason>,
) -> Result<JobDocument, AppError> {
    let action = match decision {
        Decision::Approved => "approve",
        Decision::Rejected => "reject",
    };
    let why = reason.map_or("", Reason::as_str);
    if state.inner.auth.is_open() {
        audit::decision(action, caller, id_subject(cid), "open_mode", why);
        return Err(AppError::Forbidden(
            "this server runs without a tokens file (open mode): every caller is the same \
             identity, so nobody else can approve a job; give the API a tokens file \
             (SCANQ_API_TOKENS_FILE) with a token holding the `approve` scope"
                .into(),
        ));
    }
    let caps = state.inner.auth.caps_for(&caller.tenant, &state.inner.cfg);
    let out = state
        .queue()
        .decide(&caller.tenant, cid, decision, &caller.name, reason, caps)
        .await;
    match &out {
        Ok(doc) => audit::decision(action, caller, job_subject(doc), decision.as_str(), why),
        Err(e) => audit::decision(action, caller, id_subject(cid), audit::refusal(e), why),
    }
    out.map_err(|e| match e {
        scanq::queue::QueueError::Final { state: s } => AppError::Conflict(format!(
            "job is {s}; only a job awaiting approval can be approved or rejected"
        )),
        e => e.into(),
    })
}

/// The name of a cancel's outcome, in replies and audit lines.
pub fn cancel_outcome(o: &CancelOutcome) -> &'static str {
    match o {
        CancelOutcome::Cancelled => "cancelled",
        _ => "cancel_requested",
    }
}

fn job_subject(doc: &JobDocument) -> Subject<'_> {
    Subject {
        correlation_id: &doc.correlation_id,
        tool: &doc.tool,
        target: &doc.target,
        schedule_id: doc.schedule_id.as_deref().unwrap_or(""),
        ..Subject::default()
    }
}

fn id_subject(cid: &CorrelationId) -> Subject<'_> {
    Subject {
        correlation_id: cid.as_str(),
        ..Subject::default()
    }
}
