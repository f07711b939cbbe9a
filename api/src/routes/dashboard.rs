//! `GET /`: a small self-contained dashboard (queues, breakers, workers, recent jobs) that
//! polls the JSON API every two seconds. It holds no data of its own and needs no build step.
//! `GET /openapi.json`: the OpenAPI 3.1 document of the REST API (kept next to the routes; a
//! test checks that every route it names answers).

use axum::Router;
use axum::response::Html;
use axum::routing::get;

use crate::state::AppState;

const PAGE: &str = include_str!("assets/dashboard.html");
const OPENAPI: &str = include_str!("assets/openapi.json");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route(
            "/openapi.json",
            get(|| async {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    OPENAPI,
                )
            }),
        )
}
