//! `scanq-api mcp-stdio --url … --token …`: MCP over stdin/stdout for clients that launch
//! servers as subprocesses (Claude Desktop and most IDE clients), forwarded to the HTTP endpoint.
//!
//! Each line on stdin is one JSON-RPC message; it is POSTed to `<url>/mcp` with the token, and
//! whatever comes back (a JSON reply, or the notifications and reply of an SSE stream) is written
//! to stdout one message per line. Handshake-era sessions are kept here (the `Mcp-Session-Id`
//! from `initialize` goes on every later request and is ended with DELETE at EOF); 2026-07-28
//! requests get their routing headers from their own envelope. Requests run concurrently, so a
//! long `wait_sec` never blocks a `ping`. Diagnostics go to stderr.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use super::protocol::{self, INTERNAL_ERROR, META_PROTOCOL_VERSION, RpcError};

#[derive(Debug, Default)]
struct Session {
    id: Option<String>,
    version: Option<String>,
}

#[derive(Clone)]
struct Bridge {
    http: reqwest::Client,
    endpoint: String,
    token: Option<String>,
    session: Arc<Mutex<Session>>,
    out: mpsc::UnboundedSender<String>,
}

/// The `/mcp` endpoint for a base URL (or the URL itself when it already names it).
pub fn endpoint(url: &str) -> String {
    let url = url.trim_end_matches('/');
    if url.ends_with("/mcp") {
        url.to_owned()
    } else {
        format!("{url}/mcp")
    }
}

/// Runs the bridge until stdin closes.
pub async fn run(url: &str, token: Option<String>) -> anyhow::Result<()> {
    let (out, mut rx) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(line) = rx.recv().await {
            if stdout.write_all(line.as_bytes()).await.is_err()
                || stdout.write_all(b"\n").await.is_err()
                || stdout.flush().await.is_err()
            {
                break;
            }
        }
    });
    let bridge = Bridge {
        http: reqwest::Client::builder().build()?,
        endpoint: endpoint(url),
        token: token.filter(|t| !t.is_empty()),
        session: Arc::default(),
        out,
    };
    eprintln!("scanq mcp-stdio: forwarding to {}", bridge.endpoint);
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        // Strict here too: re-serialising a lax parse would hide a duplicate key from the server.
        let msg: Value = match scanq::request::strict::parse(line.as_bytes()) {
            Ok(v) => v,
            Err(e) => {
                let (err, id) = protocol::strict_parse_error(&e, line.as_bytes());
                bridge.write(&protocol::error_response(id.as_ref(), &err));
                continue;
            }
        };
        // `initialize` runs before anything else is read: later messages need its session.
        if msg.get("method").and_then(Value::as_str) == Some("initialize") {
            bridge.forward(msg).await;
        } else {
            let b = bridge.clone();
            tasks.spawn(async move { b.forward(msg).await });
        }
    }
    while tasks.join_next().await.is_some() {}
    bridge.close().await;
    drop(bridge);
    let _ = writer.await;
    Ok(())
}

impl Bridge {
    fn write(&self, msg: &Value) {
        let _ = self.out.send(msg.to_string());
    }

    fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, &self.endpoint);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let s = self.session.lock().expect("session lock");
        if let Some(id) = &s.id {
            req = req.header("Mcp-Session-Id", id);
        }
        if let Some(v) = &s.version {
            req = req.header("MCP-Protocol-Version", v);
        }
        req
    }

    /// Sends one message and relays what comes back; errors become JSON-RPC errors for requests.
    async fn forward(&self, msg: Value) {
        let id = msg.get("id").cloned();
        let is_request = id.is_some() && msg.get("method").is_some();
        if let Err(err) = self.try_forward(&msg).await
            && is_request
        {
            self.write(&protocol::error_response(id.as_ref(), &err));
        }
    }

    async fn try_forward(&self, msg: &Value) -> Result<(), RpcError> {
        let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
        let mut req = self
            .request(reqwest::Method::POST)
            .header("Accept", "application/json, text/event-stream")
            .header("Content-Type", "application/json");
        let modern = msg
            .pointer("/params/_meta")
            .and_then(|m| m.get(META_PROTOCOL_VERSION))
            .and_then(Value::as_str);
        if let Some(v) = modern {
            req = req
                .header("MCP-Protocol-Version", v)
                .header("Mcp-Method", method);
            if method == "tools/call"
                && let Some(name) = msg.pointer("/params/name").and_then(Value::as_str)
            {
                req = req.header("Mcp-Name", name);
            }
        }
        let resp = req.body(msg.to_string()).send().await.map_err(|e| {
            RpcError::new(
                INTERNAL_ERROR,
                format!("cannot reach the scanq API at {}: {e}", self.endpoint),
            )
        })?;
        let status = resp.status();
        if method == "initialize"
            && let Some(sid) = resp
                .headers()
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
        {
            self.session.lock().expect("session lock").id = Some(sid.to_owned());
        }
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if status == reqwest::StatusCode::ACCEPTED {
            return Ok(());
        }
        if content_type.starts_with("text/event-stream") {
            return self.relay_sse(resp).await;
        }
        let body = resp.bytes().await.unwrap_or_default();
        let value: Option<Value> = serde_json::from_slice(&body).ok();
        match value {
            Some(v) if v.get("jsonrpc").is_some() => {
                self.note_version(method, &v);
                self.write(&v);
                Ok(())
            }
            other => {
                let detail = other
                    .as_ref()
                    .and_then(|p| p.get("detail"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
                Err(RpcError::new(
                    INTERNAL_ERROR,
                    format!("the scanq API answered HTTP {}: {detail}", status.as_u16()),
                )
                .with_data(json!({"http_status": status.as_u16(), "problem": other})))
            }
        }
    }

    /// Remembers the version `initialize` negotiated (sent as MCP-Protocol-Version from then on).
    fn note_version(&self, method: &str, reply: &Value) {
        if method == "initialize"
            && let Some(v) = reply
                .pointer("/result/protocolVersion")
                .and_then(Value::as_str)
        {
            self.session.lock().expect("session lock").version = Some(v.to_owned());
        }
    }

    async fn relay_sse(&self, resp: reqwest::Response) -> Result<(), RpcError> {
        let mut body = resp.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        let mut data = String::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                RpcError::new(INTERNAL_ERROR, format!("the scanq API stream broke: {e}"))
            })?;
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches(['\r', '\n']);
                if line.is_empty() {
                    if !data.is_empty() {
                        if let Ok(v) = serde_json::from_str::<Value>(&data) {
                            self.write(&v);
                        }
                        data.clear();
                    }
                } else if let Some(d) = line.strip_prefix("data:") {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(d.strip_prefix(' ').unwrap_or(d));
                }
            }
        }
        Ok(())
    }

    /// Ends the handshake-era session, if any.
    async fn close(&self) {
        if self.session.lock().expect("session lock").id.is_none() {
            return;
        }
        if let Err(e) = self.request(reqwest::Method::DELETE).send().await {
            eprintln!("scanq mcp-stdio: could not end the session: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_derived_from_the_base_url() {
        assert_eq!(
            endpoint("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080/mcp"
        );
        assert_eq!(
            endpoint("http://127.0.0.1:8080/"),
            "http://127.0.0.1:8080/mcp"
        );
        assert_eq!(endpoint("http://h/mcp"), "http://h/mcp");
    }
}
