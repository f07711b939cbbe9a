//! `GET /`: a small self-contained dashboard (queues, breakers, workers, recent jobs) that
//! polls the JSON API every two seconds. It holds no data of its own and needs no build step.
//! `GET /openapi.json` is generated in `crate::openapi`.

use axum::Router;
use axum::response::Html;
use axum::routing::get;

use crate::state::AppState;

const PAGE: &str = include_str!("assets/dashboard.html");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/openapi.json", get(crate::openapi::openapi_json))
}
