//! Connecting to Redis (client, pool) and the settings every script call takes.

use std::time::Duration;

use deadpool_redis::{Pool, Runtime};

use crate::config::Config;
use crate::domain::{ErrorInfo, ErrorType};
use crate::keys::Keys;
use crate::scripts::ScriptSettings;

/// Builds the script settings from the configuration.
pub fn script_settings(cfg: &Config, keys: &Keys) -> ScriptSettings {
    ScriptSettings {
        notify_channel: keys.notify_channel(),
        cancel_channel: keys.cancel_channel(),
        max_events: cfg.max_events_per_job,
        lease_ms: cfg.lease_sec * 1000,
        result_ttl_ms: cfg.result_ttl_sec * 1000,
        dead_ttl_ms: cfg.dead_ttl_sec * 1000,
        job_ttl_ms: cfg.job_ttl_sec * 1000,
        max_queue_len: cfg.max_queue_len,
        max_deliveries: cfg.max_deliveries,
        fair_window: cfg.fair_window,
        retry_base_ms: cfg.retry_base_ms,
        retry_max_ms: cfg.retry_max_ms,
    }
}

/// A Redis client for `cfg.redis_url` (`redis://`, `rediss://` for TLS, `unix://`), trusting
/// `redis_tls_ca_file` and presenting `redis_tls_cert_file`/`redis_tls_key_file` when set.
/// Errors name the URL with its password redacted.
pub fn client(cfg: &Config) -> Result<redis::Client, String> {
    let url = crate::config::redact_url(&cfg.redis_url);
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let tls = cfg.redis_tls_ca_file.is_some() || cfg.redis_tls_cert_file.is_some();
    let client = if tls {
        let client_tls = match (&cfg.redis_tls_cert_file, &cfg.redis_tls_key_file) {
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: read(cert)?,
                client_key: read(key)?,
            }),
            _ => None,
        };
        let root_cert = cfg.redis_tls_ca_file.as_deref().map(read).transpose()?;
        redis::Client::build_with_tls(
            cfg.redis_url.as_str(),
            redis::TlsCertificates {
                client_tls,
                root_cert,
            },
        )
    } else {
        redis::Client::open(cfg.redis_url.as_str())
    };
    client.map_err(|e| cfg.redact_secrets(&format!("redis url {url}: {e}")))
}

/// A connection pool for short commands (same connection settings as [`client`]). Checking a
/// connection out never hangs: waiting for a free slot, connecting and the recycle `PING` are each
/// bounded, so a Redis outage turns into an error (503) within seconds rather than a stuck request.
pub fn pool(cfg: &Config) -> Result<Pool, String> {
    let info = client(cfg)?.get_connection_info().clone();
    let manager = deadpool_redis::Manager::new(info).map_err(|e| format!("redis pool: {e}"))?;
    Pool::builder(manager)
        .max_size(cfg.redis_pool_size)
        .wait_timeout(Some(Duration::from_secs(2)))
        .create_timeout(Some(Duration::from_secs(2)))
        .recycle_timeout(Some(Duration::from_secs(1)))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| format!("redis pool: {e}"))
}

/// The error document stored with a cancelled job.
pub fn cancelled_error() -> String {
    serde_json::to_string(&ErrorInfo::new(
        ErrorType::Cancelled,
        "cancelled on request",
    ))
    .expect("serializable")
}
