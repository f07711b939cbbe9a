//! Start-up shared by `scanq-api` and `scanq-worker`: load the one config (`--config`,
//! `SCANQ_CONFIG`, `SCANQ_*`), answer `--print-config`, start telemetry, load the tool catalog,
//! and the shutdown signal (SIGTERM or SIGINT) that both binaries hand to their `run`.
//! Each binary keeps its own flags and what it binds; only these steps are shared.

use std::path::Path;

use crate::catalog::{Catalog, CatalogError};
use crate::config::{Config, ConfigError};

/// Why a binary could not start.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// What a binary runs with once booted.
#[derive(Debug)]
pub struct Booted {
    pub cfg: Config,
    pub catalog: Catalog,
}

/// Loads the configuration from `config_file` (or `SCANQ_CONFIG`) and the environment. With
/// `print_config` it prints the configuration (secrets redacted) to stdout and returns `None`:
/// the binary then exits without starting anything. Otherwise it starts telemetry with the
/// configured log format and loads the catalog the configuration names.
pub fn boot(config_file: Option<&Path>, print_config: bool) -> Result<Option<Booted>, BootError> {
    let cfg = Config::load(config_file)?;
    if print_config {
        print!("{}", cfg.redacted_toml());
        return Ok(None);
    }
    crate::telemetry::init(cfg.log_format);
    let catalog = Catalog::load(cfg.catalog.as_deref())?;
    Ok(Some(Booted { cfg, catalog }))
}

/// Resolves on the first SIGTERM or SIGINT: the shutdown future a binary passes to its `run`.
///
/// # Panics
/// When the signal handlers cannot be installed (no Tokio runtime with signal support), which
/// only happens at start-up.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
