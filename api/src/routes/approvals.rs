//! `POST /v1/jobs/{id}/approve` and `/reject`: a person's decision on a job awaiting approval
//! (DESIGN §14). Extract → one call (`actions::decide`) → map.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use scanq::domain::{Decision, JobDocument};
use scanq::request::DecisionBody;

use crate::actions;
use crate::error::{AppError, ProblemBody};
use crate::extract::{Caller, JobId, OptionalJsonBody};
use crate::params::JobIdParam;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/jobs/{id}/approve", post(approve))
        .route("/v1/jobs/{id}/reject", post(reject))
}

/// Approve a job awaiting approval: it is admitted like a new job (queued, or scheduled when
/// its time has not come). Needs the `approve` scope and a token other than the submitter's.
#[utoipa::path(post, path = "/v1/jobs/{id}/approve", operation_id = "approve_job", tag = "jobs", params(JobIdParam),
    request_body(content = Option<DecisionBody>, content_type = "application/json", description = "optional: why"),
    responses(
        (status = 200, description = "Approved: the job as it is now (`queued` or `scheduled`)", body = JobDocument),
        (status = 400, description = "Body is not JSON, or names a key twice", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "No `approve` scope, the submitting token, or open mode", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such job for this tenant", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The job is not awaiting approval", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "The reason was refused", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "The tenant's or the tool's queue is full; the job still awaits approval", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    JobId(id): JobId,
    OptionalJsonBody(body): OptionalJsonBody,
) -> Result<Response, AppError> {
    decide(state, caller, id, body, Decision::Approved).await
}

/// Reject a job awaiting approval: it ends `cancelled` (`error.type = "cancelled"`, the reason
/// in the message). Needs the `approve` scope and a token other than the submitter's.
#[utoipa::path(post, path = "/v1/jobs/{id}/reject", operation_id = "reject_job", tag = "jobs", params(JobIdParam),
    request_body(content = Option<DecisionBody>, content_type = "application/json", description = "optional: why"),
    responses(
        (status = 200, description = "Rejected: the job, now `cancelled`", body = JobDocument),
        (status = 400, description = "Body is not JSON, or names a key twice", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "No `approve` scope, the submitting token, or open mode", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such job for this tenant", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The job is not awaiting approval", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "The reason was refused", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    JobId(id): JobId,
    OptionalJsonBody(body): OptionalJsonBody,
) -> Result<Response, AppError> {
    decide(state, caller, id, body, Decision::Rejected).await
}

async fn decide(
    state: AppState,
    caller: Caller,
    id: scanq::domain::CorrelationId,
    body: Option<serde_json::Value>,
    decision: Decision,
) -> Result<Response, AppError> {
    let reason = DecisionBody::reason_of(body.as_ref())?;
    let doc = actions::decide(&state, &caller, &id, decision, reason.as_ref()).await?;
    Ok((StatusCode::OK, Json(doc)).into_response())
}
