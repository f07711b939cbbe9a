//! Fair share across tenants: a tenant that floods a tool's queue cannot starve another one.

use std::time::Duration;

use scanq::catalog::Catalog;
use scanq::domain::{CorrelationId, TenantId, ToolName};
use scanq::queue::Queue;
use scanq::request::{JobSpec, Policy};
use scanq::validate::TargetPolicy;
use scanq_tests::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_tenant_finishes_long_before_a_flooding_tenants_backlog() {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let catalog = Catalog::load(Some(&fx.catalog(INPROCESS_TOOLS))).unwrap();
    let mut cfg = test_config(&redis, "fair");
    cfg.fair_window = 10;
    cfg.worker_concurrency = 4;
    let queue = Queue::new(scanq::queue::pool(&cfg).unwrap(), &cfg);
    let targets = TargetPolicy::default();
    let policy = Policy {
        catalog: &catalog,
        targets: &targets,
        zones: &scanq::validate::ZoneMap::default(),
        allow_intrusive: false,
        default_max_attempts: 3,
        require_engagement: false,
        approval: scanq::engagement::Approval::Never,
    };
    let spec = |cid: String| {
        JobSpec::from_json(
            &json!({"tool":"sleep","target":"10.0.0.5","args":"--ms 20","correlation_id":cid}),
            &policy,
        )
        .unwrap()
    };
    let (a, b) = (TenantId::parse("a").unwrap(), TenantId::parse("b").unwrap());

    // Tenant A enqueues 1000 jobs, then tenant B enqueues 10.
    for i in 0..1000 {
        queue.submit(&a, &spec(format!("a{i}"))).await.unwrap();
    }
    for i in 0..10 {
        queue.submit(&b, &spec(format!("b{i}"))).await.unwrap();
    }
    let _worker = start_worker(cfg, catalog.clone()).await;

    // B's jobs all finish while most of A's backlog is still waiting.
    for i in 0..10 {
        let cid = CorrelationId::parse(&format!("b{i}")).unwrap();
        eventually(Duration::from_secs(30), "B's job done", || {
            let (queue, b, cid) = (queue.clone(), b.clone(), cid.clone());
            async move {
                let (_, doc) = queue.get(&b, &cid).await.ok()??;
                doc.state.is_terminal().then_some(())
            }
        })
        .await;
    }
    let counts = queue
        .counts(&ToolName::parse("sleep").unwrap())
        .await
        .unwrap();
    let a_done = counts.get("succeeded").copied().unwrap_or(0) - 10;
    assert!(a_done < 200, "A had {a_done} of 1000 done when B finished");
    let a_left = counts.get("queued").copied().unwrap_or(0);
    assert!(a_left > 700, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_never_runs_more_than_its_running_cap_and_others_are_not_held_up() {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let catalog = Catalog::load(Some(&fx.catalog(INPROCESS_TOOLS))).unwrap();
    let tokens = Tokens::write(
        fx.dir.path(),
        &[
            ("blue", "blue", "submit,read"),
            ("red", "red", "submit,read"),
        ],
        "[tenants.blue]\nmax_running = 1\n",
    );
    let mut cfg = test_config(&redis, "runcap");
    cfg.api_tokens_file = Some(tokens.path.clone());
    cfg.worker_concurrency = 8;
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;
    let client = http();
    let submit = |who: &'static str, cid: String| {
        client
            .post(format!("{base}/v1/jobs"))
            .bearer_auth(tokens.get(who))
            .json(
                &json!({"tool":"sleep","target":"10.0.0.5","args":"--ms 400","correlation_id":cid}),
            )
            .send()
    };
    for i in 0..4 {
        assert_eq!(submit("blue", format!("b{i}")).await.unwrap().status(), 202);
    }
    for i in 0..2 {
        assert_eq!(submit("red", format!("r{i}")).await.unwrap().status(), 202);
    }

    // Until blue's four jobs are done, at most one of them runs at a time; red's run meanwhile.
    let count = |who: &'static str, state: &'static str| {
        let req = client
            .get(format!("{base}/v1/jobs?state={state}"))
            .bearer_auth(tokens.get(who));
        async move {
            req.send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()["jobs"]
                .as_array()
                .unwrap()
                .len()
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut red_done_first = false;
    loop {
        assert!(
            count("blue", "running").await <= 1,
            "blue ran more than its cap"
        );
        let blue_done = count("blue", "succeeded").await;
        if count("red", "succeeded").await == 2 && blue_done < 4 {
            red_done_first = true;
        }
        if blue_done == 4 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "blue's jobs did not finish"
        );
        tokio::time::sleep(Duration::from_millis(20)).await; // polling interval
    }
    assert!(
        red_done_first,
        "red's jobs waited behind blue's capped backlog"
    );
}
