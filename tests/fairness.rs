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
        allow_intrusive: false,
        default_max_attempts: 3,
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
