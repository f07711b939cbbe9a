//! Engagements (DESIGN §14, `/v1/engagements`): CRUD and its refusals, two tenants kept apart,
//! tools and templates outside an engagement, expiry (new jobs refused, schedules parked),
//! deletion (new jobs and retries refused), `SCANQ_REQUIRE_ENGAGEMENT`, and a big scan's chunks
//! carrying their engagement. Real Redis, API and worker; targets only in 127.0.0.0/8; the
//! in-process `noop`/`sleep` tools.

use std::time::{Duration, SystemTime};

use reqwest::Method;
use scanq::catalog::Catalog;
use scanq::config::Config;
use scanq::domain::{CorrelationId, TenantId, chunk_id};
use scanq::queue::Queue;
use scanq_tests::*;
use serde_json::{Value, json};

/// The in-process tools, `sleep` with two templates.
const TOOLS: &str = r#"
[tools.sleep.templates]
short = "--ms 10"
long = "--ms 20"
"#;

struct Env {
    redis: RedisServer,
    _fx: Fixture,
    cfg: Config,
    catalog: Catalog,
    tokens: Tokens,
}

/// Two tenants, `blue` and `red`, each with a `submit,read,cancel` token; blue also has a
/// `read`-only token.
async fn env(name: &str) -> Env {
    let redis = RedisServer::start().await;
    let (mut cfg, _, fx) = scheduling(&redis, name);
    let catalog = Catalog::load(Some(&fx.catalog(&format!("{INPROCESS_TOOLS}{TOOLS}")))).unwrap();
    let tokens = Tokens::write(
        fx.dir.path(),
        &[
            ("blue", "blue", "submit,read,cancel"),
            ("blue-ro", "blue", "read"),
            ("red", "red", "submit,read,cancel"),
        ],
        "",
    );
    cfg.api_tokens_file = Some(tokens.path.clone());
    Env {
        redis,
        _fx: fx,
        cfg,
        catalog,
        tokens,
    }
}

/// One call as `token`: its status and JSON body (null when none).
async fn call(
    base: &str,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn put_eng(base: &str, token: &str, id: &str, body: Value) -> (u16, Value) {
    call(
        base,
        token,
        Method::PUT,
        &format!("/v1/engagements/{id}"),
        Some(body),
    )
    .await
}

async fn submit(base: &str, token: &str, body: Value) -> (u16, Value) {
    call(base, token, Method::POST, "/v1/jobs", Some(body)).await
}

/// RFC 3339 of now plus `secs`.
fn in_secs(secs: u64) -> String {
    humantime::format_rfc3339(SystemTime::now() + Duration::from_secs(secs)).to_string()
}

fn refused(r: &(u16, Value), field: &str) {
    assert_eq!(r.0, 422, "{}", r.1);
    assert_eq!(r.1["field"], field, "{}", r.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engagements_are_put_read_listed_and_deleted_and_bad_ones_refused_naming_the_field() {
    let e = env("engcrud").await;
    let (_api, base) = start_api(e.cfg.clone(), e.catalog.clone()).await;
    let blue = e.tokens.get("blue");
    let body = json!({
        "description": "Q4 internal test",
        "targets": ["127.0.1.0/24"],
        "denied_targets": ["127.0.1.128/25"],
        "tools": ["sleep"],
        "templates": ["short"],
        "blackouts": [{"start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z", "reason": "freeze"}],
        "expires_at": "2199-01-01T00:00:00Z",
        "approval": "never",
    });

    let (status, list) = call(&base, blue, Method::GET, "/v1/engagements", None).await;
    assert_eq!((status, list), (200, json!({"engagements": []})));
    let (status, doc) = put_eng(&base, blue, "q4", body.clone()).await;
    assert_eq!(status, 201, "{doc}");
    assert_eq!(doc["id"], "q4");
    assert_eq!(doc["state"], "active");
    assert_eq!(doc["timezone"], "UTC");
    assert_eq!(doc["expires_at"], "2199-01-01T00:00:00.000Z");
    assert_eq!(doc["blackouts"][0]["start"], "2030-01-01T00:00:00.000Z");
    assert_eq!(doc["blackouts"][0]["reason"], "freeze");
    let created = doc["created_at"].clone();
    let (status, doc) = put_eng(&base, blue, "q4", body.clone()).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["created_at"], created);
    let (status, later) = put_eng(
        &base,
        blue,
        "later",
        json!({"targets": ["127.0.2.1"], "starts_at": "2199-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!((status, &later["state"]), (201, &json!("not_started")));

    let (status, doc) = call(&base, blue, Method::GET, "/v1/engagements/q4", None).await;
    assert_eq!((status, &doc["targets"]), (200, &json!(["127.0.1.0/24"])));
    let (_, list) = call(&base, blue, Method::GET, "/v1/engagements", None).await;
    let ids: Vec<&str> = list["engagements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["q4", "later"]);

    // Refusals name the field.
    let wider = put_eng(
        &base,
        blue,
        "w",
        json!({"targets": ["127.0.0.0/8", "169.254.0.0/16"]}),
    )
    .await;
    refused(&wider, "targets[1]");
    refused(
        &put_eng(
            &base,
            blue,
            "w",
            json!({"targets": ["127.0.1.1"], "tools": ["nope"]}),
        )
        .await,
        "tools[0]",
    );
    refused(
        &put_eng(
            &base,
            blue,
            "w",
            json!({"targets": ["127.0.1.1"], "templates": ["nope"]}),
        )
        .await,
        "templates[0]",
    );
    refused(
        &put_eng(&base, blue, "w", json!({"targets": []})).await,
        "targets",
    );
    refused(
        &put_eng(
            &base,
            blue,
            "w",
            json!({"targets": ["127.0.1.1"], "colour": 1}),
        )
        .await,
        "colour",
    );
    refused(
        &put_eng(&base, blue, "w", json!({"targets": ["127.0.1.1"], "windows": [{"days": ["someday"], "start": "22:00", "end": "06:00"}]})).await,
        "windows[0].days[0]",
    );
    refused(
        &put_eng(
            &base,
            blue,
            "w",
            json!({"targets": ["127.0.1.1"], "expires_at": "2001-01-01T00:00:00Z"}),
        )
        .await,
        "expires_at",
    );
    refused(
        &put_eng(&base, blue, "bad%20id", json!({"targets": ["127.0.1.1"]})).await,
        "id",
    );
    let (status, _) = call(&base, blue, Method::GET, "/v1/engagements/w", None).await;
    assert_eq!(status, 404, "a refused body stores nothing");

    // Scopes: a read-only token reads but neither puts nor deletes.
    let ro = e.tokens.get("blue-ro");
    assert_eq!(
        call(&base, ro, Method::GET, "/v1/engagements/q4", None)
            .await
            .0,
        200
    );
    assert_eq!(put_eng(&base, ro, "q4", body).await.0, 403);
    assert_eq!(
        call(&base, ro, Method::DELETE, "/v1/engagements/q4", None)
            .await
            .0,
        403
    );

    let (status, _) = call(&base, blue, Method::DELETE, "/v1/engagements/q4", None).await;
    assert_eq!(status, 204);
    assert_eq!(
        call(&base, blue, Method::GET, "/v1/engagements/q4", None)
            .await
            .0,
        404
    );
    assert_eq!(
        call(&base, blue, Method::DELETE, "/v1/engagements/q4", None)
            .await
            .0,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_neither_scan_the_other_s_targets_nor_touch_the_other_s_engagement() {
    let e = env("engtenants").await;
    let (_api, base) = start_api(e.cfg.clone(), e.catalog.clone()).await;
    let _worker = start_worker(e.cfg.clone(), e.catalog.clone()).await;
    let (blue, red) = (e.tokens.get("blue"), e.tokens.get("red"));
    assert_eq!(
        put_eng(&base, blue, "b", json!({"targets": ["127.0.1.0/24"]}))
            .await
            .0,
        201
    );
    assert_eq!(
        put_eng(&base, red, "r", json!({"targets": ["127.0.2.0/24"]}))
            .await
            .0,
        201
    );
    // The same id in two tenants is two engagements.
    assert_eq!(
        put_eng(&base, red, "b", json!({"targets": ["127.0.2.0/25"]}))
            .await
            .0,
        201
    );

    // Blue under its own engagement: its targets run, red's are refused.
    let (status, job) = submit(
        &base,
        blue,
        json!({"tool": "noop", "target": "127.0.1.5", "engagement": "b"}),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let id = job["correlation_id"].as_str().unwrap();
    let done = wait_done_as(&base, Some(blue), id, Duration::from_secs(20)).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let r = submit(
        &base,
        blue,
        json!({"tool": "noop", "target": "127.0.2.5", "engagement": "b"}),
    )
    .await;
    refused(&r, "target");
    assert!(
        r.1["detail"].as_str().unwrap().contains("engagement b"),
        "{}",
        r.1
    );
    // Red's engagement is not blue's to name, read or delete.
    refused(
        &submit(
            &base,
            blue,
            json!({"tool": "noop", "target": "127.0.2.5", "engagement": "r"}),
        )
        .await,
        "engagement",
    );
    assert_eq!(
        call(&base, blue, Method::GET, "/v1/engagements/r", None)
            .await
            .0,
        404
    );
    assert_eq!(
        call(&base, blue, Method::DELETE, "/v1/engagements/r", None)
            .await
            .0,
        404
    );
    assert_eq!(
        call(&base, red, Method::GET, "/v1/engagements/r", None)
            .await
            .0,
        200
    );
    // Red's `b` is red's: blue's target is outside it.
    refused(
        &submit(
            &base,
            red,
            json!({"tool": "noop", "target": "127.0.1.5", "engagement": "b"}),
        )
        .await,
        "target",
    );
    let (_, list) = call(&base, blue, Method::GET, "/v1/engagements", None).await;
    assert_eq!(list["engagements"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["engagements"][0]["targets"], json!(["127.0.1.0/24"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_or_template_outside_the_engagement_is_refused_naming_which() {
    let e = env("engtools").await;
    let (_api, base) = start_api(e.cfg.clone(), e.catalog.clone()).await;
    let blue = e.tokens.get("blue");
    let body = json!({"targets": ["127.0.1.0/24"], "tools": ["sleep"], "templates": ["short"]});
    assert_eq!(put_eng(&base, blue, "t", body).await.0, 201);
    let job = |extra: Value| {
        let mut b = json!({"tool": "sleep", "target": "127.0.1.9", "engagement": "t"});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    refused(
        &submit(&base, blue, job(json!({"tool": "noop"}))).await,
        "tool",
    );
    refused(
        &submit(&base, blue, job(json!({"template": "long"}))).await,
        "template",
    );
    refused(&submit(&base, blue, job(json!({}))).await, "template");
    let (status, doc) = submit(&base, blue, job(json!({"template": "short"}))).await;
    assert_eq!(status, 202, "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_engagement_refuses_new_jobs_and_parks_its_schedule() {
    let e = env("engexpiry").await;
    let (_api, base) = start_api(e.cfg.clone(), e.catalog.clone()).await;
    // Runs finish, so each slot fires (a queued previous run would make it skip).
    let _worker = start_worker(e.cfg.clone(), e.catalog.clone()).await;
    let blue = e.tokens.get("blue");
    let (status, doc) = put_eng(
        &base,
        blue,
        "brief",
        json!({"targets": ["127.0.1.0/24"], "expires_at": in_secs(3)}),
    )
    .await;
    assert_eq!(status, 201, "{doc}");
    // A schedule naming an unknown engagement is refused; naming this one, accepted.
    let sched = |eng: &str| json!({"tool": "noop", "target": "127.0.1.7", "every_sec": 1, "engagement": eng});
    let put_sched = |body: Value| {
        call(
            &base,
            blue,
            Method::PUT,
            "/v1/schedules/nightly",
            Some(body),
        )
    };
    refused(&put_sched(sched("nope")).await, "engagement");
    let (status, doc) = put_sched(sched("brief")).await;
    assert_eq!(status, 201, "{doc}");
    assert_eq!(doc["template"]["engagement"], "brief", "{doc}");

    eventually(
        Duration::from_secs(15),
        "the engagement to expire",
        || async {
            let (_, doc) = call(&base, blue, Method::GET, "/v1/engagements/brief", None).await;
            (doc["state"] == "expired").then_some(())
        },
    )
    .await;
    let r = submit(
        &base,
        blue,
        json!({"tool": "noop", "target": "127.0.1.5", "engagement": "brief"}),
    )
    .await;
    refused(&r, "engagement");
    assert!(
        r.1["detail"].as_str().unwrap().contains("expired"),
        "{}",
        r.1
    );

    // A triggered run is refused the same way.
    refused(
        &call(
            &base,
            blue,
            Method::POST,
            "/v1/schedules/nightly/trigger",
            None,
        )
        .await,
        "engagement",
    );

    let parked = eventually(
        Duration::from_secs(15),
        "the schedule to be parked",
        || async {
            let (_, doc) = call(&base, blue, Method::GET, "/v1/schedules/nightly", None).await;
            (doc["state"] == "parked").then_some(doc)
        },
    )
    .await;
    let reason = parked["parked_reason"].as_str().unwrap_or("");
    assert!(reason.contains("engagement brief expired"), "{parked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_engagement_refuses_new_jobs_and_retries() {
    let e = env("engdeleted").await;
    let (_api, base) = start_api(e.cfg.clone(), e.catalog.clone()).await;
    let _worker = start_worker(e.cfg.clone(), e.catalog.clone()).await;
    let blue = e.tokens.get("blue");
    assert_eq!(
        put_eng(&base, blue, "gone", json!({"targets": ["127.0.1.0/24"]}))
            .await
            .0,
        201
    );
    let (status, job) = submit(
        &base,
        blue,
        json!({"tool": "sleep", "target": "127.0.1.5", "args": "--fail", "max_attempts": 1, "engagement": "gone"}),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let id = job["correlation_id"].as_str().unwrap();
    let done = wait_done_as(&base, Some(blue), id, Duration::from_secs(20)).await;
    assert_eq!(done["state"], "failed", "{done}");
    // While the engagement stands, the retry is admitted (and fails again).
    let retry = format!("/v1/jobs/{id}/retry");
    let (status, doc) = call(&base, blue, Method::POST, &retry, None).await;
    assert_eq!(status, 202, "{doc}");
    let done = wait_done_as(&base, Some(blue), id, Duration::from_secs(20)).await;
    assert_eq!(done["state"], "failed", "{done}");

    assert_eq!(
        call(&base, blue, Method::DELETE, "/v1/engagements/gone", None)
            .await
            .0,
        204
    );
    refused(
        &submit(
            &base,
            blue,
            json!({"tool": "noop", "target": "127.0.1.5", "engagement": "gone"}),
        )
        .await,
        "engagement",
    );
    let r = call(&base, blue, Method::POST, &retry, None).await;
    refused(&r, "engagement");
    assert!(
        r.1["detail"].as_str().unwrap().contains("no longer exists"),
        "{}",
        r.1
    );
    let (_, doc) = call(&base, blue, Method::GET, &format!("/v1/jobs/{id}"), None).await;
    assert_eq!(
        doc["state"], "failed",
        "a refused retry leaves the job as it was: {doc}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_require_engagement_a_submit_without_one_is_refused_naming_engagement() {
    let mut e = env("engrequire").await;
    e.cfg.require_engagement = true;
    let (_api, base) = start_api(e.cfg.clone(), e.catalog.clone()).await;
    let blue = e.tokens.get("blue");
    assert_eq!(
        put_eng(&base, blue, "must", json!({"targets": ["127.0.1.0/24"]}))
            .await
            .0,
        201
    );
    let r = submit(&base, blue, json!({"tool": "noop", "target": "127.0.1.5"})).await;
    refused(&r, "engagement");
    assert!(
        r.1["detail"].as_str().unwrap().contains("required"),
        "{}",
        r.1
    );
    let (status, doc) = submit(
        &base,
        blue,
        json!({"tool": "noop", "target": "127.0.1.5", "engagement": "must"}),
    )
    .await;
    assert_eq!(status, 202, "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_scan_under_an_engagement_stores_it_on_every_chunk() {
    let e = env("engbig").await;
    let (_api, base) = start_api(e.cfg.clone(), e.catalog.clone()).await;
    let blue = e.tokens.get("blue");
    assert_eq!(
        put_eng(&base, blue, "wide", json!({"targets": ["127.0.4.0/24"]}))
            .await
            .0,
        201
    );
    // A big scan reaching outside the engagement is refused whole.
    refused(
        &submit(&base, blue, json!({"tool": "noop", "target": "127.0.4.0/24,127.0.5.0/30", "chunk_hosts": 64, "engagement": "wide"})).await,
        "target",
    );
    let (status, doc) = submit(
        &base,
        blue,
        json!({"tool": "noop", "target": "127.0.4.0/24", "chunk_hosts": 64, "correlation_id": "big-1", "engagement": "wide"}),
    )
    .await;
    assert_eq!(status, 202, "{doc}");
    let queue = Queue::new(scanq::queue::pool(&e.cfg).unwrap(), &e.cfg);
    let tenant = TenantId::parse("blue").unwrap();
    let parent = CorrelationId::parse("big-1").unwrap();
    for n in 0..4 {
        let chunk = chunk_id(&parent, n);
        let f = queue
            .job_fields(&tenant, &chunk, &["engagement", "parent"])
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("chunk {chunk} exists"));
        assert_eq!(
            f.get("engagement").map(String::as_str),
            Some("wide"),
            "{chunk}: {f:?}"
        );
        assert_eq!(f.get("parent").map(String::as_str), Some("big-1"));
    }
    drop(e.redis);
}

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
