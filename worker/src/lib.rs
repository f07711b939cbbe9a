//! `scanq-worker`: claims jobs from Redis, runs each tool in the sandbox, keeps its leases
//! alive, and reports results fenced by the attempt's token.
//!
//! Every Redis command goes through the queue's worker half, [`scanq::queue::Consumer`]; this
//! crate sends none of its own.
//!
//! | module | owns |
//! |---|---|
//! | [`runner`] | the worker: claim step (`process_one`), the loop, drain |
//! | `duties` | lease renewal, reaping, heartbeats |
//! | `state` | what the parts share: config, consumer, running set |
//! | `execute` | one attempt: re-check, run the executor |
//! | [`classify`] | outcome classification, breaker verdicts, back-off (pure) |
//! | `completer` | batched, retried result writes |
//! | [`confine`] | egress confinement: per-run uid and nftables rules |
//! | `http` | `/healthz` and `/metrics` |
//! | `live` | progress and output events while a tool runs |
//! | [`sandbox`] | the sandboxed subprocess runner |
//! | [`unconfined`] | refusing to run tools as the worker's own uid; the non-dumpable worker |
//! | `zone_check` | the re-check that every address to scan is in the worker's zone |
//! | `window` | the engagement judged again before the tool runs; stopping at the window's end |

pub mod classify;
mod completer;
pub mod confine;
mod duties;
mod execute;
mod http;
mod live;
mod name_scope;
pub mod runner;
pub mod sandbox;
mod settler;
mod state;
pub mod unconfined;
mod window;
mod zone_check;

pub use runner::{Processed, Worker};

use std::future::Future;

use scanq::catalog::Catalog;
use scanq::config::Config;

/// Runs a worker until `shutdown` resolves, then drains (DESIGN §3): stops claiming, lets running
/// jobs finish within the grace period, hands the rest back, and returns.
pub async fn run(
    cfg: Config,
    catalog: Catalog,
    metrics_listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let worker = Worker::connect(cfg, catalog).await?;
    let http = tokio::spawn(http::serve(metrics_listener, worker.clone()));
    // Installed before anything is served, so a SIGHUP never meets the default action (exit).
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    let reload = tokio::spawn(reload_on_sighup(worker.shared.clone(), hup));
    worker.run(shutdown).await;
    http.abort();
    reload.abort();
    Ok(())
}

/// On every SIGHUP: reads the config file, catalog and target scope again and swaps them in
/// whole, or keeps the running set and names what was wrong. The tools a worker claims are
/// fixed at its start, so a catalog that adds or removes one is refused here (restart the
/// worker for it); their flags, templates, limits and the scope reload.
async fn reload_on_sighup(w: state::SharedRef, hup: std::io::Result<tokio::signal::unix::Signal>) {
    let mut hup = match hup {
        Ok(s) => s,
        Err(error) => {
            tracing::error!(%error, "Cannot listen for SIGHUP; configuration reloads only by restart");
            return;
        }
    };
    while hup.recv().await.is_some() {
        let serving = w.live.current().catalog.names();
        let outcome = w.live.reload(|new| {
            // A tool turned from `noop` into `exec` must not slip past the start-up rule.
            unconfined::check(&w.cfg, &new.catalog, w.confinement).map_err(|e| e.to_string())?;
            let names = new.catalog.names();
            if names == serving {
                return Ok(());
            }
            Err(format!(
                "catalog: this worker claims the tools {serving:?} and the new catalog has \
                 {names:?}; adding or removing a tool takes a worker restart"
            ))
        });
        w.metrics
            .config_reloads
            .with_label_values(&[outcome.as_str()])
            .inc();
    }
}
