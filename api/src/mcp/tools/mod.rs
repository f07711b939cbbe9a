//! The MCP tools: one `<tool>_scan` per enabled catalog tool (so a new catalog tool appears by
//! itself), plus `job_status`, `job_result`, `job_cancel`, `job_list`, `job_diff` and the
//! schedule tools (`schedule_upsert`, `schedule_list`, `schedule_pause`, `schedule_resume`) and the
//! engagement tools (`engagement_list`, `engagement_get`). Each returns
//! `structuredContent` matching its `outputSchema` and a short text. A refusal (bad argument,
//! unknown job, conflict, full queue, open breaker, missing scope) is an [`AppError`], turned
//! into an `isError` result by the REST problem mapping in `reply`; an unknown tool is a
//! JSON-RPC error.
//!
//! | module | owns |
//! |---|---|
//! | `schema` | the tool definitions (`tools/list`) |
//! | `scan` | the scan tools |
//! | `jobs` | the job tools |
//! | `programs` | the schedule tools and `job_diff` |
//! | `engagements` | the engagement tools |
//! | `args` | reading the `arguments` object |
//! | `failure` | why a tool gave no result: a refusal (`AppError`) or a JSON-RPC error |

mod args;
mod engagements;
mod failure;
mod jobs;
mod programs;
mod scan;
mod schema;

use scanq::domain::ToolName;
use serde_json::{Value, json};

use super::protocol::RpcError;
use super::{Ctx, reply};
use failure::{Failure, Outcome};
use schema::SCAN_SUFFIX;
pub use schema::list;

/// Handles `tools/call`: the tool's result, or (for task-augmented scans) the task handle.
pub async fn call(ctx: &mut Ctx, params: &Value) -> Result<Value, RpcError> {
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("`name` is required"))?;
    let as_task = params.get("task").is_some() && ctx.era.handshake_tasks();
    if let Some(tool) = scan_tool(ctx, name) {
        return match scan::call(ctx, &tool, params, as_task).await {
            Ok(v) => Ok(v),
            // A task-augmented call must answer with a task; a request that never became a
            // job is refused as invalid params, carrying the same problem document.
            Err(Failure::Refused(e)) if as_task => Err(reply::rpc_refusal(&e)),
            Err(failure) => answer(Err(failure)),
        };
    }
    if as_task {
        return Err(RpcError::invalid_params(format!(
            "tool `{name}` does not support task execution (execution.taskSupport is forbidden)"
        )));
    }
    let outcome = match name {
        "job_status" => jobs::status(ctx, params).await,
        "job_result" => jobs::result(ctx, params).await,
        "job_cancel" => jobs::cancel(ctx, params).await,
        "job_list" => jobs::list(ctx, params).await,
        "job_diff" => programs::diff(ctx, params).await,
        "schedule_upsert" => programs::upsert(ctx, params).await,
        "schedule_list" => programs::list(ctx, params).await,
        "schedule_pause" => programs::set_paused(ctx, params, true).await,
        "schedule_resume" => programs::set_paused(ctx, params, false).await,
        "engagement_list" => engagements::list(ctx, params).await,
        "engagement_get" => engagements::get(ctx, params).await,
        _ => {
            return Err(RpcError::invalid_params(format!("unknown tool `{name}`"))
                .with_data(json!({"hint": "tools/list names the tools"})));
        }
    };
    answer(outcome)
}

/// The enabled catalog tool a `<tool>_scan` name stands for.
fn scan_tool(ctx: &Ctx, name: &str) -> Option<ToolName> {
    let tool = ToolName::parse(name.strip_suffix(SCAN_SUFFIX)?).ok()?;
    let enabled = ctx
        .state
        .live()
        .catalog
        .get(&tool)
        .is_some_and(|s| s.enabled);
    enabled.then_some(tool)
}

fn answer(outcome: Outcome) -> Result<Value, RpcError> {
    match outcome {
        Ok(v) => Ok(v),
        Err(Failure::Refused(e)) => Ok(reply::refusal(&e)),
        Err(Failure::Rpc(e)) => Err(e),
    }
}
