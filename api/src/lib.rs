//! `scanq-api`: the HTTP front door. Handlers turn requests into domain types once, make one
//! call into `scanq`, and map the answer to a response.
//!
//! | module | owns |
//! |---|---|
//! | `routes::jobs` | submit, read/long-poll, cancel, retry, list |
//! | `routes::events` | SSE event streams |
//! | `routes::tools` | the catalog |
//! | `routes::health` | healthz, readyz, metrics |
//! | `mcp` | `/mcp`: MCP Streamable HTTP, tools, tasks, and the `mcp-stdio` bridge |
//! | `error` | `AppError` → problem+json |
//! | `extract` | body, path and caller extractors |
//! | `state` | `AppState` |

mod error;
mod extract;
pub mod mcp;
mod routes;
mod state;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use scanq::catalog::Catalog;
use scanq::config::Config;
use scanq::metrics::Metrics;
use scanq::queue::{Listener, Queue};
use scanq::validate::TargetPolicy;

pub use error::AppError;
pub use state::AppState;

/// Builds the application state (connects the pool and the notification listener).
pub async fn state(cfg: Config, catalog: Catalog) -> anyhow::Result<AppState> {
    let targets = TargetPolicy::parse(&cfg.allowed_targets, &cfg.denied_targets, cfg.max_hosts)
        .map_err(|e| anyhow::anyhow!("allowed_targets/denied_targets: {e}"))?;
    let pool = scanq::queue::pool(&cfg).map_err(anyhow::Error::msg)?;
    let queue = Queue::new(pool, &cfg);
    let client = redis::Client::open(cfg.redis_url.as_str())?;
    let listener = Listener::start(client, queue.keys().notify_channel());
    if let Err(err) = queue.prepare().await {
        tracing::warn!(error = %err, "Redis not reachable at start; will keep trying");
    }
    Ok(AppState {
        inner: Arc::new(state::Inner {
            cfg,
            catalog,
            targets,
            queue,
            listener,
            metrics: Metrics::new(),
        }),
    })
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(routes::jobs::router())
        .merge(routes::events::router())
        .merge(routes::tools::router())
        .merge(routes::health::router())
        .merge(mcp::router())
        .layer(DefaultBodyLimit::max(state.inner.cfg.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// HTTP metrics per matched route.
async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let resp = next.run(req).await;
    let m = &state.inner.metrics;
    m.http_requests
        .with_label_values(&[route.as_str(), method.as_str(), resp.status().as_str()])
        .inc();
    m.http_duration
        .with_label_values(&[route.as_str()])
        .observe(start.elapsed().as_secs_f64());
    resp
}

/// Serves the API on a bound listener until `shutdown` resolves.
pub async fn run(
    listener: tokio::net::TcpListener,
    cfg: Config,
    catalog: Catalog,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let state = state(cfg, catalog).await?;
    tracing::info!(addr = %addr, "API listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
