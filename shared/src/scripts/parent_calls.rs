//! The calls of `parent.lua`: the parent job of a big scan (DESIGN §12; the logic that decides
//! what to write is `queue/parent.rs`).

use redis::aio::ConnectionLike;
use redis::{RedisResult, Value};

use super::{ScriptSettings, Scripts, reply};
use crate::keys::ToolKeys;

/// What a settle writes: the tally summed over partitions and what it means.
#[derive(Debug, Clone)]
pub struct Settlement<'a> {
    pub tally_json: &'a str,
    pub state: &'a str,
    pub progress_json: &'a str,
    /// For a terminal state: the merged result and, for a failure or cancel, the error.
    pub result_json: &'a str,
    pub error_json: &'a str,
    /// When the reconciler should look at the parent again while it is open.
    pub next_check_ms: u64,
}

impl Scripts {
    fn parent_call<'a>(
        &'a self,
        tk: &ToolKeys,
        set: &ScriptSettings,
        op: &str,
        job_ref: &str,
        tool: &str,
    ) -> redis::ScriptInvocation<'a> {
        let mut inv = self.parent.prepare_invoke();
        inv.key(tk.job(job_ref))
            .key(tk.open_parents())
            .key(tk.dead())
            .arg(op)
            .arg(job_ref)
            .arg(set.max_events)
            .arg(&set.notify_channel)
            .arg(tool);
        inv
    }

    /// Creates the parent's hash (idempotent per request hash, like `enqueue`).
    #[allow(clippy::too_many_arguments)]
    pub async fn parent_open(
        &self,
        con: &mut impl ConnectionLike,
        tk: &ToolKeys,
        set: &ScriptSettings,
        job_ref: &str,
        tool: &str,
        request_hash: &str,
        fields: &[(&str, String)],
    ) -> RedisResult<reply::EnqueueOutcome> {
        let mut inv = self.parent_call(tk, set, "open", job_ref, tool);
        inv.arg(request_hash).arg(set.job_ttl_ms);
        for (k, v) in fields {
            inv.arg(*k).arg(v);
        }
        let v: Value = inv.invoke_async(con).await?;
        reply::enqueue(v)
    }

    /// Writes what the chunks say of the parent; returns (old state, new state), or `None`
    /// when the parent is gone.
    pub async fn parent_settle(
        &self,
        con: &mut impl ConnectionLike,
        tk: &ToolKeys,
        set: &ScriptSettings,
        job_ref: &str,
        tool: &str,
        s: &Settlement<'_>,
    ) -> RedisResult<Option<(String, String)>> {
        let mut inv = self.parent_call(tk, set, "settle", job_ref, tool);
        inv.arg(s.tally_json)
            .arg(s.state)
            .arg(s.progress_json)
            .arg(s.result_json)
            .arg(s.error_json)
            .arg(set.result_ttl_ms)
            .arg(set.dead_ttl_ms)
            .arg(s.next_check_ms);
        let v: Vec<String> = inv.invoke_async(con).await?;
        Ok(match v.as_slice() {
            [old, new] => Some((old.clone(), new.clone())),
            _ => None,
        })
    }

    /// `cancel` (marks the parent) or `reopen` (a retry); the script's reply as strings.
    #[allow(clippy::too_many_arguments)]
    pub async fn parent_mark(
        &self,
        con: &mut impl ConnectionLike,
        tk: &ToolKeys,
        set: &ScriptSettings,
        op: &str,
        job_ref: &str,
        tool: &str,
        next_check_ms: u64,
    ) -> RedisResult<Vec<String>> {
        let mut inv = self.parent_call(tk, set, op, job_ref, tool);
        inv.arg(set.job_ttl_ms).arg(next_check_ms);
        inv.invoke_async(con).await
    }

    /// `decide`: a person's decision on a parent awaiting approval (see parent.lua); the
    /// script's reply as strings.
    #[allow(clippy::too_many_arguments)]
    pub async fn parent_decide(
        &self,
        con: &mut impl ConnectionLike,
        tk: &ToolKeys,
        set: &ScriptSettings,
        job_ref: &str,
        tool: &str,
        decision: crate::domain::Decision,
        (next_check_ms, rejected_error_json): (u64, &str),
        fields: &[(&str, String)],
    ) -> RedisResult<Vec<String>> {
        let mut inv = self.parent_call(tk, set, "decide", job_ref, tool);
        inv.arg(decision.as_str())
            .arg(next_check_ms)
            .arg(set.result_ttl_ms)
            .arg(rejected_error_json)
            .arg(set.job_ttl_ms);
        for (k, v) in fields {
            inv.arg(*k).arg(v);
        }
        inv.invoke_async(con).await
    }

    /// Enqueues chunks in one round trip (one pipelined `EVALSHA` of `enqueue.lua` each; all
    /// of one partition, so the pipeline stays in one slot); one outcome per chunk.
    pub async fn enqueue_chunks(
        &self,
        con: &mut impl ConnectionLike,
        tk: &ToolKeys,
        set: &ScriptSettings,
        chunks: &[ChunkEnqueue<'_>],
    ) -> RedisResult<Vec<reply::EnqueueOutcome>> {
        let mut pipe = redis::pipe();
        for c in chunks {
            pipe.invoke_script(&self.enqueue_invocation(
                tk,
                set,
                &c.job_ref,
                &c.request_hash,
                c.lane,
                (c.delay_ms, false),
                (super::job_calls::Listed::Unknown, None),
                c.fields,
            ));
        }
        let replies: Vec<Value> = match pipe.query_async(con).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                self.load_all(con).await?;
                pipe.query_async(con).await?
            }
            other => other?,
        };
        replies.into_iter().map(reply::enqueue).collect()
    }
}

/// One chunk for [`Scripts::enqueue_chunks`].
#[derive(Debug, Clone)]
pub struct ChunkEnqueue<'a> {
    pub job_ref: String,
    pub request_hash: String,
    pub lane: (crate::domain::Priority, bool),
    pub delay_ms: u64,
    pub fields: &'a [(&'a str, String)],
}
