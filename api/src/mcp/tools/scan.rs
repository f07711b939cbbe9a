//! The `<tool>_scan` tools: the call's arguments become a REST submit body, checked by
//! `JobSpec::from_json` and enqueued by the one submit path (`crate::submit`), so a scan
//! started here is refused or accepted exactly as `POST /v1/jobs` would (a `zone` that does
//! not hold the target included: the same 422, as a tool error naming `zone`). `ports` (for tools
//! with a port-list flag) and `wait_sec` are the only MCP-specific arguments. A target over the
//! tool's `max_hosts` (or over `chunk_hosts`) is a big scan: the call answers with the parent
//! job, whose task follows the parent (DESIGN §12).

use std::time::Duration;

use scanq::domain::{CorrelationId, ToolName};
use scanq::request::{JobSpec, fields};
use scanq::validate::{ArgContext, ValidationError};
use serde_json::{Map, Value, json};

use super::args;
use super::failure::{Failure, Outcome};
use super::schema::port_flag;
use crate::auth::Scope;
use crate::error::AppError;
use crate::mcp::{Ctx, follow, reply, tasks};
use crate::state::AppState;

/// Arguments every scan tool takes (`ports` is added for tools with a port-list flag).
const ACCEPTED: &[&str] = &[
    "target",
    "template",
    "args",
    "timeout_sec",
    "correlation_id",
    "intrusive",
    "wait_sec",
    "chunk_hosts",
    "zone",
    "engagement",
];

/// Starts a job of `tool`; answers with its view (after up to `wait_sec`), or with a task
/// handle when the call is task-augmented (`as_task`) or the client takes modern tasks and the
/// job is still running.
pub(super) async fn call(ctx: &mut Ctx, tool: &ToolName, params: &Value, as_task: bool) -> Outcome {
    ctx.require(Scope::Submit)?;
    let live = ctx.state.live();
    // A reload may have removed the tool since the caller looked it up.
    let spec = live
        .catalog
        .get(tool)
        .ok_or_else(|| AppError::UnknownTool(tool.to_string()))?;
    let mut accepted = ACCEPTED.to_vec();
    if port_flag(spec).is_some() {
        accepted.push("ports");
    }
    let args = args::arguments(params, &accepted)?;
    let wait = args::wait_sec(args)?;
    let body = submit_body(&ctx.state, tool, args)?;
    let narrow = ctx.caller.scope(&ctx.state);
    let scope = narrow.scope(&live.targets);
    let job =
        JobSpec::from_json(&body, &narrow.policy(live.policy(), &scope)).map_err(AppError::from)?;
    // With no progress to report, the call waits as `POST /v1/jobs` with `Prefer: wait` does:
    // the job is created registered and its end comes with its document (docs/queue.md, "A
    // submit that waits"), where following it would register and read on every wake-up.
    let plain_wait = wait > 0 && !as_task && ctx.progress.is_none();
    // The same gate, caps, audit and metric as `POST /v1/jobs`.
    let doc =
        crate::actions::submit_waiting(&ctx.state, &ctx.caller, &job, plain_wait.then_some(wait))
            .await
            .map_err(Failure::from)?
            .document;
    if as_task {
        return Ok(tasks::created(&ctx.state, &doc));
    }
    let cid = CorrelationId::parse(&doc.correlation_id).expect("stored ids are valid");
    let doc = match wait {
        0 => doc,
        _ if plain_wait => doc,
        w => follow::follow(ctx, tool, &cid, Duration::from_secs(w))
            .await?
            .unwrap_or(doc),
    };
    if !doc.state.is_terminal() && ctx.era.modern_tasks() {
        return Ok(tasks::created_modern(&ctx.state, &doc));
    }
    Ok(reply::finished_or_status(&doc))
}

/// The REST submit body for a scan call: the arguments less `wait_sec`, with `ports` folded
/// into `args` as the tool's port flag.
fn submit_body(
    state: &AppState,
    tool: &ToolName,
    args: &Map<String, Value>,
) -> Result<Value, ValidationError> {
    let live = state.live();
    let spec = live.catalog.get(tool).ok_or_else(|| {
        ValidationError::new("tool", "is no longer in the catalog", "GET /v1/tools")
    })?;
    let mut body: Map<String, Value> = args
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "wait_sec" | "ports"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    body.insert("tool".into(), json!(tool.as_str()));
    if let Some(ports) = fields::string(args, "ports", "e.g. 22,80,443")? {
        let flag = port_flag(spec).expect("ports is only accepted for tools with a port flag");
        let ctx = ArgContext {
            server_allows_intrusive: live.cfg.allow_intrusive,
            request_intrusive: args.get("intrusive") == Some(&Value::Bool(true)),
        };
        spec.args
            .parse_args(&format!("{flag} {ports}"), &ctx)
            .map_err(|e| {
                ValidationError::new("ports", e.message, "e.g. 22, 1-1024 or 22,80,443")
            })?;
        let extra = fields::string(args, "args", "e.g. \"-sV\"")?.unwrap_or("");
        body.insert(
            "args".into(),
            json!(format!("{extra} {flag} {ports}").trim().to_owned()),
        );
    }
    Ok(Value::Object(body))
}
