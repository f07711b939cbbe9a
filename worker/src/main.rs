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

/// One thread: the worker's own work is small (the tools are subprocesses), and keeping the
/// claim, the attempt tasks and the completer on one thread saves a cross-thread wake-up per
/// hop — measured: end-to-end p50 −0.15 ms, drain +12 %, less CPU (BENCHMARKS.md).
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    // Before the configuration (and its secrets) is read: no process of our uid may read
    // /proc/<worker>/environ or ptrace us (docs/security.md).
    scanq_worker::unconfined::harden_process()?;
    let cli = Cli::parse();
    let Some(Booted { cfg, catalog }) = boot(cli.config.as_deref(), cli.print_config)? else {
        return Ok(());
    };
    let listener = tokio::net::TcpListener::bind(cfg.worker_metrics_addr).await?;
    scanq_worker::run(cfg, catalog, listener, shutdown_signal()).await
}
