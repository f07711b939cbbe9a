//! The calls of the scripts that the worker's half of the queue makes: claim, lease renewal,
//! completion, reaping and live events.

use redis::aio::ConnectionLike;
use redis::{RedisResult, Value};

use super::reply::{Claimed, Completed, ReapReport, RenewStatus};
use super::{BreakerArgs, Completion, ScriptSettings, Scripts, reply};
use crate::keys::{GROUP, ToolKeys};

impl Scripts {
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
        gate: &str,
        raw_capable: bool,
        group_cap: u32,
        offered: bool,
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
            .key(tk.running_by_tenant());
        for s in tk.raw_streams() {
            inv.key(s);
        }
        inv.key(tk.group_running())
            .key(tk.group_wait_prefix())
            .key(tk.offer());
        inv.arg(GROUP)
            .arg(consumer)
            .arg(want)
            .arg(set.lease_ms)
            .arg(round)
            .arg(set.max_events)
            .arg(&set.notify_channel)
            .arg(tool)
            .arg(breaker.settings_json)
            .arg(breaker.held_error_json)
            .arg(set.fair_window)
            .arg(gate)
            .arg(if raw_capable { "1" } else { "0" })
            .arg(group_cap)
            .arg(if offered { "1" } else { "" });
        let v: Value = inv.invoke_async(con).await?;
        reply::claimed(v)
    }

    /// The invocation of `offer.lua`: worker `worker` offers itself in `tk`'s partition for a
    /// direct start, for `life_ms` (docs/queue.md "Direct start").
    pub fn offer_invocation<'a>(
        &'a self,
        tk: &ToolKeys,
        worker: &str,
        life_ms: u64,
    ) -> redis::ScriptInvocation<'a> {
        let mut inv = self.offer.prepare_invoke();
        inv.key(tk.counts())
            .key(tk.offer())
            .key(tk.inbox(worker))
            .arg(worker)
            .arg(life_ms);
        inv
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

    fn complete_invocation<'a>(
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
            .key(tk.series());
        for s in tk.raw_streams() {
            inv.key(s);
        }
        inv.key(tk.group_running()).key(tk.group_wait_prefix());
        inv.arg(set.result_ttl_ms)
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
        for s in tk.raw_streams() {
            inv.key(s);
        }
        inv.key(tk.group_running()).key(tk.group_wait_prefix());
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

    fn window_ends_invocation<'a>(
        &'a self,
        tk: &ToolKeys,
        set: &ScriptSettings,
        tool: &str,
        limit: usize,
        member: Option<&str>,
    ) -> redis::ScriptInvocation<'a> {
        let mut inv = self.window_ends.prepare_invoke();
        inv.key(tk.window_ends())
            .key(tk.job_prefix())
            .arg(&set.cancel_channel)
            .arg(limit)
            .arg(crate::domain::StopReason::WindowClosed.as_str())
            .arg(tool)
            .arg(member.unwrap_or(""));
        inv
    }

    /// Stops the running jobs of one queue whose engagement's window has ended by Redis' clock
    /// (`window_ends.lua`), or just `member` when given (`<fence>:<ref>`, the running worker's
    /// own timer). Returns the refs of the jobs asked to stop.
    pub async fn window_ends(
        &self,
        con: &mut impl ConnectionLike,
        tk: &ToolKeys,
        set: &ScriptSettings,
        tool: &str,
        limit: usize,
        member: Option<&str>,
    ) -> RedisResult<Vec<String>> {
        self.window_ends_invocation(tk, set, tool, limit, member)
            .invoke_async(con)
            .await
    }

    /// [`Scripts::window_ends`] for several queues `(keys, tool)` in one round trip (one
    /// pipelined `EVALSHA` each; after a Redis restart the scripts are loaded once and the
    /// pipeline sent again). One list of stopped refs per queue.
    pub async fn window_ends_all(
        &self,
        con: &mut impl ConnectionLike,
        set: &ScriptSettings,
        queues: &[(&ToolKeys, &str)],
        limit: usize,
    ) -> RedisResult<Vec<Vec<String>>> {
        if queues.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (tk, tool) in queues {
            pipe.invoke_script(&self.window_ends_invocation(tk, set, tool, limit, None));
        }
        match pipe.query_async(con).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                self.load_all(con).await?;
                pipe.query_async(con).await
            }
            other => other,
        }
    }
}
