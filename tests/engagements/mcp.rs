//! MCP: `engagement_list`/`engagement_get` per tenant, and scan tools judged against the
//! engagement they name.

use super::*;

/// One MCP `tools/call` (protocol 2026-07-28, no session) as `token`: the JSON-RPC result.
async fn mcp_tool(base: &str, token: &str, name: &str, arguments: Value) -> Value {
    const MODERN: &str = "2026-07-28";
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
    "name": name, "arguments": arguments, "_meta": {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
    }}});
    let resp = http()
        .post(format!("{base}/mcp"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "tools/call")
        .header("mcp-name", name)
        .body(body.to_string())
        .send()
        .await
        .expect("post /mcp");
    let text = resp.text().await.unwrap_or_default();
    let reply: Value = serde_json::from_str(&text)
        .ok()
        .or_else(|| {
            text.lines()
                .rev()
                .filter_map(|l| l.strip_prefix("data: "))
                .find_map(|d| serde_json::from_str(d).ok())
        })
        .unwrap_or_else(|| panic!("a JSON-RPC reply: {text}"));
    reply["result"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_lists_and_reads_the_tenant_s_engagements_and_scans_are_judged_against_them() {
    let e = env("engmcp").await;
    let (_api, base) = start_api(e.cfg.clone(), e.catalog.clone()).await;
    let (blue, red) = (e.tokens.get("blue"), e.tokens.get("red"));
    let body = json!({"targets": ["127.0.1.0/24"], "tools": ["noop"]});
    assert_eq!(put_eng(&base, blue, "m", body).await.0, 201);

    let list = mcp_tool(&base, blue, "engagement_list", json!({})).await;
    assert_ne!(list["isError"], true, "{list}");
    assert_eq!(
        list["structuredContent"]["engagements"][0]["id"], "m",
        "{list}"
    );
    let one = mcp_tool(&base, blue, "engagement_get", json!({"id": "m"})).await;
    assert_eq!(
        one["structuredContent"]["engagement"]["targets"],
        json!(["127.0.1.0/24"]),
        "{one}"
    );
    // Red sees none of blue's.
    let list = mcp_tool(&base, red, "engagement_list", json!({})).await;
    assert_eq!(
        list["structuredContent"]["engagements"],
        json!([]),
        "{list}"
    );
    let other = mcp_tool(&base, red, "engagement_get", json!({"id": "m"})).await;
    assert_eq!(other["isError"], true, "{other}");

    // A scan outside the engagement is refused naming the target or the tool; inside, it runs.
    let scan = |tool: &'static str, target: &'static str| {
        mcp_tool(
            &base,
            blue,
            tool,
            json!({"target": target, "engagement": "m"}),
        )
    };
    let out = scan("noop_scan", "127.0.2.1").await;
    assert_eq!(out["isError"], true, "{out}");
    assert_eq!(out["structuredContent"]["field"], "target", "{out}");
    let out = scan("sleep_scan", "127.0.1.1").await;
    assert_eq!(out["structuredContent"]["field"], "tool", "{out}");
    let out = scan("noop_scan", "127.0.1.1").await;
    assert_ne!(out["isError"], true, "{out}");
}
