//! The attacks of the webhook review (issue 19), performed: reaching internal services through
//! the allow-list (its default, prefix tricks, user info, control characters, length, a name
//! that resolves to loopback), one tenant's hanging receiver delaying another's deliveries,
//! and a tenant piling up subscriptions. Every receiver listens on 127.0.0.1; the only name
//! resolved is `localhost` (from /etc/hosts). The claim order itself: `tests/webhook_ring.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::routing::post;
use scanq::catalog::Catalog;
use scanq::config::{Config, LogFormat};
use scanq::domain::TenantId;
use scanq::webhook::{EventType, Subscription, WebhookStore};
use scanq_tests::*;
use serde_json::{Value, json};

/// A loopback receiver answering 204 on every path; returns its port and the request count.
async fn receiver() -> (u16, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    let app = axum::Router::new().fallback(post(move || {
        count.fetch_add(1, Ordering::SeqCst);
        async { axum::http::StatusCode::NO_CONTENT }
    }));
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (port, seen, task)
}

/// A loopback listener that accepts connections and never answers (holding each socket);
/// returns its port and the connection count.
async fn black_hole() -> (u16, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(sock);
        }
    });
    (port, seen, task)
}

fn in_process() -> (Fixture, Catalog) {
    let fx = Fixture::new();
    let catalog = Catalog::load(Some(&fx.catalog(INPROCESS_TOOLS))).unwrap();
    (fx, catalog)
}

async fn create(base: &str, url: &str) -> reqwest::Response {
    post_json(
        base,
        "/v1/webhooks",
        &json!({"url": url, "events": ["job.succeeded"]}),
    )
    .await
}

/// The newest delivery log entry of a subscription that matches `pred`.
async fn logged(base: &str, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    eventually(Duration::from_secs(30), what, || async {
        let doc = get_json(base, &format!("/v1/webhooks/{id}")).await;
        doc["deliveries"]
            .as_array()?
            .iter()
            .find(|e| pred(e))
            .cloned()
    })
    .await
}

async fn submit_noop(base: &str, cid: &str) {
    let r = post_json(
        base,
        "/v1/jobs",
        &json!({"tool": "noop", "target": "127.0.0.1", "correlation_id": cid}),
    )
    .await;
    assert_eq!(r.status(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_no_webhook_may_be_created() {
    let redis = RedisServer::start().await;
    let (port, seen, server) = receiver().await;
    let (_fx, catalog) = in_process();
    let (_api, base) = start_api(test_config(&redis, "hooknone"), catalog).await;
    for url in [
        format!("http://127.0.0.1:{port}/hooks"),
        "http://localhost/".to_owned(),
        "http://[::1]:80/".to_owned(),
    ] {
        let r = create(&base, &url).await;
        assert_eq!(r.status(), 422, "{url}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{url}"
        );
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["field"], "url", "{p}");
        assert!(p.to_string().contains("SCANQ_WEBHOOK_ALLOWED_URLS"), "{p}");
    }
    assert_eq!(seen.load(Ordering::SeqCst), 0);
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allow_list_compares_parsed_scheme_host_port_and_path_segments() {
    let redis = RedisServer::start().await;
    let (port, seen, server) = receiver().await;
    let mut cfg = test_config(&redis, "hookallow");
    cfg.webhook_allowed_urls = format!("http://127.0.0.1:{port}/hooks");
    cfg.webhook_retry_base_ms = 100;
    cfg.schedule_tick_ms = 100;
    let (_fx, catalog) = in_process();
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;

    let long = format!("http://127.0.0.1:{port}/hooks/{}", "a".repeat(3 * 1024));
    for url in [
        format!("http://127.0.0.1:{port}0/hooks"),
        format!("http://127.0.0.1:{}/hooks", port / 10),
        format!("http://127.0.0.1:{port}/hooksevil"),
        format!("http://127.0.0.1:{port}/hooks/../admin"),
        format!("http://127.0.0.1:{port}.evil/hooks"),
        format!("http://127.0.0.1:{port}@127.0.0.2/hooks"),
        format!("http://user@127.0.0.1:{port}/hooks"),
        format!("http://127.0.0.1:{port}/hooks/a\r\nX-Injected: 1"),
        format!("http://127.0.0.1:{port}/hooks/\ta"),
        format!("http://127.0.0.1:{port}/hooks/\u{0}"),
        format!("https://127.0.0.1:{port}/hooks"),
        format!("http://127.0.0.2:{port}/hooks"),
        format!("http://localhost:{port}/hooks"),
        long,
    ] {
        let r = create(&base, &url).await;
        let status = r.status();
        let p: Value = r.json().await.unwrap();
        assert_eq!(status, 422, "{url:?}: {p}");
        assert_eq!(p["field"], "url", "{url:?}: {p}");
    }

    let r = create(&base, &format!("http://127.0.0.1:{port}/hooks/x")).await;
    assert_eq!(r.status(), 201);
    submit_noop(&base, "good").await;
    eventually(Duration::from_secs(30), "the delivery", || async {
        (seen.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_a_wildcard_admits_is_refused_when_it_resolves_to_loopback() {
    let redis = RedisServer::start().await;
    let (port, conns, hole) = black_hole().await;
    let mut cfg = test_config(&redis, "hookwild");
    // Any host on this port and path: the entry names no host explicitly, so only public
    // addresses may be reached through it.
    cfg.webhook_allowed_urls = format!("http://*:{port}/hooks");
    cfg.webhook_retry_base_ms = 100;
    cfg.schedule_tick_ms = 100;
    let (_fx, catalog) = in_process();
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;

    let mut ids = Vec::new();
    for url in [
        format!("http://localhost:{port}/hooks"),
        format!("http://127.0.0.1:{port}/hooks"),
        format!("http://[::ffff:127.0.0.1]:{port}/hooks"),
    ] {
        let r = create(&base, &url).await;
        assert_eq!(r.status(), 201, "{url}");
        let doc: Value = r.json().await.unwrap();
        ids.push(doc["id"].as_str().unwrap().to_owned());
    }
    submit_noop(&base, "probe").await;
    for id in &ids {
        let e = logged(&base, id, "a refused attempt", |e| {
            e["error"]
                .as_str()
                .is_some_and(|s| s.starts_with("refused:"))
        })
        .await;
        assert!(e["error"].as_str().unwrap().contains("loopback"), "{e}");
        assert_eq!(e["status"], Value::Null, "{e}");
    }
    assert_eq!(
        conns.load(Ordering::SeqCst),
        0,
        "a refused address was connected to"
    );
    hole.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_hanging_receiver_does_not_delay_another_tenants_delivery() {
    let redis = RedisServer::start().await;
    let (a_port, a_conns, hole) = black_hole().await;
    let (b_port, b_seen, server) = receiver().await;
    let mut cfg = test_config(&redis, "hookfair");
    cfg.webhook_allowed_urls =
        format!("http://127.0.0.1:{a_port}/hook,http://127.0.0.1:{b_port}/hook");
    cfg.schedule_tick_ms = 100;
    let store = WebhookStore::new(scanq::queue::pool(&cfg).unwrap(), &cfg.key_prefix);
    let (a, b) = (TenantId::parse("a").unwrap(), TenantId::parse("b").unwrap());
    for (tenant, port) in [(&a, a_port), (&b, b_port)] {
        let sub = Subscription {
            id: "s1".into(),
            url: format!("http://127.0.0.1:{port}/hook"),
            events: vec![EventType::JobSucceeded],
            schedule_id: None,
            description: None,
            secret: "whsec_test".into(),
            created_ms: 1,
        };
        store.create(tenant, &sub, 20).await.unwrap().unwrap();
    }
    // Twenty of A's events are due before B's one. Each of A's attempts hangs until the
    // 10 s request timeout: one after another, B would wait 200 s.
    for i in 0..20 {
        let id = format!("job.succeeded:a{i}");
        store
            .emit(&a, EventType::JobSucceeded, &id, None, "{}")
            .await
            .unwrap();
    }
    store
        .emit(&b, EventType::JobSucceeded, "job.succeeded:b", None, "{}")
        .await
        .unwrap();
    let started = Instant::now();
    let (_fx, catalog) = in_process();
    let (_api, _base) = start_api(cfg.clone(), catalog).await;

    eventually(Duration::from_secs(30), "B's delivery", || async {
        (b_seen.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .await;
    // A's attempts were under way (not merely queued behind B)...
    eventually(Duration::from_secs(30), "A's attempts", || async {
        (a_conns.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .await;
    // ...and, while the first of them still hang, at most its in-flight bound of them.
    let a_now = a_conns.load(Ordering::SeqCst);
    if started.elapsed() < Duration::from_secs(9) {
        assert!(
            a_now as u64 <= cfg.webhook_tenant_in_flight,
            "{a_now} of A's attempts at once"
        );
    }
    server.abort();
    hole.abort();
}

/// A spawned API writing JSON logs (to read its audit lines).
async fn logged_api(cfg: &Config, log: &std::path::Path) -> (Proc, String) {
    let port = free_port();
    let cfg = Config {
        api_addr: format!("127.0.0.1:{port}").parse().unwrap(),
        log_format: LogFormat::Json,
        ..cfg.clone()
    };
    let api = Proc::spawn_logged("scanq-api", &cfg, &[], log);
    let base = format!("http://127.0.0.1:{port}");
    eventually(Duration::from_secs(20), "API ready", || {
        let url = format!("{base}/readyz");
        async move { (http().get(url).send().await.ok()?.status() == 200).then_some(()) }
    })
    .await;
    (api, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_has_at_most_its_cap_of_webhooks_and_every_change_is_audited() {
    let redis = RedisServer::start().await;
    let (port, _seen, server) = receiver().await;
    let url = format!("http://127.0.0.1:{port}/hook");
    let mut cfg = test_config(&redis, "hookcap");
    cfg.webhook_allowed_urls = url.clone();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("api.log");
    let (_api, base) = logged_api(&cfg, &log).await;
    assert_eq!(cfg.tenant_max_webhooks, 20, "the documented default");

    let mut ids = Vec::new();
    for _ in 0..20 {
        let r = create(&base, &url).await;
        assert_eq!(r.status(), 201);
        ids.push(
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let r = create(&base, &url).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: Value = r.json().await.unwrap();
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("SCANQ_TENANT_MAX_WEBHOOKS"),
        "{p}"
    );
    assert_eq!(
        get_json(&base, "/v1/webhooks").await["webhooks"]
            .as_array()
            .unwrap()
            .len(),
        20
    );

    // Replace keeps the id; a bad body or an unknown id changes nothing.
    let put = |id: String, body: Value| {
        let base = base.clone();
        async move {
            http()
                .put(format!("{base}/v1/webhooks/{id}"))
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let body = json!({"url": url, "events": ["job.failed"], "description": "on-call"});
    let r = put(ids[0].clone(), body.clone()).await;
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["id"], ids[0].as_str());
    assert_eq!(doc["events"], json!(["job.failed"]));
    assert!(doc.get("secret").is_none(), "{doc}");
    let r = put(
        ids[0].clone(),
        json!({"url": "http://127.0.0.2/", "events": ["job.failed"]}),
    )
    .await;
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["field"], "url");
    assert_eq!(put("nosuch".into(), body).await.status(), 404);
    let doc = get_json(&base, &format!("/v1/webhooks/{}", ids[0])).await;
    assert_eq!(doc["description"], "on-call");

    let r = http()
        .delete(format!("{base}/v1/webhooks/{}", ids[1]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(create(&base, &url).await.status(), 201);

    let audits = eventually(Duration::from_secs(10), "the audit lines", || async {
        let lines: Vec<Value> = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["audit"].is_string())
            .collect();
        (lines.len() >= 25).then_some(lines)
    })
    .await;
    let count = |action: &str, outcome: &str| {
        audits
            .iter()
            .filter(|a| a["audit"] == action && a["outcome"] == outcome)
            .count()
    };
    assert_eq!(count("webhook.create", "ok"), 21, "{audits:#?}");
    assert_eq!(count("webhook.create", "at_cap"), 1);
    assert_eq!(count("webhook.replace", "ok"), 1);
    assert_eq!(count("webhook.replace", "invalid"), 1);
    assert_eq!(count("webhook.replace", "not_found"), 1);
    assert_eq!(count("webhook.delete", "ok"), 1);
    // An audit line names the subscription by id, never by its URL (which may hold a token).
    assert!(
        audits.iter().all(|a| !a.to_string().contains("/hook")),
        "{audits:#?}"
    );
    server.abort();
}

/// Revocation reaches webhooks: once a tenant is removed from the tokens file (and the API
/// reloaded), its pending events are dropped as `revoked` with no request to its receiver,
/// while another tenant's deliveries go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_tenants_webhooks_stop_delivering_while_others_go_on() {
    let redis = RedisServer::start().await;
    let (red_port, red_seen, red_server) = receiver().await;
    let (blue_port, blue_seen, blue_server) = receiver().await;
    let red_url = format!("http://127.0.0.1:{red_port}/hook");
    let blue_url = format!("http://127.0.0.1:{blue_port}/hook");
    let dir = tempfile::tempdir().unwrap();
    let tokens = Tokens::write(
        dir.path(),
        &[
            ("red", "red", "submit,read,cancel"),
            ("blue", "blue", "submit,read,cancel"),
        ],
        "",
    );
    let (fx, catalog) = in_process();
    let mut cfg = test_config(&redis, "hookrevoke");
    cfg.catalog = Some(fx.catalog(INPROCESS_TOOLS));
    cfg.api_tokens_file = Some(tokens.path.clone());
    cfg.webhook_allowed_urls = format!("{red_url},{blue_url}");
    let (api, base) = logged_api(&cfg, &dir.path().join("api.log")).await;
    let _worker = start_worker(cfg.clone(), catalog).await;
    let as_who = |who: &str, method: reqwest::Method, path: &str| {
        http()
            .request(method, format!("{base}{path}"))
            .bearer_auth(tokens.get(who))
    };
    let mut ids = std::collections::HashMap::new();
    for (who, url) in [("red", &red_url), ("blue", &blue_url)] {
        let r = as_who(who, reqwest::Method::POST, "/v1/webhooks")
            .json(&json!({"url": url, "events": ["job.succeeded"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{who}");
        let created: Value = r.json().await.unwrap();
        ids.insert(who, created["id"].as_str().unwrap().to_owned());
        let job =
            json!({"tool": "noop", "target": "127.0.0.1", "correlation_id": format!("{who}-1")});
        let r = as_who(who, reqwest::Method::POST, "/v1/jobs")
            .json(&job)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{who}");
    }
    eventually(
        Duration::from_secs(30),
        "both tenants' events delivered",
        || async {
            (red_seen.load(Ordering::SeqCst) >= 1 && blue_seen.load(Ordering::SeqCst) >= 1)
                .then_some(())
        },
    )
    .await;

    // Red leaves the tokens file; the reload publishes the fleet's tenants without it.
    tokens.revoke_tenant("red");
    api.signal(nix::sys::signal::Signal::SIGHUP);
    let queue = scanq::queue::Queue::new(scanq::queue::pool(&cfg).unwrap(), &cfg);
    let red = TenantId::parse("red").unwrap();
    eventually(
        Duration::from_secs(20),
        "red revoked fleet-wide",
        || async {
            (queue.tenant_standing(&red).await.unwrap() == scanq::queue::Standing::Revoked)
                .then_some(())
        },
    )
    .await;

    // An event of red's still in the outbox (emitted as a finishing job would) is dropped.
    let red_before = red_seen.load(Ordering::SeqCst);
    let hooks = WebhookStore::new(queue.pool().clone(), &cfg.key_prefix);
    let body = json!({"id": "late", "type": "job.succeeded", "data": {}}).to_string();
    assert_eq!(
        hooks
            .emit(&red, EventType::JobSucceeded, "late", None, &body)
            .await
            .unwrap(),
        1
    );
    let red_id = ids["red"].clone();
    eventually(
        Duration::from_secs(30),
        "red's event dropped as revoked",
        || async {
            let log = hooks.log(&red, &red_id).await.unwrap();
            log.iter()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|e| e["outcome"] == "revoked")
        },
    )
    .await;
    assert_eq!(
        red_seen.load(Ordering::SeqCst),
        red_before,
        "no request reached red's receiver"
    );

    // Blue's deliveries go on.
    let blue_before = blue_seen.load(Ordering::SeqCst);
    let job = json!({"tool": "noop", "target": "127.0.0.1", "correlation_id": "blue-2"});
    let r = as_who("blue", reqwest::Method::POST, "/v1/jobs")
        .json(&job)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    eventually(
        Duration::from_secs(30),
        "blue's next event delivered",
        || async { (blue_seen.load(Ordering::SeqCst) > blue_before).then_some(()) },
    )
    .await;
    red_server.abort();
    blue_server.abort();
}
