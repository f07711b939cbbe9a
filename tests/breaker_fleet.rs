//! The circuit breaker across a fleet of real worker processes (DESIGN §6): it opens after the
//! threshold and stops new starts everywhere, admits exactly one probe fleet-wide, survives the
//! probe's worker being killed, closes after enough probe successes, and answers submits with
//! 503 while open. Admin actions take effect at once.

use std::path::Path;
use std::time::Duration;

use scanq::catalog::Catalog;
use scanq_tests::*;
use serde_json::{Value, json};

const BREAKER: &str = r#"
[tools.flaky.breaker]
failure_threshold = 5
recovery_timeout_sec = 2
max_open_sec = 4
jitter = 0.0
half_open_max_probes = 1
success_threshold = 2
probe_lease_sec = 3
failure_kinds = ["spawn_error", "signal", "resource_exhausted", "exit_nonzero"]
"#;

/// Fails while `healthy` is absent; once it exists, succeeds after 1.5 s. Records
/// "<worker pid> <own pid>" for every start.
fn flaky_script(dir: &Path) -> String {
    format!(
        "#!/bin/bash\necho \"$PPID $$\" >> {starts}\nif [ -e {healthy} ]; then sleep 1.5; exit 0; fi\nexit 1\n",
        starts = dir.join("starts").display(),
        healthy = dir.join("healthy").display(),
    )
}

fn starts(dir: &Path) -> Vec<(i32, i32)> {
    std::fs::read_to_string(dir.join("starts"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace().map(|x| x.parse().ok());
            Some((it.next()??, it.next()??))
        })
        .collect()
}

async fn breaker(base: &str, tool: &str) -> Value {
    http()
        .get(format!("{base}/v1/breakers/{tool}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn submit(base: &str, body: Value) -> reqwest::Response {
    http()
        .post(format!("{base}/v1/jobs"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_stops_on_a_failing_tool_probes_once_and_recovers_together() {
    // Arrange: 4 worker processes × concurrency 4 and a tool that fails.
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let flaky = fx.script("flaky", &flaky_script(fx.dir.path()));
    let catalog_path = fx.catalog(&format!(
        "[tools.flaky]\nexecutor = \"exec\"\ncommand = \"{}\"\ndefault_timeout_sec = 30\n{BREAKER}",
        flaky.display()
    ));
    let mut cfg = test_config(&redis, "fleet");
    cfg.catalog = Some(catalog_path.clone());
    cfg.worker_concurrency = 4;
    let catalog = Catalog::load(Some(&catalog_path)).unwrap();
    let (_api, base) = start_api(cfg.clone(), catalog).await;
    let mut workers: Vec<Proc> = (0..4)
        .map(|i| {
            Proc::spawn(
                "scanq-worker",
                &cfg,
                &[
                    (
                        "SCANQ_WORKER_METRICS_ADDR",
                        format!("127.0.0.1:{}", free_port()),
                    ),
                    ("SCANQ_WORKER_ID", format!("w{i}")),
                ],
            )
        })
        .collect();

    // Act: 60 jobs, one attempt each.
    for i in 0..60 {
        let r = submit(&base, json!({"tool":"flaky","target":"127.0.0.1","correlation_id":format!("j{i}"),"max_attempts":1,"queue_if_unavailable":true})).await;
        assert_eq!(r.status(), 202);
    }
    eventually(Duration::from_secs(30), "breaker open", || {
        let base = base.clone();
        async move { (breaker(&base, "flaky").await["state"] == "open").then_some(()) }
    })
    .await;

    // Assert: no more starts than the threshold plus what was already in flight (16 slots).
    let tripped_starts = starts(fx.dir.path()).len();
    assert!(tripped_starts >= 5, "{tripped_starts}");
    assert!(
        tripped_starts <= 5 + 16,
        "{tripped_starts} starts after the trip"
    );
    let refused = eventually(Duration::from_secs(5), "submit refused while open", || {
        let base = base.clone();
        async move {
            let r = submit(&base, json!({"tool":"flaky","target":"127.0.0.1"})).await;
            (r.status() == 503).then_some(r)
        }
    })
    .await;
    assert!(refused.headers().contains_key("retry-after"));
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["error_type"], "circuit_breaker_open");
    assert!(problem["recovery_suggestion"].as_str().is_some());
    // Jobs held back by the open breaker show as scheduled, with a retry time.
    let held: Value = http()
        .get(format!("{base}/v1/jobs?state=scheduled&limit=100"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let held = held["jobs"].as_array().unwrap();
    assert!(!held.is_empty());
    assert_eq!(held[0]["error_type"], "circuit_breaker_open");

    // The tool recovers: after the open period exactly one probe starts fleet-wide.
    let before = starts(fx.dir.path()).len();
    std::fs::write(fx.dir.path().join("healthy"), "").unwrap();
    let (probe_worker, _) = eventually(Duration::from_secs(15), "first probe", || {
        let s = starts(fx.dir.path());
        async move { s.get(before).copied() }
    })
    .await;
    // The breaker holds exactly that one probe slot fleet-wide.
    let snap = breaker(&base, "flaky").await;
    assert_eq!(snap["state"], "half_open", "{snap}");
    assert_eq!(snap["probes_in_flight"], 1, "{snap}");
    assert_eq!(
        starts(fx.dir.path()).len(),
        before + 1,
        "a second job started with the probe"
    );

    // Kill the probe's worker: its lease and probe slot expire, and another probe is admitted.
    let idx = workers
        .iter()
        .position(|w| w.pid() == probe_worker)
        .expect("probe ran on one of our workers");
    workers[idx].signal(nix::sys::signal::Signal::SIGKILL);
    workers.remove(idx);
    // Nothing else starts until the dead probe's slot lapses; then exactly one new probe does.
    let n = eventually(
        Duration::from_secs(20),
        "a second probe after the kill",
        || {
            let n = starts(fx.dir.path()).len();
            async move { (n > before + 1).then_some(n) }
        },
    )
    .await;
    assert_eq!(
        n,
        before + 2,
        "more than one probe was admitted after the kill"
    );

    // Probe successes close it and the held jobs drain.
    eventually(Duration::from_secs(30), "breaker closed", || {
        let base = base.clone();
        async move { (breaker(&base, "flaky").await["state"] == "closed").then_some(()) }
    })
    .await;
    let snap = breaker(&base, "flaky").await;
    let history: Vec<(String, String)> = snap["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["from"].as_str().unwrap().to_owned(),
                t["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        history.contains(&("closed".into(), "open".into())),
        "{history:?}"
    );
    assert!(
        history.contains(&("half_open".into(), "closed".into())),
        "{history:?}"
    );
    eventually(Duration::from_secs(60), "held jobs drained", || {
        let base = base.clone();
        async move {
            let v: Value = http()
                .get(format!("{base}/v1/jobs?state=succeeded&limit=100"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (v["jobs"].as_array()?.len() >= 30).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn forcing_the_breaker_open_holds_new_work_and_closing_it_lets_it_run() {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let catalog_path = fx.catalog(INPROCESS_TOOLS);
    let catalog = Catalog::load(Some(&catalog_path)).unwrap();
    let cfg = test_config(&redis, "force");
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;

    let r = http()
        .post(format!("{base}/v1/breakers/sleep/open"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["breaker"]["state"], "forced_open");
    let metrics = metrics_text(&base).await;
    assert!(
        metrics.contains("scanq_breaker_state{tool=\"sleep\",zone=\"default\"} 1"),
        "breaker gauge not exported"
    );
    assert!(
        metrics.contains("scanq_breaker_state{tool=\"noop\",zone=\"default\"} 0"),
        "every tool's breaker is exported"
    );

    // A plain submit is refused; one that may wait is accepted and does not start.
    let r = submit(
        &base,
        json!({"tool":"sleep","target":"10.0.0.5","args":"--ms 10"}),
    )
    .await;
    assert_eq!(r.status(), 503);
    let r = submit(&base, json!({"tool":"sleep","target":"10.0.0.5","args":"--ms 10","correlation_id":"waits","queue_if_unavailable":true})).await;
    assert_eq!(r.status(), 202);
    let held = eventually(Duration::from_secs(10), "job held back", || {
        let base = base.clone();
        async move {
            let v: Value = http()
                .get(format!("{base}/v1/jobs/waits"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (v["state"] == "scheduled").then_some(v)
        }
    })
    .await;
    assert_eq!(held["attempt"], 0, "held jobs never count as attempts");
    assert_eq!(held["error"]["type"], "circuit_breaker_open");

    // Close: it runs.
    let r = http()
        .post(format!("{base}/v1/breakers/sleep/close"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let done = wait_done(&base, "waits", Duration::from_secs(20)).await;
    assert_eq!(done["state"], "succeeded");

    // Reset clears counts and history grows with every action.
    let r: Value = http()
        .post(format!("{base}/v1/breakers/sleep/reset"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["breaker"]["state"], "closed");
    assert_eq!(r["breaker"]["consecutive_failures"], 0);
    let bad = http()
        .post(format!("{base}/v1/breakers/sleep/explode"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let all: Value = http()
        .get(format!("{base}/v1/breakers"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        all["breakers"]["sleep"]["history"]
            .as_array()
            .unwrap()
            .len()
            >= 3
    );
}

#[tokio::test]
async fn a_disabled_tool_is_not_claimed_until_enabled() {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let catalog = Catalog::load(Some(&fx.catalog(INPROCESS_TOOLS))).unwrap();
    let cfg = test_config(&redis, "switch");
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;

    let r = http()
        .post(format!("{base}/v1/tools/noop/disable"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let refused = eventually(Duration::from_secs(5), "submit refused", || {
        let base = base.clone();
        async move {
            let r = submit(&base, json!({"tool":"noop","target":"10.0.0.5"})).await;
            (r.status() == 503).then_some(r)
        }
    })
    .await;
    assert!(refused.headers().contains_key("retry-after"));
    let r = submit(&base, json!({"tool":"noop","target":"10.0.0.5","correlation_id":"later","queue_if_unavailable":true})).await;
    assert_eq!(r.status(), 202);
    // A job of an enabled tool submitted afterwards runs to the end: the worker has claimed
    // since, and still left the disabled tool's job queued.
    let r = submit(
        &base,
        json!({"tool":"sleep","target":"10.0.0.5","args":"--ms 10","correlation_id":"marker"}),
    )
    .await;
    assert_eq!(r.status(), 202);
    assert_eq!(
        wait_done(&base, "marker", Duration::from_secs(10)).await["state"],
        "succeeded"
    );
    let v: Value = http()
        .get(format!("{base}/v1/jobs/later"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["state"], "queued");

    http()
        .post(format!("{base}/v1/tools/noop/enable"))
        .send()
        .await
        .unwrap();
    let done = wait_done(&base, "later", Duration::from_secs(10)).await;
    assert_eq!(done["state"], "succeeded");
}
