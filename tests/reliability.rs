//! Never lose a job (DESIGN §3): leases that long jobs keep, takeover of a frozen worker with
//! fencing of its late result, chaos with SIGKILLed workers, cancellation, graceful drain,
//! Redis restarts and outages, back-pressure and retention. Real processes throughout.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use scanq::catalog::Catalog;
use scanq::config::Config;
use scanq_tests::*;
use serde_json::{Value, json};

struct Env {
    redis: RedisServer,
    fx: Fixture,
    cfg: Config,
    catalog: Catalog,
    starts: PathBuf,
}

async fn env(name: &str, redis_args: &[&str]) -> Env {
    let redis = RedisServer::start_with(redis_args).await;
    let fx = Fixture::new();
    let starts = fx.path("starts");
    let fake = fx.script("fake", &fake_tool_script(Some(&starts)));
    let cat = fx.catalog(&format!(
        "{}{}",
        fake_tool_catalog("fake", &fake, ""),
        INPROCESS_TOOLS
    ));
    let catalog = Catalog::load(Some(&cat)).unwrap();
    let mut cfg = test_config(&redis, name);
    cfg.catalog = Some(cat);
    Env {
        redis,
        fx,
        cfg,
        catalog,
        starts,
    }
}

fn worker_proc(cfg: &Config, id: &str) -> Proc {
    Proc::spawn(
        "scanq-worker",
        cfg,
        &[
            (
                "SCANQ_WORKER_METRICS_ADDR",
                format!("127.0.0.1:{}", free_port()),
            ),
            ("SCANQ_WORKER_ID", id.to_owned()),
        ],
    )
}

async fn doc(base: &str, id: &str) -> Value {
    get_json(base, &format!("/v1/jobs/{id}")).await
}

async fn wait_state(base: &str, id: &str, state: &str, limit: Duration) -> Value {
    eventually(limit, &format!("{id} {state}"), || async move {
        let d = doc(base, id).await;
        (d["state"] == state).then_some(d)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_ten_times_longer_than_its_lease_completes_once_without_takeover() {
    let e = env("long", &[]).await;
    let mut cfg = e.cfg.clone();
    cfg.lease_sec = 1;
    let (_api, base) = start_api(cfg.clone(), e.catalog.clone()).await;
    let _a = start_worker(cfg.clone(), e.catalog.clone()).await;
    let _b = start_worker(cfg, e.catalog.clone()).await;

    post_json(&base, "/v1/jobs", &json!({"tool":"fake","target":"127.0.0.1","args":"--sleep-ms 10000","correlation_id":"long"})).await;
    let done = wait_done(&base, "long", Duration::from_secs(40)).await;

    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["attempt"], 1);
    assert_eq!(lines(&e.starts).len(), 1, "the tool started once");
    drop(e.redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_workers_job_is_taken_over_and_its_late_result_is_refused() {
    let e = env("frozen", &[]).await;
    let mut cfg = e.cfg.clone();
    cfg.lease_sec = 1;
    let (_api, base) = start_api(cfg.clone(), e.catalog.clone()).await;
    let a = worker_proc(&cfg, "frozen-a");
    post_json(
        &base,
        "/v1/jobs",
        &json!({"tool":"fake","target":"127.0.0.1","args":"--sleep-ms 3000","correlation_id":"f"}),
    )
    .await;
    let running = wait_state(&base, "f", "running", Duration::from_secs(20)).await;
    assert_eq!(running["worker"], "frozen-a");
    // `running` is set by the claim, before the tool starts: freeze A only once it has.
    let starts = e.starts.clone();
    eventually(Duration::from_secs(20), "A's tool started", || {
        let starts = starts.clone();
        async move { (lines(&starts).len() == 1).then_some(()) }
    })
    .await;

    // Freeze A past its lease; B takes the job over.
    a.signal(Signal::SIGSTOP);
    let _b = worker_proc(&cfg, "frozen-b");
    let done = eventually(Duration::from_secs(30), "B finished the job", || {
        let base = base.clone();
        async move {
            let d = doc(&base, "f").await;
            (d["state"] == "succeeded" && d["worker"] == "frozen-b").then_some(d)
        }
    })
    .await;
    assert_eq!(done["attempt"], 2);

    // A wakes up with a finished tool and tries to report it: fencing refuses it.
    a.signal(Signal::SIGCONT);
    let redis = e.redis.client();
    let key = format!("{}:worker:frozen-a", cfg.key_prefix);
    eventually(Duration::from_secs(15), "A gave up the job", || {
        let redis = redis.clone();
        let key = key.clone();
        async move {
            let mut con = redis.get_multiplexed_async_connection().await.ok()?;
            let raw: Option<String> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut con)
                .await
                .ok()?;
            let v: Value = serde_json::from_str(&raw?).ok()?;
            v["running"].as_array()?.is_empty().then_some(())
        }
    })
    .await;
    let after = doc(&base, "f").await;
    assert_eq!(after["worker"], "frozen-b", "{after}");
    assert_eq!(after["attempt"], 2);
    assert_eq!(lines(&e.starts).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_kill_nine_of_random_workers_loses_no_job_and_respects_max_attempts() {
    let e = env("chaos", &[]).await;
    let mut cfg = e.cfg.clone();
    cfg.lease_sec = 1;
    cfg.worker_concurrency = 8;
    let (_api, base) = start_api(cfg.clone(), e.catalog.clone()).await;

    // 300 jobs of 50-500 ms, each with its own loopback target so the fake tool's start log
    // says which job started (the fake tool sends no packets).
    let mut targets = HashMap::new();
    for i in 0..300u32 {
        let target = format!("127.0.{}.{}", i / 200, i % 200 + 1);
        let ms = 50 + (i * 37) % 451;
        let r = post_json(&base, "/v1/jobs", &json!({"tool":"fake","target":target,"args":format!("--sleep-ms {ms}"),"correlation_id":format!("c{i}"),"max_attempts":3})).await;
        assert_eq!(r.status(), 202);
        targets.insert(target, format!("c{i}"));
    }
    // The workers start once every job is queued, so the kills below fall in the drain however
    // slowly the submits went.
    let mut workers: Vec<Proc> = (0..3)
        .map(|i| worker_proc(&cfg, &format!("c{i}")))
        .collect();

    // Kill a random worker each time 30 more attempts have started (several times a second at
    // this load) and start a replacement, up to 12 times or until the queue is empty.
    let mut kills = 0;
    for next in 3..15 {
        let seen = lines(&e.starts).len();
        let more_work = eventually(
            Duration::from_secs(60),
            "30 more starts or an empty queue",
            || {
                let (base, starts) = (base.clone(), e.starts.clone());
                async move {
                    if lines(&starts).len() >= seen + 30 {
                        return Some(true);
                    }
                    let stats = get_json(&base, "/v1/stats").await;
                    let fake = stats["tools"]
                        .as_array()?
                        .iter()
                        .find(|t| t["tool"] == "fake")?;
                    let c = &fake["counts"];
                    let pending =
                        c["queued"].as_i64()? + c["scheduled"].as_i64()? + c["running"].as_i64()?;
                    (pending == 0).then_some(false)
                }
            },
        )
        .await;
        if !more_work {
            break;
        }
        let victim = fastrand_index(workers.len());
        workers[victim].signal(Signal::SIGKILL);
        workers.remove(victim);
        workers.push(worker_proc(&cfg, &format!("c{next}")));
        kills += 1;
    }
    assert!(
        kills >= 3,
        "only {kills} workers were killed while jobs ran"
    );

    // Every job reaches a terminal state; none is missing or stuck.
    let mut finished = HashMap::new();
    for id in targets.values() {
        let d = wait_done(&base, id, Duration::from_secs(90)).await;
        finished.insert(id.clone(), d);
    }
    assert_eq!(finished.len(), 300);
    let succeeded = finished
        .values()
        .filter(|d| d["state"] == "succeeded")
        .count();
    assert!(succeeded >= 250, "only {succeeded} succeeded");
    for d in finished.values().filter(|d| d["state"] == "failed") {
        assert_eq!(d["error"]["type"], "worker_lost", "{d}");
    }
    // No job ran more than max_attempts times.
    let mut per_target: HashMap<String, usize> = HashMap::new();
    for line in lines(&e.starts) {
        if let Some(t) = line.split_whitespace().last() {
            *per_target.entry(t.to_owned()).or_default() += 1;
        }
    }
    let worst = per_target.values().max().copied().unwrap_or(0);
    assert!(worst <= 3, "a job started {worst} times");
    assert_eq!(per_target.len(), 300, "every job started at least once");
}

fn fastrand_index(n: usize) -> usize {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as usize)
        % n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_queued_running_and_finished_jobs() {
    let e = env("cancel", &[]).await;
    let (_api, base) = start_api(e.cfg.clone(), e.catalog.clone()).await;

    // Queued (no worker yet): cancelled at once and never runs.
    post_json(
        &base,
        "/v1/jobs",
        &json!({"tool":"fake","target":"127.0.0.1","correlation_id":"q","args":"--sleep-ms 10"}),
    )
    .await;
    let r = http()
        .delete(format!("{base}/v1/jobs/q"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(doc(&base, "q").await["state"], "cancelled");

    // Running: the whole process group, children that ignore SIGTERM included, goes away.
    let _w = start_worker(e.cfg.clone(), e.catalog.clone()).await;
    post_json(&base, "/v1/jobs", &json!({"tool":"fake","target":"127.0.0.2","correlation_id":"r","args":"--sleep-ms 60000 --children 2 --ignore-term"})).await;
    wait_state(&base, "r", "running", Duration::from_secs(20)).await;
    let pgid: i32 = eventually(Duration::from_secs(10), "tool started", || {
        let l = lines(&e.starts);
        async move {
            l.iter()
                .find(|l| l.ends_with("127.0.0.2"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        }
    })
    .await;
    eventually(Duration::from_secs(10), "children started", || async move {
        (group_members(pgid).len() >= 3).then_some(())
    })
    .await;
    let started = std::time::Instant::now();
    let r = http()
        .delete(format!("{base}/v1/jobs/r"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    eventually(
        Duration::from_secs(10),
        "process group gone",
        || async move { group_members(pgid).is_empty().then_some(()) },
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "killed within the grace, took {:?}",
        started.elapsed()
    );
    let d = wait_state(&base, "r", "cancelled", Duration::from_secs(10)).await;
    assert_eq!(d["error"]["type"], "cancelled");
    assert_eq!(d["attempt"], 1, "cancelled jobs are never retried");

    // The queued one never ran: only the running job's tool ever started.
    assert_eq!(lines(&e.starts).len(), 1);

    // Finished: 409 with its state.
    let r = http()
        .delete(format!("{base}/v1/jobs/r"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let p: Value = r.json().await.unwrap();
    assert!(p["detail"].as_str().unwrap().contains("cancelled"), "{p}");
    let r = http()
        .delete(format!("{base}/v1/jobs/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_finishes_what_fits_in_the_grace_and_hands_back_the_rest_at_once() {
    let e = env("drain", &[]).await;
    let mut cfg = e.cfg.clone();
    cfg.lease_sec = 30; // a takeover would take 30 s: the hand-back must not wait for it
    cfg.worker_grace_sec = 3;
    let (_api, base) = start_api(cfg.clone(), e.catalog.clone()).await;
    let mut a = worker_proc(&cfg, "drain-a");
    post_json(&base, "/v1/jobs", &json!({"tool":"fake","target":"127.0.0.1","correlation_id":"short","args":"--sleep-ms 1500"})).await;
    post_json(&base, "/v1/jobs", &json!({"tool":"fake","target":"127.0.0.1","correlation_id":"longer","args":"--sleep-ms 4000"})).await;
    wait_state(&base, "short", "running", Duration::from_secs(20)).await;
    wait_state(&base, "longer", "running", Duration::from_secs(20)).await;

    a.signal(Signal::SIGTERM);
    let status = a.wait_exit(Duration::from_secs(20)).await;
    assert!(
        status.success(),
        "worker exits 0 after draining: {status:?}"
    );

    assert_eq!(doc(&base, "short").await["state"], "succeeded");
    let handed = doc(&base, "longer").await;
    assert_eq!(handed["state"], "queued", "{handed}");
    assert_eq!(handed["attempt"], 0, "a handed-back attempt does not count");

    let _b = worker_proc(&cfg, "drain-b");
    let done = wait_done(&base, "longer", Duration::from_secs(20)).await;
    assert_eq!(done["state"], "succeeded");
    assert_eq!(done["worker"], "drain-b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_job_completes_across_a_redis_restart_with_aof() {
    let mut e = env("aof", &["--appendonly", "yes", "--appendfsync", "always"]).await;
    let (_api, base) = start_api(e.cfg.clone(), e.catalog.clone()).await;
    let _w1 = start_worker(e.cfg.clone(), e.catalog.clone()).await;
    let _w2 = start_worker(e.cfg.clone(), e.catalog.clone()).await;

    let mut accepted = vec![];
    for i in 0..40 {
        let r = post_json(&base, "/v1/jobs", &json!({"tool":"sleep","target":"10.0.0.5","args":"--ms 150","correlation_id":format!("a{i}")})).await;
        if r.status() == 202 {
            accepted.push(format!("a{i}"));
        }
        if i == 20 {
            e.redis.restart().await;
        }
    }
    assert!(accepted.len() >= 30, "{}", accepted.len());
    for id in &accepted {
        let d = wait_done(&base, id, Duration::from_secs(60)).await;
        assert_eq!(d["state"], "succeeded", "{d}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_down_the_api_answers_503_and_recovers_by_itself() {
    let mut e = env("outage", &[]).await;
    let (_api, base) = start_api(e.cfg.clone(), e.catalog.clone()).await;
    let _w = start_worker(e.cfg.clone(), e.catalog.clone()).await;
    let r = post_json(
        &base,
        "/v1/jobs",
        &json!({"tool":"noop","target":"10.0.0.5"}),
    )
    .await;
    assert_eq!(r.status(), 202);

    e.redis.kill();
    let r = post_json(
        &base,
        "/v1/jobs",
        &json!({"tool":"noop","target":"10.0.0.5"}),
    )
    .await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let p: Value = r.json().await.unwrap();
    assert!(
        !p["detail"].as_str().unwrap().contains("Connection refused"),
        "internal error text leaked: {p}"
    );
    assert_eq!(
        http()
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    assert_eq!(
        http()
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    e.redis.restart().await;
    eventually(Duration::from_secs(20), "submits accepted again", || {
        let base = base.clone();
        async move {
            let r = post_json(
                &base,
                "/v1/jobs",
                &json!({"tool":"noop","target":"10.0.0.5","correlation_id":"after"}),
            )
            .await;
            (r.status() == 202 || r.status() == 200).then_some(())
        }
    })
    .await;
    let d = wait_done(&base, "after", Duration::from_secs(20)).await;
    assert_eq!(d["state"], "succeeded");
    assert_eq!(
        http()
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn a_full_queue_refuses_submits_with_429_and_retry_after() {
    let e = env("full", &[]).await;
    let mut cfg = e.cfg.clone();
    cfg.max_queue_len = 3;
    let (_api, base) = start_api(cfg, e.catalog.clone()).await;
    for i in 0..3 {
        let r = post_json(
            &base,
            "/v1/jobs",
            &json!({"tool":"noop","target":"10.0.0.5","correlation_id":format!("f{i}")}),
        )
        .await;
        assert_eq!(r.status(), 202);
    }
    let r = post_json(
        &base,
        "/v1/jobs",
        &json!({"tool":"noop","target":"10.0.0.5","correlation_id":"f3"}),
    )
    .await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(
        http()
            .get(format!("{base}/v1/jobs/f3"))
            .send()
            .await
            .unwrap()
            .status(),
        404,
        "nothing was enqueued"
    );
    // Nor listed: the enqueue that claimed the ID in the listing took it back.
    let listed = get_json(&base, "/v1/jobs?limit=10").await;
    let ids = listed_ids(&listed);
    assert_eq!(ids, ["f2", "f1", "f0"], "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_ttls_pass_the_keyspace_returns_to_its_baseline() {
    let e = env("ttl", &[]).await;
    let mut cfg = e.cfg.clone();
    cfg.result_ttl_sec = 1;
    cfg.dead_ttl_sec = 1;
    cfg.job_ttl_sec = 3;
    let (_api, base) = start_api(cfg.clone(), e.catalog.clone()).await;
    let _w = start_worker(cfg.clone(), e.catalog.clone()).await;
    for i in 0..20 {
        post_json(
            &base,
            "/v1/jobs",
            &json!({"tool":"noop","target":"10.0.0.5","correlation_id":format!("k{i}")}),
        )
        .await;
    }
    post_json(&base, "/v1/jobs", &json!({"tool":"sleep","target":"10.0.0.5","args":"--fail","max_attempts":1,"correlation_id":"dead"})).await;
    for i in 0..20 {
        wait_done(&base, &format!("k{i}"), Duration::from_secs(20)).await;
    }
    assert_eq!(
        wait_done(&base, "dead", Duration::from_secs(20)).await["state"],
        "failed"
    );

    let client = e.redis.client();
    let prefix = cfg.key_prefix.clone();
    eventually(Duration::from_secs(20), "per-job keys expired", || {
        let client = client.clone();
        let prefix = prefix.clone();
        async move {
            let mut con = client.get_multiplexed_async_connection().await.ok()?;
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}:*"))
                .query_async(&mut con)
                .await
                .ok()?;
            let per_job: Vec<&String> = keys
                .iter()
                .filter(|k| {
                    k.contains(":job:")
                        || k.contains(":ev:")
                        || k.contains(":idx:")
                        || k.contains(":jobs:")
                })
                .collect();
            let dead: u64 = redis::cmd("ZCARD")
                .arg(format!("{prefix}:{{sleep}}:dead"))
                .query_async(&mut con)
                .await
                .ok()?;
            (per_job.is_empty() && dead == 0).then_some(())
        }
    })
    .await;
    drop(e.fx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_drain_one_queue_and_each_job_runs_exactly_once() {
    let e = env("once", &[]).await;
    let (_api, base) = start_api(e.cfg.clone(), e.catalog.clone()).await;
    let _a = worker_proc(&e.cfg, "once-a");
    let _b = worker_proc(&e.cfg, "once-b");
    for i in 0..100u32 {
        let target = format!("127.0.1.{}", i + 1);
        let r = post_json(&base, "/v1/jobs", &json!({"tool":"fake","target":target,"args":"--sleep-ms 20","correlation_id":format!("o{i}")})).await;
        assert_eq!(r.status(), 202);
    }
    let mut workers = std::collections::HashSet::new();
    for i in 0..100 {
        let d = wait_done(&base, &format!("o{i}"), Duration::from_secs(60)).await;
        assert_eq!(d["state"], "succeeded", "{d}");
        assert_eq!(d["attempt"], 1);
        workers.insert(d["worker"].as_str().unwrap().to_owned());
    }
    let mut starts: HashMap<String, usize> = HashMap::new();
    for line in lines(&e.starts) {
        *starts
            .entry(line.split_whitespace().last().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(starts.len(), 100);
    assert!(starts.values().all(|n| *n == 1), "a job ran twice");
    assert_eq!(workers.len(), 2, "both workers took jobs: {workers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_over_its_timeout_is_killed_with_its_children_and_fails_as_timeout() {
    let e = env("timeout", &[]).await;
    let (_api, base) = start_api(e.cfg.clone(), e.catalog.clone()).await;
    let _w = start_worker(e.cfg.clone(), e.catalog.clone()).await;
    post_json(
        &base,
        "/v1/jobs",
        &json!({"tool":"fake","target":"127.0.0.1","correlation_id":"slow","timeout_sec":1,
        "args":"--sleep-ms 60000 --children 2 --ignore-term","max_attempts":1}),
    )
    .await;
    let pgid: i32 = eventually(Duration::from_secs(10), "tool started", || {
        let l = lines(&e.starts);
        async move { l.first()?.split_whitespace().next()?.parse().ok() }
    })
    .await;

    let done = wait_done(&base, "slow", Duration::from_secs(30)).await;

    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(done["error"]["type"], "timeout");
    assert_eq!(done["result"]["timed_out"], true);
    eventually(
        Duration::from_secs(10),
        "no process left behind",
        || async move { group_members(pgid).is_empty().then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_run_at_waits_scheduled_until_its_time() {
    let e = env("runat", &[]).await;
    let (_api, base) = start_api(e.cfg.clone(), e.catalog.clone()).await;
    let _w = start_worker(e.cfg.clone(), e.catalog.clone()).await;
    let at = std::time::SystemTime::now() + Duration::from_secs(2);
    let r = post_json(
        &base,
        "/v1/jobs",
        &json!({"tool":"noop","target":"10.0.0.5","correlation_id":"later",
        "run_at": humantime::format_rfc3339_seconds(at).to_string()}),
    )
    .await;
    assert_eq!(r.status(), 202);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["state"], "scheduled", "{doc}");
    let done = wait_done(&base, "later", Duration::from_secs(20)).await;
    assert_eq!(done["state"], "succeeded");
    let started = humantime::parse_rfc3339(done["started_at"].as_str().unwrap()).unwrap();
    assert!(
        started + Duration::from_secs(1) >= at,
        "started before its time"
    );
}
