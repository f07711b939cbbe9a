//! The queue as the API sees it: submit, read, wait, cancel, retry and list jobs, each one call
//! into Redis through the scripts. Handlers call this; they never send Redis commands themselves.

mod limits;
mod listen;
mod sessions;

use std::collections::HashMap;
use std::time::Duration;

use deadpool_redis::{Pool, Runtime};
use redis::AsyncCommands;

pub use limits::retry_after_secs;
pub use listen::{Listener, Subscription};
pub use sessions::McpSession;

use crate::breaker::{Breaker, BreakerSettings, ForceAction, Snapshot, Transition};
use crate::config::Config;
use crate::domain::{
    CorrelationId, ErrorInfo, ErrorType, JobDocument, JobState, TenantId, ToolName,
};
use crate::keys::{Keys, ToolKeys, job_ref};
use crate::request::JobSpec;
use crate::scripts::{CancelOutcome, EnqueueOutcome, RetryOutcome, ScriptSettings, Scripts};

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis pool: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
    #[error("correlation id already used for a different request (job is {state})")]
    Conflict { state: String },
    #[error("queue full ({depth} jobs waiting)")]
    Full { depth: u64 },
    #[error("tenant has {queued} jobs waiting (cap {cap})")]
    TenantFull { queued: u64, cap: u64 },
    #[error("job not found")]
    NotFound,
    #[error("job already {state}")]
    Final { state: String },
}

impl QueueError {
    /// Whether Redis itself is unreachable (503) rather than a logical refusal.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Redis(_) | Self::Pool(_))
    }
}

/// Result of a submit.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// false when the same request had been submitted before (idempotent 200).
    pub created: bool,
    pub document: JobDocument,
}

/// One event of a job's stream.
#[derive(Debug, Clone)]
pub struct JobEvent {
    pub position: u64,
    pub kind: String,
    pub data: String,
}

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

#[derive(Debug, Clone)]
pub struct Queue {
    pool: Pool,
    keys: Keys,
    scripts: std::sync::Arc<Scripts>,
    breaker: std::sync::Arc<Breaker>,
    settings: ScriptSettings,
    job_ttl_ms: u64,
}

impl Queue {
    pub fn new(pool: Pool, cfg: &Config) -> Self {
        let keys = Keys::new(&cfg.key_prefix);
        Self {
            settings: script_settings(cfg, &keys),
            pool,
            keys,
            scripts: std::sync::Arc::new(Scripts::new()),
            breaker: std::sync::Arc::new(Breaker::new()),
            job_ttl_ms: cfg.job_ttl_sec * 1000,
        }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn scripts(&self) -> &Scripts {
        &self.scripts
    }

    pub async fn connection(&self) -> Result<deadpool_redis::Connection, QueueError> {
        Ok(self.pool.get().await?)
    }

    /// Loads the scripts (readiness).
    pub async fn prepare(&self) -> Result<(), QueueError> {
        let mut con = self.connection().await?;
        self.scripts.load_all(&mut con).await?;
        Ok(())
    }

    /// Redis reachable and scripts loaded.
    pub async fn ready(&self) -> Result<bool, QueueError> {
        let mut con = self.connection().await?;
        let pong: String = redis::cmd("PING").query_async(&mut con).await?;
        Ok(pong == "PONG" && self.scripts.loaded(&mut con).await?)
    }

    /// Enqueues a validated job for `tenant` (idempotent per correlation ID).
    pub async fn submit(&self, tenant: &TenantId, spec: &JobSpec) -> Result<Submitted, QueueError> {
        self.submit_capped(tenant, spec, 0).await
    }

    /// [`Queue::submit`] for a tenant that may run at most `max_running` jobs of this tool at
    /// once (0 = no cap); the workers' claim enforces it.
    #[tracing::instrument(skip_all, fields(tool = %spec.tool))]
    pub async fn submit_capped(
        &self,
        tenant: &TenantId,
        spec: &JobSpec,
        max_running: u64,
    ) -> Result<Submitted, QueueError> {
        let cid = spec
            .correlation_id
            .clone()
            .unwrap_or_else(CorrelationId::generate);
        let r = job_ref(tenant, &cid);
        let tk = self.keys.tool(&spec.tool);
        let mut con = self.connection().await?;
        // Claim the correlation ID for this tool; a different tool under the same ID conflicts.
        let previous: Option<String> = redis::cmd("SET")
            .arg(self.keys.index(tenant, &cid))
            .arg(spec.tool.as_str())
            .arg("NX")
            .arg("GET")
            .arg("PX")
            .arg(self.job_ttl_ms)
            .query_async(&mut con)
            .await?;
        if let Some(prev) = previous
            && prev != spec.tool.as_str()
        {
            return Err(QueueError::Conflict {
                state: "owned by another tool".into(),
            });
        }
        let args = serde_json::to_string(spec.args.as_slice()).expect("serializable");
        let fields = [
            ("tool", spec.tool.to_string()),
            ("tenant", tenant.to_string()),
            ("cid", cid.to_string()),
            ("target", spec.target.to_string()),
            ("args", args),
            ("args_raw", spec.raw_args.clone()),
            ("template", spec.template.clone().unwrap_or_default()),
            ("priority", spec.priority.as_str().to_owned()),
            ("timeout_sec", spec.timeout_sec.to_string()),
            ("max_attempts", spec.max_attempts.to_string()),
            (
                "intrusive",
                if spec.intrusive { "1" } else { "0" }.to_owned(),
            ),
            ("max_running", max_running.to_string()),
        ];
        let tag = format!("{}/{}", spec.tool, r);
        let outcome = self
            .scripts
            .enqueue(
                &mut con,
                &tk,
                &self.settings,
                &r,
                &spec.request_hash,
                &tk.stream(spec.priority),
                spec.delay_ms,
                &tag,
                &fields,
            )
            .await?;
        let created = match outcome {
            EnqueueOutcome::Created { state, created_ms } => {
                let list = self.keys.tenant_jobs(tenant);
                let member = format!("{}/{}", spec.tool, cid);
                let oldest = created_ms.saturating_sub(self.job_ttl_ms);
                let _: () = redis::pipe()
                    .zadd(&list, &member, created_ms)
                    .ignore()
                    .cmd("ZREMRANGEBYSCORE")
                    .arg(&list)
                    .arg("-inf")
                    .arg(format!("({oldest}"))
                    .ignore()
                    .pexpire(&list, self.job_ttl_ms as i64)
                    .ignore()
                    .query_async(&mut con)
                    .await?;
                let h: HashMap<String, String> = fields
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.clone()))
                    .chain([
                        ("state".to_owned(), state),
                        ("created_ms".to_owned(), created_ms.to_string()),
                        ("attempt".to_owned(), "0".to_owned()),
                    ])
                    .collect();
                return Ok(Submitted {
                    created: true,
                    document: JobDocument::from_hash(&h).ok_or(QueueError::NotFound)?,
                });
            }
            EnqueueOutcome::Exists { .. } => false,
            EnqueueOutcome::Conflict { state } => return Err(QueueError::Conflict { state }),
            EnqueueOutcome::Full { depth } => return Err(QueueError::Full { depth }),
        };
        let document = self
            .read(&mut con, &tk, &r)
            .await?
            .ok_or(QueueError::NotFound)?;
        Ok(Submitted { created, document })
    }

    async fn read(
        &self,
        con: &mut deadpool_redis::Connection,
        tk: &ToolKeys,
        r: &str,
    ) -> Result<Option<JobDocument>, QueueError> {
        let h: HashMap<String, String> = con.hgetall(tk.job(r)).await?;
        Ok(JobDocument::from_hash(&h))
    }

    /// Which tool holds this tenant's correlation ID.
    pub async fn locate(
        &self,
        tenant: &TenantId,
        cid: &CorrelationId,
    ) -> Result<Option<ToolName>, QueueError> {
        let mut con = self.connection().await?;
        let tool: Option<String> = con.get(self.keys.index(tenant, cid)).await?;
        Ok(tool.and_then(|t| ToolName::parse(&t).ok()))
    }

    /// The job document, or None (also for another tenant's ID).
    pub async fn get(
        &self,
        tenant: &TenantId,
        cid: &CorrelationId,
    ) -> Result<Option<(ToolName, JobDocument)>, QueueError> {
        let Some(tool) = self.locate(tenant, cid).await? else {
            return Ok(None);
        };
        let mut con = self.connection().await?;
        let doc = self
            .read(&mut con, &self.keys.tool(&tool), &job_ref(tenant, cid))
            .await?;
        Ok(doc.map(|d| (tool, d)))
    }

    /// Long-poll: the document once terminal, or as it is when `timeout` passes.
    pub async fn wait_terminal(
        &self,
        listener: &Listener,
        tenant: &TenantId,
        cid: &CorrelationId,
        timeout: Duration,
    ) -> Result<Option<JobDocument>, QueueError> {
        let Some(tool) = self.locate(tenant, cid).await? else {
            return Ok(None);
        };
        let r = job_ref(tenant, cid);
        let tk = self.keys.tool(&tool);
        let mut sub = listener.subscribe(&format!("{tool}/{r}"));
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let doc = {
                let mut con = self.connection().await?;
                self.read(&mut con, &tk, &r).await?
            };
            let Some(doc) = doc else { return Ok(None) };
            let now = tokio::time::Instant::now();
            if doc.state.is_terminal() || now >= deadline {
                return Ok(Some(doc));
            }
            // Re-read at least every 5 s even without a message (belt and braces).
            let wait = (deadline - now).min(Duration::from_secs(5));
            sub.wait(wait).await;
        }
    }

    /// Events after position `after`, at most `max`.
    pub async fn events(
        &self,
        tool: &ToolName,
        tenant: &TenantId,
        cid: &CorrelationId,
        after: u64,
        max: usize,
    ) -> Result<Vec<JobEvent>, QueueError> {
        let mut con = self.connection().await?;
        let key = self.keys.tool(tool).events(&job_ref(tenant, cid));
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&key)
            .arg(format!("(0-{after}"))
            .arg("+")
            .arg("COUNT")
            .arg(max)
            .query_async(&mut con)
            .await?;
        Ok(reply
            .ids
            .into_iter()
            .filter_map(|e| {
                let position = e.id.strip_prefix("0-")?.parse().ok()?;
                let kind: String = e.get("type")?;
                let data: String = e.get("data")?;
                Some(JobEvent {
                    position,
                    kind,
                    data,
                })
            })
            .collect())
    }

    pub async fn cancel(
        &self,
        tenant: &TenantId,
        cid: &CorrelationId,
    ) -> Result<CancelOutcome, QueueError> {
        let Some(tool) = self.locate(tenant, cid).await? else {
            return Err(QueueError::NotFound);
        };
        let r = job_ref(tenant, cid);
        let mut con = self.connection().await?;
        let out = self
            .scripts
            .cancel(
                &mut con,
                &self.keys.tool(&tool),
                &self.settings,
                &r,
                &format!("{tool}/{r}"),
                &cancelled_error(),
            )
            .await?;
        if out == CancelOutcome::Cancelled {
            self.forget_queued(tenant, &tool, cid).await?;
        }
        match out {
            CancelOutcome::Missing => Err(QueueError::NotFound),
            CancelOutcome::Final { state } => Err(QueueError::Final { state }),
            other => Ok(other),
        }
    }

    pub async fn retry(&self, tenant: &TenantId, cid: &CorrelationId) -> Result<(), QueueError> {
        let Some(tool) = self.locate(tenant, cid).await? else {
            return Err(QueueError::NotFound);
        };
        let r = job_ref(tenant, cid);
        let mut con = self.connection().await?;
        let _: () = con
            .pexpire(self.keys.index(tenant, cid), self.job_ttl_ms as i64)
            .await?;
        match self
            .scripts
            .retry(
                &mut con,
                &self.keys.tool(&tool),
                &self.settings,
                &r,
                &format!("{tool}/{r}"),
            )
            .await?
        {
            RetryOutcome::Queued => self.note_queued(tenant, &tool, cid).await,
            RetryOutcome::NotRetryable { state } => Err(QueueError::Final { state }),
            RetryOutcome::Missing => Err(QueueError::NotFound),
        }
    }

    /// The tenant's jobs, newest first. `cursor` is the created-ms bound of the previous page.
    pub async fn list(
        &self,
        tenant: &TenantId,
        state: Option<JobState>,
        tool: Option<&ToolName>,
        limit: usize,
        cursor: Option<u64>,
    ) -> Result<(Vec<JobDocument>, Option<u64>), QueueError> {
        let mut con = self.connection().await?;
        let list = self.keys.tenant_jobs(tenant);
        let mut out = Vec::new();
        let mut max = cursor.map_or("+inf".to_owned(), |c| format!("({c}"));
        // Filters are applied after reading; read in pages until the page is full.
        for _ in 0..20 {
            let page: Vec<(String, f64)> = redis::cmd("ZRANGE")
                .arg(&list)
                .arg(&max)
                .arg("-inf")
                .arg("BYSCORE")
                .arg("REV")
                .arg("LIMIT")
                .arg(0)
                .arg(limit * 2)
                .arg("WITHSCORES")
                .query_async(&mut con)
                .await?;
            if page.is_empty() {
                return Ok((out, None));
            }
            let mut pipe = redis::pipe();
            let mut refs = Vec::new();
            for (member, score) in &page {
                let Some((t, c)) = member.split_once('/') else {
                    continue;
                };
                let (Ok(t), Ok(c)) = (ToolName::parse(t), CorrelationId::parse(c)) else {
                    continue;
                };
                pipe.hgetall(self.keys.tool(&t).job(&job_ref(tenant, &c)));
                refs.push(*score);
            }
            let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut con).await?;
            for (h, score) in hashes.iter().zip(refs) {
                max = format!("({score}");
                let Some(doc) = JobDocument::from_hash(h) else {
                    continue;
                };
                if state.is_some_and(|s| s != doc.state)
                    || tool.is_some_and(|t| t.as_str() != doc.tool)
                {
                    continue;
                }
                out.push(doc);
                if out.len() == limit {
                    return Ok((out, Some(score as u64)));
                }
            }
        }
        Ok((out, None))
    }

    /// The tool's breaker as dashboards see it.
    pub async fn breaker_snapshot(&self, tool: &ToolName) -> Result<Snapshot, QueueError> {
        let mut con = self.connection().await?;
        let keys = self.keys.tool(tool).breaker_keys();
        Ok(self.breaker.snapshot(&mut con, &keys, None).await?)
    }

    /// Admin action on the tool's breaker; the transition made, if any.
    pub async fn breaker_force(
        &self,
        tool: &ToolName,
        settings: &BreakerSettings,
        action: ForceAction,
    ) -> Result<Option<Transition>, QueueError> {
        let mut con = self.connection().await?;
        let keys = self.keys.tool(tool).breaker_keys();
        Ok(self
            .breaker
            .force(&mut con, &keys, settings, None, action)
            .await?)
    }

    /// Enables or disables a tool cluster-wide: workers stop claiming it at once.
    pub async fn set_tool_enabled(&self, tool: &ToolName, enabled: bool) -> Result<(), QueueError> {
        let mut con = self.connection().await?;
        let key = self.keys.tool(tool).disabled();
        if enabled {
            let _: () = con.del(key).await?;
        } else {
            let _: () = con.set(key, "1").await?;
        }
        Ok(())
    }

    /// Whether the tool is disabled cluster-wide.
    pub async fn tool_disabled(&self, tool: &ToolName) -> Result<bool, QueueError> {
        let mut con = self.connection().await?;
        Ok(con.exists(self.keys.tool(tool).disabled()).await?)
    }

    /// Jobs per state for one tool (kept exact by the scripts).
    pub async fn counts(&self, tool: &ToolName) -> Result<HashMap<String, i64>, QueueError> {
        let mut con = self.connection().await?;
        Ok(con.hgetall(self.keys.tool(tool).counts()).await?)
    }
}
