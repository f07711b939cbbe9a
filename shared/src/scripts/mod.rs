//! The Lua scripts that change queue state, one file each under `lua/` (each opens with its
//! `KEYS / ARGV / Returns` header), and their typed Rust wrappers. Every script is built as
//! *prelude + the helpers of common.lua it uses + body* (`assemble`): the prelude is generated here from [`JobState`] so the scripts
//! use the same state strings as Rust without retyping them.
//!
//! This is the one registry of the product's Lua: the job scripts, the tenant limits
//! (`limits`), webhooks (`hook_calls`, `lua/hook_*.lua`), schedules (`sched_calls`,
//! `lua/sched_*.lua`) and the breaker's scripts. Every key a script touches is declared in
//! `KEYS`. Scripts run with `EVALSHA` (falling back to `EVAL` once per Redis restart);
//! `load_all` loads every one up front and readiness (`/readyz`) checks every one.

mod assemble;
mod hook_calls;
mod job_calls;
mod limits;
mod parent_calls;
mod reply;
mod sched_calls;
mod worker_calls;

use redis::aio::ConnectionLike;
use redis::{RedisResult, Script};

use crate::domain::{JobState, Outcome, Verdict};

pub use hook_calls::{Finish, HookClaim, HookScripts, InFlight, PutOutcome};
pub use job_calls::Listed;
pub use limits::{AdmitOutcome, LimitScripts, Rate, RateDecision, TenantCaps};
pub use parent_calls::{ChunkEnqueue, Settlement};
pub use reply::{
    CancelOutcome, Claimed, ClaimedJob, CompleteStatus, Completed, DecideOutcome, EnqueueOutcome,
    HomeBreaker, ReapReport, RenewStatus, RetryOutcome, inbox_job,
};
pub use sched_calls::{SchedClaim, SchedScripts};

const COMMON: &str = include_str!("lua/common.lua");

fn build(body: &str) -> Script {
    Script::new(&source(body, ""))
}

/// Scripts that also move the tool's circuit breaker get its Lua library after the helpers.
fn build_with_breaker(body: &str) -> Script {
    Script::new(&source(body, crate::breaker::LIB_LUA))
}

/// The generated prelude: `S` (job states), `K` (key segments of a job inside its tool's
/// keyspace), `Q` (settings a script fills from its ARGV), `D` (values a job hash leaves out at
/// their defaults). Nothing here is retyped in Lua.
fn prelude() -> String {
    let mut p = String::from("local S = {");
    for s in JobState::ALL {
        p.push_str(&format!("{0} = '{0}', ", s.as_str()));
    }
    p.push_str("}\n");
    p.push_str(&format!(
        "local K = {{ job = '{}', ev = '{}', tally = '{}', inbox = '{}' }}\nlocal Q = {{ maxev = 1000, channel = '' }}\n",
        crate::keys::JOB_SEGMENT,
        crate::keys::EVENTS_SEGMENT,
        crate::keys::TALLY_SEGMENT,
        crate::keys::INBOX_SEGMENT
    ));
    // D: the values a job hash leaves out at their defaults.
    p.push_str(&format!(
        "local D = {{ max_attempts = '{}', timeout_sec = '{}' }}\n",
        crate::domain::STORED_DEFAULT_MAX_ATTEMPTS,
        crate::domain::STORED_DEFAULT_TIMEOUT_SEC
    ));
    p
}

/// The prelude, then the helpers of `common.lua` and `lib` that `body` uses ([`assemble`]).
fn source(body: &str, lib: &str) -> String {
    assemble::assemble(&prelude(), &[COMMON, lib], body)
}

/// Settings the scripts need besides keys.
#[derive(Debug, Clone)]
pub struct ScriptSettings {
    pub notify_channel: String,
    pub cancel_channel: String,
    pub max_events: u64,
    pub lease_ms: u64,
    pub result_ttl_ms: u64,
    pub dead_ttl_ms: u64,
    pub job_ttl_ms: u64,
    pub max_queue_len: u64,
    pub max_deliveries: u32,
    /// Ready-stream entries per tenant and tool before further jobs wait in the tenant's backlog.
    pub fair_window: u64,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
}

/// One outcome reported by a worker (see `complete.lua`).
#[derive(Debug, Clone)]
pub struct Completion {
    pub job_ref: String,
    pub fence: u64,
    pub outcome: Outcome,
    pub result_json: String,
    pub error_json: String,
    pub delay_ms: u64,
    /// What the breaker hears.
    pub verdict: Verdict,
    /// Why, for a failure (shown in the breaker's last errors).
    pub breaker_reason: String,
}

/// How a watcher registers with [`Scripts::watch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchMode {
    /// Publish the job's changes (long-poll, MCP follow).
    Notify,
    /// Also store its events from now on (SSE), creating the event stream if needed.
    Stream,
}

/// The tool's breaker as the claim and completion scripts need it.
#[derive(Debug, Clone, Copy)]
pub struct BreakerArgs<'a> {
    pub settings_json: &'a str,
    /// Stored as the error of jobs held back while the breaker is open.
    pub held_error_json: &'a str,
}

#[derive(Debug)]
pub struct Scripts {
    enqueue: Script,
    claim: Script,
    offer: Script,
    renew: Script,
    complete: Script,
    reap: Script,
    cancel: Script,
    retry: Script,
    decide: Script,
    event: Script,
    watch: Script,
    withdraw: Script,
    parent: Script,
    window_ends: Script,
    listing_drop: Script,
    /// The rest of the registry: every other script the product sends (tenant limits,
    /// webhooks, schedules, the breaker), so start-up loads and readiness checks them all.
    limits: LimitScripts,
    hooks: HookScripts,
    sched: SchedScripts,
    breaker: [Script; 4],
}

impl Default for Scripts {
    fn default() -> Self {
        Self::new()
    }
}

impl Scripts {
    pub fn new() -> Self {
        Self {
            enqueue: build(include_str!("lua/enqueue.lua")),
            claim: build_with_breaker(include_str!("lua/claim.lua")),
            offer: build(include_str!("lua/offer.lua")),
            renew: build(include_str!("lua/renew.lua")),
            complete: build_with_breaker(include_str!("lua/complete.lua")),
            reap: build(include_str!("lua/reap.lua")),
            cancel: build(include_str!("lua/cancel.lua")),
            retry: build(include_str!("lua/retry.lua")),
            decide: build(include_str!("lua/decide.lua")),
            event: build(include_str!("lua/event.lua")),
            watch: build(include_str!("lua/watch.lua")),
            withdraw: build(include_str!("lua/withdraw.lua")),
            parent: build(include_str!("lua/parent.lua")),
            window_ends: build(include_str!("lua/window_ends.lua")),
            listing_drop: build(include_str!("lua/listing_drop.lua")),
            limits: LimitScripts::new(),
            hooks: HookScripts::new(),
            sched: SchedScripts::new(),
            breaker: [
                crate::breaker::ADMIT_LUA,
                crate::breaker::RECORD_LUA,
                crate::breaker::FORCE_LUA,
                crate::breaker::GET_LUA,
            ]
            .map(Script::new),
        }
    }

    /// Every script of the registry.
    fn all(&self) -> Vec<&Script> {
        let mut all = vec![
            &self.withdraw,
            &self.parent,
            &self.watch,
            &self.enqueue,
            &self.claim,
            &self.offer,
            &self.renew,
            &self.complete,
            &self.reap,
            &self.cancel,
            &self.retry,
            &self.decide,
            &self.event,
            &self.window_ends,
            &self.listing_drop,
        ];
        all.extend(self.limits.all());
        all.extend(self.hooks.all());
        all.extend(self.sched.all());
        all.extend(self.breaker.iter());
        all
    }

    /// Loads every script into Redis's script cache.
    pub async fn load_all(&self, con: &mut impl ConnectionLike) -> RedisResult<()> {
        for s in self.all() {
            s.prepare_invoke().load_async(con).await?;
        }
        Ok(())
    }

    /// Whether every script is in Redis's script cache.
    pub async fn loaded(&self, con: &mut impl ConnectionLike) -> RedisResult<bool> {
        let mut cmd = redis::cmd("SCRIPT");
        cmd.arg("EXISTS");
        for s in self.all() {
            cmd.arg(s.get_hash());
        }
        let found: Vec<i64> = cmd.query_async(con).await?;
        Ok(found.iter().all(|f| *f == 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `lua/*.lua` file (but the shared `common.lua`) is a script of the registry, and so
    /// is each of the breaker's: a script added beside the registry would not be loaded at start
    /// nor checked by readiness.
    #[test]
    fn the_registry_holds_every_script() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/scripts/lua");
        let files = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.ends_with(".lua") && name != "common.lua"
            })
            .count();
        let scripts = Scripts::new();
        let hashes: std::collections::HashSet<&str> =
            scripts.all().iter().map(|s| s.get_hash()).collect();
        assert_eq!(
            hashes.len(),
            files + 4,
            "one distinct script per file, plus the breaker's four"
        );
    }
}
