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

use crate::breaker::Breaker;
use crate::config::Config;
use crate::domain::{CorrelationId, JobDocument, JobId, TenantId, ToolName, Zone};

/// Where a job's queue is: its tool and zone (DESIGN §13), which name its keyspace.
pub(crate) type Place = (ToolName, Zone);
use crate::keys::Keys;
use crate::request::JobSpec;
use crate::scripts::{CancelOutcome, EnqueueOutcome, ScriptSettings, Scripts};

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

    /// Enqueues a validated job for `tenant` (idempotent per correlation ID).
    pub async fn submit(&self, tenant: &TenantId, spec: &JobSpec) -> Result<Submitted, QueueError> {
        self.submit_capped(tenant, spec, 0).await
    }

    /// [`Queue::submit`] for a tenant that may run at most `max_running` jobs of this tool at
    /// once (0 = no cap); the workers' claim enforces it.
    ///
    /// One round trip where one node holds every key: the enqueue script claims a new ID in the
    /// tenant's listing itself. Two in a cluster, or for an ID the listing holds already: its
    /// `ZADD NX` (and, for a listed ID, whose job it is), then the enqueue script.
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
        let id = JobId::new(spec.tool.clone(), spec.zone.clone(), tenant.clone(), cid);
        let r = id.job_ref();
        let tk = self.keys.job_keys(&id);
        let no = self.tool_no(&spec.tool, &spec.zone).await?;
        let list = self.keys.tenant_jobs(tenant);
        let mut con = self.connection().await?;
        if !self
            .registered
            .lock()
            .expect("registry lock")
            .contains(tenant)
        {
            let _: () = con.sadd(self.keys.tenants(), tenant.as_str()).await?;
            self.registered
                .lock()
                .expect("registry lock")
                .insert(tenant.clone());
        }
        // Claim the correlation ID for this tool in the tenant's listing (its index).
        let now = listing::now_ms();
        let listed_at = listing::score(now, no);
        let mut fields = job_fields(spec, max_running);
        if let Some(g) = self.target_groups.of(&spec.tool, spec.target.first()) {
            // Politeness: the claim caps running jobs per group (absent when not capped).
            fields.push(("tgroup", g));
        }
        let lane = (spec.priority, spec.needs_raw);
        let delay = (spec.delay_ms, spec.needs_approval);
        // Where one node holds every key (not a cluster), the enqueue script claims a new ID in
        // the listing itself: one round trip. An ID listed already takes the two steps below.
        let one_trip = if self.pool.mode() == "cluster" {
            None
        } else {
            let claim = crate::scripts::Listed::Claim {
                listing: list.clone(),
                score: listed_at,
                at_ms: now,
                packed: id.cid.packed(),
            };
            self.scripts
                .enqueue_claiming(
                    &mut con,
                    &tk,
                    &self.settings,
                    &r,
                    &spec.request_hash,
                    lane,
                    delay,
                    claim,
                    &fields,
                )
                .await?
        };
        // The script took the member back itself if the queue was full.
        let by_script = one_trip.is_some();
        let (fresh, outcome) = match one_trip {
            Some(outcome) => (true, outcome),
            None => {
                let added: i64 = redis::cmd("ZADD")
                    .arg(&list)
                    .arg("NX")
                    .arg(listed_at)
                    .arg(id.cid.as_str())
                    .query_async(&mut con)
                    .await?;
                let fresh = added == 1;
                if !fresh {
                    self.owned_elsewhere(&mut con, tenant, &id, spec).await?;
                }
                // A member just added means no job lives under the ID: the script skips its
                // idempotency read (members are removed only once their job is gone).
                let listed = if fresh {
                    crate::scripts::Listed::Fresh {
                        at_ms: now,
                        packed: id.cid.packed(),
                    }
                } else {
                    crate::scripts::Listed::Known { at_ms: now }
                };
                let outcome = self
                    .scripts
                    .enqueue_listed(
                        &mut con,
                        &tk,
                        &self.settings,
                        &r,
                        &spec.request_hash,
                        lane,
                        delay,
                        listed,
                        &fields,
                    )
                    .await?;
                (fresh, outcome)
            }
        };
        if let EnqueueOutcome::Created { .. } = &outcome
            && self.replicas.0 > 0
        {
            let (wanted, wait_ms) = self.replicas;
            let acked = con.wait_replicas(&tk.job(&r), wanted, wait_ms).await?;
            if acked < wanted
                && self
                    .scripts
                    .withdraw(&mut con, &tk, &r, &spec.request_hash)
                    .await?
            {
                if fresh {
                    let _: () = con.zrem(&list, id.cid.as_str()).await?;
                }
                return Err(QueueError::NotReplicated { acked, wanted });
            }
        }
        match &outcome {
            EnqueueOutcome::Created { .. } if !fresh => {
                // An expired job's ID reused: list it as new, under this tool (added again if
                // the listing sweep dropped the expired entry meanwhile).
                let _: () = redis::cmd("ZADD")
                    .arg(&list)
                    .arg(listed_at)
                    .arg(id.cid.as_str())
                    .query_async(&mut con)
                    .await?;
            }
            EnqueueOutcome::Full { .. } if fresh && !by_script => {
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
                let mut docs = [JobDocument::from_job(&id, &h).ok_or(QueueError::NotFound)?];
                self.explain_waits(&mut docs).await;
                let [document] = docs;
                return Ok(Submitted {
                    created: true,
                    document,
                });
            }
            EnqueueOutcome::Exists { .. } => false,
            EnqueueOutcome::Conflict { state } => return Err(QueueError::Conflict { state }),
            EnqueueOutcome::Full { depth } => return Err(QueueError::Full { depth }),
        };
        let h: HashMap<String, String> = con.hgetall(tk.job(&r)).await?;
        let mut docs = [JobDocument::from_job(&id, &h).ok_or(QueueError::NotFound)?];
        self.explain_waits(&mut docs).await;
        let [document] = docs;
        Ok(Submitted { created, document })
    }

    /// An ID the tenant's listing holds already: a conflict while another tool's (or zone's)
    /// job lives under it; an expired one's ID may be reused.
    async fn owned_elsewhere(
        &self,
        con: &mut Connection,
        tenant: &TenantId,
        id: &JobId,
        spec: &JobSpec,
    ) -> Result<(), QueueError> {
        match self.indexed(tenant, &id.cid).await? {
            Some((t, z)) if t == spec.tool && z == spec.zone => Ok(()),
            Some((t, z)) => {
                let other = JobId::new(t, z, tenant.clone(), id.cid.clone());
                let exists: bool = con.exists(self.keys.job(&other)).await?;
                if exists {
                    return Err(QueueError::Conflict {
                        state: "owned by another tool".into(),
                    });
                }
                Ok(())
            }
            None => Ok(()),
        }
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
