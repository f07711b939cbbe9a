//! The worker's small HTTP side: `/healthz` (alive) and `/metrics` (Prometheus text).

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::Worker;

pub async fn serve(listener: tokio::net::TcpListener, worker: Worker) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .with_state(worker);
    if let Err(err) = axum::serve(listener, app).await {
        tracing::error!(error = %err, "Metrics server stopped");
    }
}

async fn metrics(State(worker): State<Worker>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        worker.metrics().render(),
    )
}
