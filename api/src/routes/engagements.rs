//! `/v1/engagements`: a tenant's engagements (DESIGN §14) — create-or-replace by id, list,
//! read, delete. Each handler is extract → one call of the engagement service
//! (`crate::engagements::Engagements`, shared with MCP) → map, plus the audit line of a change.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use scanq::engagement::EngagementBody;

use crate::audit::{self, Subject};
use crate::engagements::{EngagementDocument, EngagementError, EngagementList, Engagements};
use crate::error::{AppError, ProblemBody};
use crate::extract::{Caller, JsonBody, PathParams};
use crate::params::EngagementIdParam;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/engagements", get(list))
        .route("/v1/engagements/{id}", get(read).put(upsert).delete(remove))
}

impl From<EngagementError> for AppError {
    fn from(err: EngagementError) -> Self {
        match err {
            EngagementError::Invalid(v) => Self::Validation(v),
            EngagementError::NotFound => Self::NotFound,
            e @ EngagementError::AtCap { .. } => Self::RateLimited {
                retry_after: 60,
                detail: e.to_string(),
            },
            EngagementError::Queue(e) => e.into(),
        }
    }
}

/// The service (cheap: a handle on the queue).
pub(crate) fn service(state: &AppState) -> Engagements {
    Engagements::new(state.queue().clone())
}

/// Writes the audit line of a change and passes its result on.
fn audited<T>(
    action: &'static str,
    caller: &Caller,
    id: &str,
    result: Result<T, EngagementError>,
) -> Result<T, AppError> {
    let result = result.map_err(AppError::from);
    audit::record(
        action,
        caller,
        Subject::engagement(id),
        &audit::outcome_of(&result),
    );
    result
}

#[utoipa::path(put, path = "/v1/engagements/{id}", operation_id = "put_engagement", tag = "engagements", params(EngagementIdParam),
    request_body(content = EngagementBody, content_type = "application/json", description = "docs/engagements.md: targets inside the server's scope, tools, templates, windows, blackouts, dates, approval"),
    responses(
        (status = 201, description = "Created", body = EngagementDocument),
        (status = 200, description = "Replaced", body = EngagementDocument),
        (status = 400, description = "Body is not JSON, or names a key twice", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A field was refused (`field` is its JSON path, `hint`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "The tenant holds 256 engagements (creating; a replace is allowed)", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn upsert(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, AppError> {
    let live = state.live();
    // Inside the caller's own scope (its tenant's and token's `allowed_targets`), not just the
    // server's.
    let scope = caller.scope(&state);
    let targets = scope.scope(&live.targets);
    let r = service(&state)
        .put(&targets, &live.catalog, &caller.tenant, &id, &body)
        .await;
    let action = match &r {
        Ok(p) if p.created => "engagement.create",
        Ok(_) => "engagement.replace",
        Err(_) => "engagement.put",
    };
    let put = audited(action, &caller, &id, r)?;
    let status = if put.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(put.document)).into_response())
}

#[utoipa::path(get, path = "/v1/engagements/{id}", operation_id = "get_engagement", tag = "engagements", params(EngagementIdParam),
    responses((status = 200, description = "The engagement: its definition, `state` (`active`, `not_started`, `expired`), `created_at`, `updated_at`", body = EngagementDocument),
        (status = 404, description = "No such engagement for this tenant", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A bad id", body = ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn read(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Response, AppError> {
    let doc = service(&state).get(&caller.tenant, &id).await?;
    Ok(Json(doc).into_response())
}

#[utoipa::path(get, path = "/v1/engagements", operation_id = "list_engagements", tag = "engagements",
    responses((status = 200, description = "`engagements`: the tenant's engagements, oldest first", body = EngagementList)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, AppError> {
    let doc = service(&state).list(&caller.tenant).await?;
    Ok(Json(doc).into_response())
}

#[utoipa::path(delete, path = "/v1/engagements/{id}", operation_id = "delete_engagement", tag = "engagements", params(EngagementIdParam),
    responses((status = 204, description = "Deleted: new jobs, retries and schedule runs naming it are refused"),
        (status = 404, description = "No such engagement for this tenant", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A bad id", body = ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Response, AppError> {
    let r = service(&state).delete(&caller.tenant, &id).await;
    audited("engagement.delete", &caller, &id, r)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
