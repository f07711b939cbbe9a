//! `GET /v1/zones` (DESIGN §13): every zone — `default`, each zone of the map, and any zone
//! still holding queued jobs or live workers — with its live `workers` and `queued` jobs (over
//! every tool); admins also get each zone's `targets` (the map's CIDRs and suffixes).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::error::AppError;
use crate::extract::Caller;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/zones", get(list))
}

/// Every zone with its live workers and queued jobs (and, for admins, its map entries).
#[utoipa::path(get, path = "/v1/zones", operation_id = "list_zones", tag = "fleet",
    responses((status = 200, description = "`zones`: `name`, `workers`, `queued`, and for admins `targets`", body = Object)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, AppError> {
    let zones = state.zone_views(caller.admin).await?;
    Ok(Json(json!({ "zones": zones })))
}
