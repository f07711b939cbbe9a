//! The job actions that REST and MCP share: submit, cancel and retry. Each goes through the
//! queue's one admission path (`Queue::admit`, `Queue::admit_retry`: gate, tenant caps, queue
//! length, fair share), writes one audit line and counts itself, the same way from every front
//! door; the front doors only map the outcome to their own shape.

use scanq::domain::{CorrelationId, JobDocument, JobId, ToolName};
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
                    .with_label_values(&[doc.tool.as_str()])
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
            parent_finished_here(state, caller, doc);
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
    if let Some(doc) = &doc {
        parent_finished_here(state, caller, doc);
    }
    let outcome = match &out {
        Ok(o) => cancel_outcome(o),
        Err(e) => audit::refusal(e),
    };
    let subject = doc.as_ref().map_or_else(|| id_subject(cid), job_subject);
    audit::record("cancel", caller, subject, outcome);
    out.map(|o| (o, doc))
}

/// A big scan's parent that a cancel or retry just left final (a cancel of a parent whose
/// chunk had failed: `failed`; every chunk already final: its outcome) gets its webhook events
/// here, as the worker's settler gives them to a parent its chunks finish. The action succeeded,
/// so the parent was not final before it; the events are keyed by job, so a settler finishing
/// the same parent at the same moment delivers nothing twice.
fn parent_finished_here(state: &AppState, caller: &Caller, doc: &JobDocument) {
    if doc.chunks.is_none() || !doc.state.is_terminal() {
        return;
    }
    let (Ok(tool), Ok(cid)) = (
        ToolName::parse(&doc.tool),
        CorrelationId::parse(&doc.correlation_id),
    ) else {
        return;
    };
    tracing::info!(correlation_id = %cid, state = %doc.state, "Big scan finished by an API action");
    state
        .inner
        .job_events
        .finished(JobId::new(tool, caller.tenant.clone(), cid));
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
