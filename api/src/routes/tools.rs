//! `GET /v1/tools`: the catalog — description, templates, flag policy, limits and enabled flag.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::error::AppError;
#[allow(unused_imports)]
use crate::error::ProblemBody;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/tools", get(list))
}

/// The catalog: each tool's description, templates, flag policy, limits and enabled flag,
/// with the server's target scope.
#[utoipa::path(get, path = "/v1/tools", operation_id = "list_tools", tag = "tools",
    responses((status = 200, description = "The catalog", body = Object)))]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let live = state.live();
    let tools: Vec<Value> = live
        .catalog
        .tools()
        .map(|(name, spec)| {
            json!({
                "name": name,
                "description": spec.description,
                "executor": spec.executor,
                "enabled": spec.enabled,
                "templates": spec.templates,
                "args": spec.args,
                "default_timeout_sec": spec.default_timeout_sec,
                "max_timeout_sec": spec.max_timeout_sec,
                "max_hosts": spec.max_hosts.unwrap_or(live.cfg.max_hosts),
                "output_caps": {"stdout": spec.stdout_cap, "stderr": spec.stderr_cap},
            })
        })
        .collect();
    Ok(Json(json!({
        "tools": tools,
        "targets": live.targets.describe(),
        "allow_intrusive": live.cfg.allow_intrusive,
    })))
}
