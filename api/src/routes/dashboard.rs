//! `GET /`: the dashboard, three hand-written assets with no build step and no CDN
//! (`assets/dashboard.{html,js,css}`): overview with per-tool sparklines, jobs with filters and
//! bulk actions, job detail with a live progress bar (SSE; a big scan's parent adds its hosts
//! bar, chunks by state and a paged chunk table), breakers, workers, tools. Zones (DESIGN §13):
//! the overview has a row and a card per tool and zone, jobs, chunks and workers show their
//! zone, a big scan spanning zones lists its zones, and `waiting_for: zone:<name>` reads as
//! "no live worker of zone <name> serves its tool". It holds
//! no data of its own: everything comes from the REST API with the token typed in, and actions
//! appear only when `GET /v1/whoami` says the token may use them.
//! Every asset is sent with [`PAGE_POLICY`]: scripts, styles and requests only from the API's
//! own origin (the page has no inline script or style, so a banner that slipped past escaping
//! could not run), and no framing by another page (clickjacking of the action buttons).

use axum::Router;
use axum::http::HeaderName;
use axum::http::header::{
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::routing::get;

use crate::state::AppState;

const PAGE: &str = include_str!("assets/dashboard.html");
const SCRIPT: &str = include_str!("assets/dashboard.js");
const STYLE: &str = include_str!("assets/dashboard.css");

/// The dashboard's Content-Security-Policy.
pub const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// The headers of a dashboard asset of type `content_type`.
fn asset(content_type: &'static str) -> [(HeaderName, &'static str); 4] {
    [
        (CONTENT_TYPE, content_type),
        (CONTENT_SECURITY_POLICY, PAGE_POLICY),
        (X_FRAME_OPTIONS, "DENY"),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ]
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/",
            get(|| async { (asset("text/html; charset=utf-8"), PAGE) }),
        )
        .route(
            "/dashboard.js",
            get(|| async { (asset("text/javascript; charset=utf-8"), SCRIPT) }),
        )
        .route(
            "/dashboard.css",
            get(|| async { (asset("text/css; charset=utf-8"), STYLE) }),
        )
}
