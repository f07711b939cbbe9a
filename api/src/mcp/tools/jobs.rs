//! The job tools: `job_status` (with bounded waiting), `job_result` (one page at a time),
//! `job_cancel` and `job_list`, each within the caller's tenant and behind its REST scope.

use std::time::Duration;

use scanq::domain::{JobState, ToolName};
use scanq::request::fields;
use scanq::validate::ValidationError;
use serde_json::{Value, json};

use super::args;
use super::failure::Outcome;
use crate::auth::Scope;
use crate::error::AppError;
use crate::mcp::view::{self, View};
use crate::mcp::{Ctx, follow, reply};

const VIEW_HINT: &str = "parsed, stdout or stderr";
const TOOL_HINT: &str = "a catalog tool name";
const CURSOR_HINT: &str = "the next_cursor of the previous page";

/// `job_status`: the job view, after waiting up to `wait_sec` for the job to finish.
pub(super) async fn status(ctx: &mut Ctx, params: &Value) -> Outcome {
    ctx.require(Scope::Read)?;
    let args = args::arguments(params, &["correlation_id", "wait_sec"])?;
    let cid = args::correlation_id(args)?;
    let wait = args::wait_sec(args)?;
    let (tool, _) = ctx
        .state
        .queue()
        .locate(&ctx.caller.tenant, &cid)
        .await?
        .ok_or(AppError::NotFound)?;
    let doc = follow::follow(ctx, &tool, &cid, Duration::from_secs(wait))
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(reply::tool_result(
        view::job_view(&doc),
        view::job_text(&doc),
        false,
    ))
}

/// `job_result`: one page of a job's result.
pub(super) async fn result(ctx: &mut Ctx, params: &Value) -> Outcome {
    ctx.require(Scope::Read)?;
    let args = args::arguments(params, &["correlation_id", "view", "page"])?;
    let cid = args::correlation_id(args)?;
    let page = fields::uint(args, "page", 1, 1_000_000)?.unwrap_or(1) as usize;
    let view = match fields::string(args, "view", VIEW_HINT)? {
        None => None,
        Some(v) => Some(View::parse(v).ok_or_else(|| {
            ValidationError::new("view", format!("`{v}` is not a view"), VIEW_HINT)
        })?),
    };
    let (_, doc) = ctx
        .state
        .queue()
        .get(&ctx.caller.tenant, &cid)
        .await?
        .ok_or(AppError::NotFound)?;
    let (structured, text) = view::result_page(&doc, view, page)?;
    Ok(reply::tool_result(structured, text, false))
}

/// `job_cancel`: cancels a queued, scheduled or running job.
pub(super) async fn cancel(ctx: &mut Ctx, params: &Value) -> Outcome {
    ctx.require(Scope::Cancel)?;
    let args = args::arguments(params, &["correlation_id"])?;
    let cid = args::correlation_id(args)?;
    let (out, doc) = match crate::actions::cancel(&ctx.state, &ctx.caller, &cid).await {
        Ok(r) => r,
        Err(e) if e.is_unavailable() => return Err(e.into()),
        Err(e) => return Err(AppError::from_cancel(e).into()),
    };
    let outcome = crate::actions::cancel_outcome(&out);
    let doc = doc.ok_or(AppError::NotFound)?;
    let mut structured = view::job_view(&doc);
    structured["outcome"] = json!(outcome);
    let text = format!("{}: {}.", outcome.replace('_', " "), view::job_line(&doc));
    Ok(reply::tool_result(structured, text, false))
}

/// `job_list`: the caller's jobs, newest first, filtered and paginated.
pub(super) async fn list(ctx: &mut Ctx, params: &Value) -> Outcome {
    ctx.require(Scope::Read)?;
    let args = args::arguments(params, &["state", "tool", "limit", "cursor"])?;
    let state = match fields::string(args, "state", JobState::ACCEPTED)? {
        None => None,
        Some(s) => Some(
            s.parse::<JobState>()
                .map_err(|e| ValidationError::new("state", e.to_string(), JobState::ACCEPTED))?,
        ),
    };
    let tool = match fields::string(args, "tool", TOOL_HINT)? {
        None => None,
        Some(t) => {
            Some(ToolName::parse(t).map_err(|e| ValidationError::new("tool", e.0, TOOL_HINT))?)
        }
    };
    let limit = fields::uint(args, "limit", 1, 100)?.unwrap_or(20) as usize;
    let cursor = match fields::string(args, "cursor", CURSOR_HINT)? {
        None => None,
        Some(c) => Some(c.parse::<u64>().map_err(|_| {
            ValidationError::new("cursor", "is not a cursor this server made", CURSOR_HINT)
        })?),
    };
    // Summaries (DESIGN §15): no result is read for a list.
    let page = ctx
        .state
        .queue()
        .list(
            &ctx.caller.tenant,
            state,
            tool.as_ref(),
            limit,
            cursor,
            false,
        )
        .await?;
    let (jobs, next) = (page.jobs, page.next_cursor);
    let mut text = format!("{} job(s)", jobs.len());
    if next.is_some() {
        text.push_str(" (more: pass next_cursor as cursor)");
    }
    text.push_str(":\n");
    for d in &jobs {
        text.push_str(&view::job_line(d));
        text.push('\n');
    }
    let structured = json!({
        "jobs": jobs.iter().map(view::job_view).collect::<Vec<_>>(),
        "next_cursor": next.map(|n| n.to_string()),
    });
    Ok(reply::tool_result(structured, text, false))
}
