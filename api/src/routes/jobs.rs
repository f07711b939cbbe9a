//! `/v1/jobs`: submit, read (with long-poll), cancel, retry and list.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use scanq::domain::{CorrelationId, JobDocument, JobState, ToolName};
use scanq::queue::QueueError;
use scanq::request::JobSpec;
use scanq::scripts::CancelOutcome;
use serde::Deserialize;
use serde_json::json;

use crate::audit::{self, Subject};
use crate::error::AppError;
use crate::extract::{Caller, JobId, JsonBody};
use crate::state::AppState;
use crate::submit::Refused;

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
    let submitted = crate::submit::submit(&state, &caller, &spec)
        .await
        .map_err(|r| match r {
            Refused::Gate(e) => e,
            Refused::Queue(e) => e.into(),
        })?;
    let created = submitted.created;
    let doc = submitted.document;
    let status = if created {
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
    let doc = match &out {
        Ok(_) => state
            .queue()
            .get(&caller.tenant, &id)
            .await?
            .map(|(_, d)| d),
        Err(_) => None,
    };
    let outcome = match &out {
        Ok(CancelOutcome::Cancelled) => "cancelled",
        Ok(_) => "cancel_requested",
        Err(e) => audit::refusal(e),
    };
    audit::record("cancel", &caller, subject(&id, doc.as_ref()), outcome);
    let status = match out {
        Ok(CancelOutcome::Cancelled) => StatusCode::OK,
        Ok(_) => StatusCode::ACCEPTED,
        Err(e) => return Err(AppError::from_cancel(e)),
    };
    Ok((status, Json(json!({"outcome": outcome, "job": doc}))).into_response())
}

/// The audit subject of a job known by its ID (and its document, when it was read).
fn subject<'a>(id: &'a CorrelationId, doc: Option<&'a JobDocument>) -> Subject<'a> {
    Subject {
        correlation_id: id.as_str(),
        tool: doc.map_or("", |d| d.tool.as_str()),
        target: doc.map_or("", |d| d.target.as_str()),
    }
}

async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    JobId(id): JobId,
) -> Result<Response, AppError> {
    let out = state.queue().retry(&caller.tenant, &id).await;
    let doc = match &out {
        Ok(()) => state
            .queue()
            .get(&caller.tenant, &id)
            .await?
            .map(|(_, d)| d),
        Err(_) => None,
    };
    let outcome = match &out {
        Ok(()) => "queued",
        Err(e) => audit::refusal(e),
    };
    audit::record("retry", &caller, subject(&id, doc.as_ref()), outcome);
    match out {
        Ok(()) => {}
        Err(QueueError::Final { state: s }) => {
            return Err(AppError::Conflict(format!(
                "job is {s}; only failed or cancelled jobs can be retried"
            )));
        }
        Err(e) => return Err(e.into()),
    }
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
