//! Connecting to Redis in each mode (standalone, cluster, Sentinel) and the settings every
//! script call takes.

use std::time::Duration;

use std::sync::{Arc, Mutex};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};

use super::conn::Conn;
use crate::config::RedisMode;

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

/// A Redis client for `cfg.redis_url` (standalone mode).
pub fn client(cfg: &Config) -> Result<redis::Client, String> {
    client_for(cfg, cfg.redis_url.split(',').next().unwrap_or("").trim())
}

/// A Redis client for `url` (`redis://`, `rediss://` for TLS, `unix://`), trusting
/// `redis_tls_ca_file` and presenting `redis_tls_cert_file`/`redis_tls_key_file` when set.
/// Errors name the URL with its password redacted.
pub fn client_for(cfg: &Config, url: &str) -> Result<redis::Client, String> {
    let shown = crate::config::redact_url(url);
    let client = match tls_certificates(cfg)? {
        Some(certs) => redis::Client::build_with_tls(url, certs),
        None => redis::Client::open(url),
    };
    client.map_err(|e| cfg.redact_secrets(&format!("redis url {shown}: {e}")))
}

fn tls_certificates(cfg: &Config) -> Result<Option<redis::TlsCertificates>, String> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    if cfg.redis_tls_ca_file.is_none() && cfg.redis_tls_cert_file.is_none() {
        return Ok(None);
    }
    let client_tls = match (&cfg.redis_tls_cert_file, &cfg.redis_tls_key_file) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: read(cert)?,
            client_key: read(key)?,
        }),
        _ => None,
    };
    let root_cert = cfg.redis_tls_ca_file.as_deref().map(read).transpose()?;
    Ok(Some(redis::TlsCertificates {
        client_tls,
        root_cert,
    }))
}

/// Why no connection could be had (Redis unreachable, or the connect timed out).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct PoolError(String);

/// How connections are made in each mode (one per process, behind an `Arc`: the size
/// difference between the variants does not matter).
#[allow(clippy::large_enum_variant)]
enum Backend {
    Standalone {
        client: redis::Client,
        config: ConnectionManagerConfig,
    },
    Cluster {
        client: ClusterClient,
        /// Same nodes without response timeout, for blocking reads.
        blocking: ClusterClient,
        /// One client per seed, for pub/sub (a cluster forwards `PUBLISH` to every node).
        seeds: Vec<redis::Client>,
    },
    Sentinel {
        sentinels: Vec<redis::Client>,
        master: String,
        /// The configured URL: credentials, TLS scheme and db for the data nodes.
        url: String,
        cfg: Box<Config>,
    },
}

/// The shared connection for short commands: one multiplexed connection per process
/// (standalone: redis-rs's `ConnectionManager`; cluster: redis-rs's cluster connection, which
/// holds one multiplexed connection per node; Sentinel: a connection to the primary the
/// Sentinels name, replaced when it fails or is demoted). Requests of all tasks are pipelined;
/// checking it out costs no round trip and never hangs: connecting is bounded (2 s), so a Redis
/// outage turns into an error (503) within seconds rather than a stuck request. Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    backend: Arc<Backend>,
    con: Arc<Mutex<Option<Conn>>>,
    connecting: Arc<tokio::sync::Mutex<()>>,
    seed_turn: Arc<std::sync::atomic::AtomicUsize>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").finish_non_exhaustive()
    }
}

/// A connection checked out of the [`Pool`] (a handle on the shared multiplexed connection).
pub type Connection = Conn;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest one command may take before it fails (and is retried where the caller retries):
/// the same in every mode. Long enough that a busy server is not mistaken for a dead one (the
/// client's own default, 500 ms, was); an API request is bounded by `request_timeout_sec` anyway.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

async fn bounded<T>(
    what: &str,
    f: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, PoolError> {
    tokio::time::timeout(CONNECT_TIMEOUT, f)
        .await
        .map_err(|_| PoolError(format!("connecting to {what} timed out")))?
        .map_err(|e| PoolError(format!("connecting to {what}: {e}")))
}

impl Pool {
    pub async fn get(&self) -> Result<Connection, PoolError> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let _one = self.connecting.lock().await;
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let made = self.connect(false).await?;
        *self.con.lock().expect("pool lock") = Some(made.clone());
        Ok(made)
    }

    fn cached(&self) -> Option<Conn> {
        let mut slot = self.con.lock().expect("pool lock");
        if slot.as_ref().is_some_and(Conn::is_stale) {
            *slot = None;
        }
        slot.clone()
    }

    /// A connection of its own, without response timeout (blocking reads).
    pub async fn dedicated(&self) -> Result<Connection, PoolError> {
        self.connect(true).await
    }

    /// Keys live on several nodes (a Redis Cluster): a script may touch one slot only, and
    /// blocking reads go one per slot.
    pub fn is_cluster(&self) -> bool {
        matches!(*self.backend, Backend::Cluster { .. })
    }

    /// The mode's name (`standalone`, `cluster`, `sentinel`) for logs and `/health`.
    pub fn mode(&self) -> &'static str {
        match *self.backend {
            Backend::Standalone { .. } => "standalone",
            Backend::Cluster { .. } => "cluster",
            Backend::Sentinel { .. } => "sentinel",
        }
    }

    async fn connect(&self, blocking: bool) -> Result<Conn, PoolError> {
        match &*self.backend {
            Backend::Standalone { client, config } => {
                if blocking {
                    let config = redis::AsyncConnectionConfig::new()
                        .set_connection_timeout(Some(CONNECT_TIMEOUT))
                        .set_response_timeout(None);
                    let c = bounded(
                        "redis",
                        client.get_multiplexed_async_connection_with_config(&config),
                    )
                    .await?;
                    return Ok(Conn::plain(c));
                }
                let c = bounded(
                    "redis",
                    ConnectionManager::new_with_config(client.clone(), config.clone()),
                )
                .await?;
                Ok(Conn::Managed(c))
            }
            Backend::Cluster {
                client,
                blocking: b,
                ..
            } => {
                let which = if blocking { b } else { client };
                let c = bounded("the redis cluster", which.get_async_connection()).await?;
                Ok(Conn::Cluster(c))
            }
            Backend::Sentinel { .. } => {
                let client = self.sentinel_primary().await?;
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout((!blocking).then_some(RESPONSE_TIMEOUT));
                let mut c = bounded(
                    "the redis primary",
                    client.get_multiplexed_async_connection_with_config(&config),
                )
                .await?;
                // A Sentinel may still name a primary that was demoted: accept only a primary.
                let role: redis::Value = redis::cmd("ROLE")
                    .query_async(&mut c)
                    .await
                    .map_err(|e| PoolError(format!("asking the primary its role: {e}")))?;
                let is_primary = matches!(&role, redis::Value::Array(v)
                    if matches!(v.first(), Some(redis::Value::BulkString(r)) if r == b"master"));
                if !is_primary {
                    return Err(PoolError(
                        "the server the Sentinels name is not a primary (failover in progress)"
                            .into(),
                    ));
                }
                Ok(Conn::plain(c))
            }
        }
    }

    /// Asks the Sentinels, in turn, where the primary is; a client for it.
    async fn sentinel_primary(&self) -> Result<redis::Client, PoolError> {
        let Backend::Sentinel {
            sentinels,
            master,
            url,
            cfg,
        } = &*self.backend
        else {
            return Err(PoolError("not in sentinel mode".into()));
        };
        let mut last = String::from("no sentinel configured");
        for s in sentinels {
            let asked = async {
                let mut c = bounded("a sentinel", s.get_multiplexed_async_connection()).await?;
                let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(master)
                    .query_async(&mut c)
                    .await
                    .map_err(|e| PoolError(format!("asking a sentinel: {e}")))?;
                addr.ok_or_else(|| PoolError(format!("the sentinels do not know `{master}`")))
            };
            match asked.await {
                Ok((host, port)) => {
                    return client_for(cfg, &with_addr(url, &host, port)).map_err(PoolError);
                }
                Err(e) => last = e.0,
            }
        }
        Err(PoolError(last))
    }

    /// A client to subscribe with: the server itself; in a cluster a seed node, in turn (a
    /// cluster forwards every `PUBLISH` to all nodes); with Sentinel the current primary.
    pub async fn pubsub_client(&self) -> Result<redis::Client, PoolError> {
        match &*self.backend {
            Backend::Standalone { client, .. } => Ok(client.clone()),
            Backend::Cluster { seeds, .. } => {
                let turn = self
                    .seed_turn
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(seeds[turn % seeds.len()].clone())
            }
            Backend::Sentinel { .. } => self.sentinel_primary().await,
        }
    }
}

/// `url` with its host and port replaced (keeps scheme, credentials, db).
fn with_addr(url: &str, host: &str, port: u16) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("redis", url));
    let (userinfo, hostpart) = match rest.rfind('@') {
        Some(at) => (&rest[..=at], &rest[at + 1..]),
        None => ("", rest),
    };
    let path = hostpart.find('/').map_or("", |i| &hostpart[i..]);
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    format!("{scheme}://{userinfo}{host}:{port}{path}")
}

/// The connections for `cfg`'s mode (nothing is connected until first use).
pub fn pool(cfg: &Config) -> Result<Pool, String> {
    let mode = RedisMode::from_config(cfg).map_err(|e| e.to_string())?;
    let backend = match mode {
        RedisMode::Standalone { .. } => Backend::Standalone {
            client: client(cfg)?,
            config: ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_millis(500)),
        },
        RedisMode::Cluster { seeds } => {
            let build = |blocking: bool| {
                let mut b = ClusterClientBuilder::new(seeds.clone())
                    .connection_timeout(CONNECT_TIMEOUT)
                    .retries(6)
                    .max_retry_wait(1000)
                    .min_retry_wait(50);
                b = if blocking {
                    b.response_timeout(Duration::from_secs(3600))
                } else {
                    b.response_timeout(RESPONSE_TIMEOUT)
                };
                if let Some(certs) = tls_certificates(cfg)? {
                    b = b.certs(certs);
                }
                b.build()
                    .map_err(|e| cfg.redact_secrets(&format!("redis cluster seeds: {e}")))
            };
            Backend::Cluster {
                client: build(false)?,
                blocking: build(true)?,
                seeds: seeds
                    .iter()
                    .map(|u| client_for(cfg, u))
                    .collect::<Result<_, _>>()?,
            }
        }
        RedisMode::Sentinel {
            sentinels,
            master,
            url,
        } => Backend::Sentinel {
            sentinels: sentinels
                .iter()
                .map(|(h, p)| {
                    redis::Client::open(with_addr("redis://", h, *p))
                        .map_err(|e| format!("redis_sentinels {h}:{p}: {e}"))
                })
                .collect::<Result<_, _>>()?,
            master,
            url,
            cfg: Box::new(cfg.clone()),
        },
    };
    Ok(Pool {
        backend: Arc::new(backend),
        con: Arc::default(),
        connecting: Arc::default(),
        seed_turn: Arc::default(),
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
