//! Big scans through MCP (issue 21, DESIGN §12): a scan tool given a /22 of loopback and
//! `chunk_hosts` answers with the parent job (chunk tally, hosts), its task (2025-11-25 and
//! 2026-07-28 eras) reports how many chunks and hosts are done and ends with the parent, whose
//! merged result holds every host; a chunk's view names its parent; a bad `chunk_hosts` is
//! refused naming the field. Real redis-server, API and worker, real nmap on 127.1.0.0/16 only.

use std::time::Duration;

use scanq::config::Config;
use scanq_tests::*;
use serde_json::{Value, json};

const MODERN: &str = "2026-07-28";

struct Stack {
    _redis: RedisServer,
    _api: Task,
    _worker: Task,
    base: String,
    _fx: Fixture,
}

async fn stack(name: &str) -> Stack {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let catalog = bignmap(&fx, "none");
    let cfg = Config {
        worker_concurrency: 4,
        ..test_config(&redis, name)
    };
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let worker = start_worker(cfg, catalog).await;
    Stack {
        _redis: redis,
        _api: api,
        _worker: worker,
        base,
        _fx: fx,
    }
}

/// POSTs one JSON-RPC message to `/mcp`; the reply (the last message of an SSE stream).
async fn post(base: &str, headers: &[(&str, &str)], body: Value) -> (u16, Value, Option<String>) {
    let mut req = http()
        .post(format!("{base}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.body(body.to_string()).send().await.expect("post /mcp");
    let status = resp.status().as_u16();
    let session = resp
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = resp.text().await.unwrap_or_default();
    let body = text
        .lines()
        .rev()
        .filter_map(|l| l.strip_prefix("data: "))
        .find_map(|d| serde_json::from_str(d).ok())
        .or_else(|| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null);
    (status, body, session)
}

/// A 2025-11-25 session.
async fn initialize(base: &str) -> String {
    let (status, body, session) = post(
        base,
        &[],
        json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion":"2025-11-25","capabilities":{},
            "clientInfo":{"name":"test","version":"0"}}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    session.expect("a session id")
}

async fn in_session(base: &str, session: &str, method: &str, params: Value) -> Value {
    let (_, body, _) = post(
        base,
        &[
            ("mcp-session-id", session),
            ("mcp-protocol-version", "2025-11-25"),
        ],
        json!({"jsonrpc":"2.0","id":1,"method":method,"params":params}),
    )
    .await;
    body
}

/// A 2026-07-28 request from a client with the tasks extension.
async fn modern(base: &str, method: &str, params: Value) -> Value {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities":
            {"extensions": {"io.modelcontextprotocol/tasks": {}}},
    });
    let name = params["name"].as_str().unwrap_or("").to_owned();
    let mut headers = vec![("mcp-protocol-version", MODERN), ("mcp-method", method)];
    if method == "tools/call" {
        headers.push(("mcp-name", name.as_str()));
    }
    let (_, body, _) = post(
        base,
        &headers,
        json!({"jsonrpc":"2.0","id":1,"method":method,"params":params}),
    )
    .await;
    body
}

fn scan_args(target: &str, port: u16) -> Value {
    json!({"target": target, "args": "-sT -n", "ports": port.to_string(), "chunk_hosts": 256})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_mcp_scan_of_a_slash_22_is_one_parent_whose_task_reports_chunks_and_ends_with_every_host()
 {
    let s = stack("mcp-big").await;
    let port = free_port();
    let session = initialize(&s.base).await;

    // The schema offers chunk_hosts, bounded by what one job of the tool may scan.
    let tools = in_session(&s.base, &session, "tools/list", json!({})).await;
    let scan = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "bignmap_scan")
        .unwrap()
        .clone();
    let chunk_prop = &scan["inputSchema"]["properties"]["chunk_hosts"];
    assert_eq!(chunk_prop["type"], "integer", "{chunk_prop}");
    assert_eq!(chunk_prop["minimum"], 1);
    assert_eq!(chunk_prop["maximum"], 1024);
    assert!(scan["outputSchema"]["properties"]["chunks"].is_object());

    // 2025-11-25: a task-augmented call answers with the parent's task at once.
    let created = in_session(
        &s.base,
        &session,
        "tools/call",
        json!({"name": "bignmap_scan", "arguments": scan_args("127.1.0.0/22", port),
            "task": {"ttl": 60000}}),
    )
    .await;
    let task = &created["result"]["task"];
    let id = task["taskId"].as_str().expect("a task").to_owned();
    assert_eq!(task["status"], "working", "{created}");
    let msg = task["statusMessage"].as_str().unwrap();
    assert!(
        msg.contains(" of 4 chunks done") && msg.contains("1024 hosts"),
        "{msg}"
    );

    let result = eventually(Duration::from_secs(150), "the parent finished", || {
        let (base, session, id) = (s.base.clone(), session.clone(), id.clone());
        async move {
            let r = in_session(&base, &session, "tasks/result", json!({"taskId": id})).await;
            r.get("result").cloned()
        }
    })
    .await;
    let view = &result["structuredContent"];
    assert_eq!(view["correlation_id"], id.as_str(), "{view}");
    assert_eq!(view["state"], "succeeded", "{view}");
    assert_eq!(view["chunks"]["total"], 4, "{view}");
    assert_eq!(view["chunks"]["succeeded"], 4, "{view}");
    assert_eq!(view["progress"]["hosts_done"], 1024, "{view}");
    assert_eq!(view["progress"]["hosts_total"], 1024, "{view}");
    assert!(view.get("partial").is_none(), "{view}");
    assert_eq!(view["result"]["summary"]["parsed_items"], 1024, "{view}");
    assert_eq!(view["result"]["summary"]["partial"], false, "{view}");
    let text = result["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("[big scan: 4 of 4 chunks done, 1024 of 1024 hosts]"),
        "{text}"
    );
    let got = in_session(&s.base, &session, "tasks/get", json!({"taskId": id})).await;
    assert_eq!(got["result"]["status"], "completed", "{got}");
    assert!(
        got["result"]["statusMessage"]
            .as_str()
            .unwrap()
            .contains("4 of 4 chunks done, 1024 of 1024 hosts"),
        "{got}"
    );
    // The merged result holds every host once, as REST reads it.
    let doc = get_json(&s.base, &format!("/v1/jobs/{id}")).await;
    assert_eq!(
        doc["result"]["parsed"]["hosts"].as_array().unwrap().len(),
        1024
    );

    // A chunk is a job of its own whose view names its parent.
    let (_, chunk, _) = post(
        &s.base,
        &[
            ("mcp-session-id", &session),
            ("mcp-protocol-version", "2025-11-25"),
        ],
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"job_status",
            "arguments":{"correlation_id": format!("{id}:2")}}}),
    )
    .await;
    let c = &chunk["result"]["structuredContent"];
    assert_eq!(c["parent"], id.as_str(), "{chunk}");
    assert_eq!(c["target"], "127.1.2.0/24", "{chunk}");

    // 2026-07-28 with the tasks extension: the still-running parent answers as a task.
    let created = modern(
        &s.base,
        "tools/call",
        json!({"name": "bignmap_scan", "arguments": scan_args("127.1.4.0/23", port)}),
    )
    .await;
    let t = &created["result"];
    assert_eq!(t["resultType"], "task", "{created}");
    assert!(
        t["statusMessage"]
            .as_str()
            .unwrap()
            .contains(" of 2 chunks done"),
        "{created}"
    );
    let id = t["taskId"].as_str().unwrap().to_owned();
    let done = eventually(
        Duration::from_secs(150),
        "the modern task completed",
        || {
            let (base, id) = (s.base.clone(), id.clone());
            async move {
                let r = modern(&base, "tasks/get", json!({"taskId": id})).await;
                (r["result"]["status"] == "completed").then_some(r)
            }
        },
    )
    .await;
    let inner = &done["result"]["result"]["structuredContent"];
    assert_eq!(inner["chunks"]["succeeded"], 2, "{done}");
    assert_eq!(inner["result"]["summary"]["parsed_items"], 512, "{done}");
    assert!(
        done["result"]["statusMessage"]
            .as_str()
            .unwrap()
            .contains("2 of 2 chunks done, 512 of 512 hosts"),
        "{done}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_size_out_of_bounds_is_refused_naming_chunk_hosts() {
    let s = stack("mcp-big-refuse").await;
    for bad in [json!(0), json!(5000), json!("256")] {
        let mut args = scan_args("127.1.0.0/22", 9);
        args["chunk_hosts"] = bad.clone();
        let r = modern(
            &s.base,
            "tools/call",
            json!({"name": "bignmap_scan", "arguments": args}),
        )
        .await;
        let refusal = &r["result"];
        assert_eq!(refusal["isError"], true, "{bad}: {r}");
        assert_eq!(
            refusal["structuredContent"]["field"], "chunk_hosts",
            "{bad}: {r}"
        );
        assert!(
            refusal["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains("chunk_hosts"),
            "{r}"
        );
    }
    // Nothing was queued.
    let list = get_json(&s.base, "/v1/jobs").await;
    assert_eq!(list["jobs"], json!([]), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wait_sec_follows_the_parent_with_progress_that_names_its_chunks() {
    let s = stack("mcp-big-wait").await;
    let mut args = scan_args("127.1.8.0/22", free_port());
    args["wait_sec"] = json!(50);
    let mut params = json!({"name": "bignmap_scan", "arguments": args});
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "progressToken": "big-1",
    });
    let resp = http()
        .post(format!("{}/mcp", s.base))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "bignmap_scan")
        .body(json!({"jsonrpc":"2.0","id":9,"method":"tools/call","params":params}).to_string())
        .send()
        .await
        .unwrap();
    let text = resp.text().await.unwrap();
    let messages: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let notes: Vec<&Value> = messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .map(|m| &m["params"])
        .collect();
    let values: Vec<f64> = notes
        .iter()
        .map(|p| p["progress"].as_f64().unwrap())
        .collect();
    assert!(values.windows(2).all(|w| w[0] < w[1]), "{values:?}");
    assert_eq!(values.last(), Some(&100.0), "{text}");
    for p in notes.iter().filter(|p| {
        p["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("running"))
    }) {
        assert!(
            p["message"].as_str().unwrap().contains(" of 4 chunks done"),
            "{p}"
        );
    }
    let last = messages.last().unwrap();
    assert_eq!(last["id"], 9);
    let view = &last["result"]["structuredContent"];
    assert_eq!(view["state"], "succeeded", "{last}");
    assert_eq!(view["chunks"]["succeeded"], 4, "{view}");
    assert_eq!(view["result"]["summary"]["parsed_items"], 1024, "{view}");
}
