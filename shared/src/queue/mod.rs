//! The queue in Redis, in two halves:
//! - [`Queue`] — the API's half: submit, read, watch, cancel, retry and list jobs, each one call
//!   into Redis through the scripts. Handlers call this; they never send Redis commands.
//! - [`Consumer`] — the worker's half: claim, renew, report events, complete, reap, heartbeat,
//!   block for work. The worker crate sends no Redis command of its own.
//!
//! | module | owns |
//! |---|---|
//! | `connect` | client, pool, the settings every script call takes |
//! | `consumer` | the worker's half |
//! | `listing` | the tenant's job listing and its sweeping |
//! | `listen` | pub/sub wake-ups |
//! | `limits`, `sessions` | tenant caps, MCP sessions |

mod connect;
mod consumer;
mod limits;
mod listen;
mod listing;
mod sessions;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::AsyncCommands;

pub use connect::{Connection, Pool, PoolError, cancelled_error, client, pool, script_settings};
pub use consumer::{ClaimRound, Consumer, Heartbeat, StartedJob};
pub use limits::retry_after_secs;
pub use listen::{Listener, Subscription};
pub use sessions::McpSession;

use crate::breaker::{Breaker, BreakerSettings, ForceAction, Snapshot, Transition};
use crate::config::Config;
use crate::domain::{CorrelationId, JobDocument, JobId, Priority, TenantId, ToolName};
use crate::keys::Keys;
use crate::request::JobSpec;
use crate::scripts::{
    CancelOutcome, EnqueueOutcome, RetryOutcome, ScriptSettings, Scripts, WatchMode,
};

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis pool: {0}")]
    Pool(#[from] PoolError),
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

    /// Whether trying again may succeed: Redis unreachable or restarting. A refusal by Redis
    /// itself (a script error) will not heal.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Redis(e) => {
                e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout()
                    || matches!(
                        e.kind(),
                        redis::ErrorKind::Server(
                            redis::ServerErrorKind::BusyLoading | redis::ServerErrorKind::TryAgain
                        )
                    )
            }
            Self::Pool(_) => true,
            _ => false,
        }
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

/// How long one watch registration lasts; watchers renew it at least this often / 4.
const WATCH_MS: u64 = 60_000;
/// Entries of the correlation ID → tool cache before it starts afresh.
const LOCATE_CACHE: usize = 50_000;

#[derive(Debug, Clone)]
pub struct Queue {
    pool: Pool,
    keys: Keys,
    scripts: Arc<Scripts>,
    breaker: Arc<Breaker>,
    settings: ScriptSettings,
    job_ttl_ms: u64,
    /// `<tenant>/<cid>` → tool, for jobs this process has seen. The mapping never changes while
    /// the job lives; a hit whose job is gone is checked again against Redis.
    located: Arc<Mutex<HashMap<String, ToolName>>>,
    sweep: Arc<Mutex<listing::SweepCursor>>,
    numbers: Arc<Mutex<listing::ToolNumbers>>,
}

impl Queue {
    pub fn new(pool: Pool, cfg: &Config) -> Self {
        let keys = Keys::new(&cfg.key_prefix);
        Self {
            settings: script_settings(cfg, &keys),
            pool,
            keys,
            scripts: Arc::new(Scripts::new()),
            breaker: Arc::new(Breaker::new()),
            job_ttl_ms: cfg.job_ttl_sec * 1000,
            located: Arc::default(),
            sweep: Arc::default(),
            numbers: Arc::default(),
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

    pub async fn connection(&self) -> Result<Connection, QueueError> {
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
    ///
    /// Two round trips: claim the correlation ID for this tool (`SET NX GET`), then the enqueue
    /// script pipelined with the listing entry.
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
        let id = JobId::new(spec.tool.clone(), tenant.clone(), cid);
        let r = id.job_ref();
        let tk = self.keys.tool(&spec.tool);
        let no = self.tool_no(&spec.tool).await?;
        let list = self.keys.tenant_jobs(tenant);
        let mut con = self.connection().await?;
        // Claim the correlation ID for this tool in the tenant's listing (its index).
        let listed_at = listing::score(listing::now_ms(), no);
        let added: i64 = redis::cmd("ZADD")
            .arg(&list)
            .arg("NX")
            .arg(listed_at)
            .arg(id.cid.as_str())
            .query_async(&mut con)
            .await?;
        let fresh = added == 1;
        if !fresh {
            match self.indexed(tenant, &id.cid).await? {
                Some(t) if t == spec.tool => {}
                Some(t) => {
                    // Held by another tool: a conflict while that job exists; an expired one's
                    // ID may be reused.
                    let other = JobId::new(t, tenant.clone(), id.cid.clone());
                    let exists: bool = con.exists(self.keys.job(&other)).await?;
                    if exists {
                        return Err(QueueError::Conflict {
                            state: "owned by another tool".into(),
                        });
                    }
                }
                None => {}
            }
        }
        let args = serde_json::to_string(spec.args.as_slice()).expect("serializable");
        let mut fields = vec![
            ("target", spec.target.to_string()),
            ("timeout_sec", spec.timeout_sec.to_string()),
            ("max_attempts", spec.max_attempts.to_string()),
        ];
        // Defaults are left out of the hash (read back as their defaults): every byte of a
        // queued job is paid for as long as it waits. Tool, tenant and ID are in the key.
        if !spec.args.as_slice().is_empty() {
            fields.push(("args", args));
        }
        if !spec.raw_args.is_empty() {
            fields.push(("args_raw", spec.raw_args.clone()));
        }
        if spec.priority != Priority::Normal {
            fields.push(("priority", spec.priority.as_str().to_owned()));
        }
        if let Some(t) = spec.template.clone().filter(|t| !t.is_empty()) {
            fields.push(("template", t));
        }
        if spec.intrusive {
            fields.push(("intrusive", "1".to_owned()));
        }
        if max_running > 0 {
            fields.push(("max_running", max_running.to_string()));
        }
        let invocation = self.scripts.enqueue_invocation(
            &tk,
            &self.settings,
            &r,
            &spec.request_hash,
            spec.priority,
            spec.delay_ms,
            &fields,
        );
        let reply: redis::Value = invocation.invoke_async(&mut con).await?;
        let outcome = Scripts::enqueue_reply(reply)?;
        match &outcome {
            EnqueueOutcome::Created { .. } if !fresh => {
                // An expired job's ID reused: list it as new, under this tool.
                let _: () = redis::cmd("ZADD")
                    .arg(&list)
                    .arg("XX")
                    .arg(listed_at)
                    .arg(id.cid.as_str())
                    .query_async(&mut con)
                    .await?;
            }
            EnqueueOutcome::Full { .. } if fresh => {
                let _: () = con.zrem(&list, id.cid.as_str()).await?;
            }
            _ => {}
        }
        let created = match outcome {
            EnqueueOutcome::Created { state, created_ms } => {
                self.remember(&id);
                let h: HashMap<String, String> = fields
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.clone()))
                    .chain([
                        ("state".to_owned(), state),
                        ("created_ms".to_owned(), created_ms.to_string()),
                    ])
                    .collect();
                return Ok(Submitted {
                    created: true,
                    document: JobDocument::from_job(&id, &h).ok_or(QueueError::NotFound)?,
                });
            }
            EnqueueOutcome::Exists { .. } => false,
            EnqueueOutcome::Conflict { state } => return Err(QueueError::Conflict { state }),
            EnqueueOutcome::Full { depth } => return Err(QueueError::Full { depth }),
        };
        let h: HashMap<String, String> = con.hgetall(tk.job(&r)).await?;
        let document = JobDocument::from_job(&id, &h).ok_or(QueueError::NotFound)?;
        Ok(Submitted { created, document })
    }

    fn cached_tool(&self, tenant: &TenantId, cid: &CorrelationId) -> Option<ToolName> {
        self.located
            .lock()
            .expect("located lock")
            .get(&crate::keys::job_ref(tenant, cid))
            .cloned()
    }

    fn remember(&self, id: &JobId) {
        let mut map = self.located.lock().expect("located lock");
        if map.len() >= LOCATE_CACHE {
            map.clear();
        }
        map.insert(id.job_ref(), id.tool.clone());
    }

    /// Which tool holds this tenant's correlation ID (from the tenant's listing).
    pub async fn locate(
        &self,
        tenant: &TenantId,
        cid: &CorrelationId,
    ) -> Result<Option<ToolName>, QueueError> {
        let tool = self.indexed(tenant, cid).await?;
        if let Some(t) = &tool {
            self.remember(&JobId::new(t.clone(), tenant.clone(), cid.clone()));
        }
        Ok(tool)
    }

    /// Reads a job through `read` (a plain read or a watch registration), trying the cached tool
    /// first; a cached tool whose job is gone is looked up again.
    async fn find<F, Fut>(
        &self,
        tenant: &TenantId,
        cid: &CorrelationId,
        read: F,
    ) -> Result<Option<(ToolName, JobDocument)>, QueueError>
    where
        F: Fn(JobId) -> Fut,
        Fut: std::future::Future<Output = Result<HashMap<String, String>, QueueError>>,
    {
        if let Some(tool) = self.cached_tool(tenant, cid) {
            let id = JobId::new(tool.clone(), tenant.clone(), cid.clone());
            let h = read(id.clone()).await?;
            if let Some(doc) = JobDocument::from_job(&id, &h) {
                return Ok(Some((tool, doc)));
            }
        }
        let Some(tool) = self.locate(tenant, cid).await? else {
            return Ok(None);
        };
        let id = JobId::new(tool.clone(), tenant.clone(), cid.clone());
        let h = read(id.clone()).await?;
        Ok(JobDocument::from_job(&id, &h).map(|d| (tool, d)))
    }

    /// The job document, or None (also for another tenant's ID).
    pub async fn get(
        &self,
        tenant: &TenantId,
        cid: &CorrelationId,
    ) -> Result<Option<(ToolName, JobDocument)>, QueueError> {
        self.find(tenant, cid, |id| async move {
            let mut con = self.connection().await?;
            Ok(con.hgetall(self.keys.job(&id)).await?)
        })
        .await
    }

    /// Registers a watcher (for about a minute; call again to extend) and reads the job: from
    /// now on its changes are published, and with [`WatchMode::Stream`] its events are stored.
    /// Subscribe to the job's tag *before* calling this, so no change can slip in between.
    pub async fn watch(
        &self,
        tenant: &TenantId,
        cid: &CorrelationId,
        mode: WatchMode,
    ) -> Result<Option<(ToolName, JobDocument)>, QueueError> {
        self.find(tenant, cid, |id| async move {
            let mut con = self.connection().await?;
            let tk = self.keys.tool(&id.tool);
            Ok(self
                .scripts
                .watch(
                    &mut con,
                    &tk,
                    &id.job_ref(),
                    id.tool.as_str(),
                    WATCH_MS,
                    mode,
                )
                .await?)
        })
        .await
    }

    /// The notify tag of a job (what [`Listener::subscribe`] takes).
    pub fn tag(tool: &ToolName, tenant: &TenantId, cid: &CorrelationId) -> String {
        JobId::new(tool.clone(), tenant.clone(), cid.clone()).tag()
    }

    /// The tool that holds a correlation ID: this process's cache, else Redis's index.
    async fn tool_of(
        &self,
        tenant: &TenantId,
        cid: &CorrelationId,
    ) -> Result<Option<ToolName>, QueueError> {
        match self.cached_tool(tenant, cid) {
            Some(t) => Ok(Some(t)),
            None => self.locate(tenant, cid).await,
        }
    }

    /// Long-poll: the document once terminal, or as it is when `timeout` passes. One round trip
    /// per read: subscribe locally, then register and read in one script.
    pub async fn wait_terminal(
        &self,
        listener: &Listener,
        tenant: &TenantId,
        cid: &CorrelationId,
        timeout: Duration,
    ) -> Result<Option<JobDocument>, QueueError> {
        if timeout.is_zero() {
            return Ok(self.get(tenant, cid).await?.map(|(_, d)| d));
        }
        let Some(mut tool) = self.tool_of(tenant, cid).await? else {
            return Ok(None);
        };
        let mut sub = listener.subscribe(&Self::tag(&tool, tenant, cid));
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let Some((found, doc)) = self.watch(tenant, cid, WatchMode::Notify).await? else {
                return Ok(None);
            };
            if found != tool {
                // The ID now belongs to another tool's job (the cached one expired): follow it.
                sub = listener.subscribe(&Self::tag(&found, tenant, cid));
                tool = found;
                continue;
            }
            let now = tokio::time::Instant::now();
            if doc.state.is_terminal() || now >= deadline {
                return Ok(Some(doc));
            }
            // Re-read at least every 5 s even without a message (belt and braces).
            let wait = (deadline - now).min(Duration::from_secs(5));
            sub.wait(wait).await;
        }
    }

    /// Stored events after position `after`, at most `max` (a job's stream exists only once it
    /// had a progress/output event or an SSE watcher: see [`Queue::watch`]).
    pub async fn events(
        &self,
        tool: &ToolName,
        tenant: &TenantId,
        cid: &CorrelationId,
        after: u64,
        max: usize,
    ) -> Result<Vec<JobEvent>, QueueError> {
        let mut con = self.connection().await?;
        let id = JobId::new(tool.clone(), tenant.clone(), cid.clone());
        let key = self.keys.tool(tool).events(&id.job_ref());
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
        let id = JobId::new(tool.clone(), tenant.clone(), cid.clone());
        let mut con = self.connection().await?;
        let out = self
            .scripts
            .cancel(
                &mut con,
                &self.keys.tool(&tool),
                &self.settings,
                &id.job_ref(),
                tool.as_str(),
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
        let id = JobId::new(tool.clone(), tenant.clone(), cid.clone());
        let mut con = self.connection().await?;
        match self
            .scripts
            .retry(
                &mut con,
                &self.keys.tool(&tool),
                &self.settings,
                &id.job_ref(),
                tool.as_str(),
            )
            .await?
        {
            RetryOutcome::Queued => self.note_queued(tenant, &tool, cid).await,
            RetryOutcome::NotRetryable { state } => Err(QueueError::Final { state }),
            RetryOutcome::Missing => Err(QueueError::NotFound),
        }
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
