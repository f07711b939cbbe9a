//! Streamable HTTP on `/mcp`.
//!
//! POST carries one JSON-RPC message. A request is answered with `application/json`, or with a
//! `text/event-stream` when the client accepts it and the handler streams progress (or runs
//! longer than 15 s, after which keep-alive comments hold the connection open); notifications
//! get 202. Handshake-era clients open a session with `initialize` (`Mcp-Session-Id`, kept in
//! Redis so any instance answers), may hold a GET stream, and end it with DELETE. 2026-07-28
//! requests carry their own envelope and are checked rung by rung (envelope, headers, version)
//! before they run. A client that goes away cancels its handler.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use scanq::queue::McpSession;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::protocol::{
    self, Era, HANDSHAKE_VERSIONS, HEADER_MISMATCH, INVALID_PARAMS, INVALID_REQUEST, Incoming,
    META_CLIENT_CAPABILITIES, META_PROTOCOL_VERSION, MODERN_VERSIONS, RpcError, TASKS_EXTENSION,
    UNSUPPORTED_PROTOCOL_VERSION,
};
use super::{Ctx, dispatch, follow};
use crate::error::AppError;
use crate::extract::Caller;
use crate::state::AppState;

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
const METHOD_HEADER: &str = "mcp-method";
const NAME_HEADER: &str = "mcp-name";
/// How long a reply may stay undecided (JSON or SSE) before SSE is committed.
const DEFER: Duration = Duration::from_secs(15);
/// A GET stream ends after this long (clients re-open it), so shutdown is never held up for long.
const GET_STREAM_LIFE: Duration = Duration::from_secs(300);

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn accepts(headers: &HeaderMap, mime: &str) -> bool {
    header(headers, "accept").is_some_and(|a| {
        a.split(',').any(|part| {
            let m = part.split(';').next().unwrap_or("").trim();
            m.eq_ignore_ascii_case(mime) || m == "*/*"
        })
    })
}

fn json_reply(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    (status, axum::Json(body)).into_response()
}

fn rpc_error(status: u16, id: Option<&Value>, err: RpcError) -> Response {
    json_reply(status, protocol::error_response(id, &err))
}

/// The handler task, aborted when the reply is dropped (the client went away).
struct Running(JoinHandle<Result<Value, RpcError>>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub async fn post(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    crate::extract::require_json(&headers)?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::TooLarge(state.inner.cfg.max_body_bytes)
        } else {
            AppError::Malformed(e.body_text())
        }
    })?;
    let accept_json = accepts(&headers, "application/json") || header(&headers, "accept").is_none();
    let accept_sse = accepts(&headers, "text/event-stream");
    if !accept_json && !accept_sse {
        return Ok(StatusCode::NOT_ACCEPTABLE.into_response());
    }
    let value: Value = match scanq::request::strict::parse(&body) {
        Ok(v) => v,
        Err(e) => {
            let (err, id) = protocol::strict_parse_error(&e, &body);
            return Ok(rpc_error(400, id.as_ref(), err));
        }
    };
    let msg = match Incoming::parse(&value) {
        Ok(m) => m,
        Err(err) => return Ok(rpc_error(400, value.get("id"), err)),
    };
    let session_id = header(&headers, SESSION_HEADER);
    let version_header = header(&headers, VERSION_HEADER);
    let modern = session_id.is_none()
        && msg.method.as_deref() != Some("initialize")
        && (msg
            .meta()
            .is_some_and(|m| m.contains_key(META_PROTOCOL_VERSION))
            || version_header
                .is_some_and(|v| !HANDSHAKE_VERSIONS.contains(&v) && v != "2024-11-05"));
    if modern {
        return Ok(post_modern(state, caller, &headers, msg, accept_sse).await);
    }
    post_handshake(state, caller, &headers, msg, accept_sse).await
}

async fn post_handshake(
    state: AppState,
    caller: Caller,
    headers: &HeaderMap,
    msg: Incoming,
    accept_sse: bool,
) -> Result<Response, AppError> {
    let ttl = state.inner.cfg.mcp_session_ttl_sec;
    if msg.method.as_deref() == Some("initialize") && msg.is_request() {
        let requested = msg.params.get("protocolVersion").and_then(Value::as_str);
        let (version, result) = super::initialize_result(requested);
        let session = McpSession {
            tenant: caller.tenant.clone(),
            protocol_version: version.clone(),
        };
        let id = state.queue().session_create(&session, ttl).await?;
        tracing::info!(tenant = %caller.tenant, token = %caller.name, protocol_version = %version, "MCP session opened");
        let mut resp = json_reply(
            200,
            protocol::response(msg.id.as_ref().expect("a request"), result),
        );
        resp.headers_mut()
            .insert(SESSION_HEADER, HeaderValue::from_str(&id).expect("hex id"));
        return Ok(resp);
    }
    let Some(id) = header(headers, SESSION_HEADER) else {
        let err = RpcError::new(
            INVALID_REQUEST,
            "Bad Request: Mcp-Session-Id header is required (send initialize first, or use protocol version 2026-07-28)",
        );
        return Ok(rpc_error(400, msg.id.as_ref(), err));
    };
    let session = state
        .queue()
        .session_get(id, ttl)
        .await?
        .filter(|s| s.tenant == caller.tenant);
    let Some(session) = session else {
        let err = RpcError::new(INVALID_REQUEST, "Session not found: initialize again");
        return Ok(rpc_error(404, msg.id.as_ref(), err));
    };
    if let Some(v) = header(headers, VERSION_HEADER)
        && !HANDSHAKE_VERSIONS.contains(&v)
    {
        let err = RpcError::new(
            INVALID_REQUEST,
            format!(
                "Bad Request: unsupported MCP-Protocol-Version `{v}` (supported: {})",
                HANDSHAKE_VERSIONS.join(", ")
            ),
        );
        return Ok(rpc_error(400, msg.id.as_ref(), err));
    }
    if !msg.is_request() {
        return Ok(StatusCode::ACCEPTED.into_response());
    }
    let era = Era::Handshake {
        version: session.protocol_version,
    };
    Ok(run(state, caller, era, msg, accept_sse).await)
}

/// The 2026-07-28 checks, in order: envelope, header agreement, version.
fn modern_era(headers: &HeaderMap, msg: &Incoming) -> Result<Era, RpcError> {
    let method = msg.method.as_deref().unwrap_or("");
    let meta = msg.meta();
    let version = meta.and_then(|m| m.get(META_PROTOCOL_VERSION));
    let caps = meta.and_then(|m| m.get(META_CLIENT_CAPABILITIES));
    let (Some(version), Some(caps)) = (version, caps) else {
        return Err(RpcError::new(
            INVALID_PARAMS,
            format!(
                "params._meta must carry `{META_PROTOCOL_VERSION}` and `{META_CLIENT_CAPABILITIES}`"
            ),
        ));
    };
    let Some(version) = version.as_str() else {
        return Err(RpcError::new(
            INVALID_PARAMS,
            format!("`{META_PROTOCOL_VERSION}` must be a string"),
        ));
    };
    let mismatch = |what: &str| {
        RpcError::new(
            HEADER_MISMATCH,
            format!("the {what} header does not match the request body"),
        )
    };
    if header(headers, VERSION_HEADER).is_some_and(|h| h != version) {
        return Err(mismatch("MCP-Protocol-Version"));
    }
    if header(headers, METHOD_HEADER).is_some_and(|h| h != method) {
        return Err(mismatch("Mcp-Method"));
    }
    if method == "tools/call"
        && let Some(h) = header(headers, NAME_HEADER)
        && Some(h) != msg.params.get("name").and_then(Value::as_str)
    {
        return Err(mismatch("Mcp-Name"));
    }
    if !MODERN_VERSIONS.contains(&version) {
        return Err(
            RpcError::new(UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version")
                .with_data(json!({"supported": MODERN_VERSIONS, "requested": version})),
        );
    }
    let tasks = caps
        .get("extensions")
        .and_then(|e| e.get(TASKS_EXTENSION))
        .is_some();
    Ok(Era::Modern { tasks })
}

async fn post_modern(
    state: AppState,
    caller: Caller,
    headers: &HeaderMap,
    msg: Incoming,
    accept_sse: bool,
) -> Response {
    if !msg.is_request() {
        return StatusCode::ACCEPTED.into_response();
    }
    match modern_era(headers, &msg) {
        Ok(era) => run(state, caller, era, msg, accept_sse).await,
        Err(err) => rpc_error(err.http_status(), msg.id.as_ref(), err),
    }
}

/// Runs one request and answers with JSON, or with SSE once it has something to stream.
async fn run(
    state: AppState,
    caller: Caller,
    era: Era,
    msg: Incoming,
    accept_sse: bool,
) -> Response {
    let id = msg.id.clone().expect("a request");
    let method = msg.method.clone().expect("a request");
    let modern = era.is_modern();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let progress = msg
        .progress_token()
        .filter(|_| accept_sse)
        .map(|t| follow::Progress::new(t, tx));
    let mut ctx = Ctx {
        state,
        caller,
        era,
        progress,
    };
    let params = msg.params;
    let mut running = Running(tokio::spawn(async move {
        dispatch(&mut ctx, &method, &params).await
    }));
    let reply =
        move |outcome: Result<Result<Value, RpcError>, tokio::task::JoinError>| match outcome {
            Ok(Ok(result)) => (200, protocol::response(&id, result)),
            Ok(Err(err)) => {
                let status = if modern { err.http_status() } else { 200 };
                (status, protocol::error_response(Some(&id), &err))
            }
            Err(join) => {
                tracing::error!(error = %join, "MCP handler panicked");
                let err = RpcError::new(protocol::INTERNAL_ERROR, "internal error");
                (200, protocol::error_response(Some(&id), &err))
            }
        };
    if !accept_sse {
        let (status, body) = reply((&mut running.0).await);
        return json_reply(status, body);
    }
    let first = tokio::select! {
        biased;
        Some(note) = rx.recv() => Some(note),
        outcome = &mut running.0 => {
            let (status, body) = reply(outcome);
            return json_reply(status, body);
        }
        _ = tokio::time::sleep(DEFER) => None,
    };
    let stream = async_stream::stream! {
        if let Some(note) = first {
            yield Ok::<_, Infallible>(Event::default().event("message").data(note.to_string()));
        }
        loop {
            tokio::select! {
                biased;
                Some(note) = rx.recv() => {
                    yield Ok(Event::default().event("message").data(note.to_string()));
                }
                outcome = &mut running.0 => {
                    while let Ok(note) = rx.try_recv() {
                        yield Ok(Event::default().event("message").data(note.to_string()));
                    }
                    let (_, body) = reply(outcome);
                    yield Ok(Event::default().event("message").data(body.to_string()));
                    break;
                }
            }
        }
    };
    sse(stream)
}

fn sse(stream: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Response {
    let mut resp = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(DEFER))
        .into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-transform"),
    );
    resp.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// The caller's session named by the request, or the response that refuses the request.
async fn own_session(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
) -> Result<Result<String, Response>, AppError> {
    let Some(id) = header(headers, SESSION_HEADER) else {
        if header(headers, VERSION_HEADER).is_some_and(|v| MODERN_VERSIONS.contains(&v)) {
            let mut resp = StatusCode::METHOD_NOT_ALLOWED.into_response();
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return Ok(Err(resp));
        }
        let err = RpcError::new(
            INVALID_REQUEST,
            "Bad Request: Mcp-Session-Id header is required",
        );
        return Ok(Err(rpc_error(400, None, err)));
    };
    let ttl = state.inner.cfg.mcp_session_ttl_sec;
    match state.queue().session_get(id, ttl).await? {
        Some(s) if s.tenant == caller.tenant => Ok(Ok(id.to_owned())),
        _ => {
            let err = RpcError::new(INVALID_REQUEST, "Session not found");
            Ok(Err(rpc_error(404, None, err)))
        }
    }
}

/// GET: the session's server-to-client stream. scanq sends nothing unprompted, so it carries
/// keep-alives until the session ends, the client leaves, or `GET_STREAM_LIFE` passes.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if !accepts(&headers, "text/event-stream") {
        return Ok(StatusCode::NOT_ACCEPTABLE.into_response());
    }
    let id = match own_session(&state, &caller, &headers).await? {
        Ok(id) => id,
        Err(resp) => return Ok(resp),
    };
    let mut reloads = state.inner.auth.reloads();
    let stream = async_stream::stream! {
        let ttl = state.inner.cfg.mcp_session_ttl_sec;
        let end = tokio::time::Instant::now() + GET_STREAM_LIFE;
        while tokio::time::Instant::now() < end {
            let wait = Duration::from_secs(30).min(end - tokio::time::Instant::now());
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = crate::auth::reloaded(&mut reloads) => {}
            }
            // A reload may have revoked the token that opened the session: then the stream ends.
            if !state.inner.auth.still_valid(caller.token.as_ref()) {
                tracing::info!(token = %caller.name, "MCP stream ended: its token was revoked");
                break;
            }
            if matches!(state.queue().session_get(&id, ttl).await, Ok(None)) {
                break;
            }
        }
        if false {
            yield Ok::<Event, Infallible>(Event::default());
        }
    };
    Ok(sse(stream))
}

/// DELETE: ends the session; later requests with its id get 404.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let id = match own_session(&state, &caller, &headers).await? {
        Ok(id) => id,
        Err(resp) => return Ok(resp),
    };
    state.queue().session_delete(&id).await?;
    tracing::info!(tenant = %caller.tenant, "MCP session closed");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn modern_msg(version: &str, method: &str) -> Incoming {
        Incoming::parse(&json!({"jsonrpc":"2.0","id":1,"method":method,"params":{
        "name":"job_list",
        "_meta":{
            META_PROTOCOL_VERSION: version,
            META_CLIENT_CAPABILITIES: {"extensions": {TASKS_EXTENSION: {}}},
        }}}))
        .unwrap()
    }

    #[test]
    fn the_modern_ladder_checks_envelope_then_headers_then_version() {
        let bare = Incoming::parse(&json!({"jsonrpc":"2.0","id":1,"method":"tools/list"})).unwrap();
        assert_eq!(
            modern_era(&HeaderMap::new(), &bare).unwrap_err().code,
            INVALID_PARAMS
        );

        let msg = modern_msg("2026-07-28", "tools/call");
        let h = headers(&[
            (VERSION_HEADER, "2026-07-28"),
            (METHOD_HEADER, "tools/list"),
        ]);
        assert_eq!(modern_era(&h, &msg).unwrap_err().code, HEADER_MISMATCH);
        let h = headers(&[(VERSION_HEADER, "2026-07-28"), (NAME_HEADER, "nmap_scan")]);
        assert_eq!(modern_era(&h, &msg).unwrap_err().code, HEADER_MISMATCH);

        let msg = modern_msg("2099-01-01", "tools/list");
        let err = modern_era(&headers(&[(VERSION_HEADER, "2099-01-01")]), &msg).unwrap_err();
        assert_eq!(err.code, UNSUPPORTED_PROTOCOL_VERSION);
        assert_eq!(err.data.unwrap()["supported"], json!(MODERN_VERSIONS));

        let msg = modern_msg("2026-07-28", "tools/call");
        let h = headers(&[
            (VERSION_HEADER, "2026-07-28"),
            (METHOD_HEADER, "tools/call"),
            (NAME_HEADER, "job_list"),
        ]);
        assert!(modern_era(&h, &msg).unwrap().modern_tasks());
    }

    #[test]
    fn accept_lists_are_read_item_by_item() {
        let h = headers(&[("accept", "application/json, text/event-stream;q=0.9")]);
        assert!(accepts(&h, "application/json") && accepts(&h, "text/event-stream"));
        assert!(!accepts(
            &headers(&[("accept", "text/html")]),
            "application/json"
        ));
        assert!(accepts(&headers(&[("accept", "*/*")]), "text/event-stream"));
    }
}
