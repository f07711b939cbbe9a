//! `GET /v1/workers`: the live workers (heartbeat not lapsed) as they describe themselves. The
//! jobs each one runs are listed by name for admins only, since they name other tenants' jobs;
//! everyone sees how many. Each worker's `capabilities` (`raw_sockets`, `run_cgroups`,
//! `unconfined`) say which jobs it may claim, and its `zone` (DESIGN §13) which queues it claims from.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::error::AppError;
use crate::extract::Caller;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/workers", get(list))
}

/// Live workers, their heartbeats and running jobs (named for admins only).
#[utoipa::path(get, path = "/v1/workers", operation_id = "list_workers", tag = "fleet",
    responses((status = 200, description = "`count` and `workers`", body = Object)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, AppError> {
    let workers: Vec<Value> = state
        .inner
        .stats
        .workers()
        .await?
        .into_iter()
        .map(|w| {
            json!({
                "id": w.id,
                "version": w.version,
                "pid": w.pid,
                "started_ms": w.started_ms,
                "heartbeat_expires_ms": w.heartbeat_expires_ms,
                "concurrency": w.concurrency,
                "zone": w.zone,
                "confinement": w.confinement,
                "running": w.running.len(),
                "running_jobs": caller.admin.then_some(&w.running),
                "tools": w.tools,
                "capabilities": w.capabilities,
            })
        })
        .collect();
    Ok(Json(json!({ "count": workers.len(), "workers": workers })))
}
