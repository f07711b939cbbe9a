//! The job actions that REST and MCP share: submit, cancel and retry. Each goes through the
//! queue's one admission path (`Queue::admit`, `Queue::admit_retry`: gate, tenant caps, queue
//! length, fair share), writes one audit line and counts itself, the same way from every front
//! door; the front doors only map the outcome to their own shape.

use scanq::domain::{CorrelationId, JobDocument};
use scanq::queue::{QueueError, Submitted};
use scanq::request::JobSpec;
use scanq::scripts::CancelOutcome;

use crate::audit::{self, Subject};
use crate::extract::Caller;
use crate::state::AppState;

/// Enqueues a checked job for the caller.
pub async fn submit(
    state: &AppState,
    caller: &Caller,
    spec: &JobSpec,
) -> Result<Submitted, QueueError> {
    let caps = state.inner.auth.caps_for(&caller.tenant, &state.inner.cfg);
    let submitted = state.queue().admit(&caller.tenant, spec, caps).await;
    match &submitted {
        Ok(s) => {
            let doc = &s.document;
            let outcome = if s.created { "created" } else { "existing" };
            audit::record("submit", caller, job_subject(doc), outcome);
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
            audit::record("retry", caller, job_subject(doc), "queued");
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
