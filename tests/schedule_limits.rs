//! Scheduled runs count against their tenant's caps like any submit. A worker has no tokens
//! file, so the APIs publish every tenant's caps to Redis (`Queue::publish_caps`) and the
//! scheduler of any process reads them: a tenant cannot get around its cap with schedules. A
//! trigger over the cap is a 429, as a submit would be.
//! The in-process `noop` tool only (switched off, so runs stay queued).

use std::time::Duration;

use scanq::catalog::Catalog;
use scanq::domain::TenantId;
use scanq::queue::Queue;
use scanq::schedule::ScheduleStore;
use scanq_tests::*;
use serde_json::json;

/// `scanq_schedule_runs_total{result="refused"}` of one process.
async fn refused(base: &str) -> u64 {
    metric(base, "scanq_schedule_runs_total{result=\"refused\"}")
        .await
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_runs_count_against_their_tenants_queued_cap_in_any_process() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = Tokens::write(
        dir.path(),
        &[
            ("blue", "blue", "submit,read,cancel"),
            ("ops", "ops", "admin"),
        ],
        "[tenants.blue]\nmax_queued = 2\n",
    );
    let fx = Fixture::new();
    let catalog = Catalog::load(Some(&fx.catalog(INPROCESS_TOOLS))).unwrap();
    let mut cfg = test_config(&redis, "schedcaps");
    cfg.api_tokens_file = Some(tokens.path.clone());
    cfg.schedule_min_every_sec = 1;
    cfg.schedule_tick_ms = 100;
    let (blue, ops) = (tokens.get("blue"), tokens.get("ops"));
    let tenant = TenantId::parse("blue").unwrap();
    let queue = Queue::new(scanq::queue::pool(&cfg).unwrap(), &cfg);

    // The API publishes blue's caps at start.
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let caps = eventually(Duration::from_secs(10), "blue's caps published", || async {
        queue.published_caps(&tenant).await.unwrap()
    })
    .await;
    assert_eq!(caps.max_queued, 2);
    let call = |method: reqwest::Method, path: &str, token: &str| {
        http()
            .request(method, format!("{base}{path}"))
            .bearer_auth(token)
    };
    // Runs stay queued: the tool is off.
    let off = call(reqwest::Method::POST, "/v1/tools/noop/disable", ops)
        .send()
        .await
        .unwrap();
    assert!(off.status().is_success(), "{}", off.status());

    // A scheduled run meets the gate like any submit: while the tool is off, a template without
    // `queue_if_unavailable` is refused (and nothing is queued or counted).
    let gated = json!({"tool":"noop","target":"10.0.0.5","every_sec":1,"catchup_sec":60});
    let r = call(reqwest::Method::PUT, "/v1/schedules/gated", blue)
        .json(&gated)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    eventually(
        Duration::from_secs(15),
        "the gate refuses a run",
        || async { (refused(&base).await >= 1).then_some(()) },
    )
    .await;
    assert_eq!(queue.tenant_queued(&tenant).await.unwrap(), 0);
    let r = call(reqwest::Method::DELETE, "/v1/schedules/gated", blue)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let gate_refusals = refused(&base).await;

    // Three schedules whose runs may wait for the tool, at most one waiting run each (overlap
    // `skip`), under a cap of two.
    for id in ["s1", "s2", "s3"] {
        let body = json!({"tool":"noop","target":"10.0.0.5","every_sec":1,"catchup_sec":60,
            "queue_if_unavailable":true});
        let r = call(reqwest::Method::PUT, &format!("/v1/schedules/{id}"), blue)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    eventually(
        Duration::from_secs(15),
        "the cap is met and a run refused",
        || async {
            let full = queue.tenant_queued(&tenant).await.unwrap() == 2;
            (full && refused(&base).await > gate_refusals).then_some(())
        },
    )
    .await;
    assert_eq!(queue.tenant_queued(&tenant).await.unwrap(), 2);
    // The cap the schedules filled holds for a submit and for a trigger alike.
    let submit = call(reqwest::Method::POST, "/v1/jobs", blue)
        .json(&json!({"tool":"noop","target":"10.0.0.5","queue_if_unavailable":true}))
        .send()
        .await
        .unwrap();
    assert_eq!(submit.status(), 429);
    let trigger = call(reqwest::Method::POST, "/v1/schedules/s1/trigger", blue)
        .send()
        .await
        .unwrap();
    assert_eq!(trigger.status(), 429);
    let detail = trigger.json::<serde_json::Value>().await.unwrap()["detail"].clone();
    assert!(detail.as_str().unwrap().contains("cap is 2"), "{detail}");

    // With the API gone, a worker fires the schedules under the caps the API published.
    api.shutdown().await;
    let (_worker, wm) = start_worker_with_metrics(cfg.clone(), catalog.clone()).await;
    eventually(
        Duration::from_secs(15),
        "the worker refuses a run",
        || async { (refused(&wm).await >= 1).then_some(()) },
    )
    .await;
    assert_eq!(queue.tenant_queued(&tenant).await.unwrap(), 2);
    let store = ScheduleStore::new(queue.pool().clone(), &cfg.key_prefix);
    let mut made = 0;
    for id in ["s1", "s2", "s3"] {
        made += store.runs(&tenant, id, 100).await.unwrap().len();
    }
    assert_eq!(made, 2, "only two runs were ever made");
}
