//! `scanq-worker` binary: load config, start telemetry, bind the metrics port, run.

use clap::Parser;
use scanq::boot::{Booted, boot, shutdown_signal};

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
    let Some(Booted { cfg, catalog }) = boot(cli.config.as_deref(), cli.print_config)? else {
        return Ok(());
    };
    let listener = tokio::net::TcpListener::bind(cfg.worker_metrics_addr).await?;
    scanq_worker::run(cfg, catalog, listener, shutdown_signal()).await
}
