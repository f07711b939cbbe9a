//! The calls of the scripts that the API's half of the queue makes: enqueue, cancel, retry, and
//! a watcher's registration.

use redis::aio::ConnectionLike;
use redis::{RedisResult, Value};

use super::reply::{CancelOutcome, DecideOutcome, EnqueueOutcome, RetryOutcome};
use super::{ScriptSettings, Scripts, WatchMode, reply};
#[cfg(doc)]
use crate::domain::CorrelationId;
use crate::domain::Priority;
use crate::keys::ToolKeys;

/// What the caller of `enqueue.lua` knows of the job's listing member (its index, written
/// before the script runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    /// Nothing (a chunk of a big scan has no member; a direct call): the script reads the job
    /// hash for idempotency and Redis' clock for a backlogged job.
    Unknown,
    /// The caller's `ZADD NX` just added the member, at `at_ms` on its clock: no job lives
    /// under the ID. `packed`: the ID as a backlog item holds it ([`CorrelationId::packed`]).
    Fresh {
        at_ms: u64,
        packed: Option<[u8; 17]>,
    },
    /// The member was there already (the job may exist); written at `at_ms` on its clock.
    Known { at_ms: u64 },
    /// The script claims the ID in the tenant's listing itself (`ZADD NX` of `cid` at `score`
    /// in `listing`), in the same round trip ([`Scripts::enqueue_listed`]): only where one
    /// node holds every key (not a cluster, where the listing lives in another slot).
    Claim {
        listing: String,
        score: u64,
        at_ms: u64,
        packed: Option<[u8; 17]>,
    },
}

impl Listed {
    /// The outcome of an enqueue that did not ask the script to claim the ID ([`Listed::Claim`]
    /// is the only one that may answer `None`).
    pub fn answered(outcome: Option<EnqueueOutcome>) -> RedisResult<EnqueueOutcome> {
        outcome.ok_or_else(|| {
            redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "enqueue: 'listed' from a script that did not claim the ID",
            ))
        })
    }
}

impl Scripts {
    /// Removes `gone` members (with the scores they were read with) from a tenant's listing,
    /// each only while its score is unchanged (`listing_drop.lua`). Returns how many went.
    pub async fn listing_drop(
        &self,
        con: &mut impl ConnectionLike,
        listing: &str,
        gone: &[(String, u64)],
    ) -> RedisResult<u64> {
        let mut inv = self.listing_drop.prepare_invoke();
        inv.key(listing);
        for (member, score) in gone {
            inv.arg(member).arg(*score);
        }
        inv.invoke_async(con).await
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
        needs_raw: bool,
        (delay_ms, hold): (u64, bool),
        fields: &[(&str, String)],
    ) -> RedisResult<EnqueueOutcome> {
        self.enqueue_listed(
            con,
            tk,
            set,
            job_ref,
            request_hash,
            (priority, needs_raw),
            (delay_ms, hold),
            Listed::Unknown,
            None,
            fields,
        )
        .await
        .and_then(Listed::answered)
    }

    /// The enqueue script, told what the caller knows of the ID's listing ([`Listed`]): with
    /// [`Listed::Fresh`] (the caller's `ZADD NX` just added the member) it skips its idempotency
    /// read (no job can live under an ID that was not listed), and a job that waits in its
    /// tenant's backlog is stamped with the caller's clock (the one of its listing score)
    /// instead of a `TIME` call; with [`Listed::Claim`] it claims the ID itself. `None` only for
    /// [`Listed::Claim`] when the listing held the ID already: nothing was written, and the
    /// caller takes the two-step path (its own `ZADD NX`, then `Listed::Known`).
    /// `direct`: the tool's name when the job may start at once on a worker's standing offer
    /// (only with [`Listed::Claim`]: docs/queue.md "Direct start").
    #[allow(clippy::too_many_arguments)]
    pub async fn enqueue_listed(
        &self,
        con: &mut impl ConnectionLike,
        tk: &ToolKeys,
        set: &ScriptSettings,
        job_ref: &str,
        request_hash: &str,
        lane: (Priority, bool),
        delay: (u64, bool),
        listed: Listed,
        direct: Option<&str>,
        fields: &[(&str, String)],
    ) -> RedisResult<Option<EnqueueOutcome>> {
        let v: Value = self
            .enqueue_invocation(
                tk,
                set,
                job_ref,
                request_hash,
                lane,
                delay,
                (listed, direct),
                fields,
            )
            .invoke_async(con)
            .await?;
        reply::enqueue_listed(v)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn enqueue_invocation<'a>(
        &'a self,
        tk: &ToolKeys,
        set: &ScriptSettings,
        job_ref: &str,
        request_hash: &str,
        (priority, needs_raw): (Priority, bool),
        (delay_ms, hold): (u64, bool),
        (listed, direct): (Listed, Option<&str>),
        fields: &[(&str, String)],
    ) -> redis::ScriptInvocation<'a> {
        // The lane: `<priority>` or `<priority>:raw` (enqueue.lua, `lanes` in common.lua).
        let lane = if needs_raw {
            format!("{}:raw", priority.as_str())
        } else {
            priority.as_str().to_owned()
        };
        let mut inv = self.enqueue.prepare_invoke();
        inv.key(tk.job(job_ref))
            .key(tk.lane_stream(priority, needs_raw))
            .key(tk.scheduled())
            .key(tk.counts())
            .key(tk.backlog_prefix());
        // A direct start needs the listing's key before its own (KEYS[6]).
        let direct = direct.filter(|_| matches!(listed, Listed::Claim { .. }));
        if let Listed::Claim { listing, .. } = &listed {
            inv.key(listing);
        }
        if direct.is_some() {
            inv.key(tk.leases())
                .key(tk.wait_samples())
                .key(tk.breaker_keys().state)
                .key(tk.disabled())
                .key(tk.offer());
        }
        inv.arg(job_ref)
            .arg(request_hash)
            .arg(set.max_queue_len)
            .arg(set.job_ttl_ms)
            .arg(delay_ms)
            .arg(set.fair_window)
            .arg(lane)
            // A job awaiting a person's approval holds no queue slot (DESIGN §14).
            .arg(if hold { "hold" } else { "" });
        match listed {
            Listed::Unknown => inv.arg(0).arg("").arg(""),
            Listed::Fresh {
                at_ms,
                packed: Some(p),
            } => inv.arg(at_ms).arg("1").arg(&p[..]),
            Listed::Fresh {
                at_ms,
                packed: None,
            } => inv.arg(at_ms).arg("1").arg(""),
            Listed::Known { at_ms } => inv.arg(at_ms).arg("").arg(""),
            Listed::Claim {
                score,
                at_ms,
                packed,
                ..
            } => {
                inv.arg(at_ms).arg(format!("list:{score}"));
                match packed {
                    Some(p) => inv.arg(&p[..]),
                    None => inv.arg(""),
                }
            }
        };
        match direct {
            Some(tool) => inv
                .arg(set.lease_ms)
                .arg(set.max_events)
                .arg(&set.notify_channel)
                .arg(tool),
            None => inv.arg("").arg("").arg("").arg(""),
        };
        for (k, v) in fields {
            inv.arg(*k).arg(v);
        }
        inv
    }

    /// Takes back a job just created (see withdraw.lua); true when it was removed.
    pub async fn withdraw(
        &self,
        con: &mut impl ConnectionLike,
        tk: &ToolKeys,
        job_ref: &str,
        request_hash: &str,
    ) -> RedisResult<bool> {
        let v: String = self
            .withdraw
            .prepare_invoke()
            .key(tk.job(job_ref))
            .key(tk.scheduled())
            .key(tk.counts())
            .arg(job_ref)
            .arg(request_hash)
            .invoke_async(con)
            .await?;
        Ok(v == "withdrawn")
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
            .key(tk.group_wait_prefix())
            .key(tk.streams().to_vec())
            .key(tk.raw_streams().to_vec())
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
        inv.key(tk.counts()).key(tk.backlog_prefix());
        for s in tk.raw_streams() {
            inv.key(s);
        }
        let v: Value = inv
            .arg(job_ref)
            .arg(set.job_ttl_ms)
            .arg(set.max_events)
            .arg(&set.notify_channel)
            .arg(tool)
            .arg(set.max_queue_len)
            .arg(set.fair_window)
            .invoke_async(con)
            .await?;
        reply::retried(v)
    }

    /// A person's decision on a job awaiting approval (see decide.lua): `fields` are the
    /// decision's, `rejected_error_json` the error a rejected job ends with.
    #[allow(clippy::too_many_arguments)]
    pub async fn decide(
        &self,
        con: &mut impl ConnectionLike,
        tk: &ToolKeys,
        set: &ScriptSettings,
        job_ref: &str,
        tool: &str,
        decision: crate::domain::Decision,
        rejected_error_json: &str,
        fields: &[(&str, String)],
    ) -> RedisResult<DecideOutcome> {
        let mut inv = self.decide.prepare_invoke();
        inv.key(tk.job_prefix())
            .key(tk.scheduled())
            .key(tk.counts());
        for s in tk.streams() {
            inv.key(s);
        }
        inv.key(tk.counts()).key(tk.backlog_prefix());
        for s in tk.raw_streams() {
            inv.key(s);
        }
        inv.arg(job_ref)
            .arg(set.job_ttl_ms)
            .arg(set.max_events)
            .arg(&set.notify_channel)
            .arg(tool)
            .arg(set.max_queue_len)
            .arg(set.fair_window)
            .arg(decision.as_str())
            .arg(set.result_ttl_ms)
            .arg(rejected_error_json);
        for (k, v) in fields {
            inv.arg(*k).arg(v);
        }
        let v: Value = inv.invoke_async(con).await?;
        reply::decided(v)
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
