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
//! | `heartbeat` | a worker's presence: its self-description and its place in the live set |
//! | `claim` | the claim step across tools and partitions; partitions following the home breaker |
//! | `read` | reading, watching and long-polling jobs, the ID → tool cache |
//! | `submit` | the submit's Redis steps: the ID claimed in the tenant's listing, the enqueue script, replicas, the document |
//! | `submit_wait` | a submit that waits for its job's end (`Prefer: wait`), registered from its creation |
//! | `listing` | the tenant's listing (also the correlation-ID index) and its sweeping |
//! | `versions` | summaries (HMGET, no result), version tags (`ETag`) of a job and a page (DESIGN §15) |
//! | `admission` | the one admission path (gate, tenant caps, queue length, fair share) of submits, retries and scheduled runs |
//! | `approval` | a person's decision on a job awaiting approval: admitted then, or rejected (DESIGN §14) |
//! | `admin` | breakers, tool switches, counts |
//! | `conn`, `connect` | the connection in each Redis mode (standalone, cluster, Sentinel; the mode itself is `config::RedisMode`) |
//! | `wait` | the worker's blocking wait for work and its wait for replicas |
//! | `waiting` | why a ready job is not claimed (`waiting_for`), from the live heartbeats |
//! | `window_ends` | stopping running jobs at their engagement's window end, swept by the fleet (DESIGN §14) |
//! | `listen` | pub/sub wake-ups |
//! | `parent`, `settle`, `chunks` | big scans: a parent job and its chunks, their tally, merged result, cancel, retry and reconciler (DESIGN §12) |
//! | `limits`, `sessions` | tenant caps, MCP sessions |
//! | `politeness` | which jobs carry a target group (`tgroup`) for the per-group running cap |

mod admin;
mod admission;
mod approval;
mod chunks;
mod claim;
mod conn;
mod connect;
mod consumer;
mod engagements;
mod heartbeat;
mod job_fields;
mod layout;
mod limits;
mod listen;
mod listing;
mod parent;
mod politeness;
mod read;
mod sessions;
mod settle;
mod submit;
mod submit_wait;
mod tally;
mod versions;
mod wait;
mod waiting;
mod window_ends;
pub(crate) use waiting::live_heartbeats;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use redis::AsyncCommands;

pub use crate::config::RedisMode;
pub use admission::Gate;
pub use conn::{Conn, slot};
pub use connect::{
    Connection, Pool, PoolError, cancelled_error, client, client_for, pool, script_settings,
};
pub use consumer::{ClaimRound, Consumer, StartedJob};
pub use engagements::StoredEngagement;
pub use heartbeat::Heartbeat;
pub(crate) use job_fields::job_fields;
pub use limits::{CAPS_PUBLISH_EVERY, Standing, retry_after_secs};
pub use listen::{Listener, Subscription};
pub use read::Waited;
pub use sessions::McpSession;
pub use tally::{TenantTally, ToolTally};
pub use versions::{Fresh, JobPage, Tagged};
pub use wait::Woken;

use crate::breaker::Breaker;
use crate::config::Config;
use crate::domain::{CorrelationId, JobDocument, JobId, TenantId, ToolName, Zone};

/// Where a job's queue is: its tool and zone (DESIGN §13), which name its keyspace.
pub(crate) type Place = (ToolName, Zone);
use crate::keys::Keys;
use crate::scripts::{CancelOutcome, ScriptSettings, Scripts};

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
    /// An operator switched the tool off (`POST /v1/tools/{tool}/disable`).
    #[error("tool {tool} is disabled by an operator")]
    ToolDisabled { tool: String },
    /// The tool's breaker is open: new work waits `retry_after_sec` or sets `queue_if_unavailable`.
    #[error("the breaker of {tool} is open")]
    BreakerOpen { tool: String, retry_after_sec: u64 },
    /// The write reached the primary but not enough replicas in time (and was taken back).
    #[error("only {acked} of {wanted} replicas acknowledged the write")]
    NotReplicated { acked: u32, wanted: u32 },
    /// The job's engagement refuses it (DESIGN §14): 422 naming the field.
    #[error("{0}")]
    Refused(crate::validate::ValidationError),
    /// The token that submitted a job may not approve or reject it (DESIGN §14): 403.
    #[error("a job cannot be approved or rejected by the token that submitted it")]
    SelfDecision,
}

impl QueueError {
    /// Whether Redis itself is unreachable (503) rather than a logical refusal.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Redis(_) | Self::Pool(_) | Self::NotReplicated { .. }
        )
    }

    /// Whether trying again may succeed: Redis unreachable or restarting. A refusal by Redis
    /// itself (a script error) will not heal.
    pub fn is_transient(&self) -> bool {
        match self {
            // Unreachable, restarting, failing over (cluster down, moved, read-only replica,
            // no connection to a slot's node): anything redis-rs itself would retry.
            Self::Redis(e) => {
                e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout()
                    || !matches!(e.retry_method(), redis::RetryMethod::NoRetry)
            }
            Self::Pool(_) | Self::NotReplicated { .. } => true,
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
    /// Replicas that must acknowledge an enqueue (0 = none), and how long to wait for them.
    replicas: (u32, u64),
    /// `<tenant>/<cid>` → tool, for jobs this process has seen. The mapping never changes while
    /// the job lives; a hit whose job is gone is checked again against Redis.
    located: Arc<Mutex<HashMap<String, Place>>>,
    sweep: Arc<Mutex<listing::SweepCursor>>,
    /// Tenants this process has put in the tenant registry.
    registered: Arc<Mutex<std::collections::HashSet<TenantId>>>,
    numbers: Arc<Mutex<listing::ToolNumbers>>,
    /// What this process last read of each tool's breaker and switch (see `admission`).
    gate: Arc<Gate>,
    /// The tools a live raw-capable worker serves, as last read (see `waiting`).
    raw_served: Arc<waiting::RawServed>,
    /// Target groups of capped tools' jobs (see `politeness`).
    target_groups: politeness::TargetGroups,
}

impl Queue {
    /// A queue whose tools all have `cfg.queue_partitions` partitions.
    pub fn new(pool: Pool, cfg: &Config) -> Self {
        Self::with_keys(pool, cfg, Keys::for_fleet(cfg, None), None)
    }

    /// A queue that knows the catalog's tools' own partition counts.
    pub fn with_catalog(pool: Pool, cfg: &Config, catalog: &crate::catalog::Catalog) -> Self {
        Self::with_keys(
            pool,
            cfg,
            Keys::for_fleet(cfg, Some(catalog)),
            Some(catalog),
        )
    }

    fn with_keys(
        pool: Pool,
        cfg: &Config,
        keys: Keys,
        catalog: Option<&crate::catalog::Catalog>,
    ) -> Self {
        Self {
            settings: script_settings(cfg, &keys),
            pool,
            keys,
            scripts: Arc::new(Scripts::new()),
            breaker: Arc::new(Breaker::new()),
            job_ttl_ms: cfg.job_ttl_sec * 1000,
            replicas: (
                cfg.redis_min_replicas_ack,
                cfg.redis_min_replicas_timeout_ms,
            ),
            located: Arc::default(),
            sweep: Arc::default(),
            registered: Arc::default(),
            numbers: Arc::default(),
            gate: Arc::default(),
            raw_served: Arc::default(),
            target_groups: politeness::TargetGroups::new(cfg, catalog),
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
        if pong != "PONG" {
            return Ok(false);
        }
        if !self.scripts.loaded(&mut con).await? {
            // A server that lost its script cache (a restart, or a node that joined a cluster
            // after a failover) gets the scripts again rather than a not-ready answer.
            self.scripts.load_all(&mut con).await?;
        }
        Ok(self.scripts.loaded(&mut con).await?)
    }

    pub async fn cancel(
        &self,
        tenant: &TenantId,
        cid: &CorrelationId,
    ) -> Result<CancelOutcome, QueueError> {
        let Some((tool, zone)) = self.locate(tenant, cid).await? else {
            return Err(QueueError::NotFound);
        };
        let id = JobId::new(tool.clone(), zone, tenant.clone(), cid.clone());
        let mut con = self.connection().await?;
        let chunks: Option<String> = con.hget(self.keys.job(&id), "chunks").await?;
        if chunks.is_some() {
            // A big scan: the cancel fans out to every chunk.
            return self.cancel_parent(&id).await;
        }
        let out = self
            .scripts
            .cancel(
                &mut con,
                &self.keys.job_keys(&id),
                &self.settings,
                &id.job_ref(),
                tool.as_str(),
                &cancelled_error(),
            )
            .await?;
        if out == CancelOutcome::Cancelled {
            self.forget_queued(&id).await?;
        }
        match out {
            CancelOutcome::Missing => Err(QueueError::NotFound),
            CancelOutcome::Final { state } => Err(QueueError::Final { state }),
            other => Ok(other),
        }
    }
}
