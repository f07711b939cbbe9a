//! `GET /v1/stats`: per tool, jobs by state, queue depth, the age of the oldest queued job, and
//! p50/p95/p99 of queue wait and run time over the newest samples (see `scanq::stats`).
//!
//! An admin sees the fleet (`"scope": "fleet"`); any other token sees its own tenant's counts,
//! depth and oldest queued age (`"scope": "tenant"`), tallied from its job listing (at most
//! [`TALLY_CAP`] newest jobs; `truncated` says when there were more), next to the fleet's
//! percentiles. An admin who names `?tenant=` sees that tenant's view.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use crate::error::AppError;
use crate::extract::{Caller, Params};
use crate::state::AppState;

/// The most jobs of one tenant counted for its view.
pub const TALLY_CAP: usize = 10_000;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/stats", get(stats))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StatsParams {
    /// Admins: this tenant's view instead of the fleet's. (Applied by the auth layer.)
    #[param(pattern = "^[A-Za-z0-9_-]{0,64}$")]
    tenant: Option<String>,
}

/// Per tool: jobs by state, queue depth, oldest queued age, wait/run percentiles.
#[utoipa::path(get, path = "/v1/stats", operation_id = "stats", tag = "fleet", params(StatsParams),
    responses((status = 200, description = "`scope` (`fleet` or `tenant`) and `tools`: one entry per catalog tool", body = Object)))]
pub(crate) async fn stats(
    State(state): State<AppState>,
    caller: Caller,
    Params(p): Params<StatsParams>,
) -> Result<Json<Value>, AppError> {
    let fleet = state.inner.stats.tools(&state.places().await?).await?;
    let named = p.tenant.is_some_and(|t| !t.is_empty());
    if caller.admin && !named {
        return Ok(Json(json!({ "scope": "fleet", "tools": fleet })));
    }
    let tally = state
        .queue()
        .tenant_tally(&caller.tenant, TALLY_CAP)
        .await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let tools: Vec<_> = fleet
        .into_iter()
        .map(|t| t.for_tenant(&tally, now))
        .collect();
    Ok(Json(json!({
        "scope": "tenant",
        "tenant": caller.tenant,
        "tools": tools,
        "truncated": tally.truncated,
    })))
}
