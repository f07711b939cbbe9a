//! What a test reads from a running process: its Prometheus metrics, and an MCP session to ask
//! its tools through.

use super::http;

/// The whole `/metrics` text of the process at `base`.
pub async fn metrics_text(base: &str) -> String {
    http()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("get /metrics")
        .text()
        .await
        .expect("/metrics text")
}

/// One series (`name{labels}`, exactly as exported) of the process at `base`; None when the
/// process does not answer (yet) or does not export that series.
pub async fn metric(base: &str, series: &str) -> Option<u64> {
    let text = http()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// Opens an MCP session (protocol 2025-11-25) on the API at `base`; returns its id.
pub async fn mcp_session(base: &str) -> String {
    let init = http()
        .post(format!("{base}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(
            serde_json::json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion":"2025-11-25","capabilities":{},
                "clientInfo":{"name":"test","version":"0"}}})
            .to_string(),
        )
        .send()
        .await
        .expect("MCP initialize");
    init.headers()["mcp-session-id"]
        .to_str()
        .expect("session id")
        .to_owned()
}
