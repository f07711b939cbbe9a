//! `/v1/schedules`: create-or-replace by id, list, read, delete, pause, resume, trigger, and the
//! runs of a schedule. The firing itself lives in `scanq::schedule` (every process fires).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use scanq::domain::{CorrelationId, JobState, TenantId};
use scanq::nmap::{diff_reports, finished_report};
use scanq::schedule::{Refusal, ScheduleDef, ScheduleView, Scheduler, StoreError, rfc3339};
use scanq::validate::ValidationError;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::AppError;
use crate::error::ProblemBody;
use crate::extract::{Caller, JsonBody, Params, PathParams};
use crate::params::ScheduleIdParam;
use crate::state::AppState;

/// The longest schedule id: a run's correlation ID is `<id>.<slot seconds>`, at most 64.
const MAX_ID: usize = 48;

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
        match err {
            StoreError::Queue(e) => e.into(),
            e => {
                tracing::error!(error = %e, "Schedule store unavailable");
                Self::Unavailable("the schedule store is unreachable; retry shortly".into())
            }
        }
    }
}

/// A schedule id: the correlation-ID alphabet, at most 48 characters.
pub fn schedule_id(id: &str) -> Result<String, AppError> {
    let hint = format!("[A-Za-z0-9._:-]{{1,{MAX_ID}}}");
    let cid = CorrelationId::parse(id)
        .map_err(|e| AppError::Validation(ValidationError::new("id", e.0, hint.clone())))?;
    if id.len() > MAX_ID {
        return Err(AppError::Validation(ValidationError::new(
            "id",
            format!("is {} characters long; the maximum is {MAX_ID}", id.len()),
            hint,
        )));
    }
    Ok(cid.to_string())
}

fn scheduler(state: &AppState) -> &Scheduler {
    &state.inner.scheduler
}

/// The schedule's public document: its definition, state, next slot, last run and last change.
pub async fn document(
    state: &AppState,
    tenant: &TenantId,
    v: &ScheduleView,
) -> Result<Value, AppError> {
    let store = &scheduler(state).store;
    let recent = store.runs(tenant, &v.id, 20).await?;
    let mut succeeded = Vec::new();
    let mut last_run = Value::Null;
    for (i, (cid, _)) in recent.iter().enumerate() {
        let Ok(c) = CorrelationId::parse(cid) else {
            continue;
        };
        let Some((_, doc)) = state.queue().get(tenant, &c).await? else {
            continue;
        };
        if i == 0 {
            last_run = json!({"correlation_id": cid, "state": doc.state});
        }
        if doc.state == JobState::Succeeded {
            succeeded.push(doc);
            if succeeded.len() == 2 {
                break;
            }
        }
    }
    let last_change = match succeeded.as_slice() {
        [newer, older] => match (finished_report(newer), finished_report(older)) {
            (Ok(b), Ok(a)) => {
                let d = diff_reports(&a, &b);
                json!({"run": newer.correlation_id, "against": older.correlation_id,
                       "changed": !d.is_empty(), "summary": d.summary})
            }
            _ => Value::Null,
        },
        _ => Value::Null,
    };
    let mut doc = serde_json::to_value(&v.def).map_err(anyhow::Error::from)?;
    let o = doc.as_object_mut().expect("a schedule is an object");
    o.insert("id".into(), json!(v.id));
    o.insert("paused".into(), json!(v.paused));
    let next = v.next_slot.filter(|_| !v.paused).map(rfc3339);
    o.insert("next_run_at".into(), json!(next));
    o.insert("created_at".into(), json!(rfc3339(v.created_ms)));
    o.insert("updated_at".into(), json!(rfc3339(v.updated_ms)));
    o.insert("last_run".into(), last_run);
    o.insert("last_change".into(), last_change);
    Ok(doc)
}

async fn found(state: &AppState, tenant: &TenantId, id: &str) -> Result<ScheduleView, AppError> {
    scheduler(state)
        .store
        .get(tenant, id)
        .await?
        .ok_or(AppError::NotFound)
}

/// Creates or replaces a schedule; the body is a job template plus the schedule's own fields.
/// 201 when created, 200 when replaced.
pub async fn put_schedule(
    state: &AppState,
    tenant: &TenantId,
    id: &str,
    body: &Value,
) -> Result<(bool, Value), AppError> {
    let id = schedule_id(id)?;
    let live = state.live();
    let def = ScheduleDef::from_json(body, &live.policy(), state.inner.cfg.schedule_min_every_sec)?;
    let store = &scheduler(state).store;
    let now = store.now_ms().await?;
    let next = Scheduler::next_due(&def, &id, now, now);
    let created = store.put(tenant, &id, &def, now, next).await?;
    let v = found(state, tenant, &id).await?;
    Ok((created, document(state, tenant, &v).await?))
}

/// Creates or replaces the schedule `id` (a job template plus `cron` + `timezone` or `every_sec`,
/// `overlap`, `catchup_sec`, …; validated like a submit).
#[utoipa::path(put, path = "/v1/schedules/{id}", operation_id = "put_schedule", tag = "schedules", params(ScheduleIdParam),
    request_body(content = Object, content_type = "application/json", description = "docs/schedules.md: the job template fields of a submit plus the schedule's own"),
    responses(
        (status = 201, description = "Created", body = Object),
        (status = 200, description = "Replaced", body = Object),
        (status = 400, description = "Body is not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "Unknown tool", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A field was refused (`field`, `hint`)", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn upsert(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, AppError> {
    let (created, doc) = put_schedule(&state, &caller.tenant, &id, &body).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(doc)).into_response())
}

#[utoipa::path(get, path = "/v1/schedules/{id}", operation_id = "get_schedule", tag = "schedules", params(ScheduleIdParam),
    responses((status = 200, description = "The schedule: definition, `next_run_at`, `last_run`, `last_change`", body = Object),
        (status = 404, description = "No such schedule for this tenant", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A bad id", body = ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn read(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Response, AppError> {
    let v = found(&state, &caller.tenant, &id).await?;
    Ok(Json(document(&state, &caller.tenant, &v).await?).into_response())
}

/// The tenant's schedules as documents.
pub async fn list_schedules(state: &AppState, tenant: &TenantId) -> Result<Vec<Value>, AppError> {
    let mut out = Vec::new();
    for v in scheduler(state).store.list(tenant).await? {
        out.push(document(state, tenant, &v).await?);
    }
    Ok(out)
}

#[utoipa::path(get, path = "/v1/schedules", operation_id = "list_schedules", tag = "schedules",
    responses((status = 200, description = "`schedules`: the tenant's schedules", body = Object)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, AppError> {
    let schedules = list_schedules(&state, &caller.tenant).await?;
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
    if !scheduler(&state).store.delete(&caller.tenant, &id).await? {
        return Err(AppError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Pauses (`paused = true`) or resumes a schedule; a resumed schedule continues at its first
/// slot after now (slots missed while paused are not fired).
pub async fn set_paused(
    state: &AppState,
    tenant: &TenantId,
    id: &str,
    paused: bool,
) -> Result<Value, AppError> {
    let v = found(state, tenant, id).await?;
    let store = &scheduler(state).store;
    let next = if paused {
        None
    } else {
        let now = store.now_ms().await?;
        Scheduler::next_due(&v.def, id, now, v.anchor_ms)
    };
    if paused || next.is_some() {
        store.set_paused(tenant, id, next).await?;
    }
    let v = found(state, tenant, id).await?;
    document(state, tenant, &v).await
}

#[utoipa::path(post, path = "/v1/schedules/{id}/pause", operation_id = "pause_schedule", tag = "schedules", params(ScheduleIdParam),
    responses((status = 200, description = "The paused schedule", body = Object),
        (status = 404, description = "No such schedule for this tenant", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A bad id", body = ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Response, AppError> {
    Ok(Json(set_paused(&state, &caller.tenant, &id, true).await?).into_response())
}

#[utoipa::path(post, path = "/v1/schedules/{id}/resume", operation_id = "resume_schedule", tag = "schedules", params(ScheduleIdParam),
    responses((status = 200, description = "The resumed schedule", body = Object),
        (status = 404, description = "No such schedule for this tenant", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A bad id", body = ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Response, AppError> {
    Ok(Json(set_paused(&state, &caller.tenant, &id, false).await?).into_response())
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
    let v = found(&state, &caller.tenant, &id).await?;
    let live = state.inner.live.current();
    let caps = state.inner.auth.caps_for(&caller.tenant, &state.inner.cfg);
    match scheduler(&state)
        .trigger(&live, &caller.tenant, caps, &id, &v.def)
        .await?
    {
        Ok(run) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"schedule_id": id, "run": run})),
        )
            .into_response()),
        Err(Refusal::Template(reason)) => Err(AppError::Conflict(format!(
            "the schedule's template was refused: {reason}"
        ))),
        // The tenant's cap or the tool's queue length: answered as for a submit (429).
        Err(Refusal::Queue(e)) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunsParams {
    /// Runs to list, newest first (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// The schedule's runs, newest first, with each job's state.
pub async fn list_runs(
    state: &AppState,
    tenant: &TenantId,
    id: &str,
    limit: usize,
) -> Result<Vec<Value>, AppError> {
    found(state, tenant, id).await?;
    let mut out = Vec::new();
    for (cid, slot) in scheduler(state).store.runs(tenant, id, limit).await? {
        let doc = match CorrelationId::parse(&cid) {
            Ok(c) => state.queue().get(tenant, &c).await?.map(|(_, d)| d),
            Err(_) => None,
        };
        out.push(json!({
            "correlation_id": cid,
            "slot_at": rfc3339(slot),
            "state": doc.as_ref().map(|d| d.state),
            "finished_at": doc.as_ref().and_then(|d| d.finished_at.clone()),
        }));
    }
    Ok(out)
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
    let runs = list_runs(&state, &caller.tenant, &id, limit).await?;
    Ok(Json(json!({ "schedule_id": id, "runs": runs })).into_response())
}
