//! `/mcp`: the MCP front door (DESIGN §5). A thin JSON-RPC layer over axum that turns every scan
//! into a job of the shared queue, so an agent starts, follows and collects it with requests
//! that each stay far below a client's ~60 s limit, on whichever API instance answers.
//!
//! | module | owns |
//! |---|---|
//! | `protocol` | JSON-RPC framing, revisions, error codes |
//! | `transport` | Streamable HTTP: POST/GET/DELETE, sessions, JSON or SSE replies |
//! | `tools` | `tools/list` and `tools/call`: dispatch to the tool modules below |
//! | `tools::schema` | the tool definitions, generated from the catalog |
//! | `tools::scan` | the `<tool>_scan` tools: arguments → the REST submit path |
//! | `tools::jobs` | `job_status`, `job_result`, `job_cancel`, `job_list` |
//! | `tools::args` | the `arguments` object, read with the REST field helpers |
//! | `reply` | tool results, and refusals from the REST problem mapping (`AppError`) |
//! | `tasks` | MCP Tasks backed by jobs (taskId = correlation ID) |
//! | `follow` | bounded waiting with monotonic progress notifications |
//! | `view` | compact job views, paginated results, schemas, text renderings |
//! | `stdio` | `scanq-api mcp-stdio`: a stdio bridge to the HTTP endpoint |
//! | `resources` | `scanq://zones`: the zones and whether each has live workers |
//!
//! Why not `rmcp`: see docs/mcp.md. In short, rmcp 3.9 binds a session to an in-process
//! service (no instance-independent sessions) and implements only the 2026 tasks extension, not
//! the 2025-11-25 `tasks/result`/`tasks/list`; here a task is simply a job in Redis.

mod follow;
mod protocol;
mod reply;
mod resources;
pub mod stdio;
mod tasks;
mod tools;
mod transport;
mod view;

use axum::Router;
use axum::routing::post;
use serde_json::{Value, json};

use crate::auth::Scope;
use crate::error::AppError;
use crate::extract::Caller;
use crate::state::AppState;
pub use follow::MAX_WAIT_SEC;
use protocol::{Era, HANDSHAKE_VERSIONS, MODERN_VERSIONS, RpcError, TASKS_EXTENSION};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/mcp",
        post(transport::post)
            .get(transport::get)
            .delete(transport::delete),
    )
}

/// Everything a method handler needs for one request.
pub(crate) struct Ctx {
    pub state: AppState,
    pub caller: Caller,
    pub era: Era,
    /// Set when the client sent a progress token and the reply can carry notifications.
    pub progress: Option<follow::Progress>,
}

impl Ctx {
    /// The REST scope check (`read`, `submit`, `cancel`) for one call: the auth layer only
    /// authenticates `/mcp`, so each tool and task method checks its own scope here.
    pub fn require(&self, scope: Scope) -> Result<(), AppError> {
        self.caller.require(scope).inspect_err(|_| {
            tracing::info!(token = %self.caller.name, tenant = %self.caller.tenant, scope = %scope, "Refused MCP call: missing scope");
        })
    }
}

const INSTRUCTIONS: &str = "scanq runs network scans as background jobs. Start one with a \
<tool>_scan tool (it answers at once with a correlation_id; wait_sec up to 50 waits for short \
scans), follow it with job_status (wait_sec up to 50 per call), then read it with job_result, \
page by page. job_list shows your jobs, job_cancel stops one. Targets must be inside the \
server's scope; a refused argument comes back as an error naming the field with a hint. Some \
networks are reached only by the workers of their zone: the resource scanq://zones lists the \
zones and whether each has live workers (a scan waits while its zone has none).";

fn server_info() -> Value {
    json!({"name": "scanq", "title": "scanq", "version": env!("CARGO_PKG_VERSION")})
}

/// `initialize` (handshake era): the negotiated version and what this server offers.
pub(crate) fn initialize_result(requested: Option<&str>) -> (String, Value) {
    let version = requested
        .filter(|v| HANDSHAKE_VERSIONS.contains(v))
        .unwrap_or(HANDSHAKE_VERSIONS[0])
        .to_owned();
    let mut capabilities = json!({"tools": {"listChanged": false}, "resources": {}});
    if version.as_str() >= protocol::TASKS_SINCE {
        capabilities["tasks"] =
            json!({"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}});
    }
    let result = json!({
        "protocolVersion": version,
        "capabilities": capabilities,
        "serverInfo": server_info(),
        "instructions": INSTRUCTIONS,
    });
    (version, result)
}

fn discover_result() -> Value {
    json!({
        "supportedVersions": MODERN_VERSIONS,
        "capabilities": {
            "tools": {"listChanged": false},
            "resources": {},
            "extensions": { TASKS_EXTENSION: {} },
        },
        "instructions": INSTRUCTIONS,
        "ttlMs": 60_000,
        "cacheScope": "public",
    })
}

/// Runs one request (everything but `initialize`, which the transport answers).
pub(crate) async fn dispatch(
    ctx: &mut Ctx,
    method: &str,
    params: &Value,
) -> Result<Value, RpcError> {
    let modern = ctx.era.is_modern();
    let any_tasks = ctx.era.handshake_tasks() || ctx.era.modern_tasks();
    let mut result = match method {
        "ping" => json!({}),
        "server/discover" if modern => discover_result(),
        "tools/list" => {
            let mut r = json!({ "tools": tools::list(&ctx.state) });
            if modern {
                r["ttlMs"] = json!(60_000);
                r["cacheScope"] = json!("public");
            }
            r
        }
        "tools/call" => tools::call(ctx, params).await?,
        "resources/list" => resources::list(),
        "resources/read" => resources::read(ctx, params).await?,
        "resources/templates/list" => json!({"resourceTemplates": []}),
        "prompts/list" => json!({"prompts": []}),
        "tasks/get" if any_tasks => tasks::get(ctx, params).await?,
        "tasks/cancel" if any_tasks => tasks::cancel(ctx, params).await?,
        "tasks/result" if ctx.era.handshake_tasks() => tasks::result(ctx, params).await?,
        "tasks/list" if ctx.era.handshake_tasks() => tasks::list(ctx, params).await?,
        "tasks/update" if ctx.era.modern_tasks() => {
            return Err(RpcError::invalid_params(
                "scanq tasks never wait for input; there is nothing to update",
            ));
        }
        other => return Err(RpcError::method_not_found(other)),
    };
    if modern && let Some(obj) = result.as_object_mut() {
        obj.entry("resultType").or_insert(json!("complete"));
        let meta = obj.entry("_meta").or_insert(json!({}));
        meta["io.modelcontextprotocol/serverInfo"] = server_info();
    }
    Ok(result)
}
