//! One typed configuration for API and workers, loaded once at start-up from defaults, an
//! optional TOML file (`--config` / `SCANQ_CONFIG`) and `SCANQ_*` environment variables, in that
//! order. Out-of-range values are refused with the key's name, never clamped.

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

mod redact;
mod redis_mode;
mod validate;
mod zones;
pub use redact::redact_url;
use redact::url_password;
pub use redis_mode::RedisMode;
pub use zones::ZonesSetting;

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
    /// The TOML file this configuration was read from (`--config`, `SCANQ_CONFIG`), which a
    /// reload (`scanq::reload`) reads again. Not a key of the file itself.
    #[serde(skip)]
    pub source: Option<PathBuf>,
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
    /// Most hosts one submit may cover (`SCANQ_MAX_TARGET_HOSTS`): a target bigger than the
    /// tool's `max_hosts` becomes a parent job split into chunks (DESIGN §12).
    pub max_target_hosts: u32,
    pub allow_intrusive: bool,
    /// Every job must name an engagement (`SCANQ_REQUIRE_ENGAGEMENT`; DESIGN §14).
    pub require_engagement: bool,
    /// Which jobs wait for a person's approval fleet-wide (`SCANQ_APPROVAL`: `never`,
    /// `intrusive`, `always`; DESIGN §14); an engagement's own rule applies too, the stricter wins.
    pub approval: crate::domain::Approval,
    pub api_tokens_file: Option<PathBuf>,
    pub worker_concurrency: u32,
    pub worker_id: Option<String>,
    /// Job lease in seconds; renewed every third of it while the tool runs.
    pub lease_sec: u64,
    pub worker_grace_sec: u64,
    pub log_format: LogFormat,
    /// Jobs delivered this many times without finishing go dead as `worker_lost`.
    pub max_deliveries: u32,
    /// Fair share across tenants: ready-stream entries per tenant and tool before the tenant's
    /// further jobs wait in its own backlog (0 = off). See docs/queue.md.
    pub fair_window: u64,
    pub default_max_attempts: u32,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// Queued + scheduled jobs per tool beyond which submits get 429.
    pub max_queue_len: u64,
    /// How long finished jobs (result, events) stay readable.
    pub result_ttl_sec: u64,
    /// How long dead (failed) jobs stay listed.
    pub dead_ttl_sec: u64,
    /// The longest a job held for a person's approval waits for a decision (and how long
    /// per-tenant bookkeeping that follows jobs lasts). Queued, scheduled and running jobs do
    /// not expire: the queue length and the workers' slots bound them (docs/queue.md
    /// "Retention").
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
    /// Extra `Origin`s allowed on every route (comma list, `*` for any; CSRF guard). Requests
    /// without `Origin`, from `http(s)://localhost`, `127.0.0.1` or `[::1]` (any port), from
    /// the page's own origin, and from `cors_origins` are always allowed. See `api::origin`.
    pub api_allowed_origins: String,
    /// Extra `Host` names allowed on every route (comma list of `host` or `host:port`, `*` for
    /// any; DNS-rebinding guard). IP literals and `localhost` are always allowed.
    pub api_allowed_hosts: String,
    /// The older name of `api_allowed_origins` (still read: both lists are allowed).
    pub mcp_allowed_origins: String,
    /// The older name of `api_allowed_hosts` (still read: both lists are allowed).
    pub mcp_allowed_hosts: String,
    /// Idle lifetime of an MCP session (2025-era clients); each request renews it.
    pub mcp_session_ttl_sec: u64,
    /// `GET /health` reports CPU use above this percentage (informational).
    pub health_cpu_percent: u8,
    /// `GET /health` reports memory use above this percentage (informational).
    pub health_memory_percent: u8,
    /// `GET /health` reports the temporary directory's disk fuller than this (informational).
    pub health_disk_percent: u8,
    /// CA certificate (PEM) that signed the Redis server's certificate (`rediss://`); without it
    /// the public web roots are trusted.
    pub redis_tls_ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for Redis servers that require TLS client auth.
    pub redis_tls_cert_file: Option<PathBuf>,
    pub redis_tls_key_file: Option<PathBuf>,
    /// `/metrics` answers loopback peers without a token; false: a token with `read` always.
    pub metrics_open: bool,
    /// Comma-separated origins allowed by CORS (`https://dash.example`); empty: CORS off.
    pub cors_origins: String,
    /// A request that has not produced a response after this long gets 503 (long-polls get
    /// their `wait` on top).
    pub request_timeout_sec: u64,
    /// Request headers larger than this in total get 431.
    pub max_header_bytes: usize,
    /// Request URIs (path + query) longer than this get 414.
    pub max_uri_bytes: usize,
    /// Per-token request rate (token bucket refill per second, fleet-wide); 0 = no limit.
    /// A token in the tokens file may set its own.
    pub rate_limit_per_sec: f64,
    /// Per-token burst (bucket size).
    pub rate_limit_burst: u32,
    /// Queued + scheduled jobs per tenant beyond which submits get 429.
    pub tenant_max_queued: u64,
    /// Running jobs per tenant (enforced when workers claim); 0 = no cap.
    pub tenant_max_running: u64,
    /// Schedules per tenant; creating one more gets 429 (replacing one still works).
    pub tenant_max_schedules: u64,
    /// Talk to a Redis Cluster: `redis_url` then holds comma-separated seed node URLs.
    pub redis_cluster: bool,
    /// Comma-separated Sentinel addresses (`host:port`); non-empty = Sentinel mode, with the
    /// primary named `redis_master_name` (credentials, TLS and db still come from `redis_url`).
    pub redis_sentinels: String,
    pub redis_master_name: String,
    /// Partitions per tool queue, each under its own hash tag, so one tool spans several
    /// cluster masters (a catalog tool may set its own `partitions`).
    pub queue_partitions: u16,
    /// Replicas that must acknowledge an enqueue (and a worker's results) before it counts
    /// (`WAIT`); 0 = answer as soon as the primary has it.
    pub redis_min_replicas_ack: u32,
    /// How long to wait for those acknowledgements before answering 503.
    pub redis_min_replicas_timeout_ms: u64,
    /// Kernel egress confinement of `exec` tools (nftables, docs/sandbox.md).
    pub egress_confinement: EgressConfinement,
    /// The uids (`first-last`) given one per confined run; the kernel matches its packets by uid.
    pub sandbox_uid_range: String,
    /// Let a worker start whose `exec` tools would run as its own uid (no confinement and no
    /// `tool_user` switch), with a warning; false: such a worker refuses to start.
    pub allow_unconfined: bool,
    /// Schedules with `every_sec` below this are refused (422).
    pub schedule_min_every_sec: u64,
    /// How often each API and worker process looks for due schedules.
    pub schedule_tick_ms: u64,
    /// Comma-separated entries `scheme://host[:port][/path]` a webhook may target
    /// (`SCANQ_WEBHOOK_ALLOWED_URLS`; empty = none, the default). See `validate::url::AllowedUrls`.
    pub webhook_allowed_urls: String,
    /// First retry delay of a failed webhook delivery; doubles per attempt up to an hour.
    pub webhook_retry_base_ms: u64,
    /// A delivery that has failed for this long is given up.
    pub webhook_give_up_sec: u64,
    /// Webhook deliveries attempted at once across the fleet (and within one process).
    pub webhook_in_flight: u64,
    /// Webhook deliveries of one tenant attempted at once across the fleet.
    pub webhook_tenant_in_flight: u64,
    /// Webhook subscriptions one tenant may have (`SCANQ_TENANT_MAX_WEBHOOKS`).
    pub tenant_max_webhooks: u64,
    /// Politeness: targets fall in groups of this prefix length (`/24`; a hostname is its own
    /// group). See `validate::groups` and docs/queue.md.
    pub target_group_prefix: u8,
    /// Politeness: jobs running at once per target group across the fleet (per partition of
    /// the tool's queue); 0 = no cap. A catalog tool may set its own `max_running_per_group`.
    pub target_group_max_running: u32,
    /// The zone map (DESIGN §13, `validate::ZoneMap`): `SCANQ_ZONES`, or a `[zones]` section.
    pub zones: ZonesSetting,
    /// The zone this worker serves (`SCANQ_WORKER_ZONE`): `default` or a zone of `zones`.
    pub worker_zone: crate::domain::Zone,
}

/// `SCANQ_EGRESS_CONFINEMENT`: whether each `exec` tool run is confined by the kernel to its
/// job's resolved target addresses.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EgressConfinement {
    /// Confine when the worker has the privilege (root or CAP_NET_ADMIN and `nft`); otherwise
    /// run unconfined with a warning.
    Auto,
    /// Confine, and refuse to start without the privilege.
    Required,
    /// Never confine.
    Off,
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
            source: None,
            redis_url: "redis://127.0.0.1:6379".into(),
            key_prefix: "scanq".into(),
            api_addr: "127.0.0.1:8080".parse().expect("valid default"),
            worker_metrics_addr: "127.0.0.1:9090".parse().expect("valid default"),
            catalog: None,
            allowed_targets: String::new(),
            denied_targets: String::new(),
            max_hosts: 1024,
            max_target_hosts: 65_536,
            allow_intrusive: false,
            require_engagement: false,
            approval: crate::domain::Approval::Never,
            api_tokens_file: None,
            worker_concurrency: 4,
            worker_id: None,
            lease_sec: 30,
            worker_grace_sec: 30,
            log_format: LogFormat::Text,
            max_deliveries: 5,
            fair_window: 100,
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
            api_allowed_origins: String::new(),
            api_allowed_hosts: String::new(),
            mcp_allowed_origins: String::new(),
            mcp_allowed_hosts: String::new(),
            mcp_session_ttl_sec: 86_400,
            health_cpu_percent: 90,
            health_memory_percent: 90,
            health_disk_percent: 90,
            redis_tls_ca_file: None,
            redis_tls_cert_file: None,
            redis_tls_key_file: None,
            metrics_open: true,
            cors_origins: String::new(),
            request_timeout_sec: 30,
            max_header_bytes: 16 * 1024,
            max_uri_bytes: 8 * 1024,
            rate_limit_per_sec: 50.0,
            rate_limit_burst: 100,
            tenant_max_queued: 10_000,
            tenant_max_running: 0,
            tenant_max_schedules: 100,
            redis_cluster: false,
            redis_sentinels: String::new(),
            redis_master_name: String::new(),
            queue_partitions: 1,
            redis_min_replicas_ack: 0,
            redis_min_replicas_timeout_ms: 1000,
            egress_confinement: EgressConfinement::Auto,
            sandbox_uid_range: "61000-61127".into(),
            allow_unconfined: false,
            schedule_min_every_sec: 60,
            schedule_tick_ms: 250,
            webhook_allowed_urls: String::new(),
            webhook_retry_base_ms: 1000,
            webhook_give_up_sec: 86_400,
            webhook_in_flight: 64,
            webhook_tenant_in_flight: 4,
            tenant_max_webhooks: 20,
            target_group_prefix: 24,
            target_group_max_running: 0,
            zones: ZonesSetting::default(),
            worker_zone: crate::domain::Zone::default(),
        }
    }
}

impl Config {
    /// Defaults ← TOML file (if any) ← `SCANQ_*` environment.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        let env_file = std::env::var_os("SCANQ_CONFIG").map(PathBuf::from);
        let source = file.map(PathBuf::from).or(env_file);
        if let Some(path) = &source {
            fig = fig.merge(Toml::file_exact(path));
        }
        fig = fig.merge(Env::prefixed("SCANQ_").ignore(&["CONFIG"]));
        let mut cfg: Config = fig.extract().map_err(Box::new)?;
        cfg.source = source;
        cfg.validate()?;
        Ok(cfg)
    }

    /// `sandbox_uid_range` as `(first, last)`: unprivileged uids (1000..=4294967294), at most
    /// 65536 of them.
    pub fn sandbox_uids(&self) -> Result<(u32, u32), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            key: "sandbox_uid_range",
            message,
        };
        let (a, b) = self
            .sandbox_uid_range
            .split_once('-')
            .ok_or_else(|| invalid("accepted: `first-last`, e.g. 61000-61127".into()))?;
        let parse = |v: &str| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| invalid(format!("`{v}` is not a uid; accepted: first-last")))
        };
        let (first, last) = (parse(a)?, parse(b)?);
        if first < 1000 || last < first || last == u32::MAX || last - first >= 65536 {
            return Err(invalid(format!(
                "{first}-{last}: accepted: 1000 <= first <= last, at most 65536 uids"
            )));
        }
        Ok((first, last))
    }

    /// The CORS origins, trimmed, without empty entries.
    pub fn cors_origin_list(&self) -> Vec<&str> {
        self.cors_origins
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .collect()
    }

    /// The configuration as TOML with secrets (Redis password) redacted.
    pub fn redacted_toml(&self) -> String {
        let mut copy = self.clone();
        copy.redis_url = redact_url(&self.redis_url);
        toml::to_string_pretty(&copy).unwrap_or_default()
    }
}

impl Config {
    /// `text` with the Redis password (if the URL has one) replaced by `***`, for messages that
    /// may quote a library's error.
    pub fn redact_secrets(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for url in self.redis_url.split(',') {
            if let Some(pw) = url_password(url.trim())
                && !pw.is_empty()
            {
                out = out.replace(pw, "***");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
