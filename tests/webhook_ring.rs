//! The webhook outbox at the Redis level: claims go round-robin across tenants within the
//! per-tenant and fleet-wide in-flight bounds (`hook_claim.lua`), an attempt that outlived its
//! lease does not end the delivery another claim now holds (`hook_finish.lua`), and deliveries
//! of the pre-upgrade single outbox are adopted. No receiver: nothing is delivered.

use std::time::Duration;

use scanq::domain::TenantId;
use scanq::webhook::{EventType, Subscription, WebhookStore};
use scanq_tests::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_go_round_robin_across_tenants_within_the_in_flight_bounds() {
    let redis = RedisServer::start().await;
    let cfg = test_config(&redis, "hookring");
    let pool = scanq::queue::pool(&cfg).unwrap();
    let store = WebhookStore::new(pool.clone(), &cfg.key_prefix);
    let tenants: Vec<TenantId> = ["a", "b", "c"]
        .iter()
        .map(|t| TenantId::parse(t).unwrap())
        .collect();
    for (t, n) in tenants.iter().zip([10, 10, 1]) {
        let sub = Subscription {
            id: "s".into(),
            url: "http://127.0.0.1:9/hook".into(),
            events: vec![EventType::JobSucceeded],
            schedule_id: None,
            description: None,
            secret: "whsec_test".into(),
            created_ms: 1,
        };
        store.create(t, &sub, 20).await.unwrap().unwrap();
        for i in 0..n {
            let id = format!("job.succeeded:{t}{i}");
            store
                .emit(t, EventType::JobSucceeded, &id, None, "{}")
                .await
                .unwrap();
        }
    }
    let bounds = scanq::scripts::InFlight {
        per_tenant: 2,
        fleet: 5,
    };
    let mut claimed = Vec::new();
    while let Some(d) = store.claim(20_000, bounds).await.unwrap() {
        claimed.push(d);
    }
    let order: Vec<&str> = claimed.iter().map(|d| d.tenant.as_str()).collect();
    assert_eq!(
        order,
        ["a", "b", "c", "a", "b"],
        "round-robin up to the fleet bound"
    );
    // A slot freed by one of A's: A (at its bound of 2 before) is served again; then the fleet
    // is full again.
    store
        .finish(&claimed[0], &json!({}), None, "delivered")
        .await
        .unwrap();
    let next = store.claim(20_000, bounds).await.unwrap().unwrap();
    assert_eq!(next.tenant.as_str(), "a");
    assert!(store.claim(20_000, bounds).await.unwrap().is_none());
    // With room in the fleet, a tenant still gets no more than its own bound.
    let roomy = scanq::scripts::InFlight {
        per_tenant: 2,
        fleet: 100,
    };
    let mut more = Vec::new();
    while let Some(d) = store.claim(20_000, roomy).await.unwrap() {
        more.push(d.tenant.as_str().to_owned());
    }
    assert!(
        more.is_empty(),
        "a and b at 2 each, c has nothing due: {more:?}"
    );

    // Deliveries in the single outbox of earlier versions are adopted.
    let mut con = pool.get().await.unwrap();
    let keys = scanq::keys::HookKeys::new(&cfg.key_prefix);
    let member = "d/s/job.succeeded:old";
    let () = redis::cmd("HSET")
        .arg(keys.delivery(member))
        .arg(&[
            "event",
            "job.succeeded",
            "body",
            "{}",
            "attempts",
            "0",
            "first_ms",
            "1",
        ])
        .query_async(&mut con)
        .await
        .unwrap();
    let () = redis::cmd("ZADD")
        .arg(keys.legacy_outbox())
        .arg(1)
        .arg(member)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(store.adopt_legacy_outbox().await.unwrap(), 1);
    let d = store.claim(20_000, roomy).await.unwrap().unwrap();
    assert_eq!(
        (d.tenant.as_str(), d.event_id.as_str()),
        ("d", "job.succeeded:old")
    );

    // An attempt that outlived its lease, taken over by another claim, does not end the
    // delivery that is now the other attempt's.
    store
        .finish(&d, &json!({}), None, "delivered")
        .await
        .unwrap();
    let e = TenantId::parse("e").unwrap();
    let sub = Subscription {
        id: "s".into(),
        url: "http://127.0.0.1:9/hook".into(),
        events: vec![EventType::JobSucceeded],
        schedule_id: None,
        description: None,
        secret: "whsec_test".into(),
        created_ms: 1,
    };
    store.create(&e, &sub, 20).await.unwrap().unwrap();
    store
        .emit(
            &e,
            EventType::JobSucceeded,
            "job.succeeded:slow",
            None,
            "{}",
        )
        .await
        .unwrap();
    let only_e = |d: Option<scanq::webhook::Delivery>| d.filter(|d| d.tenant == e);
    let first = only_e(store.claim(1, roomy).await.unwrap()).expect("e's delivery");
    let second = eventually(Duration::from_secs(10), "the lease to lapse", || async {
        only_e(store.claim(20_000, roomy).await.unwrap())
    })
    .await;
    assert_eq!(first.member, second.member);
    let before = store.pending().await.unwrap();
    store
        .finish(&first, &json!({"outcome": "delivered"}), None, "delivered")
        .await
        .unwrap();
    assert_eq!(
        store.pending().await.unwrap(),
        before,
        "the late attempt ended it"
    );
    store
        .finish(&second, &json!({"outcome": "delivered"}), None, "delivered")
        .await
        .unwrap();
    assert_eq!(store.pending().await.unwrap(), before - 1);
    assert_eq!(
        store.log(&e, "s").await.unwrap().len(),
        2,
        "both attempts logged"
    );
}
