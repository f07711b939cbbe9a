//! Beyond one Redis (DESIGN §9): with `SCANQ_REDIS_MIN_REPLICAS_ACK=1`, a master of a real
//! 3-master / 3-replica Redis Cluster is SIGKILLed in the middle of a submit burst and a drain
//! of a tool spread over 3 partitions.

use std::time::{Duration, Instant};

use scanq::catalog::Catalog;
use scanq_tests::*;
use serde_json::json;

struct Stack {
    cfg: scanq::config::Config,
    catalog: Catalog,
    starts: std::path::PathBuf,
    _fx: Fixture,
}

fn stack(mut cfg: scanq::config::Config) -> Stack {
    let fx = Fixture::new();
    let starts = fx.path("starts");
    let fake = fx.script("fake", &fake_tool_script(Some(&starts)));
    let cat = fx.catalog(&fake_tool_catalog("fake", &fake, "partitions = 3"));
    let catalog = Catalog::load(Some(&cat)).unwrap();
    cfg.catalog = Some(cat);
    Stack {
        cfg,
        catalog,
        starts,
        _fx: fx,
    }
}

/// With `SCANQ_REDIS_MIN_REPLICAS_ACK=1`, a master is SIGKILLed in the middle of a submit burst
/// and a drain: every job answered 202 ends `succeeded`, none runs twice (no worker died), and
/// the stall is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_mid_burst_loses_no_acknowledged_job() {
    let mut cluster = RedisCluster::start(3, 1).await;
    let mut cfg = cluster.config("cluster-chaos");
    cfg.redis_min_replicas_ack = 1;
    cfg.redis_min_replicas_timeout_ms = 500;
    // Longer than a failover takes (~2 s here), as the default 30 s is: a lease that lapses
    // while its shard fails over is taken over, and the job runs again.
    cfg.lease_sec = 10;
    let s = stack(cfg);
    let (_a, base) = start_api(s.cfg.clone(), s.catalog.clone()).await;
    let _w1 = start_worker(s.cfg.clone(), s.catalog.clone()).await;
    let _w2 = start_worker(s.cfg.clone(), s.catalog.clone()).await;

    let victim_key = scanq::keys::Keys::new(&s.cfg.key_prefix)
        .tool(&scanq::domain::ToolName::parse("fake").unwrap())
        .counts();
    let victim = cluster.master_of(&victim_key).await;

    // The victim is killed mid-burst; once its replica has taken over it comes back (as a
    // replica of the new master), so its shard can acknowledge writes again.
    let mut node = Some(cluster.nodes.remove(victim));
    let survivor = cluster.nodes[0].port;
    let victim_port = node.as_ref().unwrap().port;
    let mut revive: Option<tokio::task::JoinHandle<RedisServer>> = None;
    let client = http();
    let mut accepted = Vec::new();
    let mut refused = 0;
    let mut longest_gap = Duration::ZERO;
    let mut last_ok = Instant::now();
    let burst = 120;
    for i in 0..burst {
        if i == burst / 3 {
            let mut n = node.take().unwrap();
            n.kill();
            let slot = scanq::queue::slot(victim_key.as_bytes());
            revive = Some(tokio::spawn(async move {
                wait_slot_moved(survivor, slot, victim_port).await;
                n.restart().await;
                n
            }));
        }
        let id = format!("c-{i}");
        // The argument tells the runs apart in the starts file.
        let body = json!({"tool":"fake","target":"127.0.0.1","args":format!("--sleep-ms {i}"),"correlation_id":id});
        let r = client
            .post(format!("{base}/v1/jobs"))
            .json(&body)
            .send()
            .await;
        match r.map(|r| r.status().as_u16()) {
            Ok(202) => {
                accepted.push(id);
                longest_gap = longest_gap.max(last_ok.elapsed());
                last_ok = Instant::now();
            }
            Ok(st) => {
                assert!(st == 503 || st == 500, "status {st}");
                refused += 1;
                // Retry the same ID once the cluster has failed over.
                submit_until_accepted(&base, &body).await;
                accepted.push(id);
                longest_gap = longest_gap.max(last_ok.elapsed());
                last_ok = Instant::now();
            }
            Err(e) => panic!("request failed: {e}"),
        }
    }
    let revived = revive.unwrap().await.unwrap();
    for id in &accepted {
        let d = wait_done(&base, id, Duration::from_secs(60)).await;
        assert_eq!(d["state"], "succeeded", "{d}");
    }
    let starts = lines(&s.starts);
    let mut runs: std::collections::HashMap<String, usize> = Default::default();
    for l in &starts {
        let args = l.split_once(' ').map_or("", |x| x.1).to_owned();
        *runs.entry(args).or_default() += 1;
    }
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n > 1).collect();
    for (args, _) in &twice {
        let i = args.split_whitespace().nth(1).unwrap_or("");
        eprintln!(
            "ran twice: {args}: {}",
            get_json(&base, &format!("/v1/jobs/c-{i}")).await
        );
    }
    assert_eq!(
        starts.len(),
        accepted.len(),
        "each accepted job ran exactly once"
    );
    eprintln!(
        "cluster chaos: {} accepted, {refused} refused during failover, longest stall {:?}",
        accepted.len(),
        longest_gap
    );
    drop(revived);
}

/// Waits until the node on `port` no longer serves `slot` as master (a replica took over).
async fn wait_slot_moved(ask_port: u16, slot: u16, old_port: u16) {
    eventually(
        Duration::from_secs(30),
        "failover of the killed master",
        || async move {
            let c = redis::Client::open(format!("redis://127.0.0.1:{ask_port}/")).ok()?;
            let mut con = c.get_multiplexed_async_connection().await.ok()?;
            let slots: Vec<redis::Value> = redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query_async(&mut con)
                .await
                .ok()?;
            for s in slots {
                if let redis::Value::Array(v) = s {
                    let lo: u16 = redis::from_redis_value_ref(v.first()?).ok()?;
                    let hi: u16 = redis::from_redis_value_ref(v.get(1)?).ok()?;
                    if (lo..=hi).contains(&slot) {
                        let redis::Value::Array(m) = v.get(2)? else {
                            return None;
                        };
                        let port: u16 = redis::from_redis_value_ref(m.get(1)?).ok()?;
                        return (port != old_port).then_some(());
                    }
                }
            }
            None
        },
    )
    .await;
}
