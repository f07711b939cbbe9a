//! Big scans in programs (issue 21 part 3, docs/big-scans-programs.md): a schedule whose
//! template is a big scan fires one parent per run, whose change against the previous run is
//! computed once and told by `schedule.changed`; webhooks fire once per parent, never per chunk,
//! also when an API cancel is what finishes the parent; SSE on a parent streams its progress.
//! Real nmap behind a wrapper, loopback only (`127.1.0.0/16` answers locally).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use scanq::config::Config;
use scanq::webhook::WebhookStore;
use scanq_tests::*;
use serde_json::{Value, json};

/// What the webhook receiver accepted: idempotency key → (event, body), in arrival order.
type Seen = Arc<Mutex<BTreeMap<String, Vec<(String, Value)>>>>;

async fn hook(State(seen): State<Seen>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let doc: Value = serde_json::from_slice(&body).unwrap();
    seen.lock()
        .unwrap()
        .entry(header("scanq-idempotency-key"))
        .or_default()
        .push((header("scanq-event"), doc));
    StatusCode::NO_CONTENT
}

/// A loopback receiver; returns its URL.
async fn receiver(seen: Seen) -> (String, tokio::task::JoinHandle<()>) {
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

/// Every accepted delivery as (event, `data.correlation_id` or `data.run`), in key order.
fn deliveries(seen: &Seen) -> Vec<(String, String)> {
    seen.lock()
        .unwrap()
        .values()
        .flatten()
        .map(|(e, body)| {
            let d = &body["data"];
            let id = d["correlation_id"].as_str().or(d["run"].as_str());
            (e.clone(), id.unwrap_or_default().to_owned())
        })
        .collect()
}

/// Waits until no webhook delivery is pending (every emitted event was delivered).
async fn all_delivered(cfg: &Config) {
    let store = WebhookStore::new(scanq::queue::pool(cfg).unwrap(), &cfg.key_prefix);
    eventually(Duration::from_secs(30), "every delivery made", || {
        let store = store.clone();
        async move { (store.pending().await.unwrap() == 0).then_some(()) }
    })
    .await;
}

async fn subscribe(base: &str, url: &str, events: &[&str], schedule: Option<&str>) {
    let mut body = json!({"url": url, "events": events});
    if let Some(s) = schedule {
        body["schedule_id"] = json!(s);
    }
    let r = post_json(base, "/v1/webhooks", &body).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

async fn put(base: &str, path: &str, body: &Value) -> reqwest::Response {
    http()
        .put(format!("{base}{path}"))
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn submit(base: &str, body: &Value) -> String {
    let resp = post_json(base, "/v1/jobs", body).await;
    let status = resp.status().as_u16();
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(status, 202, "{doc}");
    doc["correlation_id"].as_str().unwrap().to_owned()
}

async fn chunk_states(base: &str, id: &str) -> Vec<String> {
    let page = get_json(base, &format!("/v1/jobs/{id}/chunks?limit=100")).await;
    page["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["state"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scheduled_big_scan_fires_parents_and_tells_the_change_once() {
    let redis = RedisServer::start().await;
    let (mut cfg, _, fx) = scheduling(&redis, "bigprog-sched");
    let catalog = bignmap(&fx, "none");
    let seen: Seen = Arc::default();
    let (url, server) = receiver(seen.clone()).await;
    cfg.webhook_allowed_urls = url.clone();
    cfg.webhook_retry_base_ms = 100;
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let port = free_port();
    let template = json!({"tool": "bignmap", "target": "127.1.0.0/22", "args": format!("-sT -n -p {port}"),
               "chunk_hosts": 256, "every_sec": 1});

    // Refused at create: an id too long for a big scan's runs, a chunk size out of range.
    let long = "s".repeat(42);
    let r = put(&base, &format!("/v1/schedules/{long}"), &template).await;
    assert_eq!(r.status(), 422);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["field"], "id", "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("41"),
        "{problem}"
    );
    let mut bad = template.clone();
    bad["chunk_hosts"] = json!(5000);
    let r = put(&base, "/v1/schedules/sweep", &bad).await;
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["field"], "chunk_hosts");
    // The same long id is fine for a schedule of ordinary jobs.
    let small = json!({"tool": "bignmap", "target": "127.1.0.1", "args": "-sn -n",
                       "every_sec": 3600});
    assert_eq!(
        put(&base, &format!("/v1/schedules/{long}"), &small)
            .await
            .status(),
        201
    );
    assert_eq!(
        http()
            .delete(format!("{base}/v1/schedules/{long}"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );

    let r = put(&base, "/v1/schedules/sweep", &template).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    subscribe(&base, &url, &["schedule.changed"], Some("sweep")).await;
    let worker = start_worker(cfg.clone(), catalog).await;

    // A first run: one parent of 4 chunks, listed by the schedule.
    let first = eventually(Duration::from_secs(120), "a first succeeded run", || {
        let base = base.clone();
        async move {
            let doc = get_json(&base, "/v1/schedules/sweep").await;
            (doc["last_run"]["state"] == "succeeded").then(|| {
                doc["last_run"]["correlation_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
        }
    })
    .await;
    assert!(
        first.starts_with("sweep.") && !first.contains(':'),
        "{first}"
    );
    let doc = get_json(&base, &format!("/v1/jobs/{first}")).await;
    assert_eq!(doc["schedule_id"], "sweep", "{doc}");
    assert_eq!(doc["chunks"]["total"], 4, "{doc}");
    assert_eq!(doc["chunks"]["succeeded"], 4, "{doc}");
    assert_eq!(doc["progress"]["hosts_done"], 1024, "{doc}");
    let runs = get_json(&base, "/v1/schedules/sweep/runs").await;
    let listed: Vec<&str> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["correlation_id"].as_str())
        .collect();
    assert!(listed.contains(&first.as_str()), "{runs}");
    assert!(
        listed.iter().all(|r| !r.contains(':')),
        "chunks listed: {runs}"
    );

    // A port opens on one address of the range between runs.
    let listener = std::net::TcpListener::bind(("127.1.2.9", port)).unwrap();
    let (event, body) = eventually(Duration::from_secs(120), "schedule.changed", || {
        let seen = seen.clone();
        async move { seen.lock().unwrap().values().flatten().next().cloned() }
    })
    .await;
    assert_eq!(event, "schedule.changed");
    let data = &body["data"];
    assert_eq!(data["schedule_id"], "sweep");
    assert_eq!(data["summary"]["ports_opened"], 1, "{data}");
    let hosts = data["hosts"].to_string();
    assert!(
        hosts.contains("127.1.2.9") && hosts.contains(&port.to_string()),
        "{data}"
    );
    let run = data["run"].as_str().unwrap().to_owned();
    assert!(run.starts_with("sweep.") && !run.contains(':'), "{run}");
    let changed = get_json(&base, &format!("/v1/jobs/{run}")).await;
    assert_eq!(changed["chunks"]["total"], 4, "{changed}");
    assert_eq!(changed["change"]["changed"], true, "{changed}");
    assert_eq!(changed["change"]["summary"]["ports_opened"], 1, "{changed}");
    // The run's diff against the schedule's previous run names the host and port.
    let diff = get_json(&base, &format!("/v1/jobs/{run}/diff")).await;
    assert_eq!(diff["against"], data["against"], "{diff}");
    let diff_hosts = diff["hosts"].to_string();
    assert!(diff_hosts.contains("127.1.2.9") && diff_hosts.contains(&port.to_string()));

    // One more run after that one, unchanged: still one schedule.changed.
    eventually(Duration::from_secs(120), "a later succeeded run", || {
        let base = base.clone();
        let run = run.clone();
        async move {
            let doc = get_json(&base, "/v1/schedules/sweep").await;
            let last = doc["last_run"]["correlation_id"]
                .as_str()
                .unwrap_or_default();
            (doc["last_run"]["state"] == "succeeded" && last > run.as_str()).then_some(())
        }
    })
    .await;
    let r = http()
        .post(format!("{base}/v1/schedules/sweep/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Every run fired is final (its events emitted) and every event delivered.
    eventually(Duration::from_secs(120), "every run final", || {
        let base = base.clone();
        async move {
            let runs = get_json(&base, "/v1/schedules/sweep/runs").await;
            runs["runs"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| {
                    ["succeeded", "failed", "cancelled"]
                        .contains(&r["state"].as_str().unwrap_or(""))
                })
                .then_some(())
        }
    })
    .await;
    all_delivered(&cfg).await;
    assert_eq!(
        deliveries(&seen),
        [("schedule.changed".to_owned(), run.clone())]
    );
    drop(listener);
    worker.shutdown().await;
    api.shutdown().await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_fire_once_per_parent_and_sse_streams_its_progress() {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let catalog = bignmap(&fx, "127.1.0.32/28");
    let seen: Seen = Arc::default();
    let (url, server) = receiver(seen.clone()).await;
    let mut cfg = test_config(&redis, "bigprog-hooks");
    cfg.webhook_allowed_urls = url.clone();
    cfg.webhook_retry_base_ms = 100;
    cfg.worker_grace_sec = 0;
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    subscribe(
        &base,
        &url,
        &["job.succeeded", "job.failed", "job.dead"],
        None,
    )
    .await;
    let worker = start_worker(
        Config {
            worker_concurrency: 4,
            ..cfg.clone()
        },
        catalog,
    )
    .await;

    // A parent of 4 chunks that succeeds, watched over SSE from its start.
    std::fs::write(fx.path("ctl/delay"), "1").unwrap();
    let ok = submit(
        &base,
        &json!({"tool": "bignmap", "target": "127.1.1.0/26", "args": "-sn -n",
                "chunk_hosts": 16, "correlation_id": "ok"}),
    )
    .await;
    let events = read_sse(
        &format!("{base}/v1/jobs/{ok}/events"),
        None,
        Duration::from_secs(120),
        |e| e.event == "done",
    )
    .await;
    let progress: Vec<Value> = events
        .iter()
        .filter(|e| e.event == "progress")
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    assert!(!progress.is_empty(), "{events:?}");
    for p in &progress {
        assert_eq!(p["chunks"]["total"], 4, "{p}");
        assert_eq!(p["hosts_total"], 64, "{p}");
    }
    // Chunk state changes show: some chunk running or hosts still to do, then all done.
    assert!(
        progress
            .iter()
            .any(|p| p["chunks"]["running"].as_u64() > Some(0)
                || p["hosts_done"].as_u64() < Some(64)),
        "{progress:?}"
    );
    let last = progress.last().unwrap();
    assert_eq!(last["hosts_done"], 64, "{last}");
    assert_eq!(last["chunks"]["succeeded"], 4, "{last}");
    let states: Vec<String> = events
        .iter()
        .filter(|e| e.event == "state")
        .map(|e| serde_json::from_str::<Value>(&e.data).unwrap()["state"].to_string())
        .collect();
    assert_eq!(
        states.last().map(String::as_str),
        Some("\"succeeded\""),
        "{events:?}"
    );
    let done: Value = serde_json::from_str(&events.last().unwrap().data).unwrap();
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["correlation_id"], "ok");

    // A parent whose chunk 2 fails for good.
    std::fs::write(fx.path("ctl/delay"), "0").unwrap();
    let bad = submit(
        &base,
        &json!({"tool": "bignmap", "target": "127.1.0.0/26", "args": "-sn -n",
                "chunk_hosts": 16, "max_attempts": 1, "correlation_id": "bad"}),
    )
    .await;
    let doc = wait_done(&base, &bad, Duration::from_secs(120)).await;
    assert_eq!(doc["state"], "failed", "{doc}");

    // A parent finished by an API cancel: chunk 2 failed, the others handed back queued.
    std::fs::write(fx.path("ctl/delay"), "60").unwrap();
    let cut = submit(
        &base,
        &json!({"tool": "bignmap", "target": "127.1.0.0/26", "args": "-sn -n",
                "chunk_hosts": 16, "max_attempts": 1, "correlation_id": "cut"}),
    )
    .await;
    eventually(Duration::from_secs(60), "chunk 2 failed, 3 running", || {
        let base = base.clone();
        async move {
            let s = chunk_states(&base, "cut").await;
            (s.len() == 4 && s[2] == "failed" && s.iter().filter(|s| *s == "running").count() == 3)
                .then_some(())
        }
    })
    .await;
    worker.shutdown().await;
    eventually(
        Duration::from_secs(30),
        "the running chunks handed back",
        || {
            let base = base.clone();
            async move {
                let s = chunk_states(&base, "cut").await;
                s.iter()
                    .all(|s| s == "queued" || s == "failed")
                    .then_some(())
            }
        },
    )
    .await;
    // No worker runs now: only the API can finish the parent.
    let r = http()
        .delete(format!("{base}/v1/jobs/{cut}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let doc = get_json(&base, &format!("/v1/jobs/{cut}")).await;
    assert_eq!(doc["state"], "failed", "{doc}");
    assert_eq!(doc["chunks"]["failed"], 1, "{doc}");
    assert_eq!(doc["chunks"]["cancelled"], 3, "{doc}");

    eventually(Duration::from_secs(30), "five events", || {
        let seen = seen.clone();
        async move { (deliveries(&seen).len() >= 5).then_some(()) }
    })
    .await;
    all_delivered(&cfg).await;
    let got: BTreeSet<(String, String)> = deliveries(&seen).into_iter().collect();
    let want: BTreeSet<(String, String)> = [
        ("job.succeeded", "ok"),
        ("job.failed", "bad"),
        ("job.dead", "bad"),
        ("job.failed", "cut"),
        ("job.dead", "cut"),
    ]
    .into_iter()
    .map(|(e, id)| (e.to_owned(), id.to_owned()))
    .collect();
    assert_eq!(got, want);
    assert_eq!(
        deliveries(&seen).len(),
        5,
        "one event of each kind per parent, none per chunk"
    );
    api.shutdown().await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_big_scan_that_cancel_previous_finishes_gives_its_job_failed_once() {
    let redis = RedisServer::start().await;
    let (mut cfg, _, fx) = scheduling(&redis, "bigprog-cprev");
    let catalog = bignmap(&fx, "127.1.0.32/28");
    let seen: Seen = Arc::default();
    let (url, server) = receiver(seen.clone()).await;
    cfg.webhook_allowed_urls = url.clone();
    cfg.webhook_retry_base_ms = 100;
    cfg.worker_grace_sec = 0;
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    std::fs::write(fx.path("ctl/delay"), "60").unwrap();
    let body = json!({"tool": "bignmap", "target": "127.1.0.0/26", "args": "-sn -n",
                      "chunk_hosts": 16, "max_attempts": 1, "every_sec": 5,
                      "overlap": "cancel_previous"});
    let r = put(&base, "/v1/schedules/cp", &body).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    subscribe(&base, &url, &["job.succeeded", "job.failed"], None).await;
    let worker = start_worker(
        Config {
            worker_concurrency: 4,
            ..cfg.clone()
        },
        catalog,
    )
    .await;

    // The first run: chunk 2 fails for good, the others run (60 s each).
    let run = eventually(Duration::from_secs(30), "chunk 2 failed, 3 running", || {
        let base = base.clone();
        async move {
            let doc = get_json(&base, "/v1/schedules/cp").await;
            let run = doc["last_run"]["correlation_id"].as_str()?.to_owned();
            let s = chunk_states(&base, &run).await;
            (s.len() == 4 && s[2] == "failed" && s.iter().filter(|s| *s == "running").count() == 3)
                .then_some(run)
        }
    })
    .await;
    let post = |path: String| {
        let base = base.clone();
        async move {
            http()
                .post(format!("{base}{path}"))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(post("/v1/schedules/cp/pause".into()).await, 200);
    // The worker goes: its running chunks are handed back, queued; nothing runs any more.
    worker.shutdown().await;
    eventually(
        Duration::from_secs(30),
        "the running chunks handed back",
        || {
            let base = base.clone();
            let run = run.clone();
            async move {
                let s = chunk_states(&base, &run).await;
                s.iter()
                    .all(|s| s == "queued" || s == "failed")
                    .then_some(())
            }
        },
    )
    .await;
    // The next slot cancels the previous run, which ends `failed` there and then.
    assert_eq!(post("/v1/schedules/cp/resume".into()).await, 200);
    let doc = eventually(Duration::from_secs(30), "the first run failed", || {
        let base = base.clone();
        let run = run.clone();
        async move {
            let doc = get_json(&base, &format!("/v1/jobs/{run}")).await;
            (doc["state"] == "failed").then_some(doc)
        }
    })
    .await;
    assert_eq!(doc["chunks"]["failed"], 1, "{doc}");
    assert_eq!(doc["chunks"]["cancelled"], 3, "{doc}");
    eventually(Duration::from_secs(30), "job.failed", || {
        let seen = seen.clone();
        async move { (!deliveries(&seen).is_empty()).then_some(()) }
    })
    .await;
    assert_eq!(post("/v1/schedules/cp/pause".into()).await, 200);
    all_delivered(&cfg).await;
    assert_eq!(deliveries(&seen), [("job.failed".to_owned(), run.clone())]);
    api.shutdown().await;
    server.abort();
}
