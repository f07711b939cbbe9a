//! JSON-RPC 2.0 framing and the MCP protocol revisions scanq speaks.
//!
//! Two eras share `/mcp`:
//! - **handshake era** (2025-03-26, 2025-06-18, 2025-11-25): `initialize` opens a session whose
//!   id travels in `Mcp-Session-Id`; later requests name the version in `MCP-Protocol-Version`.
//! - **per-request era** (2026-07-28): no handshake and no session; every request carries its
//!   version and client capabilities in `params._meta` and mirrors method and name in headers.

use serde_json::{Map, Value, json};

/// Handshake-era revisions served, newest first (the first is offered to unknown versions).
pub const HANDSHAKE_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];
/// Per-request-era revisions served.
pub const MODERN_VERSIONS: &[&str] = &["2026-07-28"];
/// The first revision with MCP Tasks (`tasks/*`, `params.task`).
pub const TASKS_SINCE: &str = "2025-11-25";

pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
pub const META_RELATED_TASK: &str = "io.modelcontextprotocol/related-task";
/// The tasks extension of the 2026-07-28 era (SEP-2663).
pub const TASKS_EXTENSION: &str = "io.modelcontextprotocol/tasks";

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// The queue store is unreachable; retry shortly.
pub const UNAVAILABLE: i64 = -32000;
pub const HEADER_MISMATCH: i64 = -32020;
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// Which era a request belongs to, with what it negotiated.
#[derive(Debug, Clone)]
pub enum Era {
    /// A handshake-era request inside a session.
    Handshake { version: String },
    /// A 2026-07-28 request; `tasks` when the client advertised the tasks extension.
    Modern { tasks: bool },
}

impl Era {
    pub fn is_modern(&self) -> bool {
        matches!(self, Self::Modern { .. })
    }

    /// Whether `params.task` and `tasks/*` (2025-11-25 shape) are understood.
    pub fn handshake_tasks(&self) -> bool {
        matches!(self, Self::Handshake { version } if version.as_str() >= TASKS_SINCE)
    }

    /// Whether scan calls may answer with a task handle (2026-07-28 tasks extension).
    pub fn modern_tasks(&self) -> bool {
        matches!(self, Self::Modern { tasks: true, .. })
    }
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }

    pub fn method_not_found(method: &str) -> Self {
        Self::new(METHOD_NOT_FOUND, format!("method `{method}` not found"))
    }

    /// The HTTP status a per-request-era reply carries for this error.
    pub fn http_status(&self) -> u16 {
        match self.code {
            PARSE_ERROR
            | INVALID_REQUEST
            | INVALID_PARAMS
            | HEADER_MISMATCH
            | UNSUPPORTED_PROTOCOL_VERSION => 400,
            METHOD_NOT_FOUND => 404,
            _ => 200,
        }
    }

    pub fn to_json(&self) -> Value {
        let mut e = json!({"code": self.code, "message": self.message});
        if let Some(d) = &self.data {
            e["data"] = d.clone();
        }
        e
    }
}

impl From<scanq::queue::QueueError> for RpcError {
    fn from(err: scanq::queue::QueueError) -> Self {
        if err.is_unavailable() {
            tracing::error!(error = %err, "Redis unavailable");
            Self::new(UNAVAILABLE, "the queue store is unreachable; retry shortly")
        } else {
            Self::new(INTERNAL_ERROR, err.to_string())
        }
    }
}

/// One decoded message from a client.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// `None` for notifications (and for client responses, which scanq never asks for).
    pub id: Option<Value>,
    pub method: Option<String>,
    pub params: Value,
}

impl Incoming {
    /// Decodes one JSON-RPC object; batches and non-objects are invalid requests.
    pub fn parse(body: &Value) -> Result<Self, RpcError> {
        let Some(obj) = body.as_object() else {
            return Err(RpcError::new(
                INVALID_REQUEST,
                "the body must be one JSON-RPC request or notification object (no batches)",
            ));
        };
        if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return Err(RpcError::new(INVALID_REQUEST, "`jsonrpc` must be \"2.0\""));
        }
        let id = obj.get("id").cloned();
        if let Some(id) = &id
            && !(id.is_string() || id.is_i64() || id.is_u64())
        {
            return Err(RpcError::new(
                INVALID_REQUEST,
                "`id` must be a string or an integer",
            ));
        }
        let method = match obj.get("method") {
            None => None,
            Some(Value::String(m)) => Some(m.clone()),
            Some(_) => return Err(RpcError::new(INVALID_REQUEST, "`method` must be a string")),
        };
        if method.is_none() && !(obj.contains_key("result") || obj.contains_key("error")) {
            return Err(RpcError::new(INVALID_REQUEST, "`method` is required"));
        }
        let params = obj.get("params").cloned().unwrap_or(Value::Null);
        if !(params.is_object() || params.is_null()) {
            return Err(RpcError::invalid_params("`params` must be an object"));
        }
        Ok(Self { id, method, params })
    }

    /// A request expects a reply; notifications and client responses do not.
    pub fn is_request(&self) -> bool {
        self.id.is_some() && self.method.is_some()
    }

    pub fn meta(&self) -> Option<&Map<String, Value>> {
        self.params.get("_meta").and_then(Value::as_object)
    }

    /// `params._meta.progressToken`, when the client asked for progress.
    pub fn progress_token(&self) -> Option<Value> {
        self.meta()
            .and_then(|m| m.get("progressToken"))
            .filter(|t| t.is_string() || t.is_i64() || t.is_u64())
            .cloned()
    }
}

/// A success reply.
pub fn response(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// An error reply (`id` is null when the request's id could not be read).
pub fn error_response(id: Option<&Value>, err: &RpcError) -> Value {
    json!({"jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null), "error": err.to_json()})
}

/// The reply to a message the strict parser refused, and the request's id when a lax read
/// still finds one. A duplicate key (anywhere, tool arguments included) is invalid params
/// naming the key, never a silent last-value-wins.
pub fn strict_parse_error(
    err: &scanq::request::strict::StrictJsonError,
    raw: &[u8],
) -> (RpcError, Option<Value>) {
    match err.duplicate_key() {
        Some(key) => {
            let id = serde_json::from_slice::<Value>(raw)
                .ok()
                .and_then(|v| v.get("id").cloned());
            let data = json!({
                "error_type": "validation_error",
                "field": key,
                "hint": format!("send `{key}` once, with the one value you mean"),
            });
            (
                RpcError::invalid_params(err.to_string()).with_data(data),
                id,
            )
        }
        None => (
            RpcError::new(PARSE_ERROR, format!("parse error: {err}")),
            None,
        ),
    }
}

/// A notification from the server.
pub fn notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_notifications_and_junk_are_told_apart() {
        let req = Incoming::parse(&json!({"jsonrpc":"2.0","id":1,"method":"ping"})).unwrap();
        assert!(req.is_request());
        let note = Incoming::parse(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
            .unwrap();
        assert!(!note.is_request());
        for bad in [
            json!([{"jsonrpc":"2.0","id":1,"method":"ping"}]),
            json!({"id":1,"method":"ping"}),
            json!({"jsonrpc":"2.0","id":1.5,"method":"ping"}),
            json!({"jsonrpc":"2.0","id":1}),
            json!({"jsonrpc":"2.0","id":1,"method":"x","params":[1]}),
        ] {
            assert!(Incoming::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_progress_token_is_read_from_meta() {
        let req = Incoming::parse(&json!({"jsonrpc":"2.0","id":"a","method":"tools/call",
            "params":{"_meta":{"progressToken":"p1"}}}))
        .unwrap();
        assert_eq!(req.progress_token(), Some(json!("p1")));
    }

    #[test]
    fn only_2025_11_25_sessions_speak_handshake_tasks() {
        let era = |v: &str| Era::Handshake {
            version: v.to_owned(),
        };
        assert!(era("2025-11-25").handshake_tasks());
        assert!(!era("2025-06-18").handshake_tasks());
        assert!(!Era::Modern { tasks: true }.handshake_tasks());
    }

    #[test]
    fn per_request_errors_map_to_http_statuses() {
        assert_eq!(RpcError::method_not_found("x").http_status(), 404);
        assert_eq!(RpcError::invalid_params("x").http_status(), 400);
        assert_eq!(RpcError::new(INTERNAL_ERROR, "x").http_status(), 200);
    }
}
