//! The one submit path behind `POST /v1/jobs` and the MCP scan tools: the gate (open breaker,
//! disabled tool), the tenant's caps, the enqueue, the audit line and the submitted metric.
//! Each front door only maps the outcome to its own shape.

use scanq::queue::{QueueError, Submitted};
use scanq::request::JobSpec;

use crate::audit::{self, Subject};
use crate::error::AppError;
use crate::extract::Caller;
use crate::state::AppState;

/// Why a checked request was not enqueued.
#[derive(Debug)]
pub enum Refused {
    /// The gate turned it away (breaker open, tool disabled, Redis down).
    Gate(AppError),
    /// The queue refused it (conflict, full, tenant cap, Redis down).
    Queue(QueueError),
}

/// Enqueues a checked job for the caller.
pub async fn submit(
    state: &AppState,
    caller: &Caller,
    spec: &JobSpec,
) -> Result<Submitted, Refused> {
    state
        .inner
        .breaker_cache
        .check(state.queue(), &spec.tool, spec.queue_if_unavailable)
        .await
        .map_err(Refused::Gate)?;
    let caps = state.inner.auth.caps_for(&caller.tenant, &state.inner.cfg);
    let submitted = state
        .queue()
        .submit_within(&caller.tenant, spec, caps)
        .await;
    match submitted {
        Ok(s) => {
            let doc = &s.document;
            let subject = Subject {
                correlation_id: &doc.correlation_id,
                tool: &doc.tool,
                target: &doc.target,
            };
            audit::record(
                "submit",
                caller,
                subject,
                if s.created { "created" } else { "existing" },
            );
            if s.created {
                state
                    .inner
                    .metrics
                    .jobs_submitted
                    .with_label_values(&[doc.tool.as_str()])
                    .inc();
            }
            Ok(s)
        }
        Err(err) => {
            let cid = spec.correlation_id.as_ref().map(|c| c.to_string());
            let target = spec.target.to_string();
            let subject = Subject {
                correlation_id: cid.as_deref().unwrap_or(""),
                tool: spec.tool.as_str(),
                target: &target,
            };
            audit::record("submit", caller, subject, audit::refusal(&err));
            Err(Refused::Queue(err))
        }
    }
}
