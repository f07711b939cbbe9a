//! MCP resources: `scanq://zones` (DESIGN §13), the zones an agent may name in a scan's `zone`
//! and whether each has live workers — the same view as `GET /v1/zones` (`read` scope; the
//! zone map's entries for admins only). Redis unreachable is JSON-RPC error -32000, as for the
//! tools.

use serde_json::{Value, json};

use super::protocol::RpcError;
use super::{Ctx, reply};
use crate::auth::Scope;

/// The zones resource's URI.
pub const ZONES_URI: &str = "scanq://zones";

/// `resources/list`.
pub fn list() -> Value {
    json!({"resources": [{
        "uri": ZONES_URI,
        "name": "zones",
        "title": "Zones",
        "description": "The networks this server's workers reach: each zone's name, its live \
                        workers and queued jobs. A scan's target is placed in its zone by the \
                        server; pass `zone` to a scan tool to insist on one.",
        "mimeType": "application/json",
    }]})
}

/// `resources/read`: the resource named by `uri`.
pub async fn read(ctx: &Ctx, params: &Value) -> Result<Value, RpcError> {
    let uri = params
        .get("uri")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("`uri` is required"))?;
    if uri != ZONES_URI {
        return Err(
            RpcError::new(RESOURCE_NOT_FOUND, format!("no resource `{uri}`"))
                .with_data(json!({"uri": uri, "hint": "resources/list names the resources"})),
        );
    }
    ctx.require(Scope::Read)
        .map_err(|e| reply::rpc_refusal(&e))?;
    let zones = ctx
        .state
        .zone_views(ctx.caller.admin)
        .await
        .map_err(RpcError::from)?;
    let zones: Vec<Value> = zones
        .into_iter()
        .map(|z| {
            let mut v = serde_json::to_value(&z).unwrap_or_default();
            v["live"] = json!(z.workers > 0);
            v
        })
        .collect();
    let text = json!({ "zones": zones }).to_string();
    Ok(json!({"contents": [{"uri": ZONES_URI, "mimeType": "application/json", "text": text}]}))
}

/// The MCP error code of an unknown resource.
const RESOURCE_NOT_FOUND: i64 = -32002;
