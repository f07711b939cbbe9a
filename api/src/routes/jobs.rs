//! `/v1/jobs`: submit, read (with long-poll), cancel, retry and list.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use scanq::domain::{JobState, ToolName};
use scanq::queue::QueueError;
use scanq::request::JobSpec;
use scanq::scripts::CancelOutcome;
use serde::Deserialize;
use serde_json::json;

use crate::error::AppError;
use crate::extract::{Caller, JobId, JsonBody};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/jobs", post(submit).get(list))
        .route("/v1/jobs/{id}", get(read).delete(cancel))
        .route("/v1/jobs/{id}/retry", post(retry))
}

async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, AppError> {
    let spec = JobSpec::from_json(&body, &state.policy())?;
    state
        .inner
        .breaker_cache
        .check(state.queue(), &spec.tool, spec.queue_if_unavailable)
        .await?;
    let submitted = state.queue().submit(&caller.tenant, &spec).await?;
    let doc = submitted.document;
    tracing::info!(
        audit = "submit",
        token = %caller.name,
        tenant = %caller.tenant,
        correlation_id = %doc.correlation_id,
        tool = %doc.tool,
        target = %doc.target,
        outcome = if submitted.created { "created" } else { "existing" },
        "Job submitted"
    );
    let status = if submitted.created {
        state
            .inner
            .metrics
            .jobs_submitted
            .with_label_values(&[doc.tool.as_str()])
            .inc();
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let location = format!("/v1/jobs/{}", doc.correlation_id);
    let mut resp = (status, Json(doc)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

#[derive(Debug, Deserialize)]
struct ReadParams {
    wait: Option<u64>,
}

async fn read(
    State(state): State<AppState>,
    caller: Caller,
    JobId(id): JobId,
    Query(p): Query<ReadParams>,
) -> Result<Response, AppError> {
    let doc = match p.wait.filter(|w| *w > 0) {
        Some(wait) => {
            let wait = Duration::from_secs(wait.min(state.inner.cfg.max_wait_sec));
            state
                .queue()
                .wait_terminal(&state.inner.listener, &caller.tenant, &id, wait)
                .await?
        }
        None => state
            .queue()
            .get(&caller.tenant, &id)
            .await?
            .map(|(_, d)| d),
    };
    Ok(Json(doc.ok_or(AppError::NotFound)?).into_response())
}

async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    JobId(id): JobId,
) -> Result<Response, AppError> {
    let out = state.queue().cancel(&caller.tenant, &id).await;
    tracing::info!(audit = "cancel", token = %caller.name, tenant = %caller.tenant, correlation_id = %id, outcome = ?out, "Cancel requested");
    let (status, outcome) = match out {
        Ok(CancelOutcome::Cancelled) => (StatusCode::OK, "cancelled"),
        Ok(_) => (StatusCode::ACCEPTED, "cancel_requested"),
        Err(QueueError::Final { state: s }) => {
            return Err(AppError::Conflict(format!(
                "job is already {s}; only queued, scheduled or running jobs can be cancelled"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let doc = state
        .queue()
        .get(&caller.tenant, &id)
        .await?
        .map(|(_, d)| d);
    Ok((status, Json(json!({"outcome": outcome, "job": doc}))).into_response())
}

async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    JobId(id): JobId,
) -> Result<Response, AppError> {
    let out = state.queue().retry(&caller.tenant, &id).await;
    tracing::info!(audit = "retry", token = %caller.name, tenant = %caller.tenant, correlation_id = %id, ok = out.is_ok(), "Retry requested");
    match out {
        Ok(()) => {}
        Err(QueueError::Final { state: s }) => {
            return Err(AppError::Conflict(format!(
                "job is {s}; only failed or cancelled jobs can be retried"
            )));
        }
        Err(e) => return Err(e.into()),
    }
    let doc = state
        .queue()
        .get(&caller.tenant, &id)
        .await?
        .map(|(_, d)| d);
    Ok((StatusCode::ACCEPTED, Json(doc)).into_response())
}

#[derive(Debug, Deserialize)]
struct ListParams {
    state: Option<String>,
    tool: Option<String>,
    limit: Option<usize>,
    cursor: Option<u64>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<ListParams>,
) -> Result<Response, AppError> {
    let bad = |field: &str, msg: String, hint: &str| {
        AppError::Validation(scanq::validate::ValidationError::new(field, msg, hint))
    };
    let job_state = match p.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            s.parse::<JobState>()
                .map_err(|e| bad("state", e.to_string(), JobState::ACCEPTED))?,
        ),
    };
    let tool = match p.tool.as_deref() {
        None | Some("") => None,
        Some(t) => Some(
            ToolName::parse(t).map_err(|e| bad("tool", e.0, "a tool name from GET /v1/tools"))?,
        ),
    };
    let limit = p.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(bad("limit", format!("{limit} is out of range"), "1..=500"));
    }
    let (jobs, next) = state
        .queue()
        .list(&caller.tenant, job_state, tool.as_ref(), limit, p.cursor)
        .await?;
    Ok(Json(json!({"jobs": jobs, "next_cursor": next})).into_response())
}
