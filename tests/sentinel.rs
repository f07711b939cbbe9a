//! Beyond one Redis (DESIGN §9): Sentinel mode. The primary is SIGKILLed in the middle of a
//! submit burst and a drain; the Sentinels promote the replica, API and worker follow on their
//! own, and with `SCANQ_REDIS_MIN_REPLICAS_ACK=1` every job answered 202 ends `succeeded`,
//! none twice.

use std::time::{Duration, Instant};

use scanq::catalog::Catalog;
use scanq_tests::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_killed_mid_burst_fails_over_without_losing_a_job() {
    let mut set = SentinelSet::start().await;
    let fx = Fixture::new();
    let starts = fx.path("starts");
    let fake = fx.script("fake", &fake_tool_script(Some(&starts)));
    let cat = fx.catalog(&fake_tool_catalog("fake", &fake, ""));
    let catalog = Catalog::load(Some(&cat)).unwrap();
    let mut cfg = set.config("sentinel-chaos");
    cfg.catalog = Some(cat);
    cfg.redis_min_replicas_ack = 1;
    cfg.redis_min_replicas_timeout_ms = 500;
    // Longer than a Sentinel failover takes here (~3 s).
    cfg.lease_sec = 15;
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _w = start_worker(cfg.clone(), catalog.clone()).await;

    let health = get_json(&base, "/health").await;
    assert!(
        redis_check_detail(&health).starts_with("sentinel"),
        "{health}"
    );

    let client = http();
    let burst = 60;
    let mut accepted = Vec::new();
    let mut refused = 0;
    let mut last_ok = Instant::now();
    let mut longest = Duration::ZERO;
    let mut revive = None;
    for i in 0..burst {
        if i == burst / 3 {
            let replica_port = set.replica.port;
            set.primary.kill();
            let mut old = std::mem::replace(&mut set.primary, RedisServer::start().await);
            // Once every Sentinel names the promoted replica, the old primary comes back (the
            // Sentinels make it a replica), so writes can be acknowledged again. Not before: a
            // Sentinel still on the old configuration would see the old primary (back, empty)
            // as the master and turn the promoted replica into its replica, which wipes it.
            let sentinels: Vec<u16> = set.sentinels.iter().map(|s| s.port).collect();
            revive = Some(tokio::spawn(async move {
                eventually(Duration::from_secs(30), "replica promoted", || {
                    let sentinels = sentinels.clone();
                    async move {
                        for p in sentinels {
                            if sentinel_primary_port(p).await != Some(replica_port) {
                                return None;
                            }
                        }
                        Some(())
                    }
                })
                .await;
                old.restart().await;
                old
            }));
        }
        let id = format!("s-{i}");
        let body = json!({"tool":"fake","target":"127.0.0.1","args":format!("--sleep-ms {i}"),"correlation_id":id});
        let st = client
            .post(format!("{base}/v1/jobs"))
            .json(&body)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        if st != 202 {
            refused += 1;
            submit_until_accepted(&base, &body).await;
        }
        accepted.push(id);
        longest = longest.max(last_ok.elapsed());
        last_ok = Instant::now();
    }
    let old = revive.unwrap().await.unwrap();
    for id in &accepted {
        let d = wait_done(&base, id, Duration::from_secs(60)).await;
        assert_eq!(d["state"], "succeeded", "{d}");
    }
    assert_eq!(lines(&starts).len(), accepted.len(), "each job ran once");
    eprintln!(
        "sentinel chaos: {} accepted, {refused} refused during failover, longest stall {longest:?}",
        accepted.len()
    );
    drop(old);
}
