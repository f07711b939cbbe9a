//! Circuit breakers and cluster-wide tool switches (DESIGN §6): `GET /v1/breakers`,
//! `GET /v1/breakers/{tool}`, `POST /v1/breakers/{tool}/{open|close|reset}`,
//! `POST /v1/tools/{tool}/{enable|disable}`.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use scanq::breaker::ForceAction;
use scanq::domain::ToolName;
use scanq::validate::ValidationError;
use serde_json::{Value, json};

use crate::audit::{self, Subject};
use crate::error::{AppError, ProblemBody};
use crate::extract::{Caller, PathParams};
use crate::params::ToolParam;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/breakers", get(list))
        .route("/v1/breakers/{tool}", get(one))
        .route("/v1/breakers/{tool}/{action}", post(force))
        .route("/v1/tools/{tool}/{action}", post(switch))
}

fn tool_of(state: &AppState, tool: &str) -> Result<ToolName, AppError> {
    let name = ToolName::parse(tool).map_err(|_| AppError::UnknownTool(tool.to_owned()))?;
    state
        .live()
        .catalog
        .get(&name)
        .ok_or_else(|| AppError::UnknownTool(tool.to_owned()))?;
    Ok(name)
}

/// Every tool's breaker.
#[utoipa::path(get, path = "/v1/breakers", operation_id = "list_breakers", tag = "breakers",
    responses((status = 200, description = "`breakers`: tool → snapshot", body = Object)))]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let mut out = serde_json::Map::new();
    for name in state.live().catalog.names() {
        let tool = tool_of(&state, &name)?;
        let snap = state
            .queue()
            .breaker_snapshot(&tool, &Default::default())
            .await?;
        out.insert(
            name,
            serde_json::to_value(snap).map_err(anyhow::Error::from)?,
        );
    }
    Ok(Json(json!({ "breakers": out })))
}

/// One tool's breaker: state, counters, recent transitions.
#[utoipa::path(get, path = "/v1/breakers/{tool}", operation_id = "get_breaker", tag = "breakers", params(ToolParam),
    responses((status = 200, description = "The breaker snapshot", body = Object),
        (status = 404, description = "Unknown tool", body = ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn one(
    State(state): State<AppState>,
    PathParams(tool): PathParams<String>,
) -> Result<Json<Value>, AppError> {
    let tool = tool_of(&state, &tool)?;
    let snap = state
        .queue()
        .breaker_snapshot(&tool, &Default::default())
        .await?;
    Ok(Json(
        serde_json::to_value(snap).map_err(anyhow::Error::from)?,
    ))
}

/// Force a breaker open or closed, or reset it (admin).
#[utoipa::path(post, path = "/v1/breakers/{tool}/{action}", operation_id = "force_breaker", tag = "breakers",
    params(ToolParam, ("action" = String, Path, description = "open, close or reset", pattern = "^(open|close|reset)$")),
    responses((status = 200, description = "`transition` (or null) and the new `breaker`", body = Object),
        (status = 404, description = "Unknown tool", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Unknown action", body = ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn force(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((tool, action)): PathParams<(String, String)>,
) -> Result<Json<Value>, AppError> {
    let name = tool_of(&state, &tool)?;
    let action: ForceAction = match action.as_str() {
        "open" | "close" | "reset" => action.parse().map_err(|_| AppError::NotFound)?,
        _ => {
            return Err(AppError::Validation(ValidationError::new(
                "action",
                format!("`{action}` is not a breaker action"),
                "one of: open, close, reset",
            )));
        }
    };
    let live = state.live();
    let settings = &live.catalog.get(&name).expect("checked").breaker;
    let transition = state
        .queue()
        .breaker_force(&name, &Default::default(), settings, action)
        .await?;
    let subject = Subject {
        tool: name.as_str(),
        ..Subject::default()
    };
    let outcome = if transition.is_some() {
        action.as_str()
    } else {
        "unchanged"
    };
    audit::record("breaker", &caller, subject, outcome);
    if let Some(t) = &transition {
        let m = &state.inner.metrics;
        m.breaker_transitions
            .with_label_values(&[name.as_str(), t.from.as_str(), t.to.as_str()])
            .inc();
        m.breaker_state
            .with_label_values(&[name.as_str()])
            .set(t.to.gauge_value());
    }
    state.queue().gate().forget(name.as_str());
    let snap = state
        .queue()
        .breaker_snapshot(&name, &Default::default())
        .await?;
    Ok(Json(json!({ "transition": transition, "breaker": snap })))
}

/// Enable or disable a tool fleet-wide (admin).
#[utoipa::path(post, path = "/v1/tools/{tool}/{action}", operation_id = "switch_tool", tag = "tools",
    params(ToolParam, ("action" = String, Path, description = "enable or disable", pattern = "^(enable|disable)$")),
    responses((status = 200, description = "`tool` and `enabled`", body = Object),
        (status = 404, description = "Unknown tool", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Unknown action", body = ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn switch(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((tool, action)): PathParams<(String, String)>,
) -> Result<Json<Value>, AppError> {
    let name = tool_of(&state, &tool)?;
    let enabled = match action.as_str() {
        "enable" => true,
        "disable" => false,
        _ => {
            return Err(AppError::Validation(ValidationError::new(
                "action",
                format!("`{action}` is not a tool action"),
                "one of: enable, disable",
            )));
        }
    };
    state.queue().set_tool_enabled(&name, enabled).await?;
    state.queue().gate().forget(name.as_str());
    let subject = Subject {
        tool: name.as_str(),
        ..Subject::default()
    };
    audit::record("tool", &caller, subject, &action);
    Ok(Json(json!({ "tool": name, "enabled": enabled })))
}
