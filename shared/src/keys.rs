//! The Redis key schema: the only place where key names are built.
//!
//! Every key starts with the configured prefix (`SCANQ_KEY_PREFIX`, so each test and each
//! deployment has its own keyspace). Keys that one script touches together carry the same hash
//! tag, `{<tool>}` (or `{<tool>~<k>}` for the further partitions of a partitioned tool, see
//! [`Keys::partition`] and docs/scaling.md), so every multi-key script stays inside one Redis
//! Cluster slot. `{T}` below is the tool's home partition, which alone holds the breaker and the
//! disabled flag:
//!
//! | key | type | what |
//! |---|---|---|
//! | `P:{T}:q:<priority>`, `P:{T}:q:<priority>:raw` | stream | ready jobs of tool T (consumer group `workers`); `:raw` is the raw lane: jobs that need raw sockets, read by raw-capable workers only |
//! | `P:{T}:job:<tenant>/<cid>` | hash | one job: the request, state, times, attempt, fence, result (see below) |
//! | `P:{T}:ev:<tenant>/<cid>` | stream | the job's events, ids `0-<n>` (SSE position); **created lazily** (below) |
//! | `P:{T}:scheduled` | zset | jobs waiting for a time (retry back-off, delay, breaker) |
//! | `P:{T}:leases` | zset | running jobs, score = lease expiry (ms) |
//! | `P:{T}:ends` | zset | running jobs to stop at their engagement's window end: member = `<fence>:<ref>`, score = the end (ms); swept by every worker (`window_ends.lua`) |
//! | `P:{T}:dead` | zset | failed jobs (dead letters), score = finish time |
//! | `P:{T}:counts` | hash | jobs per state, kept by the scripts (O(1) stats), and each tenant's entries in the ready streams of each lane (`share:<tenant>`, `share:raw:<tenant>`: the fair-share window), and `group_waiting`: items in the `gwait:` lists |
//! | `P:{T}:backlog:<tenant>`, `P:{T}:backlog:raw:<tenant>` | list | a tenant's jobs over its fair-share window in the plain and the raw lane, as `<lane>|<ref>` items (`normal|…`, `high:raw|…`) |
//! | `P:{T}:running_by` | hash | running jobs per tenant (per-tenant running caps) |
//! | `P:{T}:group_running` | hash | running jobs per target group (`tgroup` of the job: politeness per target network, docs/queue.md) |
//! | `P:{T}:gwait:<group>` | list | jobs parked by the claim while their target group was at its cap, as `<lane>|<ref>` items; one goes back to its ready stream whenever a job of the group stops running |
//! | `P:{T}:breaker[:hist|:probes|:window]` | hash/list/zset | the tool's circuit breaker |
//! | `P:{T}:tally:<tenant>/<parent cid>` | hash | a big scan's chunks in this partition by state, and `hosts_done` (DESIGN §12; kept by the chunks' scripts) |
//! | `P:{T}:parents` | zset | unfinished parents of big scans living in this partition, score = next check (ms) |
//! | `P:{T}:stats:wait`, `P:{T}:stats:run` | list | newest 1000 wait / run times (ms), for percentiles |
//! | `P:{T}:stats:series` | hash | the last hour per minute: `done:<minute>` finished jobs, `depth:`/`wait95:`/`run95:` samples (dashboard charts) |
//! | `P:jobs:<tenant>` | zset | the tenant's jobs, newest first, **and** its correlation-ID index: member = cid, score = created ms × 1024 + tool number; members of expired jobs are swept |
//! | `P:tenants` | set | every tenant that submitted (walked by the listing sweeper) |
//! | `P:tools:no` | hash | tool → its number in listing scores (assigned once) |
//! | `P:workers` | zset | live workers, score = heartbeat expiry |
//! | `P:worker:<id>` | string | a worker's self-description (JSON) |
//! | `P:tools:disabled` | set | tools disabled cluster-wide |
//! | `P:mcp:session:<id>` | string | an MCP session (tenant, protocol version), idle TTL |
//! | `P:{T}:disabled` | string | present while tool T is disabled cluster-wide |
//! | `P:rl:<token name>` | hash | the token's request bucket (`tokens`, `ts`), see `ratelimit.lua` |
//! | `P:tenant:{<tenant>}` | hash | the tenant's caps as last set by the API (`max_queued`, `max_running`) |
//! | `P:{fleet}:auth` | string | the fleet's auth mode as last published by an API: `open` (no tokens file) or `tokens` |
//! | `P:{fleet}:tenants` | hash | tenant → `1` for each tenant of the tokens file as last published by an API (see `Queue::tenant_standing`) |
//! | `P:{sched}:…` | | the schedules ([`SchedKeys`]; table in `schedule/store.rs`) |
//! | `P:tenant:{<tenant>}:queued` | zset | job keys of the tenant's queued/scheduled jobs, score = stale-after ms |
//! | `P:tenant:{<tenant>}:running` | zset | job keys of the tenant's running jobs, score = stale-after ms |
//! | `P:notify`, `P:cancel` | pub/sub channels | job events; cancellation requests |
//! | `P:{eng}:…` | | engagements ([`EngKeys`]) |
//! | `P:{hook}:…` | | webhooks, all under one hash tag: see [`HookKeys`] |
//!
//! A job is named inside its tool's keyspace by its *ref*, `<tenant>/<cid>` (neither part may
//! contain `/`; [`crate::domain::JobId`] builds every form). Scripts that reach a job found in a
//! zset build its key from the tool's prefix passed in `KEYS` plus [`JOB_SEGMENT`] (or
//! [`EVENTS_SEGMENT`]) plus the ref; the segments reach Lua through the generated prelude, so
//! the key still comes from here.
//!
//! **What a queued job stores** (Engine v2): one hash — the request fields (`tool`, `tenant`,
//! `cid`, `target`, `args`, `args_raw`, `template`, `priority`, `timeout_sec`, `max_attempts`,
//! `intrusive`, `max_running`, `tgroup`), `req_hash`, `state`, `created_ms`, `ready_ms`, `evseq` — plus
//! one entry in its priority stream and one member of its tenant's listing (which is also the
//! correlation-ID index); `timeout_sec` and `max_attempts` are left out at their defaults
//! (Engine v4, `STORED_DEFAULT_*` in `domain`). Counters that a
//! queued job does not need yet (`attempt`, `deliveries`, `fence`) are absent (read as 0). No
//! event stream exists: it is created, seeded with the states the job already had, by the first
//! `progress`/`output` event or when an SSE client starts watching (`watch.lua`). Until then
//! `evseq` still counts every event, so positions never change. A watcher (SSE, long-poll, MCP
//! follow) registers in the hash (`watch` = until when, ms); only then are changes published on
//! `P:notify`.

mod programs;
mod tool;

pub use programs::{EngKeys, HookKeys, SchedKeys};
pub use tool::{OFFER_UNTIL, ToolKeys};

use crate::domain::{CorrelationId, TenantId, ToolName, Zone};

/// The consumer group every worker joins on every queue stream.
pub const GROUP: &str = "workers";

/// Key segment of a job hash inside its tool's keyspace: `P:{T}:` + this + ref.
pub const JOB_SEGMENT: &str = "job:";
/// Key segment of a job's event stream: `P:{T}:` + this + ref.
pub const EVENTS_SEGMENT: &str = "ev:";
/// Key segment of a big scan's chunk tally in one partition: `P:{T}:` + this + parent ref.
pub const TALLY_SEGMENT: &str = "tally:";
/// Key segment of a worker's inbox (jobs started on its offer, docs/queue.md "Direct start"):
/// `P:{T}:` + this + worker ID.
pub const INBOX_SEGMENT: &str = "inbox:";

pub use crate::domain::MAX_PARTITIONS;

#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    /// Partitions of the tools that set their own; others have `default_partitions`.
    partitions: std::sync::Arc<std::collections::HashMap<ToolName, u16>>,
    default_partitions: u16,
}

/// A job's name inside its tool's keyspace: `<tenant>/<cid>`.
pub fn job_ref(tenant: &TenantId, cid: &CorrelationId) -> String {
    crate::domain::job_id_ref(tenant, cid)
}

impl Keys {
    /// `prefix` must be non-empty and free of `{`, `}` and spaces (checked by the config).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            partitions: Default::default(),
            default_partitions: 1,
        }
    }

    /// The keys of a fleet: `cfg`'s prefix and default partitions, the catalog's own per tool.
    pub fn for_fleet(
        cfg: &crate::config::Config,
        catalog: Option<&crate::catalog::Catalog>,
    ) -> Self {
        Self::new(&cfg.key_prefix).with_partitions(
            catalog.map(|c| c.partitions()).unwrap_or_default(),
            cfg.queue_partitions,
        )
    }

    /// With each tool's queue split into partitions: `by_tool` for the tools that set their
    /// own, `default` for the rest. Every process of a fleet must use the same numbers.
    pub fn with_partitions(
        mut self,
        by_tool: std::collections::HashMap<ToolName, u16>,
        default: u16,
    ) -> Self {
        self.partitions = std::sync::Arc::new(by_tool);
        self.default_partitions = default.max(1);
        self
    }

    /// How many partitions `tool`'s queue has.
    pub fn partitions(&self, tool: &ToolName) -> u16 {
        self.partitions
            .get(tool)
            .copied()
            .unwrap_or(self.default_partitions)
            .clamp(1, MAX_PARTITIONS)
    }

    /// The keys of partition `p` of `tool`'s queue in `zone`. Partition 0 is the queue's home
    /// (`{T}`, or `{T@zone}` outside zone `default`): it also holds the breaker. Partition `p`
    /// of `n` is tagged `{T~k}` (`{T@zone~k}`) with the smallest `k` whose slot falls in the
    /// `(home + p) mod n`-th of `n` equal ranges of the slot space, so on a cluster whose masters
    /// hold equal ranges (as `redis-cli --cluster create` makes them) the partitions land on
    /// different masters.
    pub fn partition(&self, tool: &ToolName, zone: &Zone, p: u16) -> ToolKeys {
        let home = queue_tag(tool, zone);
        if p == 0 {
            return ToolKeys {
                base: format!("{}:{{{}}}", self.prefix, home),
            };
        }
        let n = u32::from(self.partitions(tool).max(p + 1));
        let range = |key: &str| u32::from(slot(key.as_bytes())) * n / 16384;
        let want = (range(&home) + u32::from(p)) % n;
        let tag = (1u32..)
            .map(|k| format!("{home}~{k}"))
            .find(|t| range(t) == want)
            .expect("some suffix lands in every range");
        ToolKeys {
            base: format!("{}:{{{}}}", self.prefix, tag),
        }
    }

    /// Every partition of `tool`'s queue in `zone`, home first.
    pub fn partitions_of(&self, tool: &ToolName, zone: &Zone) -> Vec<ToolKeys> {
        (0..self.partitions(tool))
            .map(|p| self.partition(tool, zone, p))
            .collect()
    }

    /// The partition a job lives in: fixed by its ref, so every process finds it.
    pub fn partition_of(&self, id: &crate::domain::JobId) -> u16 {
        let n = self.partitions(&id.tool);
        if n <= 1 {
            return 0;
        }
        crc16(id.job_ref().as_bytes()) % n
    }

    /// The partition that a target group's jobs should live in to share one running count
    /// (`crc16(group) % partitions`): the politeness cap holds per partition, so jobs of one
    /// group placed here are capped fleet-wide (docs/queue.md, "Politeness per target network").
    pub fn partition_of_group(&self, tool: &ToolName, group: &str) -> u16 {
        let n = self.partitions(tool);
        if n <= 1 {
            return 0;
        }
        crc16(group.as_bytes()) % n
    }

    /// The keys of the partition that holds `id`.
    pub fn job_keys(&self, id: &crate::domain::JobId) -> ToolKeys {
        self.partition(&id.tool, &id.zone, self.partition_of(id))
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The home partition of `tool`'s queue in zone `default`: it also holds the tool-wide
    /// switch (`disabled`) and the dashboard's series.
    pub fn tool(&self, tool: &ToolName) -> ToolKeys {
        self.partition(tool, &Zone::default(), 0)
    }

    /// The home partition of `tool`'s queue in `zone` (its breaker).
    pub fn home(&self, tool: &ToolName, zone: &Zone) -> ToolKeys {
        self.partition(tool, zone, 0)
    }

    /// The hash of a job.
    pub fn job(&self, id: &crate::domain::JobId) -> String {
        self.job_keys(id).job(&id.job_ref())
    }

    /// Tool → number (for the listing's scores; see `queue/listing.rs`).
    pub fn tool_numbers(&self) -> String {
        format!("{}:tools:no", self.prefix)
    }

    pub fn tenant_jobs(&self, tenant: &TenantId) -> String {
        format!("{}:jobs:{}", self.prefix, tenant)
    }

    /// Pattern matching every tenant's job list (admin listing).
    pub fn tenant_jobs_pattern(&self) -> String {
        format!("{}:jobs:*", self.prefix)
    }

    /// Every tenant that ever submitted (the listing sweeper walks it; a keyspace `SCAN` would
    /// see one node of a cluster only).
    pub fn tenants(&self) -> String {
        format!("{}:tenants", self.prefix)
    }

    pub fn workers(&self) -> String {
        format!("{}:workers", self.prefix)
    }

    pub fn worker(&self, id: &str) -> String {
        format!("{}:worker:{}", self.prefix, id)
    }

    pub fn notify_channel(&self) -> String {
        format!("{}:notify", self.prefix)
    }

    pub fn cancel_channel(&self) -> String {
        format!("{}:cancel", self.prefix)
    }

    pub fn rate_limit(&self, token_name: &str) -> String {
        format!("{}:rl:{}", self.prefix, token_name)
    }

    /// An MCP session of a 2025-era client (`Mcp-Session-Id`).
    pub fn mcp_session(&self, id: &str) -> String {
        format!("{}:mcp:session:{}", self.prefix, id)
    }

    /// The tenant's caps; with its queued and running sets under the tenant's hash tag.
    pub fn tenant_limits(&self, tenant: &TenantId) -> String {
        format!("{}{{{}}}", self.tenant_prefix(), tenant)
    }

    /// The tenant's waiting (queued or scheduled) jobs, by job key; see `tenant_admit.lua`.
    pub fn tenant_queued(&self, tenant: &TenantId) -> String {
        format!("{}:queued", self.tenant_limits(tenant))
    }

    /// The tenant's running jobs, by job key.
    pub fn tenant_running(&self, tenant: &TenantId) -> String {
        format!("{}:running", self.tenant_limits(tenant))
    }

    /// Start of every tenant key (`P:tenant:{<tenant>}…`).
    fn tenant_prefix(&self) -> String {
        format!("{}:tenant:", self.prefix)
    }

    /// The fleet's auth mode (`open` or `tokens`), published by the APIs.
    pub fn fleet_auth(&self) -> String {
        format!("{}:{{fleet}}:auth", self.prefix)
    }

    /// The tenants of the fleet's tokens file, published by the APIs (same hash tag as
    /// [`Keys::fleet_auth`]: both are written in one transaction).
    pub fn fleet_tenants(&self) -> String {
        format!("{}:{{fleet}}:tenants", self.prefix)
    }
}

/// The hash tag of `tool`'s queue in `zone`: `<tool>` in zone `default` (so a fleet without
/// zones keeps its keys), `<tool>@<zone>` otherwise (`@` is in neither alphabet). It is also
/// the name the tenants' listings number (`P:tools:no`).
pub fn queue_tag(tool: &ToolName, zone: &Zone) -> String {
    if zone.is_default() {
        tool.as_str().to_owned()
    } else {
        format!("{tool}@{zone}")
    }
}

/// The Redis Cluster slot of a key: CRC16 (XMODEM) of its hash tag (the part between the first
/// `{` and the next `}`, when non-empty) or of the whole key, modulo 16384.
pub fn slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let close = key[open + 1..].iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &key[open + 1..open + 1 + close])
    });
    crc16(tagged.unwrap_or(key)) % 16384
}

fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests;
