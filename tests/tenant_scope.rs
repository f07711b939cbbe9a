//! Tenants do not share one scope (DESIGN §14): a tenant's `allowed_targets` in the tokens file
//! (and a token's own) narrows the server's scope for its submits, MCP scans and schedules, and
//! the scheduler of any process applies what the APIs published for the tenant, so a narrowing
//! taken on SIGHUP stops a schedule's runs outside it. `require_engagement` on a tenant makes an
//! engagement mandatory for its jobs. In-process `noop` only, and no worker: jobs stay queued,
//! nothing is scanned — except by the fake tool of the last test, on a loopback address a name
//! resolved to, after the worker checked it against the tenant's scope.

use std::time::Duration;

use nix::sys::signal::Signal;
use scanq::catalog::Catalog;
use scanq::domain::TenantId;
use scanq::schedule::ScheduleStore;
use scanq_tests::*;
use serde_json::{Value, json};

/// Three tokens: blue (tenant blue), green (tenant green, engagements required), and `narrow`
/// (tenant blue, narrowed further by its own `allowed_targets`: the line right after its entry).
const EXTRA: &str = "allowed_targets = [\"127.0.1.0/28\"]\n\
    [tenants.blue]\nallowed_targets = [\"127.0.1.0/24\"]\n\
    [tenants.green]\nallowed_targets = [\"127.0.2.0/24\"]\nrequire_engagement = true\n";

async fn send(
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: &Value,
) -> (u16, Value) {
    let r = http()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_and_token_scans_only_inside_its_own_allowed_targets() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = Tokens::write(
        dir.path(),
        &[
            ("blue", "blue", "submit,read,cancel"),
            ("green", "green", "submit,read"),
            ("narrow", "blue", "submit,read"),
        ],
        EXTRA,
    );
    let fx = Fixture::new();
    let catalog = Catalog::load(Some(&fx.catalog(INPROCESS_TOOLS))).unwrap();
    let mut cfg = test_config(&redis, "tscope");
    cfg.api_tokens_file = Some(tokens.path.clone());
    let (_api, base) = start_api(cfg, catalog).await;
    let post = reqwest::Method::POST;
    let job = |target: &str| json!({"tool": "noop", "target": target});

    // Blue scans its own range; the other tenant's range and the rest of the server's scope
    // are refused naming the target and whose narrowing refused it.
    let (s, _) = send(
        &base,
        tokens.get("blue"),
        post.clone(),
        "/v1/jobs",
        &job("127.0.1.5"),
    )
    .await;
    assert_eq!(s, 202);
    for target in ["127.0.2.5", "127.0.9.1", "127.0.0.0/16"] {
        let (s, p) = send(
            &base,
            tokens.get("blue"),
            post.clone(),
            "/v1/jobs",
            &job(target),
        )
        .await;
        assert_eq!(s, 422, "{target}: {p}");
        assert_eq!(p["field"], "target", "{p}");
        assert!(p["detail"].as_str().unwrap().contains("tenant blue"), "{p}");
    }
    // Green is held to its range too, and must name an engagement.
    let (s, p) = send(
        &base,
        tokens.get("green"),
        post.clone(),
        "/v1/jobs",
        &job("127.0.2.5"),
    )
    .await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["field"], "engagement", "{p}");
    let mut g = job("127.0.1.5");
    g["engagement"] = json!("q4");
    let (s, p) = send(&base, tokens.get("green"), post.clone(), "/v1/jobs", &g).await;
    assert_eq!((s, p["field"].as_str()), (422, Some("target")), "{p}");

    // A token narrows its tenant further.
    let (s, _) = send(
        &base,
        tokens.get("narrow"),
        post.clone(),
        "/v1/jobs",
        &job("127.0.1.9"),
    )
    .await;
    assert_eq!(s, 202);
    let (s, p) = send(
        &base,
        tokens.get("narrow"),
        post.clone(),
        "/v1/jobs",
        &job("127.0.1.100"),
    )
    .await;
    assert_eq!(s, 422, "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("token narrow"),
        "{p}"
    );

    // A schedule's template is judged by the same scope.
    let sched = json!({"tool": "noop", "target": "127.0.2.7", "every_sec": 60});
    let (s, p) = send(
        &base,
        tokens.get("blue"),
        reqwest::Method::PUT,
        "/v1/schedules/s",
        &sched,
    )
    .await;
    assert_eq!(s, 422, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("tenant blue"), "{p}");

    // An engagement is written inside the tenant's scope too.
    let put = reqwest::Method::PUT;
    let wide = json!({"targets": ["127.0.1.0/25", "127.0.2.0/24"]});
    let (s, p) = send(
        &base,
        tokens.get("blue"),
        put.clone(),
        "/v1/engagements/q1",
        &wide,
    )
    .await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["field"], "targets[1]", "{p}");
    let fits = json!({"targets": ["127.0.1.0/25"]});
    let (s, p) = send(&base, tokens.get("blue"), put, "/v1/engagements/q1", &fits).await;
    assert_eq!(s, 201, "{p}");

    // An MCP scan too (a 2026-07-28 request: no session needed).
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "noop_scan", "arguments": {"target": "127.0.2.5"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}});
    let r = http()
        .post(format!("{base}/mcp"))
        .bearer_auth(tokens.get("blue"))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "noop_scan")
        .json(&call)
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    assert!(text.contains("tenant blue"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrowing_taken_on_sighup_stops_a_schedules_runs_outside_it() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = Tokens::write(
        dir.path(),
        &[("blue", "blue", "submit,read")],
        "[tenants.blue]\nallowed_targets = [\"127.0.1.0/24\"]\n",
    );
    let fx = Fixture::new();
    let catalog_path = fx.catalog(INPROCESS_TOOLS);
    let mut cfg = test_config(&redis, "tscopehup");
    cfg.api_tokens_file = Some(tokens.path.clone());
    cfg.catalog = Some(catalog_path);
    cfg.schedule_min_every_sec = 1;
    cfg.schedule_tick_ms = 100;
    let port = free_port();
    cfg.api_addr = format!("127.0.0.1:{port}").parse().unwrap();
    let api = Proc::spawn_logged("scanq-api", &cfg, &[], &dir.path().join("api.log"));
    let base = format!("http://127.0.0.1:{port}");
    eventually(Duration::from_secs(20), "the API is up", || async {
        let r = http().get(format!("{base}/healthz")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    // Each slot fires (the previous run, queued with no worker, is cancelled).
    let body = json!({"tool": "noop", "target": "127.0.1.7", "every_sec": 1, "catchup_sec": 60,
                      "overlap": "cancel_previous"});
    let (s, p) = send(
        &base,
        tokens.get("blue"),
        reqwest::Method::PUT,
        "/v1/schedules/s",
        &body,
    )
    .await;
    assert_eq!(s, 201, "{p}");
    let store = ScheduleStore::new(scanq::queue::pool(&cfg).unwrap(), &cfg.key_prefix);
    let blue = TenantId::parse("blue").unwrap();
    eventually(Duration::from_secs(20), "the schedule fires", || async {
        (!store.runs(&blue, "s", 10).await.unwrap().is_empty()).then_some(())
    })
    .await;

    // The operator narrows blue to another range; the API publishes it on SIGHUP, and the
    // scheduler refuses the runs that now lie outside.
    let text = std::fs::read_to_string(&tokens.path).unwrap();
    std::fs::write(&tokens.path, text.replace("127.0.1.0/24", "127.0.3.0/24")).unwrap();
    api.signal(Signal::SIGHUP);
    let series = "scanq_schedule_runs_total{result=\"refused\"}";
    eventually(Duration::from_secs(20), "a run refused", || async {
        (metric(&base, series).await.unwrap_or(0) >= 1).then_some(())
    })
    .await;
    let runs = store.runs(&blue, "s", 100).await.unwrap().len();
    let refused = metric(&base, series).await.unwrap_or(0);
    eventually(Duration::from_secs(20), "more runs refused", || async {
        (metric(&base, series).await.unwrap_or(0) >= refused + 2).then_some(())
    })
    .await;
    assert_eq!(
        store.runs(&blue, "s", 100).await.unwrap().len(),
        runs,
        "no run fired outside the new scope"
    );
}

/// GET `path` with `token` until the job is terminal.
async fn done(base: &str, token: &str, id: &str) -> Value {
    eventually(Duration::from_secs(30), "the job finishes", || async {
        let r = http()
            .get(format!("{base}/v1/jobs/{id}"))
            .bearer_auth(token)
            .send()
            .await
            .ok()?;
        let doc: Value = r.json().await.ok()?;
        matches!(
            doc["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        )
        .then_some(doc)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_resolving_outside_its_tenants_scope_is_refused_by_the_worker_and_never_scanned() {
    use std::net::IpAddr;
    use std::sync::Arc;

    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = Tokens::write(
        dir.path(),
        &[("blue", "blue", "submit,read")],
        "[tenants.blue]\nallowed_targets = [\"127.0.1.0/24\", \".lab.internal\"]\n",
    );
    let fx = Fixture::new();
    let starts = fx.path("starts");
    let cmd = fx.script("fake", &fake_tool_script(Some(&starts)));
    let catalog = Catalog::load(Some(&fx.catalog(&fake_tool_catalog("fake", &cmd, "")))).unwrap();
    let mut cfg = test_config(&redis, "tscopename");
    cfg.api_tokens_file = Some(tokens.path.clone());
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let queue = scanq::queue::Queue::new(scanq::queue::pool(&cfg).unwrap(), &cfg);
    let tenant = TenantId::parse("blue").unwrap();
    eventually(
        Duration::from_secs(10),
        "blue's scope published",
        || async {
            let s = queue.tenant_scope(&tenant).await.ok()?;
            (!s.narrowings.is_empty()).then_some(())
        },
    )
    .await;
    // `db` points into another tenant's range; `web` into blue's.
    let resolver = scanq::validate::StaticResolver::new()
        .with("db.lab.internal", [IpAddr::from([127, 0, 2, 5])])
        .with("web.lab.internal", [IpAddr::from([127, 0, 1, 9])]);
    let worker_cfg = scanq::config::Config {
        worker_metrics_addr: ([127, 0, 0, 1], free_port()).into(),
        ..cfg.clone()
    };
    let worker =
        scanq_worker::Worker::connect_with_resolver(worker_cfg, catalog, Arc::new(resolver))
            .await
            .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        worker
            .run(async move {
                let _ = stopped.await;
            })
            .await
    });
    let blue = tokens.get("blue");
    let post = reqwest::Method::POST;
    for (id, target) in [("db", "db.lab.internal"), ("web", "web.lab.internal")] {
        let body = json!({"tool": "fake", "target": target, "correlation_id": id});
        let (s, p) = send(&base, blue, post.clone(), "/v1/jobs", &body).await;
        assert_eq!(s, 202, "{p}");
    }
    let db = done(&base, blue, "db").await;
    assert_eq!(db["state"], "failed", "{db}");
    assert_eq!(db["error"]["type"], "validation_error", "{db}");
    let message = db["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("127.0.2.5") && message.contains("tenant blue"),
        "{db}"
    );
    let web = done(&base, blue, "web").await;
    assert_eq!(web["state"], "succeeded", "{web}");
    let runs = lines(&starts);
    assert_eq!(runs.len(), 1, "only web was scanned: {runs:?}");
    assert!(runs[0].ends_with(" 127.0.1.9"), "{runs:?}");
    let _ = stop.send(());
    running.await.unwrap();
}
