//! The MCP tools, generated from the catalog: one `<tool>_scan` per catalog tool (so a new
//! catalog tool appears by itself), plus `job_status`, `job_result`, `job_cancel` and
//! `job_list`. Each returns `structuredContent` matching its `outputSchema` and a short text.
//! Bad arguments are tool results with `isError: true` naming the field and a hint, exactly as
//! the REST 422 does, so a model can correct itself; an unknown tool is a JSON-RPC error.

use std::time::Duration;

use scanq::catalog::ToolSpec;
use scanq::domain::{CorrelationId, JobState, ToolName};
use scanq::queue::QueueError;
use scanq::request::{JobSpec, RequestError};
use scanq::scripts::CancelOutcome;
use scanq::validate::{ArgContext, ValidationError, ValueType};
use serde_json::{Map, Value, json};

use super::protocol::RpcError;
use super::view::{self, View};
use super::{Ctx, follow, tasks};
use crate::auth::Scope;
use crate::error::AppError;
use crate::state::AppState;

/// Longest a tool call may wait for a job: below the ~60 s after which real clients give up.
pub const MAX_WAIT_SEC: u64 = 50;
const SCAN_SUFFIX: &str = "_scan";

/// What a call needs from the caller's token: the REST scopes (`read`, `submit`, `cancel`).
/// The auth layer only authenticates `/mcp`; each tool checks its own scope here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Submit,
    Cancel,
}

/// Whether the caller's token may make a call that needs `need`; the refusal's text otherwise.
pub fn permitted(caller: &crate::extract::Caller, need: Need) -> Result<(), String> {
    let scope = match need {
        Need::Read => Scope::Read,
        Need::Submit => Scope::Submit,
        Need::Cancel => Scope::Cancel,
    };
    if caller.can(scope) {
        Ok(())
    } else {
        tracing::info!(token = %caller.name, tenant = %caller.tenant, scope = %scope, "Refused MCP call: missing scope");
        Err(format!("token `{}` lacks the `{scope}` scope", caller.name))
    }
}

fn forbidden(detail: String) -> Value {
    refused(
        "validation_error",
        403,
        None,
        detail,
        "use a token with this scope",
    )
}

/// A `tools/call` result.
pub fn tool_result(structured: Value, text: String, is_error: bool) -> Value {
    json!({
        "content": [{"type": "text", "text": text}],
        "structuredContent": structured,
        "isError": is_error,
    })
}

/// The MCP form of a REST 422: `isError` with the field and the hint.
pub fn invalid(e: &ValidationError) -> Value {
    let structured = json!({
        "error_type": "validation_error",
        "status": 422,
        "field": e.field,
        "detail": format!("{}: {}", e.field, e.message),
        "hint": e.hint,
    });
    let text = format!(
        "Invalid `{}`: {}. Hint: {}. Fix this field and call the tool again.",
        e.field, e.message, e.hint
    );
    tool_result(structured, text, true)
}

/// A refusal that is not about one field (conflict, queue full, unknown job, Redis down).
fn refused(
    error_type: &str,
    status: u16,
    field: Option<&str>,
    detail: String,
    hint: &str,
) -> Value {
    let structured = json!({
        "error_type": error_type, "status": status, "field": field, "detail": detail, "hint": hint,
    });
    tool_result(structured, format!("{detail}. {hint}"), true)
}

fn not_found(id: &str) -> Value {
    refused(
        "not_found",
        404,
        Some("correlation_id"),
        format!("no job `{id}` is visible to you"),
        "check the correlation_id (job_list shows your jobs); results expire after a while",
    )
}

fn queue_refusal(err: QueueError) -> Result<Value, RpcError> {
    Ok(match err {
        QueueError::Conflict { state } => refused(
            "validation_error",
            409,
            Some("correlation_id"),
            format!("correlation_id already names a different request (that job is {state})"),
            "use another correlation_id, or resend exactly the same request",
        ),
        QueueError::Full { depth } => refused(
            "resource_exhausted",
            429,
            None,
            format!("the queue is full ({depth} jobs waiting)"),
            "retry in a few seconds",
        ),
        QueueError::NotFound => refused(
            "not_found",
            404,
            Some("correlation_id"),
            "no such job".into(),
            "check the correlation_id",
        ),
        QueueError::Final { state } => refused(
            "validation_error",
            409,
            Some("correlation_id"),
            format!("the job is already {state}"),
            "only queued, scheduled or running jobs can be cancelled",
        ),
        QueueError::TenantFull { queued, cap } => refused(
            "resource_exhausted",
            429,
            None,
            format!("your tenant has {queued} jobs waiting, its cap is {cap}"),
            "retry when some of them have started",
        ),
        e @ (QueueError::Redis(_) | QueueError::Pool(_)) => return Err(e.into()),
    })
}

/// A refusal of the submit gate (open breaker, disabled tool) as a tool result.
fn app_refusal(err: AppError) -> Value {
    match err {
        AppError::BreakerOpen { tool, retry_after } => refused(
            "circuit_breaker_open",
            503,
            None,
            format!("the circuit breaker of {tool} is open (the tool is failing fleet-wide)"),
            &format!("retry after {retry_after} s"),
        ),
        other => refused("unknown", 503, None, other.to_string(), "retry later"),
    }
}

fn bad(field: &str, message: impl Into<String>, hint: impl Into<String>) -> Value {
    invalid(&ValidationError::new(field, message, hint))
}

/// The arguments object, refusing fields the tool does not take.
fn arguments<'a>(params: &'a Value, allowed: &[&str]) -> Result<&'a Map<String, Value>, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    let args = match params.get("arguments") {
        None | Some(Value::Null) => EMPTY.get_or_init(Map::new),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(bad("arguments", "must be an object", "{\"target\": \"…\"}")),
    };
    if let Some(k) = args.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad(
            k,
            format!("`{k}` is not an argument of this tool"),
            format!("accepted: {}", allowed.join(", ")),
        ));
    }
    Ok(args)
}

fn uint_arg(
    args: &Map<String, Value>,
    field: &str,
    lo: u64,
    hi: u64,
) -> Result<Option<u64>, Value> {
    match args.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
            _ => Err(bad(
                field,
                format!("must be a whole number from {lo} to {hi}"),
                format!("e.g. {lo}"),
            )),
        },
    }
}

fn str_arg<'a>(
    args: &'a Map<String, Value>,
    field: &str,
    hint: &str,
) -> Result<Option<&'a str>, Value> {
    match args.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(field, "must be a string", hint)),
    }
}

fn cid_arg(args: &Map<String, Value>) -> Result<CorrelationId, Value> {
    let text = str_arg(
        args,
        "correlation_id",
        "the correlation_id a scan tool returned",
    )?
    .ok_or_else(|| {
        bad(
            "correlation_id",
            "is required",
            "the correlation_id a scan tool returned",
        )
    })?;
    CorrelationId::parse(text).map_err(|_| not_found(text))
}

/// Whether a tool takes a port list (then the submit tool offers `ports`).
fn port_flag(spec: &ToolSpec) -> Option<&str> {
    spec.args
        .flags
        .iter()
        .find(|f| matches!(f.value, ValueType::Ports { .. }))
        .map(|f| f.name.as_str())
}

fn value_hint(v: &ValueType) -> String {
    match v {
        ValueType::None => String::new(),
        ValueType::Ports { .. } => " <ports>".into(),
        ValueType::Int { min, max } => format!(" <{min}-{max}>"),
        ValueType::Duration { .. } => " <time>".into(),
        ValueType::Timing { min, max } => format!(" <{min}-{max}>"),
        ValueType::ScriptExpr => " <script categories>".into(),
        ValueType::OneOf { values } => format!(" <{}>", values.join("|")),
    }
}

fn scan_input_schema(state: &AppState, spec: &ToolSpec) -> Value {
    let flags: Vec<String> = spec
        .args
        .flags
        .iter()
        .map(|f| format!("{}{}", f.name, value_hint(&f.value)))
        .collect();
    let mut props = json!({
        "target": {"type": "string", "description": format!(
            "What to scan: an IPv4 address, an IPv4 CIDR or a hostname. Server scope: {}",
            state.inner.targets.describe())},
        "args": {"type": "string", "maxLength": spec.args.max_bytes, "description": format!(
            "Extra flags, space-separated, no shell syntax and no targets. Allowed: {}",
            flags.join(", "))},
        "timeout_sec": {"type": "integer", "minimum": 1, "maximum": spec.max_timeout_sec,
            "description": format!("Kill the tool after this long (default {}).", spec.default_timeout_sec)},
        "correlation_id": {"type": "string", "description":
            "Your handle for the job ([A-Za-z0-9._:-], 1-64 characters); sending the same request \
             with the same id again returns the existing job. Made by the server when left out."},
        "intrusive": {"type": "boolean", "description":
            "Confirm intrusive flags or scripts (the server must allow them too)."},
        "wait_sec": {"type": "integer", "minimum": 0, "maximum": MAX_WAIT_SEC, "description":
            "Wait up to this long (0-50 s) for the job to finish before answering; progress is \
             streamed meanwhile. 0 (default) answers at once."},
    });
    if !spec.templates.is_empty() {
        let names: Vec<&String> = spec.templates.keys().collect();
        let presets: Vec<String> = spec
            .templates
            .iter()
            .map(|(k, v)| format!("{k} = `{v}`"))
            .collect();
        props["template"] = json!({"type": "string", "enum": names,
            "description": format!("Argument preset: {}", presets.join("; "))});
    }
    if let Some(flag) = port_flag(spec) {
        props["ports"] = json!({"type": "string", "description": format!(
            "Ports to scan (passed as {flag}): e.g. 22, 1-1024, 22,80,443")});
    }
    json!({"type": "object", "properties": props, "required": ["target"], "additionalProperties": false})
}

fn annotations(title: &str, read_only: bool, open_world: bool) -> Value {
    json!({
        "title": title,
        "readOnlyHint": read_only,
        "destructiveHint": false,
        "idempotentHint": read_only,
        "openWorldHint": open_world,
    })
}

/// Every tool definition (`tools/list`).
pub fn list(state: &AppState) -> Vec<Value> {
    let mut tools = vec![];
    for (name, spec) in state.inner.catalog.tools().filter(|(_, s)| s.enabled) {
        let description = format!(
            "{} Starts a {name} job and returns its correlation_id at once (the scan runs in the \
             background and may take minutes). Follow it with job_status (wait_sec up to 50) and \
             read it with job_result.",
            spec.description.trim()
        );
        tools.push(json!({
            "name": format!("{name}{SCAN_SUFFIX}"),
            "title": format!("Run {name}"),
            "description": description.trim(),
            "inputSchema": scan_input_schema(state, spec),
            "outputSchema": view::job_schema(json!({
                "result": {"type": ["object", "null"], "description": "first result page (job_result's shape) once finished"},
            })),
            "annotations": annotations(&format!("Run {name}"), false, true),
            "execution": {"taskSupport": "optional"},
        }));
    }
    let id_prop =
        json!({"type": "string", "description": "the correlation_id a scan tool returned"});
    tools.push(json!({
        "name": "job_status",
        "title": "Job status",
        "description": "State, progress and timing of a job. With wait_sec (0-50) it waits that long for the job to finish, streaming progress.",
        "inputSchema": {"type": "object", "properties": {
            "correlation_id": id_prop,
            "wait_sec": {"type": "integer", "minimum": 0, "maximum": MAX_WAIT_SEC},
        }, "required": ["correlation_id"], "additionalProperties": false},
        "outputSchema": view::job_schema(json!({})),
        "annotations": annotations("Job status", true, false),
    }));
    tools.push(json!({
        "name": "job_result",
        "title": "Job result",
        "description": "A finished job's result, one page (under ~20 KB) at a time: parsed items (hosts) when the tool's output was parsed, or the raw stdout/stderr.",
        "inputSchema": {"type": "object", "properties": {
            "correlation_id": id_prop,
            "view": {"type": "string", "enum": View::NAMES, "description": "parsed (default when available), stdout or stderr"},
            "page": {"type": "integer", "minimum": 1, "description": "1-based page (default 1)"},
        }, "required": ["correlation_id"], "additionalProperties": false},
        "outputSchema": view::result_schema(),
        "annotations": annotations("Job result", true, false),
    }));
    tools.push(json!({
        "name": "job_cancel",
        "title": "Cancel job",
        "description": "Cancels a queued, scheduled or running job (a running tool is killed). Finished jobs are left as they are.",
        "inputSchema": {"type": "object", "properties": {"correlation_id": id_prop},
            "required": ["correlation_id"], "additionalProperties": false},
        "outputSchema": view::job_schema(json!({"outcome": {"type": "string", "enum": ["cancelled", "cancel_requested"]}})),
        "annotations": annotations("Cancel job", false, false),
    }));
    tools.push(json!({
        "name": "job_list",
        "title": "List jobs",
        "description": "Your jobs, newest first, optionally filtered by state or tool; pass next_cursor back as cursor for the next page.",
        "inputSchema": {"type": "object", "properties": {
            "state": {"type": "string", "enum": JobState::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()},
            "tool": {"type": "string", "enum": state.inner.catalog.names()},
            "limit": {"type": "integer", "minimum": 1, "maximum": 100, "description": "default 20"},
            "cursor": {"type": "string"},
        }, "additionalProperties": false},
        "outputSchema": {"type": "object", "properties": {
            "jobs": {"type": "array", "items": view::job_schema(json!({}))},
            "next_cursor": {"type": ["string", "null"]},
        }, "required": ["jobs", "next_cursor"]},
        "annotations": annotations("List jobs", true, false),
    }));
    tools
}

/// Handles `tools/call`: the tool's result, or (for task-augmented scans) the task handle.
pub async fn call(ctx: &mut Ctx, params: &Value) -> Result<Value, RpcError> {
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("`name` is required"))?;
    if let Some(tool) = name.strip_suffix(SCAN_SUFFIX)
        && let Ok(tool) = ToolName::parse(tool)
        && ctx
            .state
            .inner
            .catalog
            .get(&tool)
            .is_some_and(|s| s.enabled)
    {
        return scan(ctx, &tool, params).await;
    }
    if params.get("task").is_some() && ctx.era.handshake_tasks() {
        return Err(RpcError::invalid_params(format!(
            "tool `{name}` does not support task execution (execution.taskSupport is forbidden)"
        )));
    }
    let need = match name {
        "job_cancel" => Need::Cancel,
        _ => Need::Read,
    };
    if let Err(detail) = permitted(&ctx.caller, need) {
        return Ok(forbidden(detail));
    }
    match name {
        "job_status" => status(ctx, params).await,
        "job_result" => result(ctx, params).await,
        "job_cancel" => cancel(ctx, params).await,
        "job_list" => list_jobs(ctx, params).await,
        _ => Err(RpcError::invalid_params(format!("unknown tool `{name}`"))
            .with_data(json!({"hint": "tools/list names the tools"}))),
    }
}

/// The REST submit body for a scan call, or the isError result that refuses it.
fn submit_body(
    state: &AppState,
    tool: &ToolName,
    args: &Map<String, Value>,
) -> Result<Value, Value> {
    let spec = state
        .inner
        .catalog
        .get(tool)
        .expect("checked by the caller");
    let mut body: Map<String, Value> = args
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "wait_sec" | "ports"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    body.insert("tool".into(), json!(tool.as_str()));
    if let Some(ports) = str_arg(args, "ports", "e.g. 22,80,443")? {
        let flag = port_flag(spec).expect("ports is only accepted for tools with a port flag");
        let ctx = ArgContext {
            server_allows_intrusive: state.inner.cfg.allow_intrusive,
            request_intrusive: args.get("intrusive") == Some(&Value::Bool(true)),
        };
        spec.args
            .parse_args(&format!("{flag} {ports}"), &ctx)
            .map_err(|e| bad("ports", e.message, "e.g. 22, 1-1024 or 22,80,443"))?;
        let extra = str_arg(args, "args", "e.g. \"-sV\"")?.unwrap_or("");
        body.insert(
            "args".into(),
            json!(format!("{extra} {flag} {ports}").trim().to_owned()),
        );
    }
    Ok(Value::Object(body))
}

async fn scan(ctx: &mut Ctx, tool: &ToolName, params: &Value) -> Result<Value, RpcError> {
    let handshake_task = params.get("task").is_some() && ctx.era.handshake_tasks();
    if let Err(detail) = permitted(&ctx.caller, Need::Submit) {
        return Ok(forbidden(detail));
    }
    let spec = ctx
        .state
        .inner
        .catalog
        .get(tool)
        .expect("checked by the caller");
    let mut allowed = vec![
        "target",
        "template",
        "args",
        "timeout_sec",
        "correlation_id",
        "intrusive",
        "wait_sec",
    ];
    if port_flag(spec).is_some() {
        allowed.push("ports");
    }
    let refuse = |result: Value| -> Result<Value, RpcError> {
        if handshake_task {
            // A task-augmented call must answer with a task; a request that never became a job
            // is refused as invalid params, carrying the same field and hint.
            let s = &result["structuredContent"];
            Err(RpcError::invalid_params(
                s["detail"].as_str().unwrap_or("invalid request").to_owned(),
            )
            .with_data(s.clone()))
        } else {
            Ok(result)
        }
    };
    let args = match arguments(params, &allowed) {
        Ok(a) => a,
        Err(r) => return refuse(r),
    };
    let wait = match uint_arg(args, "wait_sec", 0, MAX_WAIT_SEC) {
        Ok(w) => w.unwrap_or(0),
        Err(r) => return refuse(r),
    };
    let body = match submit_body(&ctx.state, tool, args) {
        Ok(b) => b,
        Err(r) => return refuse(r),
    };
    let spec = match JobSpec::from_json(&body, &ctx.state.policy()) {
        Ok(s) => s,
        Err(RequestError::Invalid(v)) => return refuse(invalid(&v)),
        Err(RequestError::UnknownTool(t)) => {
            return Err(RpcError::invalid_params(format!("unknown tool `{t}`")));
        }
    };
    // The same gate, caps, audit and metric as `POST /v1/jobs`.
    let doc = match crate::submit::submit(&ctx.state, &ctx.caller, &spec).await {
        Ok(s) => s.document,
        Err(crate::submit::Refused::Gate(e)) => return refuse(app_refusal(e)),
        Err(crate::submit::Refused::Queue(e)) => return queue_refusal(e).and_then(refuse),
    };
    let cid = CorrelationId::parse(&doc.correlation_id).expect("stored ids are valid");
    if handshake_task {
        return Ok(tasks::created(&ctx.state, &doc));
    }
    let doc = match wait {
        0 => doc,
        w => follow::follow(ctx, tool, &cid, Duration::from_secs(w))
            .await?
            .unwrap_or(doc),
    };
    if !doc.state.is_terminal() && ctx.era.modern_tasks() {
        return Ok(tasks::created_modern(&ctx.state, &doc));
    }
    Ok(finished_or_status(&doc))
}

/// A scan tool's answer: the job view, plus the first result page once it is finished. The text
/// stays short; `job_result` serves the output itself.
pub fn finished_or_status(doc: &scanq::domain::JobDocument) -> Value {
    let mut structured = view::job_view(doc);
    structured["result"] = match view::result_page(doc, None, 1) {
        Ok((page, _)) if doc.state.is_terminal() => page,
        _ => Value::Null,
    };
    let failed = matches!(doc.state, JobState::Failed | JobState::Cancelled);
    tool_result(structured, view::job_text(doc), failed)
}

async fn status(ctx: &mut Ctx, params: &Value) -> Result<Value, RpcError> {
    let args = match arguments(params, &["correlation_id", "wait_sec"]) {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let (cid, wait) = match (cid_arg(args), uint_arg(args, "wait_sec", 0, MAX_WAIT_SEC)) {
        (Ok(c), Ok(w)) => (c, w.unwrap_or(0)),
        (Err(r), _) | (_, Err(r)) => return Ok(r),
    };
    let Some(tool) = ctx.state.queue().locate(&ctx.caller.tenant, &cid).await? else {
        return Ok(not_found(cid.as_str()));
    };
    let Some(doc) = follow::follow(ctx, &tool, &cid, Duration::from_secs(wait)).await? else {
        return Ok(not_found(cid.as_str()));
    };
    Ok(tool_result(
        view::job_view(&doc),
        view::job_text(&doc),
        false,
    ))
}

async fn result(ctx: &mut Ctx, params: &Value) -> Result<Value, RpcError> {
    let args = match arguments(params, &["correlation_id", "view", "page"]) {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let cid = match cid_arg(args) {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let page = match uint_arg(args, "page", 1, 1_000_000) {
        Ok(p) => p.unwrap_or(1) as usize,
        Err(r) => return Ok(r),
    };
    let view = match str_arg(args, "view", "parsed, stdout or stderr") {
        Ok(None) => None,
        Ok(Some(v)) => match View::parse(v) {
            Some(v) => Some(v),
            None => {
                return Ok(bad(
                    "view",
                    format!("`{v}` is not a view"),
                    "parsed, stdout or stderr",
                ));
            }
        },
        Err(r) => return Ok(r),
    };
    let Some((_, doc)) = ctx.state.queue().get(&ctx.caller.tenant, &cid).await? else {
        return Ok(not_found(cid.as_str()));
    };
    match view::result_page(&doc, view, page) {
        Ok((structured, text)) => Ok(tool_result(structured, text, false)),
        Err(e) => Ok(bad(e.field, e.message, e.hint)),
    }
}

async fn cancel(ctx: &mut Ctx, params: &Value) -> Result<Value, RpcError> {
    let args = match arguments(params, &["correlation_id"]) {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let cid = match cid_arg(args) {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let out = ctx.state.queue().cancel(&ctx.caller.tenant, &cid).await;
    tracing::info!(audit = "cancel", via = "mcp", token = %ctx.caller.name, tenant = %ctx.caller.tenant, correlation_id = %cid, outcome = ?out, "Cancel requested");
    let outcome = match out {
        Ok(CancelOutcome::Cancelled) => "cancelled",
        Ok(_) => "cancel_requested",
        Err(QueueError::NotFound) => return Ok(not_found(cid.as_str())),
        Err(e) => return queue_refusal(e),
    };
    let Some((_, doc)) = ctx.state.queue().get(&ctx.caller.tenant, &cid).await? else {
        return Ok(not_found(cid.as_str()));
    };
    let mut structured = view::job_view(&doc);
    structured["outcome"] = json!(outcome);
    let text = format!("{}: {}.", outcome.replace('_', " "), view::job_line(&doc));
    Ok(tool_result(structured, text, false))
}

async fn list_jobs(ctx: &mut Ctx, params: &Value) -> Result<Value, RpcError> {
    let args = match arguments(params, &["state", "tool", "limit", "cursor"]) {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let parsed = (|| -> Result<_, Value> {
        let state = match str_arg(args, "state", JobState::ACCEPTED)? {
            None => None,
            Some(s) => Some(
                s.parse::<JobState>()
                    .map_err(|e| bad("state", e.to_string(), JobState::ACCEPTED))?,
            ),
        };
        let tool = match str_arg(args, "tool", "a catalog tool name")? {
            None => None,
            Some(t) => {
                Some(ToolName::parse(t).map_err(|e| bad("tool", e.0, "a catalog tool name"))?)
            }
        };
        let limit = uint_arg(args, "limit", 1, 100)?.unwrap_or(20) as usize;
        let cursor = match str_arg(args, "cursor", "the next_cursor of the previous page")? {
            None => None,
            Some(c) => Some(c.parse::<u64>().map_err(|_| {
                bad(
                    "cursor",
                    "is not a cursor this server made",
                    "the next_cursor of the previous page",
                )
            })?),
        };
        Ok((state, tool, limit, cursor))
    })();
    let (state, tool, limit, cursor) = match parsed {
        Ok(p) => p,
        Err(r) => return Ok(r),
    };
    let (jobs, next) = ctx
        .state
        .queue()
        .list(&ctx.caller.tenant, state, tool.as_ref(), limit, cursor)
        .await?;
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
    Ok(tool_result(structured, text, false))
}
