//! Liveness, readiness, health and metrics endpoints.
//!
//! `/healthz` says the process is alive; `/readyz` that Redis answers and the scripts are
//! loaded (it fails within a second when Redis is down); `/health` runs every check of
//! [`crate::checks`] and answers 200 (healthy or degraded) or 503 (unhealthy) with all of them.
//! `/metrics` first sets the fleet-wide gauges that need Redis reads (queue depth, oldest
//! queued age, live workers), then renders this process's registry.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::checks;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "meta",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain")))]
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// Redis answers and the scripts are loaded.
#[utoipa::path(get, path = "/readyz", tag = "meta",
    responses((status = 200, description = "`{\"status\":\"ready\"}`", body = Object),
        (status = 503, description = "Not ready (`Retry-After`)", body = Object)))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let check = tokio::time::timeout(Duration::from_secs(1), state.queue().ready()).await;
    match check {
        Ok(Ok(true)) => (StatusCode::OK, Json(json!({"status": "ready"}))).into_response(),
        Ok(Ok(false)) => {
            // Scripts missing (Redis restarted without persistence): load them again.
            if state.queue().prepare().await.is_ok() {
                return (StatusCode::OK, Json(json!({"status": "ready"}))).into_response();
            }
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "1")],
                Json(json!({"status": "scripts not loaded"})),
            )
                .into_response()
        }
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "2")],
            Json(json!({"status": "redis unreachable"})),
        )
            .into_response(),
    }
}

/// Every check with its priority. With an admin token (or without tokens configured) the
/// `workers` check also lists each worker's capabilities.
#[utoipa::path(get, path = "/health", tag = "meta",
    responses((status = 200, description = "Healthy or degraded", body = Object),
        (status = 503, description = "A critical check failed", body = Object)))]
pub(crate) async fn health(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let admin = crate::authorize::admin_bearer(&state, &headers);
    let report = checks::run(&state, admin).await;
    let status = match report.status {
        checks::Status::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
        checks::Status::Healthy | checks::Status::Degraded => StatusCode::OK,
    };
    (status, Json(report)).into_response()
}

/// Sets the gauges read from Redis. When Redis does not answer in time the per-tool gauges are
/// dropped (a scrape then shows no stale depth) and no worker is counted alive.
async fn fleet_gauges(state: &AppState) {
    let m = &state.inner.metrics;
    let stats = &state.inner.stats;
    let read = async {
        let places = state.places().await?;
        let (queues, alive) = tokio::try_join!(stats.queues(&places), stats.workers_alive())?;
        Ok::<_, scanq::queue::QueueError>((places, queues, alive))
    };
    match tokio::time::timeout(Duration::from_secs(1), read).await {
        Ok(Ok((places, queues, alive))) => {
            for q in queues {
                m.queue_depth
                    .with_label_values(&[q.tool.as_str(), q.zone.as_str()])
                    .set(q.depth);
                m.queue_oldest_age
                    .with_label_values(&[q.tool.as_str(), q.zone.as_str()])
                    .set(q.oldest_age_ms.map_or(0, |ms| (ms / 1000) as i64));
            }
            m.workers_alive.set(alive as i64);
            // Breaker state of every queue (tool, zone), fleet-wide (transitions also move it
            // as they happen).
            for (tool, zone) in &places {
                if let Ok(snap) = state.queue().breaker_snapshot(tool, zone).await {
                    m.breaker_state
                        .with_label_values(&[tool.as_str(), zone.as_str()])
                        .set(snap.state.gauge_value());
                }
            }
        }
        failed => {
            if let Ok(Err(err)) = failed {
                tracing::warn!(error = %err, "Metrics: fleet gauges not read");
            }
            m.queue_depth.reset();
            m.queue_oldest_age.reset();
            m.workers_alive.set(0);
        }
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    fleet_gauges(&state).await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.inner.metrics.render(),
    )
        .into_response()
}
