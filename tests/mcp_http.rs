//! `/mcp` at the wire: sessions in Redis, the 2026-07-28 checks, Origin/Host refusals, tenant
//! isolation, the tasks extension, and what happens when Redis is down. Real redis-server, API
//! and worker; raw JSON-RPC over HTTP so every status code and error code is visible.

use std::time::Duration;

use scanq::catalog::Catalog;
use scanq::config::Config;
use scanq::domain::TenantId;
use scanq::queue::Queue;
use scanq::request::JobSpec;
use scanq_tests::*;
use serde_json::{Value, json};

const MODERN: &str = "2026-07-28";

struct Stack {
    redis: RedisServer,
    cfg: Config,
    catalog: Catalog,
    _api: Task,
    _worker: Task,
    base: String,
    _fixture: Fixture,
}

async fn stack(name: &str) -> Stack {
    let redis = RedisServer::start().await;
    let fixture = Fixture::new();
    let fake = fixture.script("fake", &fake_tool_script(None));
    let path = fixture.catalog(&format!(
        "{}{}",
        fake_tool_catalog("slow", &fake, ""),
        INPROCESS_TOOLS
    ));
    let catalog = Catalog::load(Some(&path)).expect("catalog");
    let cfg = test_config(&redis, name);
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let worker = start_worker(cfg.clone(), catalog.clone()).await;
    Stack {
        redis,
        cfg,
        catalog,
        _api: api,
        _worker: worker,
        base,
        _fixture: fixture,
    }
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    /// The JSON-RPC message (the last one of an SSE stream).
    body: Value,
}

async fn post(base: &str, headers: &[(&str, &str)], body: Value) -> Reply {
    let mut req = http()
        .post(format!("{base}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.body(body.to_string()).send().await.expect("post /mcp");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    let body = if headers
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"))
    {
        text.lines()
            .rev()
            .filter_map(|l| l.strip_prefix("data: "))
            .find_map(|d| serde_json::from_str(d).ok())
            .unwrap_or(Value::Null)
    } else {
        serde_json::from_str(&text).unwrap_or(Value::Null)
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn modern_request(id: u64, method: &str, params: Value, tasks: bool) -> Value {
    let mut params = params;
    let caps = if tasks {
        json!({"extensions": {"io.modelcontextprotocol/tasks": {}}})
    } else {
        json!({})
    };
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": caps,
    });
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

async fn modern(base: &str, method: &str, params: Value, tasks: bool) -> Reply {
    let name = params["name"].as_str().unwrap_or("").to_owned();
    let mut headers = vec![("mcp-protocol-version", MODERN), ("mcp-method", method)];
    if method == "tools/call" {
        headers.push(("mcp-name", name.as_str()));
    }
    post(base, &headers, modern_request(1, method, params, tasks)).await
}

async fn initialize(base: &str) -> String {
    let r = post(
        base,
        &[],
        json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion":"2025-11-25","capabilities":{},
            "clientInfo":{"name":"test","version":"0"}}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["result"]["protocolVersion"], "2025-11-25");
    r.headers["mcp-session-id"].to_str().unwrap().to_owned()
}

async fn in_session(base: &str, session: &str, id: u64, method: &str, params: Value) -> Reply {
    post(
        base,
        &[
            ("mcp-session-id", session),
            ("mcp-protocol-version", "2025-11-25"),
        ],
        json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}),
    )
    .await
}

#[tokio::test]
async fn a_disallowed_origin_or_host_is_refused_with_403() {
    let s = stack("mcp-origin").await;
    let body = modern_request(1, "tools/list", json!({}), false);

    let evil = post(&s.base, &[("origin", "http://evil.example")], body.clone()).await;
    let host = post(&s.base, &[("host", "evil.example")], body.clone()).await;
    let local = post(
        &s.base,
        &[
            ("origin", "http://localhost:6274"),
            ("mcp-protocol-version", MODERN),
        ],
        body,
    )
    .await;

    assert_eq!(evil.status, 403, "{}", evil.body);
    assert_eq!(evil.body["status"], 403);
    assert_eq!(host.status, 403, "{}", host.body);
    assert_eq!(local.status, 200, "{}", local.body);
}

#[tokio::test]
async fn a_session_opened_on_one_instance_is_served_by_another_until_deleted() {
    let s = stack("mcp-session").await;
    let (_api_b, base_b) = start_api(s.cfg.clone(), s.catalog.clone()).await;
    let session = initialize(&s.base).await;

    let listed = in_session(&base_b, &session, 1, "tools/list", json!({})).await;
    let note = post(
        &base_b,
        &[("mcp-session-id", &session)],
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    )
    .await;
    let deleted = http()
        .delete(format!("{base_b}/mcp"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    let after = in_session(&s.base, &session, 2, "tools/list", json!({})).await;
    let missing = post(
        &s.base,
        &[],
        json!({"jsonrpc":"2.0","id":3,"method":"tools/list"}),
    )
    .await;
    let bogus = in_session(&s.base, "not-a-session", 4, "tools/list", json!({})).await;

    assert_eq!(listed.status, 200);
    let names: Vec<&str> = listed.body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for want in [
        "nmap_scan",
        "slow_scan",
        "noop_scan",
        "sleep_scan",
        "job_status",
        "job_result",
        "job_cancel",
        "job_list",
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    assert_eq!(note.status, 202);
    assert_eq!(deleted.status(), 204);
    assert_eq!(after.status, 404, "{}", after.body);
    assert_eq!(missing.status, 400, "{}", missing.body);
    assert_eq!(bogus.status, 404);
}

#[tokio::test]
async fn the_get_stream_is_sse_for_a_session_and_refused_otherwise() {
    let s = stack("mcp-get").await;
    let session = initialize(&s.base).await;
    let get = |headers: Vec<(&'static str, String)>| {
        let mut req = http()
            .get(format!("{}/mcp", s.base))
            .header("accept", "text/event-stream");
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };

    let open = get(vec![("mcp-session-id", session.clone())])
        .await
        .unwrap();
    let unknown = get(vec![("mcp-session-id", "0".repeat(32))]).await.unwrap();
    let modern = get(vec![("mcp-protocol-version", MODERN.into())])
        .await
        .unwrap();

    assert_eq!(open.status(), 200);
    assert!(
        open.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(unknown.status(), 404);
    assert_eq!(modern.status(), 405);
}

#[tokio::test]
async fn per_request_clients_are_checked_envelope_headers_then_version() {
    let s = stack("mcp-ladder").await;

    let no_meta = post(
        &s.base,
        &[("mcp-protocol-version", MODERN)],
        json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}),
    )
    .await;
    let mismatch = post(
        &s.base,
        &[
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
        ],
        modern_request(1, "tools/list", json!({}), false),
    )
    .await;
    let mut future = modern_request(1, "tools/list", json!({}), false);
    future["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let unsupported = post(&s.base, &[("mcp-protocol-version", "2099-01-01")], future).await;
    let unknown_method = modern(&s.base, "resources/subscribe", json!({}), false).await;
    let discover = modern(&s.base, "server/discover", json!({}), true).await;
    let parse = post(&s.base, &[], json!("not json-rpc")).await;
    let batch = post(
        &s.base,
        &[],
        json!([{"jsonrpc":"2.0","id":1,"method":"ping"}]),
    )
    .await;

    assert_eq!(no_meta.status, 400);
    assert_eq!(no_meta.body["error"]["code"], -32602);
    assert_eq!(mismatch.status, 400);
    assert_eq!(mismatch.body["error"]["code"], -32020);
    assert_eq!(unsupported.status, 400);
    assert_eq!(unsupported.body["error"]["code"], -32022);
    assert_eq!(
        unsupported.body["error"]["data"]["supported"],
        json!([MODERN])
    );
    assert_eq!(unknown_method.status, 404);
    assert_eq!(unknown_method.body["error"]["code"], -32601);
    assert_eq!(discover.status, 200);
    let d = &discover.body["result"];
    assert_eq!(d["resultType"], "complete");
    assert_eq!(d["supportedVersions"], json!([MODERN]));
    assert!(d["capabilities"]["extensions"]["io.modelcontextprotocol/tasks"].is_object());
    assert_eq!(parse.status, 400);
    assert_eq!(batch.body["error"]["code"], -32600);
}

#[tokio::test]
async fn validation_errors_are_tool_results_naming_the_field_and_unknown_tools_are_rpc_errors() {
    let s = stack("mcp-invalid").await;
    let call = |args: Value| {
        modern(
            &s.base,
            "tools/call",
            json!({"name": "nmap_scan", "arguments": args}),
            false,
        )
    };

    let target = call(json!({"target": "203.0.113.5"})).await;
    let ports = call(json!({"target": "127.0.0.1", "ports": "1-99999"})).await;
    let extra = call(json!({"target": "127.0.0.1", "colour": "red"})).await;
    let wait = call(json!({"target": "127.0.0.1", "wait_sec": 51})).await;
    let template = call(json!({"target": "127.0.0.1", "template": "nope"})).await;
    let unknown = modern(
        &s.base,
        "tools/call",
        json!({"name": "rm_rf", "arguments": {}}),
        false,
    )
    .await;

    for (reply, field) in [
        (&target, "target"),
        (&ports, "ports"),
        (&extra, "colour"),
        (&wait, "wait_sec"),
        (&template, "template"),
    ] {
        let r = &reply.body["result"];
        assert_eq!(r["isError"], true, "{}", reply.body);
        assert_eq!(r["structuredContent"]["field"], field, "{}", reply.body);
        assert_eq!(r["structuredContent"]["status"], 422);
        assert!(!r["structuredContent"]["hint"].as_str().unwrap().is_empty());
        assert!(r["content"][0]["text"].as_str().unwrap().contains(field));
    }
    assert_eq!(unknown.body["error"]["code"], -32602, "{}", unknown.body);
    let listed = modern(&s.base, "tools/call", json!({"name": "job_list"}), false).await;
    assert_eq!(
        listed.body["result"]["structuredContent"]["jobs"],
        json!([]),
        "nothing was enqueued"
    );
}

#[tokio::test]
async fn a_tool_call_naming_an_argument_twice_is_refused_naming_it() {
    let s = stack("mcp-dup").await;
    let meta = format!(
        r#"{{"io.modelcontextprotocol/protocolVersion":"{MODERN}","io.modelcontextprotocol/clientCapabilities":{{}}}}"#
    );
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"nmap_scan","_meta":{meta},"arguments":{{"target":"127.0.0.1","target":"127.0.0.2"}}}}}}"#
    );
    let resp = http()
        .post(format!("{}/mcp", s.base))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "nmap_scan")
        .body(body)
        .send()
        .await
        .expect("post /mcp");
    assert_eq!(resp.status().as_u16(), 400);
    let reply: Value = resp.json().await.expect("json-rpc error");
    assert_eq!(reply["id"], 7, "{reply}");
    assert_eq!(reply["error"]["code"], -32602, "{reply}");
    assert_eq!(reply["error"]["data"]["field"], "target", "{reply}");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(message.contains("duplicate key `target`"), "{reply}");
    assert!(message.contains("$.params.arguments"), "{reply}");
    let listed = modern(&s.base, "tools/call", json!({"name": "job_list"}), false).await;
    assert_eq!(
        listed.body["result"]["structuredContent"]["jobs"],
        json!([]),
        "nothing was enqueued"
    );
}

#[tokio::test]
async fn another_tenants_job_and_task_are_not_found() {
    let s = stack("mcp-tenant").await;
    let pool = scanq::queue::pool(&s.cfg).unwrap();
    let queue = Queue::new(pool, &s.cfg);
    let targets = scanq::validate::TargetPolicy::parse(
        &s.cfg.allowed_targets,
        &s.cfg.denied_targets,
        s.cfg.max_hosts,
    )
    .unwrap();
    let zones = scanq::validate::ZoneMap::default();
    let policy = scanq::request::Policy {
        catalog: &s.catalog,
        targets: &targets,
        zones: &zones,
        allow_intrusive: false,
        default_max_attempts: 1,
        require_engagement: false,
        approval: scanq::engagement::Approval::Never,
    };
    let spec = JobSpec::from_json(
        &json!({"tool":"sleep","target":"10.0.0.5","args":"--ms 60000","correlation_id":"theirs"}),
        &policy,
    )
    .unwrap();
    queue
        .submit(&TenantId::parse("other").unwrap(), &spec)
        .await
        .unwrap();
    let session = initialize(&s.base).await;

    let status = modern(
        &s.base,
        "tools/call",
        json!({"name":"job_status","arguments":{"correlation_id":"theirs"}}),
        false,
    )
    .await;
    let cancel = modern(
        &s.base,
        "tools/call",
        json!({"name":"job_cancel","arguments":{"correlation_id":"theirs"}}),
        false,
    )
    .await;
    let result = modern(
        &s.base,
        "tools/call",
        json!({"name":"job_result","arguments":{"correlation_id":"theirs"}}),
        false,
    )
    .await;
    let task = in_session(
        &s.base,
        &session,
        1,
        "tasks/get",
        json!({"taskId":"theirs"}),
    )
    .await;
    let task_cancel = in_session(
        &s.base,
        &session,
        2,
        "tasks/cancel",
        json!({"taskId":"theirs"}),
    )
    .await;
    let tasks = in_session(&s.base, &session, 3, "tasks/list", json!({})).await;

    for reply in [&status, &cancel, &result] {
        let r = &reply.body["result"];
        assert_eq!(r["isError"], true, "{}", reply.body);
        assert_eq!(r["structuredContent"]["error_type"], "not_found");
    }
    assert_eq!(task.body["error"]["code"], -32602, "{}", task.body);
    assert_eq!(task_cancel.body["error"]["code"], -32602);
    assert_eq!(tasks.body["result"]["tasks"], json!([]));
    let (_, theirs) = queue
        .get(
            &TenantId::parse("other").unwrap(),
            &scanq::domain::CorrelationId::parse("theirs").unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(!theirs.state.is_terminal(), "their job was not cancelled");
}

#[tokio::test]
async fn a_2026_client_with_the_tasks_extension_gets_a_task_it_can_poll_and_cancel() {
    let s = stack("mcp-ext").await;

    let created = modern(
        &s.base,
        "tools/call",
        json!({"name":"sleep_scan","arguments":{"target":"10.0.0.5","args":"--ms 300"}}),
        true,
    )
    .await;
    let t = &created.body["result"];
    assert_eq!(t["resultType"], "task", "{}", created.body);
    assert_eq!(t["status"], "working");
    assert!(t["pollIntervalMs"].as_u64().unwrap() > 0);
    let id = t["taskId"].as_str().unwrap().to_owned();
    let done = eventually(Duration::from_secs(20), "task completed", || {
        let base = s.base.clone();
        let id = id.clone();
        async move {
            let r = modern(&base, "tasks/get", json!({"taskId": id}), true).await;
            (r.body["result"]["status"] == "completed").then_some(r.body)
        }
    })
    .await;
    let inner = &done["result"]["result"];
    assert_eq!(inner["structuredContent"]["state"], "succeeded", "{done}");
    assert_eq!(inner["isError"], false);

    let long = modern(
        &s.base,
        "tools/call",
        json!({"name":"sleep_scan","arguments":{"target":"10.0.0.5","args":"--ms 60000"}}),
        true,
    )
    .await;
    let long_id = long.body["result"]["taskId"].as_str().unwrap().to_owned();
    let ack = modern(&s.base, "tasks/cancel", json!({"taskId": long_id}), true).await;
    assert_eq!(ack.body["result"]["resultType"], "complete", "{}", ack.body);
    eventually(Duration::from_secs(20), "task cancelled", || {
        let base = s.base.clone();
        let id = long_id.clone();
        async move {
            let r = modern(&base, "tasks/get", json!({"taskId": id}), true).await;
            (r.body["result"]["status"] == "cancelled").then_some(())
        }
    })
    .await;
    let again = modern(&s.base, "tasks/cancel", json!({"taskId": long_id}), true).await;
    assert_eq!(again.body["error"]["code"], -32602, "{}", again.body);

    let without_ext = modern(
        &s.base,
        "tools/call",
        json!({"name":"sleep_scan","arguments":{"target":"10.0.0.5","args":"--ms 60000"}}),
        false,
    )
    .await;
    assert_eq!(
        without_ext.body["result"]["structuredContent"]["state"],
        "queued"
    );
}

#[tokio::test]
async fn wait_sec_streams_monotonic_progress_over_sse_and_returns_the_result() {
    let s = stack("mcp-progress").await;
    let mut body = modern_request(
        7,
        "tools/call",
        json!({"name":"sleep_scan","arguments":{"target":"10.0.0.5","args":"--ms 500","wait_sec":30}}),
        false,
    );
    body["params"]["_meta"]["progressToken"] = json!("tok-1");
    let resp = http()
        .post(format!("{}/mcp", s.base))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "sleep_scan")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = resp.text().await.unwrap();
    let messages: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();

    let progress: Vec<f64> = messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .map(|m| {
            assert_eq!(m["params"]["progressToken"], "tok-1");
            m["params"]["progress"].as_f64().unwrap()
        })
        .collect();
    assert!(!progress.is_empty(), "{text}");
    assert!(progress.windows(2).all(|w| w[0] < w[1]), "{progress:?}");
    let last = messages.last().unwrap();
    assert_eq!(last["id"], 7);
    assert_eq!(
        last["result"]["structuredContent"]["state"], "succeeded",
        "{last}"
    );
    assert_eq!(last["result"]["structuredContent"]["result"]["page"], 1);
}

#[tokio::test]
async fn with_redis_down_sessions_fail_with_503_and_calls_with_a_retryable_rpc_error() {
    let mut s = stack("mcp-down").await;
    let session = initialize(&s.base).await;
    s.redis.kill();

    let init = post(
        &s.base,
        &[],
        json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{}}}),
    )
    .await;
    let in_old_session = in_session(&s.base, &session, 1, "tools/list", json!({})).await;
    let call = modern(
        &s.base,
        "tools/call",
        json!({"name":"job_status","arguments":{"correlation_id":"x"}}),
        false,
    )
    .await;

    assert_eq!(init.status, 503, "{}", init.body);
    assert_eq!(in_old_session.status, 503);
    assert_eq!(call.body["error"]["code"], -32000, "{}", call.body);
    assert!(
        call.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("retry")
    );
}

#[tokio::test]
async fn tokens_tenants_and_scopes_are_those_of_rest() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = Tokens::write(
        dir.path(),
        &[
            ("blue-agent", "blue", "submit,read,cancel"),
            ("red-agent", "red", "submit,read,cancel"),
            ("blue-viewer", "blue", "read"),
        ],
        "",
    );
    let fixture = Fixture::new();
    let catalog = Catalog::load(Some(&fixture.catalog(INPROCESS_TOOLS))).unwrap();
    let mut cfg = test_config(&redis, "mcp-auth");
    cfg.api_tokens_file = Some(tokens.path.clone());
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;
    let bearer = |name: &str| format!("Bearer {}", tokens.get(name));
    let call = |auth: Option<String>, name: &'static str, args: Value| {
        let base = base.clone();
        async move {
            let mut headers = vec![
                ("mcp-protocol-version", MODERN.to_owned()),
                ("mcp-method", "tools/call".to_owned()),
                ("mcp-name", name.to_owned()),
            ];
            if let Some(a) = auth {
                headers.push(("authorization", a));
            }
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post(
                &base,
                &h,
                modern_request(
                    1,
                    "tools/call",
                    json!({"name": name, "arguments": args}),
                    false,
                ),
            )
            .await
        }
    };

    let anonymous = call(None, "job_list", json!({})).await;
    let wrong = call(Some("Bearer nope".into()), "job_list", json!({})).await;
    let blue = call(
        Some(bearer("blue-agent")),
        "noop_scan",
        json!({"target": "10.0.0.5", "correlation_id": "blue-1"}),
    )
    .await;
    let red_reads_blue = call(
        Some(bearer("red-agent")),
        "job_status",
        json!({"correlation_id": "blue-1"}),
    )
    .await;
    let viewer_scans = call(
        Some(bearer("blue-viewer")),
        "noop_scan",
        json!({"target": "10.0.0.5"}),
    )
    .await;
    let viewer_reads = call(
        Some(bearer("blue-viewer")),
        "job_status",
        json!({"correlation_id": "blue-1"}),
    )
    .await;
    let viewer_cancels = call(
        Some(bearer("blue-viewer")),
        "job_cancel",
        json!({"correlation_id": "blue-1"}),
    )
    .await;
    let blue_token = bearer("blue-agent");
    let blue_init = post(
        &base,
        &[("authorization", &blue_token)],
        json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{}}}),
    )
    .await;
    let blue_session = blue_init.headers["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let red_uses_blue_session = post(
        &base,
        &[
            ("authorization", &bearer("red-agent")),
            ("mcp-session-id", &blue_session),
        ],
        json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
    )
    .await;

    assert_eq!(anonymous.status, 401);
    assert_eq!(wrong.status, 401);
    assert_eq!(blue.body["result"]["isError"], false, "{}", blue.body);
    let r = &red_reads_blue.body["result"];
    assert_eq!(r["isError"], true);
    assert_eq!(r["structuredContent"]["error_type"], "not_found");
    assert_eq!(viewer_scans.body["result"]["isError"], true);
    assert_eq!(
        viewer_scans.body["result"]["structuredContent"]["status"],
        403
    );
    assert_eq!(
        viewer_reads.body["result"]["isError"], false,
        "{}",
        viewer_reads.body
    );
    assert_eq!(
        viewer_cancels.body["result"]["structuredContent"]["status"],
        403
    );
    assert_eq!(red_uses_blue_session.status, 404);
}

/// A `sleep_scan` call from a client that takes JSON answers only (no SSE, no progress token).
async fn json_only_scan(base: &str, arguments: Value) -> reqwest::Response {
    http()
        .post(format!("{base}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .header("mcp-protocol-version", MODERN)
        .body(
            modern_request(
                1,
                "tools/call",
                json!({"name": "sleep_scan", "arguments": arguments}),
                false,
            )
            .to_string(),
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_json_only_client_may_wait_past_the_request_timeout() {
    let redis = RedisServer::start().await;
    let fixture = Fixture::new();
    let catalog = Catalog::load(Some(&fixture.catalog(INPROCESS_TOOLS))).unwrap();
    let mut cfg = test_config(&redis, "mcp-json-wait");
    cfg.request_timeout_sec = 1;
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;

    let resp = json_only_scan(
        &base,
        json!({"target":"10.0.0.5","args":"--ms 2500","wait_sec":20}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["result"]["structuredContent"]["state"], "succeeded",
        "{body}"
    );
}

/// A call without a progress token waits as `POST /v1/jobs` with `Prefer: wait` does; when the
/// wait ends before the job, the client gets the job as it is then and how to follow it.
#[tokio::test]
async fn a_wait_that_ends_before_the_job_answers_with_the_job_to_follow() {
    let redis = RedisServer::start().await;
    let fixture = Fixture::new();
    let catalog = Catalog::load(Some(&fixture.catalog(INPROCESS_TOOLS))).unwrap();
    let cfg = test_config(&redis, "mcp-short-wait");
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;
    let started = std::time::Instant::now();
    let resp = json_only_scan(
        &base,
        json!({"target":"10.0.0.5","args":"--ms 20000","wait_sec":1}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let view = &body["result"]["structuredContent"];
    assert_eq!(view["state"], "running", "{body}");
    assert!(view["next_step"].as_str().unwrap().contains("job_status"));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "answered when its wait ended, not with the job"
    );
}

/// Runs `scanq-api mcp-stdio` with `args`, writes `lines` to it, and returns what it printed.
async fn bridge(args: &[&str], lines: &[String]) -> Vec<Value> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(bin("scanq-api"))
        .arg("mcp-stdio")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the bridge");
    let mut stdin = child.stdin.take().unwrap();
    for l in lines {
        stdin.write_all(format!("{l}\n").as_bytes()).await.unwrap();
    }
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("bridge exits at EOF")
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON message per line"))
        .collect()
}

#[tokio::test]
async fn the_stdio_bridge_turns_http_refusals_and_an_unreachable_api_into_rpc_errors() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = Tokens::write(dir.path(), &[("agent", "blue", "read,submit")], "");
    let fixture = Fixture::new();
    let catalog = Catalog::load(Some(&fixture.catalog(INPROCESS_TOOLS))).unwrap();
    let mut cfg = test_config(&redis, "mcp-bridge");
    cfg.api_tokens_file = Some(tokens.path.clone());
    let (_api, base) = start_api(cfg, catalog).await;
    let list = modern_request(5, "tools/list", json!({}), false).to_string();
    let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"}).to_string();

    let refused = bridge(&["--url", &base], &[list.clone(), note.clone()]).await;
    let allowed = bridge(
        &["--url", &base, "--token", tokens.get("agent")],
        std::slice::from_ref(&list),
    )
    .await;
    let unreachable = bridge(
        &["--url", &format!("http://127.0.0.1:{}", free_port())],
        &[list],
    )
    .await;
    let garbage = bridge(&["--url", &base], &["{".to_owned()]).await;

    assert_eq!(
        refused.len(),
        1,
        "the notification gets no reply: {refused:?}"
    );
    assert_eq!(refused[0]["id"], 5);
    assert_eq!(refused[0]["error"]["data"]["http_status"], 401);
    assert!(allowed[0]["result"]["tools"].as_array().unwrap().len() >= 5);
    assert_eq!(unreachable[0]["id"], 5);
    assert!(
        unreachable[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot reach")
    );
    assert_eq!(garbage[0]["error"]["code"], -32700);
}
