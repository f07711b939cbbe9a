//! `GET /v1/stats`: per tool, jobs by state, queue depth, the age of the oldest queued job, and
//! p50/p95/p99 of queue wait and run time over the newest samples (see `scanq::stats`).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::error::AppError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/stats", get(stats))
}

/// Per tool: jobs by state, queue depth, oldest queued age, wait/run percentiles.
#[utoipa::path(get, path = "/v1/stats", operation_id = "stats", tag = "fleet",
    responses((status = 200, description = "`tools`: one entry per catalog tool", body = Object)))]
pub(crate) async fn stats(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let tools = state.inner.stats.tools(&state.tool_names()).await?;
    Ok(Json(json!({ "tools": tools })))
}
