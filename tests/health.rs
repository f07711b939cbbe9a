//! `GET /health`, `GET /readyz` and `GET /v1/workers` (DESIGN §2, §7): the verdict follows the
//! priority of the failing check, Redis down is unhealthy and fails readiness fast, and a worker
//! killed with SIGKILL drops out of the fleet once its heartbeat lapses.

use std::time::Duration;

use nix::sys::signal::Signal;
use scanq::catalog::Catalog;
use scanq::config::Config;
use scanq_tests::*;
use serde_json::Value;

fn inprocess_catalog(fixture: &Fixture) -> Catalog {
    Catalog::load(Some(&fixture.catalog(INPROCESS_TOOLS))).expect("catalog")
}

async fn health(base: &str) -> (u16, Value) {
    let resp = http()
        .get(format!("{base}/health"))
        .send()
        .await
        .expect("get /health");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json"))
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {report}"))
}

async fn workers(base: &str) -> Value {
    http()
        .get(format!("{base}/v1/workers"))
        .send()
        .await
        .expect("get /v1/workers")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn health_is_degraded_while_no_worker_is_alive() {
    let redis = RedisServer::start().await;
    let fixture = Fixture::new();
    let cfg = test_config(&redis, "no-worker");
    let (_api, base) = start_api(cfg, inprocess_catalog(&fixture)).await;

    let (status, report) = health(&base).await;

    assert_eq!(status, 200, "{report}");
    assert_eq!(report["status"], "degraded");
    let redis_check = check(&report, "redis");
    assert_eq!(redis_check["status"], "pass");
    assert_eq!(redis_check["priority"], "critical");
    let workers = check(&report, "workers");
    assert_eq!(workers["status"], "fail");
    assert_eq!(workers["priority"], "important");
    assert!(
        workers["detail"]
            .as_str()
            .unwrap()
            .contains("no live worker")
    );
    for c in report["checks"].as_array().unwrap() {
        assert!(c["duration_ms"].as_u64().is_some(), "{c}");
        assert!(c["priority"].is_string(), "{c}");
    }
    for name in ["cpu", "memory", "disk"] {
        assert_eq!(check(&report, name)["priority"], "informational");
    }
}

#[tokio::test]
async fn health_is_healthy_with_a_worker_and_informational_failures_do_not_change_it() {
    let redis = RedisServer::start().await;
    let fixture = Fixture::new();
    let fake = fixture.script("fake", &fake_tool_script(None));
    let catalog = Catalog::load(Some(&fixture.catalog(&format!(
        "{}{}",
        fake_tool_catalog("fake", &fake, ""),
        INPROCESS_TOOLS
    ))))
    .unwrap();
    // Memory in use is surely above 1 %: that check fails, yet only reports.
    let cfg = Config {
        health_memory_percent: 1,
        health_cpu_percent: 100,
        ..test_config(&redis, "healthy")
    };
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;

    let report = eventually(Duration::from_secs(10), "health is healthy", || {
        let base = base.clone();
        async move {
            let (status, report) = health(&base).await;
            (status == 200 && report["status"] == "healthy").then_some(report)
        }
    })
    .await;

    assert_eq!(check(&report, "workers")["status"], "pass", "{report}");
    assert_eq!(check(&report, "tool_binaries")["status"], "pass");
    let memory = check(&report, "memory");
    assert_eq!(memory["status"], "fail", "{memory}");
    assert_eq!(memory["threshold"], 1.0);
    assert!(memory["observed"].as_f64().unwrap() > 1.0);
    assert_eq!(check(&report, "cpu")["status"], "pass");
}

#[tokio::test]
async fn a_tool_missing_on_every_live_worker_degrades_health_and_is_named() {
    let redis = RedisServer::start().await;
    let fixture = Fixture::new();
    let catalog = Catalog::load(Some(&fixture.catalog(&format!(
        "{}{}",
        fake_tool_catalog("ghost", std::path::Path::new("no-such-binary-scanq"), ""),
        INPROCESS_TOOLS
    ))))
    .unwrap();
    let cfg = test_config(&redis, "ghost");
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;

    let report = eventually(Duration::from_secs(10), "a live worker", || {
        let base = base.clone();
        async move {
            let (_, report) = health(&base).await;
            (check(&report, "workers")["status"] == "pass").then_some(report)
        }
    })
    .await;

    assert_eq!(report["status"], "degraded", "{report}");
    let binaries = check(&report, "tool_binaries");
    assert_eq!(binaries["status"], "fail");
    let detail = binaries["detail"].as_str().unwrap();
    assert!(
        detail.contains("ghost") && !detail.contains("noop"),
        "{detail}"
    );
}

#[tokio::test]
async fn health_is_unhealthy_and_readiness_fails_fast_when_redis_is_down() {
    let mut redis = RedisServer::start().await;
    let fixture = Fixture::new();
    let cfg = test_config(&redis, "redis-down");
    let (_api, base) = start_api(cfg, inprocess_catalog(&fixture)).await;
    let ready = http().get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    redis.kill();
    // A client that gives up after 3 s: readiness must answer well within it.
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let ready = quick
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("readyz answers while Redis is down");
    let (status, report) = health(&base).await;

    assert_eq!(ready.status(), 503);
    assert!(ready.headers().contains_key("retry-after"));
    assert_eq!(status, 503, "{report}");
    assert_eq!(report["status"], "unhealthy");
    assert_eq!(check(&report, "redis")["status"], "fail");
    assert_eq!(check(&report, "redis")["detail"], "standalone: unreachable");
    // The informational checks still ran and reported.
    assert!(
        check(&report, "cpu")["observed"].as_f64().is_some(),
        "{report}"
    );
}

#[tokio::test]
async fn workers_lists_live_workers_and_drops_one_killed_with_sigkill() {
    let redis = RedisServer::start().await;
    let fixture = Fixture::new();
    let catalog_path = fixture.catalog(INPROCESS_TOOLS);
    let cfg = Config {
        catalog: Some(catalog_path.clone()),
        heartbeat_sec: 1,
        ..test_config(&redis, "workers")
    };
    let (_api, base) = start_api(cfg.clone(), Catalog::load(Some(&catalog_path)).unwrap()).await;
    let addr = |port: u16| ("SCANQ_WORKER_METRICS_ADDR", format!("127.0.0.1:{port}"));
    let mut doomed = Proc::spawn("scanq-worker", &cfg, &[addr(free_port())]);
    let survivor = Proc::spawn("scanq-worker", &cfg, &[addr(free_port())]);
    let resp = http()
        .post(format!("{base}/v1/jobs"))
        .header("content-type", "application/json")
        .body(r#"{"tool":"sleep","target":"10.0.0.5","args":"--ms 60000","correlation_id":"long"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);

    let listed = eventually(Duration::from_secs(15), "two workers, one running", || {
        let base = base.clone();
        async move {
            let w = workers(&base).await;
            let running: u64 = w["workers"]
                .as_array()?
                .iter()
                .filter_map(|x| x["running"].as_u64())
                .sum();
            (w["count"] == 2 && running == 1).then_some(w)
        }
    })
    .await;
    let pids: Vec<u64> = listed["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["pid"].as_u64().unwrap())
        .collect();
    assert!(pids.contains(&(doomed.pid() as u64)), "{listed}");
    assert!(pids.contains(&(survivor.pid() as u64)), "{listed}");
    let busy = listed["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["running"] == 1)
        .unwrap();
    assert_eq!(busy["running_jobs"][0], "sleep/default/long", "{busy}");
    for w in listed["workers"].as_array().unwrap() {
        assert_eq!(w["tools"]["sleep"], true, "{w}");
        assert!(w["heartbeat_expires_ms"].as_u64().unwrap() > 0);
        assert!(!w["version"].as_str().unwrap().is_empty());
    }

    doomed.signal(Signal::SIGKILL);
    doomed.wait_exit(Duration::from_secs(5)).await;

    let after = eventually(Duration::from_secs(15), "killed worker gone", || {
        let base = base.clone();
        async move {
            let w = workers(&base).await;
            (w["count"] == 1).then_some(w)
        }
    })
    .await;
    assert_eq!(after["workers"][0]["pid"], survivor.pid() as u64, "{after}");
    let metrics = metrics_text(&base).await;
    assert!(
        metrics.lines().any(|l| l == "scanq_workers_alive 1"),
        "{metrics}"
    );
}
