//! `GET /`: the dashboard, three hand-written assets with no build step and no CDN
//! (`assets/dashboard.{html,js,css}`): overview with per-tool sparklines, jobs with filters and
//! bulk actions, job detail with a live progress bar (SSE), breakers, workers, tools. It holds
//! no data of its own: everything comes from the REST API with the token typed in, and actions
//! appear only when `GET /v1/whoami` says the token may use them.

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::Html;
use axum::routing::get;

use crate::state::AppState;

const PAGE: &str = include_str!("assets/dashboard.html");
const SCRIPT: &str = include_str!("assets/dashboard.js");
const STYLE: &str = include_str!("assets/dashboard.css");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route(
            "/dashboard.js",
            get(|| async { ([(CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT) }),
        )
        .route(
            "/dashboard.css",
            get(|| async { ([(CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }),
        )
}
