//! Circuit breakers and cluster-wide tool switches (DESIGN §6): `GET /v1/breakers`,
//! `GET /v1/breakers/{tool}`, `POST /v1/breakers/{tool}/{open|close|reset}`,
//! `POST /v1/tools/{tool}/{enable|disable}`.
//!
//! A breaker belongs to a queue, a tool in a zone (DESIGN §13): the list has one entry per
//! queue, keyed by its name (`nmap`, `nmap@dmz`), and the one-breaker routes take `?zone=`
//! (default `default`). The tool switch holds in every zone.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use scanq::breaker::ForceAction;
use scanq::domain::{ToolName, Zone};
use scanq::keys::queue_tag;
use scanq::validate::ValidationError;
use serde_json::{Value, json};

use crate::audit::{self, Subject};
use crate::error::{AppError, ProblemBody};
use crate::extract::{Caller, Params, PathParams};
use crate::params::{ToolParam, ZoneQuery};
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

/// A breaker snapshot with the `tool` and `zone` it belongs to.
fn placed(snap: scanq::breaker::Snapshot, tool: &ToolName, zone: &Zone) -> Result<Value, AppError> {
    let mut v = serde_json::to_value(snap).map_err(anyhow::Error::from)?;
    v["tool"] = json!(tool);
    v["zone"] = json!(zone);
    Ok(v)
}

/// Every queue's breaker: each catalog tool in each zone.
#[utoipa::path(get, path = "/v1/breakers", operation_id = "list_breakers", tag = "breakers",
    responses((status = 200, description = "`breakers`: queue (`nmap`, `nmap@dmz`) → snapshot with `tool` and `zone`", body = Object)))]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let mut out = serde_json::Map::new();
    for (tool, zone) in state.places().await? {
        let snap = state.queue().breaker_snapshot(&tool, &zone).await?;
        out.insert(queue_tag(&tool, &zone), placed(snap, &tool, &zone)?);
    }
    Ok(Json(json!({ "breakers": out })))
}

/// One tool's breaker in one zone: state, counters, recent transitions.
#[utoipa::path(get, path = "/v1/breakers/{tool}", operation_id = "get_breaker", tag = "breakers", params(ToolParam, ZoneQuery),
    responses((status = 200, description = "The breaker snapshot with `tool` and `zone`", body = Object),
        (status = 404, description = "Unknown tool", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Unknown zone (`field`: `zone`)", body = ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn one(
    State(state): State<AppState>,
    PathParams(tool): PathParams<String>,
    Params(q): Params<ZoneQuery>,
) -> Result<Json<Value>, AppError> {
    let tool = tool_of(&state, &tool)?;
    let zone = q.resolve(&state, &tool).await?;
    let snap = state.queue().breaker_snapshot(&tool, &zone).await?;
    Ok(Json(placed(snap, &tool, &zone)?))
}

/// Force a tool's breaker in one zone open or closed, or reset it (admin).
#[utoipa::path(post, path = "/v1/breakers/{tool}/{action}", operation_id = "force_breaker", tag = "breakers",
    params(ToolParam, ("action" = String, Path, description = "open, close or reset", pattern = "^(open|close|reset)$"), ZoneQuery),
    responses((status = 200, description = "`transition` (or null) and the new `breaker`", body = Object),
        (status = 404, description = "Unknown tool", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Unknown action or zone", body = ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn force(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((tool, action)): PathParams<(String, String)>,
    Params(q): Params<ZoneQuery>,
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
    let zone = q.resolve(&state, &name).await?;
    let live = state.live();
    let settings = &live.catalog.get(&name).expect("checked").breaker;
    let transition = state
        .queue()
        .breaker_force(&name, &zone, settings, action)
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
            .with_label_values(&[name.as_str(), zone.as_str(), t.from.as_str(), t.to.as_str()])
            .inc();
        m.breaker_state
            .with_label_values(&[name.as_str(), zone.as_str()])
            .set(t.to.gauge_value());
    }
    state.queue().gate().forget(name.as_str());
    let snap = state.queue().breaker_snapshot(&name, &zone).await?;
    Ok(Json(
        json!({ "transition": transition, "breaker": placed(snap, &name, &zone)? }),
    ))
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
