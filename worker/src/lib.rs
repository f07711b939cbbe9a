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

pub mod classify;
mod completer;
pub mod confine;
mod duties;
mod execute;
mod http;
mod live;
pub mod runner;
pub mod sandbox;
mod state;

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
    worker.run(shutdown).await;
    http.abort();
    Ok(())
}
