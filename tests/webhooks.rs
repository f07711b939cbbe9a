//! Signed webhooks (`/v1/webhooks`) delivered to a real HTTP receiver on 127.0.0.1 that checks
//! every signature and refuses the first attempts; and the "scan every N seconds and tell me
//! what changed" program end to end with real nmap against 127.0.0.1.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use scanq::catalog::Catalog;
use scanq::domain::{CorrelationId, TenantId};
use scanq::queue::Queue;
use scanq::webhook::{JobEvents, on_job_finished};
use scanq_tests::*;
use serde_json::{Value, json};
use sha2::Sha256;

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    secret: String,
    /// Requests to refuse with 500 before accepting any.
    fail_first: usize,
    requests: usize,
    bad_signatures: usize,
    /// Accepted (2xx) deliveries: idempotency key → (event, body).
    accepted: BTreeMap<String, Vec<(String, Value)>>,
}

type Shared = Arc<Mutex<Seen>>;

/// Verifies `Scanq-Signature: t=<ts>,v1=<hex>` as a subscriber would (see docs/webhooks.md).
fn verify(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = Some(v),
            Some(("v1", v)) => v1 = Some(v),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let Ok(sig) = hex::decode(v1) else {
        return false;
    };
    mac.verify_slice(&sig).is_ok()
}

async fn hook(
    State(seen): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let mut s = seen.lock().unwrap();
    s.requests += 1;
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    if !verify(&s.secret, &header("scanq-signature"), &body) {
        s.bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    }
    if s.requests <= s.fail_first {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let doc: Value = serde_json::from_slice(&body).unwrap();
    let key = header("scanq-idempotency-key");
    s.accepted
        .entry(key)
        .or_default()
        .push((header("scanq-event"), doc));
    StatusCode::NO_CONTENT
}

/// A loopback receiver; returns its URL.
async fn receiver(seen: Shared) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/hook", post(hook))
        .with_state(seen);
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_events_survive_failed_attempts_once_per_idempotency_key() {
    let redis = RedisServer::start().await;
    let seen: Shared = Arc::new(Mutex::new(Seen {
        fail_first: 3,
        ..Seen::default()
    }));
    let (url, server) = receiver(seen.clone()).await;
    let mut cfg = test_config(&redis, "hooks");
    cfg.webhook_allowed_urls = url.clone();
    cfg.webhook_retry_base_ms = 100;
    cfg.schedule_tick_ms = 100;
    let fx = Fixture::new();
    let catalog = Catalog::load(Some(&fx.catalog(INPROCESS_TOOLS))).unwrap();
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let (_worker, wm) = start_worker_with_metrics(cfg.clone(), catalog).await;

    // Refused subscriptions name the field.
    for (field, body) in [
        (
            "url",
            json!({"url":"http://10.0.0.5/hook","events":["job.succeeded"]}),
        ),
        (
            "url",
            json!({"url":"http://127.0.0.1:1@10.0.0.5/","events":["job.succeeded"]}),
        ),
        ("events[0]", json!({"url": url, "events":["job.exploded"]})),
        ("events", json!({"url": url, "events":[]})),
        (
            "schedule_id",
            json!({"url": url, "events":["schedule.changed"],"schedule_id":"nope"}),
        ),
    ] {
        let r = post_json(&base, "/v1/webhooks", &body).await;
        assert_eq!(r.status(), 422, "{body}");
        assert_eq!(r.json::<Value>().await.unwrap()["field"], field, "{body}");
    }
    let r = post_json(
        &base,
        "/v1/webhooks",
        &json!({"url": url, "events":["job.succeeded","job.failed","job.dead"]}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let sub: Value = r.json().await.unwrap();
    let secret = sub["secret"].as_str().unwrap().to_owned();
    seen.lock().unwrap().secret = secret.clone();
    let listed = get_json(&base, "/v1/webhooks").await;
    assert!(
        !listed.to_string().contains(&secret),
        "secret shown again: {listed}"
    );

    // Three jobs succeed, one fails for good: five events.
    for cid in ["a", "b", "c"] {
        let r = post_json(
            &base,
            "/v1/jobs",
            &json!({"tool":"noop","target":"10.0.0.5","correlation_id":cid}),
        )
        .await;
        assert_eq!(r.status(), 202);
    }
    let r = post_json(
        &base,
        "/v1/jobs",
        &json!({"tool":"sleep","target":"10.0.0.5","args":"--ms 10 --fail","max_attempts":1,"correlation_id":"bad"}),
    )
    .await;
    assert_eq!(r.status(), 202);
    let expected: BTreeSet<String> = [
        "job.succeeded:a",
        "job.succeeded:b",
        "job.succeeded:c",
        "job.failed:bad",
        "job.dead:bad",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    eventually(Duration::from_secs(30), "every event accepted", || async {
        let s = seen.lock().unwrap();
        (s.accepted.keys().cloned().collect::<BTreeSet<_>>() == expected).then_some(())
    })
    .await;
    // Emitting a finished job's events again (a retried worker write) writes nothing new.
    let events = JobEvents::new(Queue::new(scanq::queue::pool(&cfg).unwrap(), &cfg));
    let tenant = TenantId::parse("default").unwrap();
    let a = CorrelationId::parse("a").unwrap();
    on_job_finished(&events.queue, &events.schedules, &events.hooks, &tenant, &a)
        .await
        .unwrap();
    assert_eq!(events.hooks.pending().await.unwrap(), 0);

    let id = sub["id"].as_str().unwrap();
    let log = eventually(Duration::from_secs(10), "the delivery log", || async {
        let doc = get_json(&base, &format!("/v1/webhooks/{id}")).await;
        let d = doc["deliveries"].as_array().cloned().unwrap_or_default();
        (d.iter().filter(|e| e["outcome"] == "delivered").count() == 5).then_some(d)
    })
    .await;
    {
        let s = seen.lock().unwrap();
        assert_eq!(s.bad_signatures, 0);
        for (key, got) in &s.accepted {
            assert_eq!(got.len(), 1, "{key} delivered {} times", got.len());
            let (event, body) = &got[0];
            assert_eq!(body["id"], key.as_str());
            assert_eq!(&body["type"], event);
            assert!(body["data"]["correlation_id"].is_string(), "{body}");
        }
        assert_eq!(s.requests, 5 + 3, "each refusal retried once, nothing more");
        assert_eq!(
            log.iter().filter(|e| e["status"] == 500).count(),
            3,
            "{log:?}"
        );
    }
    let metrics = metrics_text(&wm).await + &metrics_text(&base).await;
    assert!(
        metrics.contains("scanq_webhook_deliveries_total{outcome=\"failed\"}"),
        "{metrics}"
    );
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_that_keeps_failing_is_given_up_and_logged() {
    let redis = RedisServer::start().await;
    let seen: Shared = Arc::new(Mutex::new(Seen {
        fail_first: usize::MAX,
        ..Seen::default()
    }));
    let (url, server) = receiver(seen.clone()).await;
    let mut cfg = test_config(&redis, "hooksgiveup");
    cfg.webhook_allowed_urls = url.clone();
    cfg.webhook_retry_base_ms = 100;
    cfg.webhook_give_up_sec = 1;
    cfg.schedule_tick_ms = 100;
    let fx = Fixture::new();
    let catalog = Catalog::load(Some(&fx.catalog(INPROCESS_TOOLS))).unwrap();
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg.clone(), catalog).await;
    let r = post_json(
        &base,
        "/v1/webhooks",
        &json!({"url": url, "events":["job.succeeded"]}),
    )
    .await;
    let sub: Value = r.json().await.unwrap();
    seen.lock().unwrap().secret = sub["secret"].as_str().unwrap().to_owned();
    let r = post_json(
        &base,
        "/v1/jobs",
        &json!({"tool":"noop","target":"10.0.0.5","correlation_id":"x"}),
    )
    .await;
    assert_eq!(r.status(), 202);

    let id = sub["id"].as_str().unwrap();
    let log = eventually(Duration::from_secs(20), "the delivery given up", || async {
        let doc = get_json(&base, &format!("/v1/webhooks/{id}")).await;
        let d = doc["deliveries"].as_array().cloned().unwrap_or_default();
        d.iter().any(|e| e["outcome"] == "gave_up").then_some(d)
    })
    .await;
    assert!(
        log.iter().filter(|e| e["outcome"] == "failed").count() >= 1,
        "{log:?}"
    );
    assert!(log.iter().all(|e| e["status"] == 500), "{log:?}");
    let store =
        scanq::webhook::WebhookStore::new(scanq::queue::pool(&cfg).unwrap(), &cfg.key_prefix);
    assert_eq!(store.pending().await.unwrap(), 0);
    assert!(seen.lock().unwrap().accepted.is_empty());
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recurring_real_scan_reports_what_changed_by_signed_webhook() {
    let open_a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = open_a.local_addr().unwrap().port();
    let b = free_port();
    let redis = RedisServer::start().await;
    let seen: Shared = Arc::default();
    let (url, server) = receiver(seen.clone()).await;
    let mut cfg = test_config(&redis, "hookscan");
    cfg.webhook_allowed_urls = url.clone();
    cfg.schedule_min_every_sec = 1;
    cfg.schedule_tick_ms = 100;
    cfg.webhook_retry_base_ms = 100;
    let catalog = Catalog::builtin();
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;

    let body = json!({"tool":"nmap","target":"127.0.0.1","args":format!("-sT -Pn -n -p {a},{b}"),"every_sec":2});
    let r = http()
        .put(format!("{base}/v1/schedules/watch"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = post_json(
        &base,
        "/v1/webhooks",
        &json!({"url": url, "events":["schedule.changed"],"schedule_id":"watch"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    seen.lock().unwrap().secret = r.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually(Duration::from_secs(30), "a first succeeded run", || async {
        let doc = get_json(&base, "/v1/schedules/watch").await;
        (doc["last_run"]["state"] == "succeeded").then_some(())
    })
    .await;

    // Port b opens between runs.
    let open_b = std::net::TcpListener::bind(("127.0.0.1", b)).unwrap();
    let event = eventually(Duration::from_secs(30), "schedule.changed", || async {
        let s = seen.lock().unwrap();
        s.accepted.values().flatten().next().cloned()
    })
    .await;
    assert_eq!(event.0, "schedule.changed");
    let data = &event.1["data"];
    assert_eq!(data["schedule_id"], "watch");
    assert_eq!(data["summary"]["ports_opened"], 1, "{data}");
    let run = data["run"].as_str().unwrap();
    let doc = get_json(&base, &format!("/v1/jobs/{run}")).await;
    assert_eq!(doc["schedule_id"], "watch");
    assert_eq!(doc["change"]["changed"], true, "{doc}");
    // The default `against` of a scheduled run is its schedule's previous succeeded run.
    let diff = get_json(&base, &format!("/v1/jobs/{run}/diff")).await;
    assert_eq!(diff["against"], data["against"], "{diff}");
    assert_eq!(diff["summary"]["ports_opened"], 1, "{diff}");
    let sched = get_json(&base, "/v1/schedules/watch").await;
    assert!(sched["last_change"].is_object(), "{sched}");
    let r = http()
        .post(format!("{base}/v1/schedules/watch/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(seen.lock().unwrap().bad_signatures, 0);
    drop((open_a, open_b));
    server.abort();
}
