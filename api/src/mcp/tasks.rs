//! MCP Tasks backed by the job queue: a task *is* a job, its `taskId` is the correlation ID and
//! its state lives in Redis, so any API instance answers for it and nothing is kept in memory.
//!
//! - 2025-11-25 sessions: `tools/call` with `params.task` answers `{task}` at once; `tasks/get`,
//!   `tasks/result` (waits for the end within the request's limits), `tasks/list` (tenant-scoped,
//!   paginated) and `tasks/cancel`.
//! - 2026-07-28 clients that advertise `io.modelcontextprotocol/tasks`: a scan still running
//!   when its `wait_sec` ends answers `resultType: "task"`; `tasks/get` carries the result or
//!   error once terminal; `tasks/cancel` acknowledges.
//!
//! States: queued, scheduled, running → `working`; succeeded → `completed`; failed → `failed`;
//! cancelled → `cancelled`; awaiting_approval (DESIGN §14) → `input_required` for 2026-07-28
//! clients (`working` for 2025-11-25 ones), its `statusMessage` telling the agent that a person
//! must approve the job (an agent cannot: no MCP tool approves).

use std::time::Duration;

use scanq::domain::{CorrelationId, JobDocument, JobState};
use scanq::queue::QueueError;
use serde_json::{Value, json};

use super::follow::{self, MAX_WAIT_SEC};
use super::protocol::{INVALID_PARAMS, META_RELATED_TASK, RpcError};
use super::{Ctx, reply};
use crate::auth::Scope;
use crate::state::AppState;

/// How often clients should poll `tasks/get`.
pub const POLL_INTERVAL_MS: u64 = 2000;
const LIST_PAGE: usize = 50;
/// `tasks/result` gave up waiting inside this request; the client should poll and ask again.
pub const TASK_NOT_READY: i64 = -32001;

pub fn status(state: JobState) -> &'static str {
    match state {
        JobState::Queued | JobState::Scheduled | JobState::Running | JobState::AwaitingApproval => {
            "working"
        }
        JobState::Succeeded => "completed",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
    }
}

/// A 2026-07-28 task's status: a job awaiting a person is `input_required`.
pub fn modern_status(state: JobState) -> &'static str {
    match state {
        JobState::AwaitingApproval => "input_required",
        s => status(s),
    }
}

fn status_message(doc: &JobDocument) -> String {
    let mut m = format!("job is {}", doc.state);
    if doc.state == JobState::AwaitingApproval {
        m.push_str(&format!(": {}", super::view::approval_needed(doc)));
    }
    if let (JobState::Running, Some(p)) = (doc.state, &doc.progress) {
        m.push_str(&format!(" ({:.0}%)", p.percent));
    }
    // A big scan's task is its parent: how many chunks and hosts are done.
    if let Some(chunks) = super::view::chunk_summary(doc) {
        m.push_str(&format!(": {chunks}"));
    }
    if let Some(e) = &doc.error {
        m.push_str(&format!(": {} — {}", e.message, e.recovery_suggestion));
    }
    m
}

fn last_updated(doc: &JobDocument) -> &str {
    [doc.finished_at.as_deref(), doc.started_at.as_deref()]
        .into_iter()
        .flatten()
        .chain([doc.created_at.as_str()])
        .max()
        .unwrap_or(&doc.created_at)
}

/// How long a task stays readable: a finished job's result is kept `result_ttl_sec`.
fn ttl_ms(state: &AppState) -> u64 {
    state.inner.cfg.result_ttl_sec * 1000
}

/// The 2025-11-25 `Task` object.
pub fn task(state: &AppState, doc: &JobDocument) -> Value {
    json!({
        "taskId": doc.correlation_id,
        "status": status(doc.state),
        "statusMessage": status_message(doc),
        "createdAt": doc.created_at,
        "lastUpdatedAt": last_updated(doc),
        "ttl": ttl_ms(state),
        "pollInterval": POLL_INTERVAL_MS,
    })
}

/// `CreateTaskResult` for a 2025-11-25 task-augmented `tools/call`.
pub fn created(state: &AppState, doc: &JobDocument) -> Value {
    json!({ "task": task(state, doc) })
}

/// The 2026-07-28 task fields (SEP-2663).
fn modern_task(state: &AppState, doc: &JobDocument) -> Value {
    json!({
        "taskId": doc.correlation_id,
        "status": modern_status(doc.state),
        "statusMessage": status_message(doc),
        "createdAt": doc.created_at,
        "lastUpdatedAt": last_updated(doc),
        "ttlMs": ttl_ms(state),
        "pollIntervalMs": POLL_INTERVAL_MS,
    })
}

/// `CreateTaskResult` (`resultType: "task"`) for a 2026-07-28 client with the tasks extension.
pub fn created_modern(state: &AppState, doc: &JobDocument) -> Value {
    let mut t = modern_task(state, doc);
    t["resultType"] = json!("task");
    t
}

fn task_id(params: &Value) -> Result<CorrelationId, RpcError> {
    let id = params
        .get("taskId")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("`taskId` is required"))?;
    CorrelationId::parse(id).map_err(|_| not_found(id))
}

fn not_found(id: &str) -> RpcError {
    RpcError::new(INVALID_PARAMS, format!("task `{id}` not found")).with_data(json!({"taskId": id}))
}

/// The scope check, refused as -32602 carrying the REST problem document.
fn permit(ctx: &Ctx, scope: Scope) -> Result<(), RpcError> {
    ctx.require(scope).map_err(|e| reply::rpc_refusal(&e))
}

async fn load(ctx: &Ctx, id: &CorrelationId) -> Result<JobDocument, RpcError> {
    ctx.state
        .queue()
        .get(&ctx.caller.tenant, id)
        .await?
        .map(|(_, d)| d)
        .ok_or_else(|| not_found(id.as_str()))
}

/// `tasks/get` (both eras).
pub async fn get(ctx: &mut Ctx, params: &Value) -> Result<Value, RpcError> {
    permit(ctx, Scope::Read)?;
    let id = task_id(params)?;
    let doc = load(ctx, &id).await?;
    if !ctx.era.is_modern() {
        return Ok(task(&ctx.state, &doc));
    }
    let mut t = modern_task(&ctx.state, &doc);
    match doc.state {
        JobState::Succeeded => {
            let mut r = reply::finished_or_status(&doc);
            r["resultType"] = json!("complete");
            t["result"] = r;
        }
        JobState::Failed => {
            let e = doc.error.as_ref();
            t["error"] = json!({
                "code": super::protocol::INTERNAL_ERROR,
                "message": e.map_or("the job failed".to_owned(), |e| e.message.clone()),
                "data": {
                    "error_type": e.map(|e| e.kind.as_str()),
                    "recovery_suggestion": e.map(|e| e.recovery_suggestion.clone()),
                    "correlation_id": doc.correlation_id,
                    "hint": "job_result shows the tool's output",
                },
            });
        }
        _ => {}
    }
    Ok(t)
}

/// `tasks/result` (2025-11-25): the tool result once the job is terminal, waiting for it
/// within this request (at most 50 s, below the usual client time-out).
pub async fn result(ctx: &mut Ctx, params: &Value) -> Result<Value, RpcError> {
    permit(ctx, Scope::Read)?;
    let id = task_id(params)?;
    let (tool, _) = ctx
        .state
        .queue()
        .locate(&ctx.caller.tenant, &id)
        .await?
        .ok_or_else(|| not_found(id.as_str()))?;
    let wait = Duration::from_secs(MAX_WAIT_SEC.min(ctx.state.inner.cfg.max_wait_sec));
    let doc = follow::follow(ctx, &tool, &id, wait)
        .await?
        .ok_or_else(|| not_found(id.as_str()))?;
    if !doc.state.is_terminal() {
        return Err(RpcError::new(
            TASK_NOT_READY,
            format!("task `{id}` is still working; poll tasks/get and ask for the result again"),
        )
        .with_data(json!({"taskId": id.as_str(), "pollInterval": POLL_INTERVAL_MS})));
    }
    let mut r = reply::finished_or_status(&doc);
    r["_meta"] = json!({ META_RELATED_TASK: {"taskId": id.as_str()} });
    Ok(r)
}

/// `tasks/list` (2025-11-25): the caller's tasks, newest first, `LIST_PAGE` per page.
pub async fn list(ctx: &mut Ctx, params: &Value) -> Result<Value, RpcError> {
    permit(ctx, Scope::Read)?;
    let cursor =
        match params.get("cursor") {
            None | Some(Value::Null) => None,
            Some(Value::String(c)) => Some(c.parse::<u64>().map_err(|_| {
                RpcError::invalid_params("`cursor` is not a cursor this server made")
            })?),
            Some(_) => return Err(RpcError::invalid_params("`cursor` must be a string")),
        };
    let page = ctx
        .state
        .queue()
        .list(&ctx.caller.tenant, None, None, LIST_PAGE, cursor, false)
        .await?;
    let (jobs, next) = (page.jobs, page.next_cursor);
    let tasks: Vec<Value> = jobs.iter().map(|d| task(&ctx.state, d)).collect();
    let mut out = json!({ "tasks": tasks });
    if let Some(n) = next {
        out["nextCursor"] = json!(n.to_string());
    }
    Ok(out)
}

/// `tasks/cancel` (both eras). A running job is killed by its worker; this waits a few seconds
/// for that so the answer usually says `cancelled`.
pub async fn cancel(ctx: &mut Ctx, params: &Value) -> Result<Value, RpcError> {
    permit(ctx, Scope::Cancel)?;
    let id = task_id(params)?;
    let out = crate::actions::cancel(&ctx.state, &ctx.caller, &id).await;
    match out {
        Ok(_) => {}
        Err(QueueError::NotFound) => return Err(not_found(id.as_str())),
        Err(QueueError::Final { state }) => {
            return Err(RpcError::invalid_params(format!(
                "Cannot cancel task `{id}`: it is already in a terminal status ({state})"
            )));
        }
        Err(e) => return Err(e.into()),
    }
    if ctx.era.is_modern() {
        return Ok(json!({}));
    }
    let (tool, _) = ctx
        .state
        .queue()
        .locate(&ctx.caller.tenant, &id)
        .await?
        .ok_or_else(|| not_found(id.as_str()))?;
    ctx.progress = None;
    let doc = follow::follow(ctx, &tool, &id, Duration::from_secs(5))
        .await?
        .ok_or_else(|| not_found(id.as_str()))?;
    Ok(task(&ctx.state, &doc))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn a_big_scans_task_reports_its_chunks_and_hosts() {
        let h: HashMap<String, String> = [
            ("cid", "big"),
            ("tool", "nmap"),
            ("state", "running"),
            ("created_ms", "1"),
            ("tally", r#"{"total":16,"queued":11,"scheduled":0,"running":0,"succeeded":5,"failed":0,"cancelled":0}"#),
            ("progress", r#"{"percent":31.0,"eta_sec":null,"phase":null,"hosts_done":1280,"hosts_total":4096}"#),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let doc = JobDocument::from_hash(&h).unwrap();
        assert_eq!(
            status_message(&doc),
            "job is running (31%): 5 of 16 chunks done (0 running, 11 waiting), 1280 of 4096 hosts"
        );
    }

    #[test]
    fn job_states_map_to_task_statuses() {
        let expect = [
            (JobState::Queued, "working"),
            (JobState::Scheduled, "working"),
            (JobState::Running, "working"),
            (JobState::Succeeded, "completed"),
            (JobState::Failed, "failed"),
            (JobState::Cancelled, "cancelled"),
        ];
        for (s, t) in expect {
            assert_eq!(status(s), t, "{s}");
        }
    }
}
