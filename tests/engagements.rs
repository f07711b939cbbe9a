//! Engagements (DESIGN §14, `/v1/engagements`): CRUD and its refusals, two tenants kept apart,
//! tools and templates outside an engagement, expiry (new jobs refused, schedules parked),
//! deletion (new jobs and retries refused), `SCANQ_REQUIRE_ENGAGEMENT`, and a big scan's chunks
//! carrying their engagement. Real Redis, API and worker; targets only in 127.0.0.0/8; the
//! in-process `noop`/`sleep` tools.

use std::time::{Duration, SystemTime};

use reqwest::Method;
use scanq::catalog::Catalog;
use scanq::config::Config;
use scanq_tests::*;
use serde_json::{Value, json};

#[path = "engagements/enforce.rs"]
mod enforce;
#[path = "engagements/mcp.rs"]
mod mcp;

/// The in-process tools, `sleep` with two templates.
const TOOLS: &str = r#"
[tools.sleep.templates]
short = "--ms 10"
long = "--ms 20"
"#;

struct Env {
    redis: RedisServer,
    fx: Fixture,
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
        fx,
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

/// Every change is audited with the engagement's id and its outcome (the real binary, JSON logs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engagement_changes_are_audited_with_their_id_and_outcome() {
    let e = env("engaudit").await;
    let mut cfg = e.cfg.clone();
    cfg.catalog = Some(e.fx.catalog(&format!("{INPROCESS_TOOLS}{TOOLS}")));
    cfg.log_format = scanq::config::LogFormat::Json;
    let port = free_port();
    cfg.api_addr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = e.fx.path("api.log");
    let _api = Proc::spawn_logged("scanq-api", &cfg, &[], &log);
    let base = format!("http://127.0.0.1:{port}");
    eventually(Duration::from_secs(20), "API ready", || {
        let url = format!("{base}/readyz");
        async move { (http().get(url).send().await.ok()?.status() == 200).then_some(()) }
    })
    .await;
    let blue = e.tokens.get("blue");
    let body = json!({"targets": ["127.0.1.0/24"]});
    assert_eq!(put_eng(&base, blue, "au", body.clone()).await.0, 201);
    assert_eq!(put_eng(&base, blue, "au", body).await.0, 200);
    refused(
        &put_eng(&base, blue, "au", json!({"targets": []})).await,
        "targets",
    );
    assert_eq!(
        call(&base, blue, Method::DELETE, "/v1/engagements/au", None)
            .await
            .0,
        204
    );
    assert_eq!(
        call(&base, blue, Method::DELETE, "/v1/engagements/au", None)
            .await
            .0,
        404
    );

    let want = [
        ("engagement.create", "ok"),
        ("engagement.replace", "ok"),
        ("engagement.put", "422 validation_error"),
        ("engagement.delete", "ok"),
        ("engagement.delete", "404 not_found"),
    ];
    let audits = eventually(Duration::from_secs(10), "the audit lines", || {
        let log = log.clone();
        async move {
            let lines: Vec<Value> = std::fs::read_to_string(&log)
                .ok()?
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .map(|v| {
                    if v["fields"].is_object() {
                        v["fields"].clone()
                    } else {
                        v
                    }
                })
                .filter(|v| {
                    v["audit"]
                        .as_str()
                        .is_some_and(|a| a.starts_with("engagement."))
                })
                .collect();
            (lines.len() >= want.len()).then_some(lines)
        }
    })
    .await;
    for (line, (action, outcome)) in audits.iter().zip(want) {
        assert_eq!(line["audit"], action, "{audits:?}");
        assert_eq!(line["outcome"], outcome, "{audits:?}");
        assert_eq!(line["engagement_id"], "au");
        assert_eq!(
            (&line["token"], &line["tenant"]),
            (&json!("blue"), &json!("blue"))
        );
    }
}
