//! Engine v2's data model against a real Redis: the worker step driven directly
//! (`Worker::process_one`), no event stream for a job nobody watches (and SSE still tells a late
//! client the whole story), watchers registering, and listings that shrink with their jobs.

use std::time::Duration;

use redis::AsyncCommands;
use scanq::catalog::Catalog;
use scanq::config::Config;
use scanq_tests::*;
use scanq_worker::{Processed, Worker};
use serde_json::{Value, json};

fn catalog() -> Catalog {
    let fx = Fixture::new();
    Catalog::load(Some(&fx.catalog(INPROCESS_TOOLS))).unwrap()
}

async fn submit(base: &str, body: Value) {
    let r = post_json(base, "/v1/jobs", &body).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
}

async fn keys(redis: &RedisServer, cfg: &Config, pattern: &str) -> Vec<String> {
    let mut con = redis.con().await;
    con.keys(format!("{}:{pattern}", cfg.key_prefix))
        .await
        .unwrap()
}

/// A claim tells the worker whether its queues are empty after it, so a worker that took the
/// last ready job waits for work instead of claiming again at once — but a claim that filled
/// fewer slots than it asked for because a tenant's fair-share window held the rest back (the
/// claim refilled the stream from the tenant's backlog) is not "drained".
#[tokio::test]
async fn a_claim_says_whether_it_left_the_queues_empty() {
    let redis = RedisServer::start().await;
    let cfg = Config {
        worker_concurrency: 8,
        fair_window: 2,
        ..test_config(&redis, "drained")
    };
    let (_api, base) = start_api(cfg.clone(), catalog()).await;
    let worker = Worker::connect(cfg.clone(), catalog()).await.unwrap();
    let body = |id: &str| json!({"tool":"sleep","target":"10.0.0.5","args":"--ms 20000","correlation_id":id});

    // The only ready job: taken, and nothing is left.
    submit(&base, body("only")).await;
    assert_eq!(
        worker.process_one().await.unwrap(),
        Processed::Claimed {
            started: 1,
            drained: true
        }
    );
    assert_eq!(worker.process_one().await.unwrap(), Processed::Empty);

    // Five jobs of one tenant with a window of 2: two on the stream, three in its backlog. The
    // claim takes the two and moves the next two onto the stream: not drained, though it filled
    // 2 of its 7 free slots.
    for i in 0..5 {
        submit(&base, body(&format!("w{i}"))).await;
    }
    assert_eq!(
        worker.process_one().await.unwrap(),
        Processed::Claimed {
            started: 2,
            drained: false
        }
    );
    assert_eq!(
        worker.process_one().await.unwrap(),
        Processed::Claimed {
            started: 2,
            drained: false
        }
    );
    // The last one: the backlog is empty after it.
    assert_eq!(
        worker.process_one().await.unwrap(),
        Processed::Claimed {
            started: 1,
            drained: true
        }
    );
    assert_eq!(worker.running(), 6);
}

#[tokio::test]
async fn the_worker_step_claims_runs_and_reports_against_a_real_redis() {
    let redis = RedisServer::start().await;
    let cfg = Config {
        worker_concurrency: 1,
        ..test_config(&redis, "step")
    };
    let (_api, base) = start_api(cfg.clone(), catalog()).await;
    let worker = Worker::connect(cfg.clone(), catalog()).await.unwrap();

    assert_eq!(worker.process_one().await.unwrap(), Processed::Empty);
    submit(
        &base,
        json!({"tool":"sleep","target":"10.0.0.5","args":"--ms 300","correlation_id":"a"}),
    )
    .await;
    submit(
        &base,
        json!({"tool":"noop","target":"10.0.0.5","correlation_id":"b"}),
    )
    .await;
    let first = eventually(Duration::from_secs(10), "a claim", || async {
        match worker.process_one().await.unwrap() {
            Processed::Claimed { started, .. } => Some(started),
            _ => None,
        }
    })
    .await;
    assert_eq!(first, 1, "one slot, one job");
    assert_eq!(worker.running(), 1);
    // The slot is taken until the first job's result is written.
    assert_eq!(worker.process_one().await.unwrap(), Processed::Full);
    eventually(Duration::from_secs(10), "the slot freed", || async {
        (worker.running() == 0).then_some(())
    })
    .await;
    eventually(Duration::from_secs(10), "the second claim", || async {
        matches!(
            worker.process_one().await.unwrap(),
            Processed::Claimed { started: 1, .. }
        )
        .then_some(())
    })
    .await;
    for id in ["a", "b"] {
        let doc = wait_done(&base, id, Duration::from_secs(10)).await;
        assert_eq!(doc["state"], "succeeded", "{doc}");
        assert_eq!(doc["attempt"], 1);
        assert!(doc["worker"].as_str().unwrap().len() > 3);
    }
    assert_eq!(worker.process_one().await.unwrap(), Processed::Empty);
}

#[tokio::test]
async fn a_job_nobody_watches_has_no_event_stream_and_a_late_sse_client_still_gets_the_story() {
    let redis = RedisServer::start().await;
    let cfg = test_config(&redis, "lazy");
    let (_api, base) = start_api(cfg.clone(), catalog()).await;

    submit(
        &base,
        json!({"tool":"noop","target":"10.0.0.5","correlation_id":"q"}),
    )
    .await;
    // Queued, nobody watching: a hash, no stream.
    assert_eq!(keys(&redis, &cfg, "{noop}:job:*").await.len(), 1);
    assert!(keys(&redis, &cfg, "{noop}:ev:*").await.is_empty());

    let _worker = start_worker(cfg.clone(), catalog()).await;
    let doc = wait_done(&base, "q", Duration::from_secs(10)).await;
    assert_eq!(doc["state"], "succeeded");
    assert!(
        keys(&redis, &cfg, "{noop}:ev:*").await.is_empty(),
        "finished without a watcher: still no stream"
    );

    // A client that connects after the fact gets the creation state, the final state and done.
    let events = read_sse(
        &format!("{base}/v1/jobs/q/events"),
        None,
        Duration::from_secs(10),
        |e| e.event == "done",
    )
    .await;
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds, ["state", "state", "done"], "{kinds:?}");
    let ids: Vec<u64> = events.iter().map(|e| e.id.unwrap()).collect();
    assert_eq!(
        ids,
        [1, 3, 4],
        "queued, (running folded in), succeeded, done"
    );
    let first: Value = serde_json::from_str(&events[0].data).unwrap();
    assert_eq!(first["state"], "queued");
    let done: Value = serde_json::from_str(&events[2].data).unwrap();
    assert_eq!(done["state"], "succeeded");
    // Resuming after the last id stays lossless: nothing is repeated.
    let again = read_sse(
        &format!("{base}/v1/jobs/q/events"),
        Some(1),
        Duration::from_secs(10),
        |e| e.event == "done",
    )
    .await;
    assert_eq!(
        again.iter().map(|e| e.id.unwrap()).collect::<Vec<_>>(),
        [3, 4]
    );
}

#[tokio::test]
async fn a_long_poll_registers_as_a_watcher_and_is_woken_by_the_result() {
    let redis = RedisServer::start().await;
    let cfg = test_config(&redis, "watch");
    let (_api, base) = start_api(cfg.clone(), catalog()).await;
    let _worker = start_worker(cfg.clone(), catalog()).await;
    submit(
        &base,
        json!({"tool":"sleep","target":"10.0.0.5","args":"--ms 500","correlation_id":"w"}),
    )
    .await;
    let started = std::time::Instant::now();
    let doc = get_json(&base, "/v1/jobs/w?wait=20").await;
    assert_eq!(doc["state"], "succeeded", "{doc}");
    // Woken by the publish, not by the 5 s re-read.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let mut con = redis.con().await;
    let job: String = keys(&redis, &cfg, "{sleep}:job:*").await.remove(0);
    let watch: Option<u64> = con.hget(&job, "watch").await.unwrap();
    assert!(watch.is_some(), "the long-poll registered in the job hash");
    // A notify-only watcher creates no stream.
    assert!(keys(&redis, &cfg, "{sleep}:ev:*").await.is_empty());
}

#[tokio::test]
async fn the_tenant_listing_shrinks_with_the_jobs_it_points_to() {
    let redis = RedisServer::start().await;
    let cfg = Config {
        result_ttl_sec: 1,
        ..test_config(&redis, "sweep")
    };
    let (_api, base) = start_api(cfg.clone(), catalog()).await;
    let _worker = start_worker(cfg.clone(), catalog()).await;
    for i in 0..30 {
        submit(
            &base,
            json!({"tool":"noop","target":"10.0.0.5","correlation_id":format!("s{i}")}),
        )
        .await;
    }
    let list = keys(&redis, &cfg, "jobs:*").await.remove(0);
    let mut con = redis.con().await;
    let listed: u64 = con.zcard(&list).await.unwrap();
    assert_eq!(listed, 30);
    wait_done(&base, "s29", Duration::from_secs(10)).await;
    // Members the sweeper cannot resolve go too: an unknown tool number, a malformed ID.
    let ten_s_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - 10_000;
    let _: () = con
        .zadd(&list, "orphan", ten_s_ago * 1024 + 999)
        .await
        .unwrap();
    let _: () = con
        .zadd(&list, "not an id!", ten_s_ago * 1024)
        .await
        .unwrap();
    // Results expire after 1 s; the API's sweeper then drops their listing entries (the listing
    // is also the correlation-ID index).
    eventually(Duration::from_secs(20), "the listing emptied", || async {
        let mut con = redis.con().await;
        let n: u64 = con.zcard(&list).await.unwrap();
        (n == 0).then_some(())
    })
    .await;
    assert!(keys(&redis, &cfg, "idx:*").await.is_empty());
    let page = get_json(&base, "/v1/jobs").await;
    assert_eq!(page["jobs"].as_array().map(Vec::len), Some(0), "{page}");
}

#[tokio::test]
async fn the_listing_is_the_index_another_tool_conflicts_until_the_job_expired() {
    let redis = RedisServer::start().await;
    let cfg = Config {
        result_ttl_sec: 1,
        ..test_config(&redis, "index")
    };
    let (_api, base) = start_api(cfg.clone(), catalog()).await;
    let _worker = start_worker(cfg.clone(), catalog()).await;
    submit(
        &base,
        json!({"tool":"noop","target":"10.0.0.5","correlation_id":"x"}),
    )
    .await;
    wait_done(&base, "x", Duration::from_secs(10)).await;
    let other = json!({"tool":"sleep","target":"10.0.0.5","args":"--ms 1","correlation_id":"x"});
    let r = post_json(&base, "/v1/jobs", &other).await;
    assert_eq!(r.status(), 409, "another tool under a live job's ID");
    // Once the first job expired, its ID may name a job of another tool.
    eventually(Duration::from_secs(10), "the first job expired", || async {
        let mut con = redis.con().await;
        let n: Vec<String> = con
            .keys(format!("{}:{{noop}}:job:*", cfg.key_prefix))
            .await
            .unwrap();
        n.is_empty().then_some(())
    })
    .await;
    submit(&base, other).await;
    let doc = wait_done(&base, "x", Duration::from_secs(10)).await;
    assert_eq!(doc["tool"], "sleep", "{doc}");
    let page = get_json(&base, "/v1/jobs?tool=sleep").await;
    assert_eq!(page["jobs"][0]["correlation_id"], "x", "{page}");
}

/// A tool's partition count is the fleet's (`queue::layout`): an API or a worker whose catalog
/// counts differently refuses to start, naming the tool and both counts, so the fleet's jobs are
/// never looked for in the wrong partitions; the same count starts as before.
#[tokio::test]
async fn a_process_with_another_partition_count_refuses_to_start() {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let catalog = |n: u16| {
        let text = format!("[tools.noop]\nexecutor = \"noop\"\npartitions = {n}\n");
        Catalog::load(Some(&fx.catalog(&text))).unwrap()
    };
    let cfg = test_config(&redis, "layout");
    let (_api, base) = start_api(cfg.clone(), catalog(3)).await;
    submit(
        &base,
        json!({"tool":"noop","target":"10.0.0.5","correlation_id":"placed"}),
    )
    .await;

    let refused = |e: anyhow::Error| {
        let e = e.to_string();
        assert!(
            e.contains("`noop`") && e.contains("over 2 partition") && e.contains("uses 3"),
            "{e}"
        );
    };
    refused(
        scanq_api::state(cfg.clone(), catalog(2))
            .await
            .err()
            .unwrap(),
    );
    refused(
        Worker::connect(cfg.clone(), catalog(2))
            .await
            .err()
            .unwrap(),
    );

    // The same count: a worker starts and finds the job where the API put it.
    let _worker = start_worker(cfg, catalog(3)).await;
    assert_eq!(
        wait_done(&base, "placed", Duration::from_secs(15)).await["state"],
        "succeeded"
    );
}
