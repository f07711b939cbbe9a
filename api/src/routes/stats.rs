//! `GET /v1/stats`: per tool, jobs by state, queue depth, the age of the oldest queued job, and
//! p50/p95/p99 of queue wait and run time over the newest samples (see `scanq::stats`).
//!
//! An admin sees the fleet (`"scope": "fleet"`); any other token sees its own tenant's counts,
//! depth and oldest queued age (`"scope": "tenant"`), tallied from its job listing (at most
//! [`TALLY_CAP`] newest jobs; `truncated` says when there were more), next to the fleet's
//! percentiles. An admin who names `?tenant=` sees that tenant's view.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use crate::conditional::{self, IfNoneMatch};
use crate::error::AppError;
use crate::extract::{Caller, Params};
use crate::reads::Answer;
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

/// Per tool: jobs by state, queue depth, oldest queued age, wait/run percentiles. Carries an
/// `ETag` (from the counts, `scanq::stats` `version.rs`); `If-None-Match` with it gets 304.
/// Shared by the requests that arrive together and kept by tag (`crate::reads`).
#[utoipa::path(get, path = "/v1/stats", operation_id = "stats", tag = "fleet",
    params(StatsParams,
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` of an earlier answer: 304 while the numbers are unchanged")),
    responses(
        (status = 200, description = "`scope` (`fleet` or `tenant`) and `tools`: one entry per catalog tool", body = Object,
            headers(("ETag" = String, description = "The numbers' version"))),
        (status = 304, description = "Not modified: the `If-None-Match` tag is current (no body)")))]
pub(crate) async fn stats(
    State(state): State<AppState>,
    caller: Caller,
    Params(p): Params<StatsParams>,
    inm: IfNoneMatch,
) -> Result<Response, AppError> {
    let named = p.tenant.is_some_and(|t| !t.is_empty());
    let fleet_view = caller.admin && !named;
    let tenant = (!fleet_view).then(|| caller.tenant.clone());
    let st = state.clone();
    let answer = state
        .inner
        .reads
        .stats(tenant.clone(), move |kept| async move {
            let places = st.places().await?;
            let tag = st.inner.stats.version(&places, tenant.as_ref()).await?;
            if let Some(k) = kept.filter(|k| k.etag == tag) {
                return Ok(Some(k));
            }
            let body = numbers(&st, &caller, &places, fleet_view).await?;
            Answer::json(tag, &body).map(Some)
        })
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(conditional::answer(&inm, &answer))
}

/// The answer of [`stats`]: the fleet's numbers, or the caller's tenant's.
async fn numbers(
    state: &AppState,
    caller: &Caller,
    places: &[(scanq::domain::ToolName, scanq::domain::Zone)],
    fleet_view: bool,
) -> Result<Value, AppError> {
    let fleet = state.inner.stats.tools(places).await?;
    if fleet_view {
        return Ok(json!({ "scope": "fleet", "tools": fleet }));
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
    Ok(json!({
        "scope": "tenant",
        "tenant": caller.tenant,
        "tools": tools,
        "truncated": tally.truncated,
    }))
}
