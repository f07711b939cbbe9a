//! Connecting to Redis (client, pool) and the settings every script call takes.

use std::time::Duration;

use std::sync::{Arc, Mutex};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

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

/// Why no connection could be had (Redis unreachable, or the connect timed out).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct PoolError(String);

/// The shared connection for short commands: one multiplexed connection per process
/// (redis-rs's `ConnectionManager`: requests of all tasks are pipelined on one socket, and it
/// reconnects by itself after a failure). Checking it out costs no round trip — unlike a
/// classic pool, whose recycle `PING` was one extra round trip per request — and never hangs:
/// connecting is bounded (2 s), so a Redis outage turns into an error (503) within seconds
/// rather than a stuck request. Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    client: redis::Client,
    config: ConnectionManagerConfig,
    con: Arc<Mutex<Option<ConnectionManager>>>,
    connecting: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").finish_non_exhaustive()
    }
}

/// A connection checked out of the [`Pool`] (a handle on the shared multiplexed connection).
pub type Connection = ConnectionManager;

impl Pool {
    pub async fn get(&self) -> Result<Connection, PoolError> {
        if let Some(c) = self.con.lock().expect("pool lock").as_ref() {
            return Ok(c.clone());
        }
        let _one = self.connecting.lock().await;
        if let Some(c) = self.con.lock().expect("pool lock").as_ref() {
            return Ok(c.clone());
        }
        let made = tokio::time::timeout(
            Duration::from_secs(2),
            ConnectionManager::new_with_config(self.client.clone(), self.config.clone()),
        )
        .await
        .map_err(|_| PoolError("connecting to redis timed out".into()))?
        .map_err(|e| PoolError(format!("connecting to redis: {e}")))?;
        *self.con.lock().expect("pool lock") = Some(made.clone());
        Ok(made)
    }
}

/// The connection for short commands (same connection settings as [`client`]).
pub fn pool(cfg: &Config) -> Result<Pool, String> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    Ok(Pool {
        client: client(cfg)?,
        config,
        con: Arc::default(),
        connecting: Arc::default(),
    })
}

/// The error document stored with a cancelled job.
pub fn cancelled_error() -> String {
    serde_json::to_string(&ErrorInfo::new(
        ErrorType::Cancelled,
        "cancelled on request",
    ))
    .expect("serializable")
}
