//! `scanq-worker` binary: load config, start telemetry, bind the metrics port, run.

use clap::Parser;
use scanq::catalog::Catalog;
use scanq::config::Config;

#[derive(Parser, Debug)]
#[command(
    name = "scanq-worker",
    version,
    about = "scanq worker: runs security tools from the queue"
)]
struct Cli {
    /// TOML configuration file (also SCANQ_CONFIG).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Print the effective configuration (secrets redacted) and exit.
    #[arg(long)]
    print_config: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let cfg = Config::load(cli.config.as_deref())?;
    if cli.print_config {
        print!("{}", cfg.redacted_toml());
        return Ok(());
    }
    scanq::telemetry::init(cfg.log_format);
    let catalog = Catalog::load(cfg.catalog.as_deref())?;
    let listener = tokio::net::TcpListener::bind(cfg.worker_metrics_addr).await?;
    scanq_worker::run(cfg, catalog, listener, shutdown_signal()).await
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
