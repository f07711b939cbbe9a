//! The Lua scripts that change queue state, one file each under `lua/` (each opens with its
//! `KEYS / ARGV / Returns` header), and their typed Rust wrappers. Every script is built as
//! *prelude + common.lua + body*: the prelude is generated here from [`JobState`] so the scripts
//! use the same state strings as Rust without retyping them.
//!
//! Scripts run with `EVALSHA` (falling back to `EVAL` once per Redis restart); `load_all` loads
//! them up front so readiness can report it.

mod limits;
mod reply;

use redis::aio::ConnectionLike;
use redis::{RedisResult, Script, Value};

use crate::domain::{JobState, Outcome, Priority, Verdict};
use crate::keys::{GROUP, ToolKeys};

pub use limits::{AdmitOutcome, LimitScripts, Rate, RateDecision, TenantCaps};
pub use reply::{
    CancelOutcome, Claimed, ClaimedJob, CompleteStatus, Completed, EnqueueOutcome, ReapReport,
    RenewStatus, RetryOutcome,
};

const COMMON: &str = include_str!("lua/common.lua");

fn build(body: &str) -> Script {
    Script::new(&source(body, ""))
}

/// Scripts that also move the tool's circuit breaker get its Lua library after the helpers.
fn build_with_breaker(body: &str) -> Script {
    Script::new(&source(body, crate::breaker::LIB_LUA))
}

/// The generated prelude: `S` (job states), `K` (key segments of a job inside its tool's
/// keyspace), `Q` (settings a script fills from its ARGV). Nothing here is retyped in Lua.
fn prelude() -> String {
    let mut p = String::from("local S = {");
    for s in JobState::ALL {
        p.push_str(&format!("{0} = '{0}', ", s.as_str()));
    }
    p.push_str("}\n");
    p.push_str(&format!(
        "local K = {{ job = '{}', ev = '{}' }}\nlocal Q = {{ maxev = 1000, channel = '' }}\n",
        crate::keys::JOB_SEGMENT,
        crate::keys::EVENTS_SEGMENT
    ));
    p
}

fn source(body: &str, lib: &str) -> String {
    format!("{}{COMMON}\n{lib}\n{body}", prelude())
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
    renew: Script,
    complete: Script,
    reap: Script,
    cancel: Script,
    retry: Script,
    event: Script,
    watch: Script,
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
            renew: build(include_str!("lua/renew.lua")),
            complete: build_with_breaker(include_str!("lua/complete.lua")),
            reap: build(include_str!("lua/reap.lua")),
            cancel: build(include_str!("lua/cancel.lua")),
            retry: build(include_str!("lua/retry.lua")),
            event: build(include_str!("lua/event.lua")),
            watch: build(include_str!("lua/watch.lua")),
        }
    }

    fn all(&self) -> [&Script; 9] {
        [
            &self.watch,
            &self.enqueue,
            &self.claim,
            &self.renew,
            &self.complete,
            &self.reap,
            &self.cancel,
            &self.retry,
            &self.event,
        ]
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

    #[allow(clippy::too_many_arguments)]
    pub async fn enqueue(
        &self,
        con: &mut impl ConnectionLike,
        tk: &ToolKeys,
        set: &ScriptSettings,
        job_ref: &str,
        request_hash: &str,
        priority: Priority,
        delay_ms: u64,
        fields: &[(&str, String)],
    ) -> RedisResult<EnqueueOutcome> {
        let v: Value = self
            .enqueue_invocation(tk, set, job_ref, request_hash, priority, delay_ms, fields)
            .invoke_async(con)
            .await?;
        reply::enqueue(v)
    }

    /// The enqueue call, for a caller that pipelines it with its own commands.
    #[allow(clippy::too_many_arguments)]
    pub fn enqueue_invocation<'a>(
        &'a self,
        tk: &ToolKeys,
        set: &ScriptSettings,
        job_ref: &str,
        request_hash: &str,
        priority: Priority,
        delay_ms: u64,
        fields: &[(&str, String)],
    ) -> redis::ScriptInvocation<'a> {
        let mut inv = self.enqueue.prepare_invoke();
        inv.key(tk.job(job_ref))
            .key(tk.stream(priority))
            .key(tk.scheduled())
            .key(tk.counts())
            .key(tk.backlog_prefix())
            .arg(job_ref)
            .arg(request_hash)
            .arg(set.max_queue_len)
            .arg(set.job_ttl_ms)
            .arg(delay_ms)
            .arg(set.fair_window)
            .arg(priority.as_str());
        for (k, v) in fields {
            inv.arg(*k).arg(v);
        }
        inv
    }

    /// Decodes the enqueue reply of a pipeline.
    pub fn enqueue_reply(v: Value) -> RedisResult<EnqueueOutcome> {
        reply::enqueue(v)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn claim(
        &self,
        con: &mut impl ConnectionLike,
        tk: &ToolKeys,
        set: &ScriptSettings,
        consumer: &str,
        want: usize,
        round: u64,
        tool: &str,
        breaker: BreakerArgs<'_>,
    ) -> RedisResult<Claimed> {
        let mut inv = self.claim.prepare_invoke();
        for s in tk.streams() {
            inv.key(s);
        }
        inv.key(tk.leases())
            .key(tk.counts())
            .key(tk.job_prefix())
            .key(tk.wait_samples())
            .key(tk.scheduled());
        let bk = tk.breaker_keys();
        inv.key(bk.state)
            .key(bk.hist)
            .key(bk.probes)
            .key(bk.window)
            .key(tk.disabled())
            .key(tk.counts())
            .key(tk.backlog_prefix())
            .key(tk.running_by_tenant())
            .arg(GROUP)
            .arg(consumer)
            .arg(want)
            .arg(set.lease_ms)
            .arg(round)
            .arg(set.max_events)
            .arg(&set.notify_channel)
            .arg(tool)
            .arg(breaker.settings_json)
            .arg(breaker.held_error_json)
            .arg(set.fair_window);
        let v: Value = inv.invoke_async(con).await?;
        reply::claimed(v)
    }

    fn renew_invocation<'a>(
        &'a self,
        tk: &ToolKeys,
        set: &ScriptSettings,
        jobs: &[(String, u64)],
    ) -> redis::ScriptInvocation<'a> {
        let mut inv = self.renew.prepare_invoke();
        inv.key(tk.leases()).key(tk.job_prefix()).arg(set.lease_ms);
        for (r, fence) in jobs {
            inv.arg(r).arg(*fence);
        }
        inv
    }

    pub async fn renew(
        &self,
        con: &mut impl ConnectionLike,
        tk: &ToolKeys,
        set: &ScriptSettings,
        jobs: &[(String, u64)],
    ) -> RedisResult<Vec<RenewStatus>> {
        let v: Vec<String> = self
            .renew_invocation(tk, set, jobs)
            .invoke_async(con)
            .await?;
        reply::renewed(&v, jobs.len())
    }

    /// Renews the jobs of several tools in one round trip (one pipelined `EVALSHA` per tool;
    /// after a Redis restart the scripts are loaded once and the pipeline is sent again).
    pub async fn renew_all(
        &self,
        con: &mut impl ConnectionLike,
        set: &ScriptSettings,
        per_tool: &[(ToolKeys, Vec<(String, u64)>)],
    ) -> RedisResult<Vec<Vec<RenewStatus>>> {
        let mut pipe = redis::pipe();
        for (tk, jobs) in per_tool {
            pipe.invoke_script(&self.renew_invocation(tk, set, jobs));
        }
        let replies: Vec<Vec<String>> = match pipe.query_async(con).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                self.load_all(con).await?;
                pipe.query_async(con).await?
            }
            other => other?,
        };
        replies
            .iter()
            .zip(per_tool)
            .map(|(v, (_, jobs))| reply::renewed(v, jobs.len()))
            .collect()
    }

    pub fn complete_invocation<'a>(
        &'a self,
        tk: &ToolKeys,
        set: &ScriptSettings,
        tool: &str,
        breaker_settings_json: &str,
        worker_id: &str,
        batch: &[Completion],
    ) -> redis::ScriptInvocation<'a> {
        let mut inv = self.complete.prepare_invoke();
        inv.key(tk.leases())
            .key(tk.counts())
            .key(tk.scheduled())
            .key(tk.dead())
            .key(tk.job_prefix());
        for s in tk.streams() {
            inv.key(s);
        }
        let bk = tk.breaker_keys();
        inv.key(tk.run_samples())
            .key(bk.state)
            .key(bk.hist)
            .key(bk.probes)
            .key(bk.window)
            .key(tk.counts())
            .key(tk.backlog_prefix())
            .key(tk.running_by_tenant())
            .arg(set.result_ttl_ms)
            .arg(set.dead_ttl_ms)
            .arg(set.max_events)
            .arg(&set.notify_channel)
            .arg(tool)
            .arg(breaker_settings_json)
            .arg(worker_id);
        for c in batch {
            inv.arg(&c.job_ref)
                .arg(c.fence)
                .arg(c.outcome.as_str())
                .arg(&c.result_json)
                .arg(&c.error_json)
                .arg(c.delay_ms)
                .arg(c.verdict.as_str())
                .arg(&c.breaker_reason);
        }
        inv
    }

    /// Decodes the reply of [`Scripts::complete_invocation`] for a batch of `n` jobs.
    pub fn complete_reply(v: Value, n: usize) -> RedisResult<Completed> {
        reply::completed(v, n)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn complete(
        &self,
        con: &mut impl ConnectionLike,
        tk: &ToolKeys,
        set: &ScriptSettings,
        tool: &str,
        breaker_settings_json: &str,
        worker_id: &str,
        batch: &[Completion],
    ) -> RedisResult<Completed> {
        let v: Value = self
            .complete_invocation(tk, set, tool, breaker_settings_json, worker_id, batch)
            .invoke_async(con)
            .await?;
        reply::completed(v, batch.len())
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn reap(
        &self,
        con: &mut impl ConnectionLike,
        tk: &ToolKeys,
        set: &ScriptSettings,
        tool: &str,
        limit: usize,
        lost_error_json: &str,
        cancelled_error_json: &str,
    ) -> RedisResult<ReapReport> {
        let mut inv = self.reap.prepare_invoke();
        inv.key(tk.scheduled())
            .key(tk.leases())
            .key(tk.counts())
            .key(tk.dead())
            .key(tk.job_prefix());
        for s in tk.streams() {
            inv.key(s);
        }
        inv.key(tk.counts());
        inv.key(tk.backlog_prefix()).key(tk.running_by_tenant());
        inv.arg(limit)
            .arg(set.max_deliveries)
            .arg(set.retry_base_ms)
            .arg(set.retry_max_ms)
            .arg(set.result_ttl_ms)
            .arg(set.dead_ttl_ms)
            .arg(set.max_events)
            .arg(&set.notify_channel)
            .arg(tool)
            .arg(fastrand::f64())
            .arg(lost_error_json)
            .arg(cancelled_error_json);
        let v: Value = inv.invoke_async(con).await?;
        reply::reaped(v)
    }

    pub async fn cancel(
        &self,
        con: &mut impl ConnectionLike,
        tk: &ToolKeys,
        set: &ScriptSettings,
        job_ref: &str,
        tool: &str,
        cancelled_error_json: &str,
    ) -> RedisResult<CancelOutcome> {
        let v: Value = self
            .cancel
            .prepare_invoke()
            .key(tk.job_prefix())
            .key(tk.scheduled())
            .key(tk.counts())
            .arg(job_ref)
            .arg(set.result_ttl_ms)
            .arg(set.max_events)
            .arg(&set.notify_channel)
            .arg(&set.cancel_channel)
            .arg(tool)
            .arg(cancelled_error_json)
            .invoke_async(con)
            .await?;
        reply::cancelled(v)
    }

    pub async fn retry(
        &self,
        con: &mut impl ConnectionLike,
        tk: &ToolKeys,
        set: &ScriptSettings,
        job_ref: &str,
        tool: &str,
    ) -> RedisResult<RetryOutcome> {
        let mut inv = self.retry.prepare_invoke();
        inv.key(tk.job_prefix()).key(tk.dead()).key(tk.counts());
        for s in tk.streams() {
            inv.key(s);
        }
        inv.key(tk.counts());
        let v: Value = inv
            .arg(job_ref)
            .arg(set.job_ttl_ms)
            .arg(set.max_events)
            .arg(&set.notify_channel)
            .arg(tool)
            .invoke_async(con)
            .await?;
        reply::retried(v)
    }

    /// Appends a progress or output event for a running attempt; `Ok(None)` when the attempt
    /// is no longer current (fenced out).
    #[allow(clippy::too_many_arguments)]
    pub async fn event(
        &self,
        con: &mut impl ConnectionLike,
        tk: &ToolKeys,
        set: &ScriptSettings,
        job_ref: &str,
        fence: u64,
        kind: &str,
        data_json: &str,
        progress_json: &str,
        tool: &str,
    ) -> RedisResult<Option<u64>> {
        let pos: u64 = self
            .event
            .prepare_invoke()
            .key(tk.job_prefix())
            .arg(job_ref)
            .arg(fence)
            .arg(kind)
            .arg(data_json)
            .arg(set.max_events)
            .arg(&set.notify_channel)
            .arg(tool)
            .arg(progress_json)
            .invoke_async(con)
            .await?;
        Ok((pos > 0).then_some(pos))
    }

    /// Registers a watcher for `lifetime_ms` and returns the job hash (empty when it is gone).
    pub async fn watch(
        &self,
        con: &mut impl ConnectionLike,
        tk: &ToolKeys,
        job_ref: &str,
        tool: &str,
        lifetime_ms: u64,
        mode: WatchMode,
    ) -> RedisResult<std::collections::HashMap<String, String>> {
        self.watch
            .prepare_invoke()
            .key(tk.job_prefix())
            .arg(job_ref)
            .arg(tool)
            .arg(lifetime_ms)
            .arg(match mode {
                WatchMode::Notify => "notify",
                WatchMode::Stream => "stream",
            })
            .invoke_async(con)
            .await
    }
}
