//! `/v1/schedules`: create-or-replace by id, list, read, delete, pause, resume, trigger, and the
//! runs of a schedule. Each handler is extract → one call of the schedule service
//! (`scanq::schedule`, shared with MCP) → map, plus its audit line. The firing itself lives in
//! `scanq::schedule` too (every process fires).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use scanq::schedule::{
    RunEntry, ScheduleBody, ScheduleDocument, ScheduleError, StoreError, Upserted, pause_action,
};
use scanq::validate::ValidationError;
use serde::Deserialize;
use serde_json::json;

use crate::audit;
use crate::error::AppError;
use crate::error::ProblemBody;
use crate::extract::{Caller, JsonBody, Params, PathParams};
use crate::params::ScheduleIdParam;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/schedules", get(list))
        .route("/v1/schedules/{id}", get(read).put(upsert).delete(remove))
        .route("/v1/schedules/{id}/pause", post(pause))
        .route("/v1/schedules/{id}/resume", post(resume))
        .route("/v1/schedules/{id}/trigger", post(trigger))
        .route("/v1/schedules/{id}/runs", get(runs))
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        ScheduleError::from(err).into()
    }
}

impl From<ScheduleError> for AppError {
    fn from(err: ScheduleError) -> Self {
        match err {
            ScheduleError::Invalid(e) => e.into(),
            ScheduleError::NotFound => Self::NotFound,
            e @ ScheduleError::AtCap { .. } => Self::RateLimited {
                retry_after: 60,
                detail: format!("{e} (SCANQ_TENANT_MAX_SCHEDULES)"),
            },
            ScheduleError::Refused(reason) => Self::Conflict(reason),
            ScheduleError::Queue(e) => e.into(),
            ScheduleError::Store(e) => {
                tracing::error!(error = %e, "Schedule store unavailable");
                Self::Unavailable("the schedule store is unreachable; retry shortly".into())
            }
        }
    }
}

#[utoipa::path(put, path = "/v1/schedules/{id}", operation_id = "put_schedule", tag = "schedules", params(ScheduleIdParam),
    request_body(content = ScheduleBody, content_type = "application/json", description = "docs/schedules.md: the job template fields of a submit plus the schedule's own"),
    responses(
        (status = 201, description = "Created", body = ScheduleDocument),
        (status = 200, description = "Replaced", body = ScheduleDocument),
        (status = 400, description = "Body is not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "Unknown tool", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A field was refused (`field`, `hint`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "The tenant has SCANQ_TENANT_MAX_SCHEDULES schedules (creating; a replace is allowed)", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn upsert(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, AppError> {
    let r = state
        .inner
        .scheduler
        .upsert(
            &state.live(),
            &caller.scope(&state),
            &caller.tenant,
            &id,
            &body,
        )
        .await
        .map_err(AppError::from);
    audit::schedule(
        Upserted::audit_action(&r),
        &caller,
        &id,
        &audit::outcome_of(&r),
    );
    let u = r?;
    let status = if u.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(u.document)).into_response())
}

#[utoipa::path(get, path = "/v1/schedules/{id}", operation_id = "get_schedule", tag = "schedules", params(ScheduleIdParam),
    responses((status = 200, description = "The schedule: definition, `state` (`parked_reason`), `next_run_at`, `last_run`, `last_change`", body = ScheduleDocument),
        (status = 404, description = "No such schedule for this tenant", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A bad id", body = ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn read(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Response, AppError> {
    let doc = state.inner.scheduler.read(&caller.tenant, &id).await?;
    Ok(Json(doc).into_response())
}

#[utoipa::path(get, path = "/v1/schedules", operation_id = "list_schedules", tag = "schedules",
    responses((status = 200, description = "`schedules`: the tenant's schedules", body = Object)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, AppError> {
    let schedules = state.inner.scheduler.list(&caller.tenant).await?;
    Ok(Json(json!({ "schedules": schedules })).into_response())
}

#[utoipa::path(delete, path = "/v1/schedules/{id}", operation_id = "delete_schedule", tag = "schedules", params(ScheduleIdParam),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such schedule for this tenant", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A bad id", body = ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Response, AppError> {
    let r = state
        .inner
        .scheduler
        .delete(&caller.tenant, &id)
        .await
        .map_err(AppError::from);
    audit::schedule("schedule.delete", &caller, &id, &audit::outcome_of(&r));
    r?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(post, path = "/v1/schedules/{id}/pause", operation_id = "pause_schedule", tag = "schedules", params(ScheduleIdParam),
    responses((status = 200, description = "The paused schedule", body = ScheduleDocument),
        (status = 404, description = "No such schedule for this tenant", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A bad id", body = ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Response, AppError> {
    let r = state
        .inner
        .scheduler
        .set_paused(&caller.tenant, &id, true)
        .await
        .map_err(AppError::from);
    audit::schedule(pause_action(true), &caller, &id, &audit::outcome_of(&r));
    Ok(Json(r?).into_response())
}

#[utoipa::path(post, path = "/v1/schedules/{id}/resume", operation_id = "resume_schedule", tag = "schedules", params(ScheduleIdParam),
    responses((status = 200, description = "The resumed schedule (no longer parked)", body = ScheduleDocument),
        (status = 404, description = "No such schedule for this tenant", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A bad id", body = ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Response, AppError> {
    let r = state
        .inner
        .scheduler
        .set_paused(&caller.tenant, &id, false)
        .await
        .map_err(AppError::from);
    audit::schedule(pause_action(false), &caller, &id, &audit::outcome_of(&r));
    Ok(Json(r?).into_response())
}

#[utoipa::path(post, path = "/v1/schedules/{id}/trigger", operation_id = "trigger_schedule", tag = "schedules", params(ScheduleIdParam),
    responses((status = 202, description = "A run was queued now", body = Object),
        (status = 404, description = "No such schedule for this tenant", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The schedule's template is no longer accepted", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A bad id", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "The tenant is at its cap on waiting jobs (`Retry-After`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The tool's queue is full or the queue store is down (`Retry-After`)", body = ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn trigger(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Response, AppError> {
    let caps = state.inner.auth.caps_for(&caller.tenant, &state.inner.cfg);
    let r = state
        .inner
        .scheduler
        .trigger(
            &state.live(),
            &caller.scope(&state),
            &caller.tenant,
            caps,
            &id,
        )
        .await
        .map_err(AppError::from);
    audit::schedule("schedule.trigger", &caller, &id, &audit::outcome_of(&r));
    let run = r?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"schedule_id": id, "run": run})),
    )
        .into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunsParams {
    /// Runs to list, newest first (default 50; a schedule keeps its newest 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/v1/schedules/{id}/runs", operation_id = "schedule_runs", tag = "schedules", params(ScheduleIdParam, RunsParams),
    responses((status = 200, description = "`runs`: the schedule's runs, newest first", body = Object),
        (status = 404, description = "No such schedule for this tenant", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A parameter was refused", body = ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn runs(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    Params(p): Params<RunsParams>,
) -> Result<Response, AppError> {
    let limit = p.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(AppError::Validation(ValidationError::new(
            "limit",
            format!("{limit} is out of range"),
            "1..=500",
        )));
    }
    let runs: Vec<RunEntry> = state
        .inner
        .scheduler
        .runs(&caller.tenant, &id, limit)
        .await?;
    Ok(Json(json!({ "schedule_id": id, "runs": runs })).into_response())
}
