//! The browser guard on every route (issue 19, item 5): a page the operator visits can neither
//! drive the API across sites (`Origin`, `text/plain` or form bodies) nor read from it after
//! pointing a name of its own at it (`Host`, DNS rebinding). Open mode, real API, real Redis.

use std::time::Duration;

use reqwest::Method;
use scanq::config::Config;
use scanq_tests::*;
use serde_json::{Value, json};

const EVIL: &str = "http://evil.example";

async fn stack(tune: impl FnOnce(&mut Config)) -> InProcess {
    in_process("guard", |cfg| {
        cfg.webhook_allowed_urls = "http://127.0.0.1:9/".into();
        tune(cfg);
    })
    .await
}

/// Sends a request with the given extra headers and optional raw body; returns the status and
/// the body (JSON, or null).
async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String, Value) {
    let mut req = http().request(method, url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.body(b.to_owned());
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .unwrap_or_default();
    (status, ct, resp.json().await.unwrap_or(Value::Null))
}

fn assert_problem(reply: &(u16, String, Value), status: u16, needle: &str) {
    let (s, ct, body) = reply;
    assert_eq!(*s, status, "{body}");
    assert_eq!(ct, "application/problem+json", "{body}");
    assert!(
        body["detail"].as_str().unwrap_or("").contains(needle),
        "`{needle}` not in {body}"
    );
}

async fn job_count(base: &str) -> usize {
    get_json(base, "/v1/jobs").await["jobs"]
        .as_array()
        .map_or(0, Vec::len)
}

const JOB: &str = r#"{"tool":"noop","target":"10.0.0.5","correlation_id":"from-evil"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_another_site_can_neither_submit_nor_create_webhooks_nor_act_as_admin() {
    let s = stack(|_| {}).await;
    let evil = [("origin", EVIL), ("content-type", "application/json")];
    let url = |p: &str| format!("{}{p}", s.base);

    // Submit, webhook create, admin POSTs: 403 problem+json naming the setting.
    let r = send(Method::POST, &url("/v1/jobs"), &evil, Some(JOB)).await;
    assert_problem(&r, 403, "SCANQ_API_ALLOWED_ORIGINS");
    let hook = json!({"url":"http://127.0.0.1:9/hook","events":["job.succeeded"]}).to_string();
    let r = send(Method::POST, &url("/v1/webhooks"), &evil, Some(&hook)).await;
    assert_problem(&r, 403, "Origin `http://evil.example`");
    for admin in ["/v1/breakers/noop/open", "/v1/tools/noop/disable"] {
        let r = send(Method::POST, &url(admin), &[("origin", EVIL)], None).await;
        assert_problem(&r, 403, "Origin");
    }
    // A cross-site HTML form needs no preflight: its POST to a body-less route is refused too.
    let form = [
        ("origin", EVIL),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let r = send(
        Method::POST,
        &url("/v1/breakers/noop/open"),
        &form,
        Some("a=b"),
    )
    .await;
    assert_problem(&r, 403, "Origin");
    // `Origin: null` (sandboxed frame, file: page) is not a loopback origin.
    let r = send(
        Method::POST,
        &url("/v1/jobs"),
        &[("origin", "null")],
        Some(JOB),
    )
    .await;
    assert_problem(&r, 403, "Origin `null`");
    // The MCP endpoint is guarded by the same layer.
    let r = send(Method::POST, &url("/mcp"), &evil, Some("{}")).await;
    assert_problem(&r, 403, "Origin");

    // Nothing happened.
    assert_eq!(job_count(&s.base).await, 0);
    assert_eq!(
        get_json(&s.base, "/v1/webhooks").await["webhooks"],
        json!([])
    );
    assert_eq!(
        get_json(&s.base, "/v1/breakers/noop").await["state"],
        "closed"
    );
    let tools = get_json(&s.base, "/v1/tools").await;
    assert!(tools.to_string().contains("noop"), "{tools}");

    // The same requests without Origin (CLI, SDKs) or from a loopback page work.
    let cli = [("content-type", "application/json")];
    let r = send(Method::POST, &url("/v1/jobs"), &cli, Some(JOB)).await;
    assert_eq!(r.0, 202, "{}", r.2);
    let local = [
        ("origin", "http://localhost:3000"),
        ("content-type", "application/json"),
    ];
    let job2 = JOB.replace("from-evil", "from-local");
    let r = send(Method::POST, &url("/v1/jobs"), &local, Some(&job2)).await;
    assert_eq!(r.0, 202, "{}", r.2);
    let r = send(Method::POST, &url("/v1/webhooks"), &local, Some(&hook)).await;
    assert_eq!(r.0, 201, "{}", r.2);
    // Finished before the breaker opens below (an open breaker would hold it back).
    wait_done(&s.base, "from-local", Duration::from_secs(20)).await;
    let loopback = [("origin", "http://127.0.0.1:8080")];
    let r = send(
        Method::POST,
        &url("/v1/breakers/noop/open"),
        &loopback,
        None,
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebound_name_cannot_read_a_job_or_its_result() {
    let s = stack(|_| {}).await;
    let r = post_json(&s.base, "/v1/jobs", &serde_json::from_str(JOB).unwrap()).await;
    assert_eq!(r.status(), 202);
    wait_done(&s.base, "from-evil", Duration::from_secs(20)).await;
    let url = |p: &str| format!("{}{p}", s.base);
    let rebound = [("host", "rebind.evil.example:8080")];

    for path in [
        "/v1/jobs/from-evil",
        "/v1/jobs/from-evil/result.xml",
        "/v1/jobs/from-evil/result.csv",
        "/v1/jobs",
        "/metrics",
        "/",
    ] {
        let r = send(Method::GET, &url(path), &rebound, None).await;
        assert_problem(&r, 403, "Host `rebind.evil.example:8080`");
    }
    // Same-origin on the rebound name: the Host check comes first.
    let r = send(
        Method::POST,
        &url("/v1/jobs"),
        &[
            ("host", "rebind.evil.example:8080"),
            ("origin", "http://rebind.evil.example:8080"),
            ("content-type", "application/json"),
        ],
        Some(JOB),
    )
    .await;
    assert_problem(&r, 403, "Host");
    // The probes answer any Host (they tell nothing but up or down).
    for probe in ["/healthz", "/readyz"] {
        let r = send(Method::GET, &url(probe), &rebound, None).await;
        assert!(matches!(r.0, 200 | 503), "{probe}: {}", r.2);
    }
    // Loopback names and IP literals work.
    for host in ["localhost:8080", "127.0.0.1", "[::1]:8080"] {
        let r = send(
            Method::GET,
            &url("/v1/jobs/from-evil"),
            &[("host", host)],
            None,
        )
        .await;
        assert_eq!(r.0, 200, "{host}: {}", r.2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_and_origins_the_operator_lists_are_allowed_under_new_and_old_settings() {
    let s = stack(|c| {
        c.api_allowed_hosts = "scanq-api.scanq.svc".into();
        c.mcp_allowed_hosts = "api:8080".into();
        c.api_allowed_origins = "https://console.lab.internal".into();
        c.mcp_allowed_origins = "https://agent.lab.internal".into();
        c.cors_origins = "https://dash.lab.internal".into();
    })
    .await;
    let url = |p: &str| format!("{}{p}", s.base);
    for host in [
        "scanq-api.scanq.svc:8080",
        "scanq-api.scanq.svc",
        "api:8080",
    ] {
        let r = send(Method::GET, &url("/v1/jobs"), &[("host", host)], None).await;
        assert_eq!(r.0, 200, "{host}: {}", r.2);
    }
    let r = send(Method::GET, &url("/v1/jobs"), &[("host", "api:9999")], None).await;
    assert_problem(&r, 403, "Host");
    for origin in [
        "https://console.lab.internal",
        "https://agent.lab.internal",
        "https://dash.lab.internal",
    ] {
        let r = send(Method::GET, &url("/v1/jobs"), &[("origin", origin)], None).await;
        assert_eq!(r.0, 200, "{origin}: {}", r.2);
    }
    // The API's own page under a listed name is same-origin.
    let r = send(
        Method::POST,
        &url("/v1/breakers/noop/reset"),
        &[
            ("host", "scanq-api.scanq.svc"),
            ("origin", "https://scanq-api.scanq.svc"),
        ],
        None,
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_body_not_sent_as_json_is_415_and_creates_nothing() {
    let s = stack(|_| {}).await;
    let url = |p: &str| format!("{}{p}", s.base);
    let hook = json!({"url":"http://127.0.0.1:9/hook","events":["job.succeeded"]}).to_string();
    let schedule = json!({"tool":"noop","target":"10.0.0.5","every_sec":3600}).to_string();
    for ct in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonx"),
        None,
    ] {
        let headers: Vec<(&str, &str)> = ct.map(|c| ("content-type", c)).into_iter().collect();
        for (method, path, body) in [
            (Method::POST, "/v1/jobs", JOB),
            (Method::POST, "/v1/webhooks", hook.as_str()),
            (Method::PUT, "/v1/schedules/nightly", schedule.as_str()),
        ] {
            let r = send(method, &url(path), &headers, Some(body)).await;
            assert_problem(&r, 415, "application/json");
            assert_eq!(r.2["field"], "Content-Type", "{ct:?} {path}");
        }
        let rpc = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
        let mut mcp = headers.clone();
        mcp.push(("accept", "application/json, text/event-stream"));
        let r = send(Method::POST, &url("/mcp"), &mcp, Some(rpc)).await;
        assert_problem(&r, 415, "application/json");
    }
    assert_eq!(job_count(&s.base).await, 0);
    assert_eq!(
        get_json(&s.base, "/v1/schedules").await["schedules"],
        json!([])
    );

    // JSON with parameters, and `+json` types, are JSON.
    for (i, ct) in ["application/json; charset=utf-8", "application/scanq+json"]
        .iter()
        .enumerate()
    {
        let body = JOB.replace("from-evil", &format!("json-{i}"));
        let r = send(
            Method::POST,
            &url("/v1/jobs"),
            &[("content-type", ct)],
            Some(&body),
        )
        .await;
        assert_eq!(r.0, 202, "{ct}: {}", r.2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_may_not_be_framed_and_loads_only_its_own_assets() {
    let s = stack(|_| {}).await;
    for asset in ["/", "/dashboard.js", "/dashboard.css"] {
        let r = http()
            .get(format!("{}{asset}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{asset}");
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{asset}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(h["x-frame-options"], "DENY", "{asset}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{asset}");
    }
    // The policy holds only because the page has no inline script or style to allow.
    let page = http()
        .get(&s.base)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains("<style") && !page.contains(" style="),
        "{page}"
    );
    assert!(
        page.matches("<script").count() == page.matches("<script src=").count(),
        "{page}"
    );
}
