//! `/v1/webhooks`: a tenant's signed webhook subscriptions and their delivery logs. Delivery
//! itself lives in `scanq::webhook` (every process delivers).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use scanq::domain::TenantId;
use scanq::schedule::rfc3339;
use scanq::validate::ValidationError;
use scanq::webhook::{AllowedUrls, EventType, HookError, Subscription, new_secret};
use serde_json::{Value, json};

use crate::error::AppError;
use crate::error::ProblemBody;
use crate::extract::{Caller, JsonBody, PathParams};
use crate::params::WebhookIdParam;
use crate::state::AppState;

const FIELDS: &[&str] = &["url", "events", "schedule_id"];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/webhooks", get(list).post(create))
        .route("/v1/webhooks/{id}", get(read).delete(remove))
}

impl From<HookError> for AppError {
    fn from(err: HookError) -> Self {
        tracing::error!(error = %err, "Webhook store unavailable");
        Self::Unavailable("the webhook store is unreachable; retry shortly".into())
    }
}

fn bad(field: &str, message: impl Into<String>, hint: impl Into<String>) -> AppError {
    AppError::Validation(ValidationError::new(field, message, hint))
}

fn view(s: &Subscription) -> Value {
    json!({
        "id": s.id,
        "url": s.url,
        "events": s.events.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
        "schedule_id": s.schedule_id,
        "created_at": rfc3339(s.created_ms),
    })
}

fn store(state: &AppState) -> &scanq::webhook::WebhookStore {
    &state.inner.webhooks.store
}

/// Checks a subscription body: an allowed URL, known events, an existing schedule.
async fn parse(
    state: &AppState,
    tenant: &TenantId,
    body: &Value,
) -> Result<Subscription, AppError> {
    let obj = body.as_object().ok_or_else(|| {
        bad(
            "body",
            "must be a JSON object",
            "{\"url\":\"http://127.0.0.1:9000/hook\",\"events\":[\"job.succeeded\"]}",
        )
    })?;
    if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(bad(k, "is not a webhook field", FIELDS.join(", ")));
    }
    let allowed = AllowedUrls::parse(&state.inner.cfg.webhook_allowed_urls);
    let hint = format!(
        "a URL starting with one of: {} (SCANQ_WEBHOOK_ALLOWED_URLS)",
        allowed.as_list()
    );
    let url = obj
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("url", "is required (a string)", hint.clone()))?;
    if !allowed.allows(url) {
        return Err(bad(
            "url",
            format!("`{url}` is not an allowed webhook URL"),
            hint,
        ));
    }
    let accepted = EventType::ACCEPTED.trim_end();
    let list = obj
        .get("events")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| bad("events", "is required (a non-empty list)", accepted))?;
    let mut events = Vec::new();
    for e in list {
        let e = e
            .as_str()
            .ok_or_else(|| bad("events", "must hold strings", accepted))?
            .parse::<EventType>()
            .map_err(|e| bad("events", e.to_string(), accepted))?;
        if !events.contains(&e) {
            events.push(e);
        }
    }
    let schedule_id = match obj.get("schedule_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            if state.inner.scheduler.store.get(tenant, s).await?.is_none() {
                return Err(bad(
                    "schedule_id",
                    format!("no schedule `{s}`"),
                    "an id from GET /v1/schedules",
                ));
            }
            Some(s.clone())
        }
        Some(_) => {
            return Err(bad(
                "schedule_id",
                "must be a string",
                "an id from GET /v1/schedules",
            ));
        }
    };
    Ok(Subscription {
        id: uuid::Uuid::new_v4().simple().to_string()[..16].to_owned(),
        url: url.to_owned(),
        events,
        schedule_id,
        secret: new_secret(),
        created_ms: state.inner.scheduler.store.now_ms().await?,
    })
}

/// Creates a subscription; the answer is the only place its secret is ever shown.
pub async fn create_webhook(
    state: &AppState,
    tenant: &TenantId,
    body: &Value,
) -> Result<Value, AppError> {
    let sub = parse(state, tenant, body).await?;
    store(state).create(tenant, &sub).await?;
    let mut doc = view(&sub);
    doc["secret"] = json!(sub.secret);
    Ok(doc)
}

/// Subscribes `url` to `events` (optionally of one schedule); the answer shows the signing
/// secret, once.
#[utoipa::path(post, path = "/v1/webhooks", operation_id = "create_webhook", tag = "webhooks",
    request_body(content = Object, content_type = "application/json", description = "`url`, `events`, optional `schedule_id` (docs/webhooks.md)"),
    responses((status = 201, description = "Created; `secret` is shown only here", body = Object),
        (status = 400, description = "Body is not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A field was refused (`field`, `hint`)", body = ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, AppError> {
    let doc = create_webhook(&state, &caller.tenant, &body).await?;
    Ok((StatusCode::CREATED, Json(doc)).into_response())
}

#[utoipa::path(get, path = "/v1/webhooks", operation_id = "list_webhooks", tag = "webhooks",
    responses((status = 200, description = "`webhooks`: the tenant's subscriptions", body = Object)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, AppError> {
    let subs = store(&state).list(&caller.tenant).await?;
    let hooks: Vec<Value> = subs.iter().map(view).collect();
    Ok(Json(json!({ "webhooks": hooks })).into_response())
}

#[utoipa::path(get, path = "/v1/webhooks/{id}", operation_id = "get_webhook", tag = "webhooks", params(WebhookIdParam),
    responses((status = 200, description = "The subscription and its delivery log", body = Object),
        (status = 404, description = "No such subscription for this tenant", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A bad id", body = ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn read(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Response, AppError> {
    let sub = store(&state)
        .get(&caller.tenant, &id)
        .await?
        .ok_or(AppError::NotFound)?;
    let mut doc = view(&sub);
    doc["deliveries"] = json!(store(&state).log(&caller.tenant, &id).await?);
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
    if !store(&state).delete(&caller.tenant, &id).await? {
        return Err(AppError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
