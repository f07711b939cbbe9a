//! `/v1/webhooks`: a tenant's signed webhook subscriptions and their delivery logs. The rules
//! and documents live in `scanq::webhook` (`WebhookService`); delivery too (every process
//! delivers).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use scanq::webhook::{
    CreatedWebhook, HookError, WebhookBody, WebhookDetail, WebhookDoc, WebhookError, WebhookList,
    WebhookService,
};

use crate::audit::{self, Subject};
use crate::error::{AppError, ProblemBody};
use crate::extract::{Caller, JsonBody, PathParams};
use crate::params::WebhookIdParam;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/webhooks", get(list).post(create))
        .route("/v1/webhooks/{id}", get(read).put(replace).delete(remove))
}

impl From<HookError> for AppError {
    fn from(err: HookError) -> Self {
        tracing::error!(error = %err, "Webhook store unavailable");
        Self::Unavailable("the webhook store is unreachable; retry shortly".into())
    }
}

impl From<WebhookError> for AppError {
    fn from(err: WebhookError) -> Self {
        match err {
            WebhookError::Invalid(v) => Self::Validation(v),
            WebhookError::AtCap { count, cap } => Self::RateLimited {
                retry_after: 60,
                detail: format!(
                    "your tenant has {count} webhooks; its cap is {cap} (SCANQ_TENANT_MAX_WEBHOOKS): delete one first"
                ),
            },
            WebhookError::NotFound => Self::NotFound,
            WebhookError::Store(e) => e.into(),
            WebhookError::Schedules(e) => {
                tracing::error!(error = %e, "Schedule store unavailable");
                Self::Unavailable("the schedule store is unreachable; retry shortly".into())
            }
        }
    }
}

fn service(state: &AppState) -> WebhookService {
    WebhookService::new(
        state.inner.webhooks.store.clone(),
        state.inner.scheduler.store.clone(),
        &state.inner.cfg,
    )
}

/// Writes the audit line of a change and passes its result on.
fn audited<T>(
    action: &'static str,
    caller: &Caller,
    id: &str,
    result: Result<T, WebhookError>,
) -> Result<T, AppError> {
    let outcome = match &result {
        Ok(_) => "ok",
        Err(WebhookError::Invalid(_)) => "invalid",
        Err(WebhookError::AtCap { .. }) => "at_cap",
        Err(WebhookError::NotFound) => "not_found",
        Err(_) => "unavailable",
    };
    audit::record(action, caller, Subject::webhook(id), outcome);
    result.map_err(AppError::from)
}

/// Subscribes `url` to `events` (optionally of one schedule); the answer shows the signing
/// secret, once.
#[utoipa::path(post, path = "/v1/webhooks", operation_id = "create_webhook", tag = "webhooks",
    request_body(content = WebhookBody, content_type = "application/json"),
    responses((status = 201, description = "Created; `secret` is shown only here", body = CreatedWebhook),
        (status = 400, description = "Body is not JSON, or names a key twice", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A field was refused (`field` is its path, `hint`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "The tenant has SCANQ_TENANT_MAX_WEBHOOKS subscriptions", body = ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, AppError> {
    let result = service(&state).create(&caller.tenant, &body).await;
    let id = result
        .as_ref()
        .map(|c| c.webhook.id.clone())
        .unwrap_or_default();
    let doc = audited("webhook.create", &caller, &id, result)?;
    Ok((StatusCode::CREATED, Json(doc)).into_response())
}

/// Replaces a subscription's `url`, `events`, `schedule_id` and `description`; its id and
/// secret stay.
#[utoipa::path(put, path = "/v1/webhooks/{id}", operation_id = "replace_webhook", tag = "webhooks", params(WebhookIdParam),
    request_body(content = WebhookBody, content_type = "application/json"),
    responses((status = 200, description = "Replaced", body = WebhookDoc),
        (status = 400, description = "Body is not JSON, or names a key twice", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such subscription for this tenant", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A field was refused (`field` is its path, `hint`)", body = ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, AppError> {
    let result = service(&state).replace(&caller.tenant, &id, &body).await;
    let doc = audited("webhook.replace", &caller, &id, result)?;
    Ok(Json(doc).into_response())
}

#[utoipa::path(get, path = "/v1/webhooks", operation_id = "list_webhooks", tag = "webhooks",
    responses((status = 200, description = "The tenant's subscriptions", body = WebhookList)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, AppError> {
    let doc = service(&state).list(&caller.tenant).await?;
    Ok(Json(doc).into_response())
}

#[utoipa::path(get, path = "/v1/webhooks/{id}", operation_id = "get_webhook", tag = "webhooks", params(WebhookIdParam),
    responses((status = 200, description = "The subscription and its delivery log", body = WebhookDetail),
        (status = 404, description = "No such subscription for this tenant", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A bad id", body = ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn read(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Response, AppError> {
    let doc = service(&state).get(&caller.tenant, &id).await?;
    Ok(Json(doc).into_response())
}

#[utoipa::path(delete, path = "/v1/webhooks/{id}", operation_id = "delete_webhook", tag = "webhooks", params(WebhookIdParam),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such subscription for this tenant", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A bad id", body = ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Response, AppError> {
    let result = service(&state).delete(&caller.tenant, &id).await;
    audited("webhook.delete", &caller, &id, result)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
