//! The configuration's checks ([`Config::validate`]): every key in its accepted range or form,
//! refused at start (and on reload) naming the key.

use super::{Config, ConfigError, RedisMode};

impl Config {
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
        range("max_deliveries", self.max_deliveries, 1, 100)?;
        range("fair_window", self.fair_window, 0, 1_000_000)?;
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
        range("max_target_hosts", self.max_target_hosts, 1, 1 << 24)?;
        range("reap_interval_ms", self.reap_interval_ms, 10, 60_000)?;
        range(
            "schedule_min_every_sec",
            self.schedule_min_every_sec,
            1,
            86_400,
        )?;
        range("schedule_tick_ms", self.schedule_tick_ms, 10, 60_000)?;
        range(
            "tenant_max_schedules",
            self.tenant_max_schedules,
            1,
            100_000,
        )?;
        range(
            "webhook_retry_base_ms",
            self.webhook_retry_base_ms,
            10,
            3_600_000,
        )?;
        range(
            "webhook_give_up_sec",
            self.webhook_give_up_sec,
            1,
            7 * 86_400,
        )?;
        range("webhook_in_flight", self.webhook_in_flight, 1, 10_000)?;
        range(
            "webhook_tenant_in_flight",
            self.webhook_tenant_in_flight,
            1,
            self.webhook_in_flight,
        )?;
        range("tenant_max_webhooks", self.tenant_max_webhooks, 1, 10_000)?;
        self.check_target_groups()?;
        self.check_zones()?;
        crate::validate::url::AllowedUrls::parse(&self.webhook_allowed_urls).map_err(
            |message| ConfigError::Invalid {
                key: "webhook_allowed_urls",
                message,
            },
        )?;
        range("heartbeat_sec", self.heartbeat_sec, 1, 600)?;
        range(
            "mcp_session_ttl_sec",
            self.mcp_session_ttl_sec,
            60,
            30 * 86_400,
        )?;
        range("health_cpu_percent", self.health_cpu_percent, 1, 100)?;
        range("health_memory_percent", self.health_memory_percent, 1, 100)?;
        range("health_disk_percent", self.health_disk_percent, 1, 100)?;
        range("request_timeout_sec", self.request_timeout_sec, 1, 3600)?;
        range("max_header_bytes", self.max_header_bytes, 1024, 1024 * 1024)?;
        range("max_uri_bytes", self.max_uri_bytes, 256, 64 * 1024)?;
        range("rate_limit_per_sec", self.rate_limit_per_sec, 0.0, 1e6)?;
        range("rate_limit_burst", self.rate_limit_burst, 1, 1_000_000)?;
        range(
            "tenant_max_queued",
            self.tenant_max_queued,
            1,
            1_000_000_000,
        )?;
        range("tenant_max_running", self.tenant_max_running, 0, 1_000_000)?;
        self.sandbox_uids()?;
        if self.redis_tls_cert_file.is_some() != self.redis_tls_key_file.is_some() {
            return Err(ConfigError::Invalid {
                key: "redis_tls_cert_file",
                message: "set redis_tls_cert_file and redis_tls_key_file together".into(),
            });
        }
        range(
            "queue_partitions",
            self.queue_partitions,
            1,
            crate::domain::MAX_PARTITIONS,
        )?;
        range("redis_min_replicas_ack", self.redis_min_replicas_ack, 0, 16)?;
        range(
            "redis_min_replicas_timeout_ms",
            self.redis_min_replicas_timeout_ms,
            10,
            60_000,
        )?;
        RedisMode::from_config(self)?;
        for origin in self.api_allowed_origins.split(',').map(str::trim) {
            if !(origin.is_empty()
                || origin == "*"
                || origin.starts_with("http://")
                || origin.starts_with("https://"))
            {
                return Err(ConfigError::Invalid {
                    key: "api_allowed_origins",
                    message: format!(
                        "`{origin}` is not an origin; accepted: comma-separated https://host[:port], or *"
                    ),
                });
            }
        }
        for origin in self.cors_origin_list() {
            if !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(ConfigError::Invalid {
                    key: "cors_origins",
                    message: format!(
                        "`{origin}` is not an origin; accepted: comma-separated https://host[:port]"
                    ),
                });
            }
        }
        Ok(())
    }

    /// Politeness per target network: the group prefix (8..=32) and the cap per group.
    fn check_target_groups(&self) -> Result<(), ConfigError> {
        let env = |r: Result<(), ConfigError>, var: &str| {
            r.map_err(|e| match e {
                ConfigError::Invalid { key, message } => ConfigError::Invalid {
                    key,
                    message: format!("{message} (environment: {var})"),
                },
                other => other,
            })
        };
        env(
            range("target_group_prefix", self.target_group_prefix, 8, 32),
            "SCANQ_TARGET_GROUP_PREFIX",
        )?;
        env(
            range(
                "target_group_max_running",
                self.target_group_max_running,
                0,
                1_000_000,
            ),
            "SCANQ_TARGET_GROUP_MAX_RUNNING",
        )
    }
}

pub(super) fn range<T: PartialOrd + std::fmt::Display>(
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
