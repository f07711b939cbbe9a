//! One typed configuration for API and workers, loaded once at start-up from defaults, an
//! optional TOML file (`--config` / `SCANQ_CONFIG`) and `SCANQ_*` environment variables, in that
//! order. Out-of-range values are refused with the key's name, never clamped.

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `redis://[user:password@]host:port[/db]`, `rediss://…` for TLS, or `unix:///path`.
    pub redis_url: String,
    pub key_prefix: String,
    pub api_addr: SocketAddr,
    pub worker_metrics_addr: SocketAddr,
    /// Operator catalog (TOML) that replaces or extends the built-in one.
    pub catalog: Option<PathBuf>,
    pub allowed_targets: String,
    pub denied_targets: String,
    pub max_hosts: u32,
    pub allow_intrusive: bool,
    pub api_tokens_file: Option<PathBuf>,
    pub worker_concurrency: u32,
    pub worker_id: Option<String>,
    /// Job lease in seconds; renewed every third of it while the tool runs.
    pub lease_sec: u64,
    pub worker_grace_sec: u64,
    pub log_format: LogFormat,
    pub redis_pool_size: usize,
    /// Jobs delivered this many times without finishing go dead as `worker_lost`.
    pub max_deliveries: u32,
    pub default_max_attempts: u32,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// Queued + scheduled jobs per tool beyond which submits get 429.
    pub max_queue_len: u64,
    /// How long finished jobs (result, events) stay readable.
    pub result_ttl_sec: u64,
    /// How long dead (failed) jobs stay listed.
    pub dead_ttl_sec: u64,
    /// The longest a job record may live at all (queued for ever is not a state).
    pub job_ttl_sec: u64,
    /// Events kept per job stream (oldest trimmed).
    pub max_events_per_job: u64,
    pub max_body_bytes: usize,
    pub max_wait_sec: u64,
    /// Run tools as this user when the worker is root.
    pub tool_user: Option<String>,
    /// How often a worker promotes due jobs and reclaims expired leases.
    pub reap_interval_ms: u64,
    pub heartbeat_sec: u64,
    /// Extra `Origin`s allowed on `/mcp` (comma list, `*` for any). Requests without `Origin`
    /// and from `http(s)://localhost`, `127.0.0.1` or `[::1]` (any port) are always allowed.
    pub mcp_allowed_origins: String,
    /// Extra `Host` names allowed on `/mcp` (comma list of `host` or `host:port`, `*` for any).
    /// Loopback names and the API's own address are always allowed (DNS-rebinding guard).
    pub mcp_allowed_hosts: String,
    /// Idle lifetime of an MCP session (2025-era clients); each request renews it.
    pub mcp_session_ttl_sec: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            redis_url: "redis://127.0.0.1:6379".into(),
            key_prefix: "scanq".into(),
            api_addr: "127.0.0.1:8080".parse().expect("valid default"),
            worker_metrics_addr: "127.0.0.1:9090".parse().expect("valid default"),
            catalog: None,
            allowed_targets: String::new(),
            denied_targets: String::new(),
            max_hosts: 1024,
            allow_intrusive: false,
            api_tokens_file: None,
            worker_concurrency: 4,
            worker_id: None,
            lease_sec: 30,
            worker_grace_sec: 30,
            log_format: LogFormat::Text,
            redis_pool_size: 32,
            max_deliveries: 5,
            default_max_attempts: 3,
            retry_base_ms: 1000,
            retry_max_ms: 300_000,
            max_queue_len: 100_000,
            result_ttl_sec: 86_400,
            dead_ttl_sec: 7 * 86_400,
            job_ttl_sec: 7 * 86_400,
            max_events_per_job: 1000,
            max_body_bytes: 64 * 1024,
            max_wait_sec: 60,
            tool_user: None,
            reap_interval_ms: 500,
            heartbeat_sec: 5,
            mcp_allowed_origins: String::new(),
            mcp_allowed_hosts: String::new(),
            mcp_session_ttl_sec: 86_400,
        }
    }
}

fn range<T: PartialOrd + std::fmt::Display>(
    key: &'static str,
    v: T,
    lo: T,
    hi: T,
) -> Result<(), ConfigError> {
    if v < lo || v > hi {
        return Err(ConfigError::Invalid {
            key,
            message: format!("{v} is out of range; accepted: {lo}..={hi}"),
        });
    }
    Ok(())
}

impl Config {
    /// Defaults ← TOML file (if any) ← `SCANQ_*` environment.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        let env_file = std::env::var_os("SCANQ_CONFIG").map(PathBuf::from);
        if let Some(path) = file.map(PathBuf::from).or(env_file) {
            fig = fig.merge(Toml::file_exact(path));
        }
        fig = fig.merge(Env::prefixed("SCANQ_").ignore(&["CONFIG"]));
        let cfg: Config = fig.extract().map_err(Box::new)?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let p = &self.key_prefix;
        if p.is_empty()
            || p.len() > 64
            || !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c))
        {
            return Err(ConfigError::Invalid {
                key: "key_prefix",
                message: "must be 1-64 characters from A-Z a-z 0-9 . _ : -".into(),
            });
        }
        range("lease_sec", self.lease_sec, 1, 3600)?;
        range("worker_concurrency", self.worker_concurrency, 1, 4096)?;
        range("worker_grace_sec", self.worker_grace_sec, 0, 86_400)?;
        range("redis_pool_size", self.redis_pool_size, 1, 1024)?;
        range("max_deliveries", self.max_deliveries, 1, 100)?;
        range("default_max_attempts", self.default_max_attempts, 1, 100)?;
        range("retry_base_ms", self.retry_base_ms, 1, 3_600_000)?;
        range(
            "retry_max_ms",
            self.retry_max_ms,
            self.retry_base_ms,
            86_400_000,
        )?;
        range("max_queue_len", self.max_queue_len, 1, 1_000_000_000)?;
        range("result_ttl_sec", self.result_ttl_sec, 1, 365 * 86_400)?;
        range("dead_ttl_sec", self.dead_ttl_sec, 1, 365 * 86_400)?;
        range("job_ttl_sec", self.job_ttl_sec, 1, 365 * 86_400)?;
        range("max_events_per_job", self.max_events_per_job, 10, 1_000_000)?;
        range(
            "max_body_bytes",
            self.max_body_bytes,
            1024,
            16 * 1024 * 1024,
        )?;
        range("max_wait_sec", self.max_wait_sec, 1, 3600)?;
        range("max_hosts", self.max_hosts, 1, 1 << 24)?;
        range("reap_interval_ms", self.reap_interval_ms, 10, 60_000)?;
        range("heartbeat_sec", self.heartbeat_sec, 1, 600)?;
        range(
            "mcp_session_ttl_sec",
            self.mcp_session_ttl_sec,
            60,
            30 * 86_400,
        )?;
        Ok(())
    }

    /// The configuration as TOML with secrets (Redis password) redacted.
    pub fn redacted_toml(&self) -> String {
        let mut copy = self.clone();
        copy.redis_url = redact_url(&self.redis_url);
        toml::to_string_pretty(&copy).unwrap_or_default()
    }
}

/// `redis://user:secret@host` → `redis://user:***@host`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    let user = userinfo.split(':').next().unwrap_or("");
    let masked = if userinfo.contains(':') {
        format!("{user}:***")
    } else {
        "***".to_owned()
    };
    format!("{}{}@{}", &url[..scheme_end + 3], masked, &rest[at + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn out_of_range_values_name_the_key() {
        let cfg = Config {
            lease_sec: 0,
            ..Config::default()
        };
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.contains("lease_sec") && err.contains("1..=3600"),
            "{err}"
        );
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("redis://u:pw@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact_url("redis://:pw@h"), "redis://:***@h");
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
        let cfg = Config {
            redis_url: "redis://scanq:hunter2@127.0.0.1:6379".into(),
            ..Config::default()
        };
        assert!(!cfg.redacted_toml().contains("hunter2"));
    }
}
