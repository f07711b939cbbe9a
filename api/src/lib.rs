//! `scanq-api`: the HTTP front door. Handlers turn requests into domain types once, make one
//! call into `scanq`, and map the answer to a response.
//!
//! | module | owns |
//! |---|---|
//! | `routes::jobs` | submit, read/long-poll, cancel, retry, list |
//! | `routes::approvals` | approve or reject a job awaiting approval (DESIGN §14) |
//! | `routes::events` | SSE event streams |
//! | `routes::schedules` | schedules: upsert, list, read, delete, pause, resume, trigger, runs |
//! | `routes::webhooks` | webhook subscriptions and their delivery logs |
//! | `routes::engagements` | engagements (DESIGN §14): put, list, read, delete |
//! | `routes::exports` | result.xml, result.csv and the diff of two scans |
//! | `compare` | the diff of two finished scans, for REST and MCP |
//! | `routes::tools` | the catalog |
//! | `routes::health` | healthz, readyz, metrics |
//! | `mcp` | `/mcp`: MCP Streamable HTTP, tools, tasks, and the `mcp-stdio` bridge |
//! | `routes::breakers` | breakers and tool switches (admin) |
//! | `routes::dashboard` | the dashboard page at `/` |
//! | `actions` | submit, cancel and retry for REST and MCP: the queue's one admission path, one audit line, one metric |
//! | `routes::health` | healthz, readyz, health, metrics |
//! | `routes::stats` | fleet statistics |
//! | `routes::workers` | live workers |
//! | `routes::zones` | the zones: live workers, queued jobs, map entries (admin) |
//! | `routes::whoami` | the caller (token, tenant, scopes) |
//! | `checks` | the checks behind `/health` |
//! | `system` | CPU, memory and disk samples of the API's machine |
//! | [`auth`] | the tokens file: tokens, scopes, tenants' caps, reload |
//! | `authorize` | the middleware: bearer token → `Caller`, scope per route, request rate |
//! | `guard` | URI/header size limits, request timeout, CORS |
//! | `origin` | the browser guard on every route: `Origin` and `Host` (CSRF, DNS rebinding) |
//! | `audit` | the audit log line |
//! | `engagements` | what REST and MCP do with engagements: put, get, list, delete, the document (DESIGN §14) |
//! | `reads` | job and list reads shared by the requests that arrive together, and the answers kept by tag (DESIGN §15) |
//! | `conditional` | `If-None-Match` → 304, the `ETag` on job, list and stats answers (DESIGN §15) |
//! | `error` | `AppError` → `Problem`: problem+json for REST, `isError` results for MCP |
//! | `extract` | body, query, path and caller extractors (every rejection is problem+json) |
//! | `openapi` | `/openapi.json`, generated from the handlers' types and annotations |
//! | `params` | the path parameters' documentation types |
//! | `prefer` | the `Prefer: wait=N` request header (RFC 7240) of a submit that waits |
//! | `state` | `AppState` |

mod actions;
mod audit;
pub mod auth;
mod authorize;
mod checks;
mod compare;
mod conditional;
mod engagements;
mod error;
mod extract;
mod guard;
pub mod mcp;
mod openapi;
mod origin;
mod params;
mod prefer;
mod reads;
mod routes;
mod state;
mod system;

use std::future::Future;
use std::net::SocketAddr;
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
use scanq::reload::{Live, LiveCell};
use scanq::stats::Stats;

pub use error::AppError;
pub use state::AppState;
use system::SystemProbe;

/// Builds the application state (connects the pool and the notification listener).
pub async fn state(cfg: Config, catalog: Catalog) -> anyhow::Result<AppState> {
    let auth = auth::Auth::load(cfg.api_tokens_file.as_deref()).map_err(anyhow::Error::msg)?;
    let pool = scanq::queue::pool(&cfg).map_err(anyhow::Error::msg)?;
    let queue = Queue::with_catalog(pool.clone(), &cfg, &catalog);
    let live = Live::new(cfg.clone(), catalog).map_err(anyhow::Error::msg)?;
    let stats = Stats::new(pool.clone(), queue.keys().clone());
    let listener = Listener::start(pool, queue.keys().notify_channel());
    match queue.prepare().await {
        Ok(()) => queue
            .check_layout_at_start(&live.catalog)
            .await
            .map_err(anyhow::Error::msg)?,
        Err(err) => {
            let error = cfg.redact_secrets(&err.to_string());
            tracing::warn!(%error, "Redis not reachable at start; will keep trying");
        }
    }
    let job_events = scanq::webhook::JobEvents::new(queue.clone());
    let scheduler = scanq::schedule::Scheduler::new(queue.clone(), &cfg)
        .with_events(Arc::new(job_events.clone()));
    let webhooks = scanq::webhook::Dispatcher::new(
        queue.clone(),
        scanq::webhook::WebhookStore::new(queue.pool().clone(), queue.keys().prefix()),
        &cfg,
    );
    Ok(AppState {
        inner: Arc::new(state::Inner {
            scheduler,
            webhooks,
            job_events,
            cfg,
            live: LiveCell::new(live),
            queue,
            listener,
            metrics: Metrics::new(),
            stats,
            system: SystemProbe::new(),
            auth,
            reads: reads::Reads::default(),
        }),
    })
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(routes::jobs::router())
        .merge(routes::approvals::router())
        .merge(routes::events::router())
        .merge(routes::exports::router())
        .merge(routes::schedules::router())
        .merge(routes::webhooks::router())
        .merge(routes::engagements::router())
        .merge(routes::tools::router())
        .merge(routes::breakers::router())
        .merge(routes::dashboard::router())
        .merge(routes::health::router())
        .merge(mcp::router())
        .merge(routes::stats::router())
        .merge(routes::workers::router())
        .merge(routes::zones::router())
        .merge(routes::whoami::router())
        .route("/openapi.json", axum::routing::get(openapi::openapi_json))
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(state.inner.cfg.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            authorize::authorize,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), origin::guard))
        .layer(middleware::from_fn_with_state(state.clone(), guard::limits))
        .layer(tower::util::option_layer(guard::cors(
            &state.inner.cfg.cors_origin_list(),
        )))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// Any path no route serves: a problem document like every other refusal.
async fn no_route(method: axum::http::Method, uri: axum::http::Uri) -> AppError {
    AppError::NoRoute {
        method: method.to_string(),
        path: uri.path().chars().take(200).collect(),
    }
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

/// The message for a start in open mode on a non-loopback address.
fn open_mode_refusal(addr: SocketAddr) -> String {
    format!(
        "refusing to serve without authentication on {addr}: no tokens file is configured. \
         Create a token with `scanq-api token new --name NAME --tenant TENANT --scopes submit,read,cancel`, \
         add the lines it prints to a tokens file and set SCANQ_API_TOKENS_FILE to that file; \
         or bind to a loopback address (SCANQ_API_ADDR=127.0.0.1:8080) for open local use"
    )
}

/// Serves the API on a bound listener until `shutdown` resolves. Without a tokens file it serves
/// only on a loopback address (open mode); on any other address it refuses to start. SIGHUP
/// re-reads the config file, catalog and target scope (`scanq::reload`) and the tokens file.
pub async fn run(
    listener: tokio::net::TcpListener,
    cfg: Config,
    catalog: Catalog,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    if cfg.api_tokens_file.is_none() {
        anyhow::ensure!(
            addr.ip().to_canonical().is_loopback(),
            open_mode_refusal(addr)
        );
        tracing::warn!(addr = %addr, "No tokens file: serving WITHOUT authentication (loopback only); set SCANQ_API_TOKENS_FILE to require tokens");
    }
    let state = state(cfg, catalog).await?;
    // Installed before anything is served, so a SIGHUP never meets the default action (exit).
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    let reload = tokio::spawn(reload_on_sighup(state.clone(), hup));
    let sweeper = tokio::spawn(sweep_listings(state.clone()));
    let series = tokio::spawn(sample_series(state.clone()));
    // The fleet's auth mode and tenants are published before this process fires a schedule,
    // which goes by them (`Queue::tenant_standing`).
    publish_caps_once(&state).await;
    let schedules = tokio::spawn(fire_schedules(state.clone()));
    let caps = tokio::spawn(publish_caps(state.clone()));
    let webhooks = tokio::spawn(deliver_webhooks(state.clone()));
    tracing::info!(addr = %addr, "API listening");
    let served = axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    reload.abort();
    sweeper.abort();
    series.abort();
    schedules.abort();
    caps.abort();
    webhooks.abort();
    served?;
    Ok(())
}

/// Keeps the tenants' job listings as small as the jobs they point to: a bounded sweep step
/// (members whose job expired leave) about every second, more often while it finds work.
async fn sweep_listings(state: AppState) {
    const BUDGET: usize = 2000;
    loop {
        let pause = match state.queue().sweep_listings(BUDGET).await {
            Ok(s) if s.checked >= BUDGET => std::time::Duration::from_millis(100),
            Ok(_) => std::time::Duration::from_millis(1000),
            Err(err) => {
                tracing::debug!(error = %err, "Listing sweep failed");
                std::time::Duration::from_secs(5)
            }
        };
        tokio::time::sleep(
            pause + std::time::Duration::from_millis(u64::from(std::process::id() % 200)),
        )
        .await;
    }
}

/// Samples each tool's depth and wait/run p95 into its hour-long series (the dashboard's
/// charts) about every 20 s; the first API to sample a minute wins.
async fn sample_series(state: AppState) {
    loop {
        let sampled = match state.places().await {
            Ok(places) => state.inner.stats.sample_series(&places).await,
            Err(err) => Err(err),
        };
        if let Err(err) = sampled {
            tracing::debug!(error = %err, "Series sample failed");
        }
        tokio::time::sleep(std::time::Duration::from_secs(20)).await;
    }
}

/// Fires due schedules, like every other API and worker process (no leader), each step with
/// the configuration in force.
async fn fire_schedules(state: AppState) {
    let metrics = state.inner.metrics.clone();
    let scheduler = state.inner.scheduler.clone();
    let live = state.clone();
    scheduler
        .run(
            move || live.inner.live.current(),
            move |r| metrics.count_schedule_result(r),
        )
        .await;
}

/// Publishes the fleet's auth mode, its tenants and their caps, for the scheduled runs any
/// process may enqueue (`Queue::publish_fleet`, read by `Queue::tenant_standing`): at start and
/// every 30 s (a reload publishes at once, so a removed tenant's schedules park).
async fn publish_caps(state: AppState) {
    loop {
        publish_caps_once(&state).await;
        tokio::time::sleep(scanq::queue::CAPS_PUBLISH_EVERY).await;
    }
}

async fn publish_caps_once(state: &AppState) {
    let caps = state.inner.auth.all_caps(&state.inner.cfg);
    let open = state.inner.auth.is_open();
    if let Err(err) = state.queue().publish_fleet(open, &caps).await {
        tracing::debug!(error = %err, "Publishing tenant caps failed");
    }
    let scopes = state.inner.auth.all_scopes();
    if let Err(err) = state.queue().publish_scopes(&scopes).await {
        tracing::debug!(error = %err, "Publishing tenant scopes failed");
    }
}

/// Delivers due webhook events, like every other API and worker process.
async fn deliver_webhooks(state: AppState) {
    let counter = state.inner.metrics.webhook_deliveries.clone();
    let every = std::time::Duration::from_millis(state.inner.cfg.schedule_tick_ms);
    state
        .inner
        .webhooks
        .clone()
        .run(every, move |o| counter.with_label_values(&[o]).inc())
        .await;
}

/// On every SIGHUP: reads the config file, catalog and target scope again and swaps them in
/// whole (or keeps the running set, naming the bad key), and re-reads the tokens file.
async fn reload_on_sighup(state: AppState, hup: std::io::Result<tokio::signal::unix::Signal>) {
    let mut hup = match hup {
        Ok(s) => s,
        Err(error) => {
            tracing::error!(%error, "Cannot listen for SIGHUP; configuration and tokens reload only by restart");
            return;
        }
    };
    while hup.recv().await.is_some() {
        let outcome = state.inner.live.reload(|_| Ok(()));
        state
            .inner
            .metrics
            .config_reloads
            .with_label_values(&[outcome.as_str()])
            .inc();
        state.inner.auth.reload_logged();
        publish_caps_once(&state).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_mode_refusal_says_how_to_make_a_token() {
        let msg = open_mode_refusal("0.0.0.0:8080".parse().unwrap());
        assert!(msg.contains("scanq-api token new"), "{msg}");
        assert!(msg.contains("SCANQ_API_TOKENS_FILE"), "{msg}");
    }
}
