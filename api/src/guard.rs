//! Request limits that hold before any handler runs: URI length (414), total header size (431),
//! a request timeout (503 with `Retry-After`; a long-poll's `wait` or a submit's `Prefer: wait`
//! is added to it, and streams are timed only until their headers), and CORS, off unless
//! origins are configured.
//! The body limit (413 before parsing) is axum's `DefaultBodyLimit`, set in `router`.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::AppError;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
struct WaitParam {
    wait: Option<u64>,
}

/// The middleware (installed by `router`).
pub async fn limits(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let cfg = &state.inner.cfg;
    let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri_len > cfg.max_uri_bytes {
        return AppError::UriTooLong(cfg.max_uri_bytes).into_response();
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > cfg.max_header_bytes {
        return AppError::HeadersTooLarge(cfg.max_header_bytes).into_response();
    }
    // An MCP call may wait (`wait_sec`, `tasks/result`) up to the MCP limit before answering.
    let wait = if req.uri().path() == "/mcp" {
        crate::mcp::MAX_WAIT_SEC
    } else {
        axum::extract::Query::<WaitParam>::try_from_uri(req.uri())
            .ok()
            .and_then(|q| q.0.wait)
            .unwrap_or(0)
            .max(submit_wait(&req))
            .min(cfg.max_wait_sec)
    };
    let limit = Duration::from_secs(cfg.request_timeout_sec + wait);
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::warn!(
                timeout_sec = limit.as_secs(),
                "Request timed out before a response"
            );
            AppError::TimedOut(limit.as_secs()).into_response()
        }
    }
}

/// A submit's `Prefer: wait` (0 for any other request).
fn submit_wait(req: &Request) -> u64 {
    if req.method() == Method::POST && req.uri().path() == "/v1/jobs" {
        crate::prefer::wait(req.headers()).unwrap_or(0)
    } else {
        0
    }
}

/// The CORS layer for the configured origins, or None (CORS off: no CORS headers at all).
pub fn cors(origins: &[&str]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(list))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::IF_NONE_MATCH,
                crate::prefer::PREFER,
                HeaderName::from_static("last-event-id"),
                HeaderName::from_static("mcp-session-id"),
                HeaderName::from_static("mcp-protocol-version"),
            ])
            .expose_headers([
                header::LOCATION,
                header::ETAG,
                header::RETRY_AFTER,
                header::WWW_AUTHENTICATE,
                crate::prefer::PREFERENCE_APPLIED,
                HeaderName::from_static("mcp-session-id"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}
