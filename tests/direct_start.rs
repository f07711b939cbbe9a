//! The direct start (docs/queue.md "Direct start"): a worker that waits for work offers itself,
//! and an enqueue that finds the offer starts its job on that worker at once instead of putting
//! it on a stream. Real redis-server, API and workers (in-process, or a `scanq-worker` process
//! where one must die).

use std::time::Duration;

use redis::AsyncCommands;
use scanq::breaker::{Breaker, BreakerSettings, ForceAction};
use scanq::catalog::Catalog;
use scanq::config::Config;
use scanq::domain::{Priority, TenantId, ToolName, Zone};
use scanq::keys::{Keys, ToolKeys};
use scanq::queue::script_settings;
use scanq::scripts::{BreakerArgs, EnqueueOutcome, Listed, Scripts};
use scanq_tests::*;
use serde_json::{Value, json};

fn keys(cfg: &Config, tool: &str) -> ToolKeys {
    Keys::new(&cfg.key_prefix).home(&ToolName::parse(tool).unwrap(), &Zone::default())
}

/// The worker whose offer stands in `tool`'s queue, once one does.
async fn offered(redis: &RedisServer, cfg: &Config, tool: &str) -> String {
    let key = keys(cfg, tool).offer();
    eventually(Duration::from_secs(10), "a worker's offer", || {
        let key = key.clone();
        async move {
            let mut con = redis.con().await;
            con.get::<_, Option<String>>(&key).await.unwrap()
        }
    })
    .await
}

async fn direct_starts(metrics: &str, tool: &str) -> u64 {
    get_text(&format!("{metrics}/metrics"))
        .await
        .lines()
        .filter(|l| {
            l.starts_with("scanq_direct_starts_total{") && l.contains(&format!("tool=\"{tool}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

async fn submit(base: &str, body: Value) -> Value {
    let resp = post_json(base, "/v1/jobs", &body).await;
    assert_eq!(resp.status(), 202, "submit of {body}");
    resp.json().await.unwrap()
}

fn stack(redis: &RedisServer, name: &str) -> (Config, Catalog, Fixture) {
    let (mut cfg, catalog, fx) = scheduling(redis, name);
    cfg.catalog = Some(fx.catalog(INPROCESS_TOOLS));
    (cfg, catalog, fx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_gets_a_new_job_without_claiming_it() {
    let redis = RedisServer::start().await;
    let (cfg, catalog, _fx) = stack(&redis, "direct");
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let (_worker, metrics) = start_worker_with_metrics(cfg.clone(), catalog).await;
    offered(&redis, &cfg, "noop").await;

    let answer = post_json(
        &base,
        "/v1/jobs",
        &json!({"tool": "noop", "target": "127.0.0.1", "correlation_id": "d-1"}),
    )
    .await;
    assert_eq!(answer.status(), 202);
    let d = until_job(&base, "d-1", "succeeded", |d| d["state"] == "succeeded").await;

    assert_eq!(direct_starts(&metrics, "noop").await, 1);
    assert_eq!(d["attempt"], 1);
    assert!(d["started_at"].is_string(), "{d}");
    // Started as a claim starts a job: counted, leased and released, no entry left anywhere.
    let tk = keys(&cfg, "noop");
    let mut con = redis.con().await;
    let counts: std::collections::HashMap<String, i64> = con.hgetall(tk.counts()).await.unwrap();
    assert_eq!(counts.get("running").copied().unwrap_or(0), 0, "{counts:?}");
    assert_eq!(counts.get("queued").copied().unwrap_or(0), 0, "{counts:?}");
    assert_eq!(counts.get("succeeded").copied(), Some(1), "{counts:?}");
    let leased: i64 = con.zcard(tk.leases()).await.unwrap();
    assert_eq!(leased, 0);
    let waiting: i64 = con
        .xlen(tk.stream(scanq::domain::Priority::Normal))
        .await
        .unwrap();
    assert_eq!(waiting, 0);
}

/// The scripts alone: what an offer gives, how a claim settles it, what a refusing breaker and
/// a disabled tool hold back (the API refuses such submits itself; the enqueue checks again, as
/// the switch or the breaker may turn between the two).
#[tokio::test]
async fn an_offer_gives_one_job_and_the_next_claim_settles_it() {
    let redis = RedisServer::start().await;
    let mut con = redis.con().await;
    let keys = Keys::new(&unique_prefix("offer"));
    let set = script_settings(&Config::default(), &keys);
    let tk = keys.tool(&ToolName::parse("t").unwrap());
    let scripts = Scripts::new();
    let listing = keys.tenant_jobs(&TenantId::parse("a").unwrap());
    let fields = [("target", "127.0.0.1".to_owned())];
    let mut score = 0;
    let mut enqueue = async |con: &mut redis::aio::MultiplexedConnection, r: &str| {
        score += 1024;
        let listed = Listed::Claim {
            listing: listing.clone(),
            score,
            at_ms: 1_000,
            packed: None,
        };
        let created = scripts
            .enqueue_listed(
                con,
                &tk,
                &set,
                r,
                "h",
                (Priority::Normal, false),
                (0, false),
                listed,
                Some("t"),
                &fields,
            )
            .await
            .unwrap();
        assert!(
            matches!(&created, Some(EnqueueOutcome::Created { state, .. }) if state == "queued"),
            "{created:?}"
        );
    };
    let offer = async |con: &mut redis::aio::MultiplexedConnection| {
        let _: i64 = scripts
            .offer_invocation(&tk, "w1", 60_000)
            .invoke_async(con)
            .await
            .unwrap();
    };
    let claim = async |con: &mut redis::aio::MultiplexedConnection, want: usize| {
        let breaker = BreakerArgs {
            settings_json: "{}",
            held_error_json: "{}",
        };
        scripts
            .claim(
                con, &tk, &set, "w1", want, 0, "t", breaker, "", false, 0, true,
            )
            .await
            .unwrap()
    };
    let state =
        async |con: &mut redis::aio::MultiplexedConnection, r: &str| -> Vec<Option<String>> {
            redis::cmd("HMGET")
                .arg(tk.job(r))
                .arg(&["state", "worker", "fence"])
                .query_async(con)
                .await
                .unwrap()
        };
    let force = async |con: &mut redis::aio::MultiplexedConnection, action: ForceAction| {
        let keys = tk.breaker_keys();
        let settings = BreakerSettings::default();
        Breaker::new()
            .force(con, &keys, &settings, None, action)
            .await
            .unwrap();
    };
    let queued = async |con: &mut redis::aio::MultiplexedConnection| -> i64 {
        con.xlen(tk.stream(Priority::Normal)).await.unwrap()
    };

    // No offer: the job waits on its stream.
    enqueue(&mut con, "a/one").await;
    assert_eq!(queued(&mut con).await, 1);
    // An offer starts one job, answered `queued` as it was created; the next one waits.
    offer(&mut con).await;
    enqueue(&mut con, "a/two").await;
    let s = state(&mut con, "a/two").await;
    assert_eq!(
        s,
        [Some("running".into()), Some("w1".into()), Some("1".into())]
    );
    let inbox: i64 = con.xlen(tk.inbox("w1")).await.unwrap();
    assert_eq!(inbox, 1);
    let leased: Option<f64> = con.zscore(tk.leases(), "a/two").await.unwrap();
    assert!(leased.is_some());
    enqueue(&mut con, "a/three").await;
    assert_eq!(queued(&mut con).await, 2);
    // The worker's claim returns the job started on its offer after those it claimed, the
    // two within what it asked for.
    let c = claim(&mut con, 2).await;
    let refs: Vec<&str> = c.jobs.iter().map(|j| j.job_ref.as_str()).collect();
    assert_eq!(refs, ["a/one", "a/two"]);
    assert_eq!((c.handed, c.jobs[1].fence, c.jobs[1].attempt), (1, 1, 1));
    let inbox: i64 = con.exists(tk.inbox("w1")).await.unwrap();
    assert_eq!(inbox, 0);
    // An offer still standing is taken back.
    offer(&mut con).await;
    let c = claim(&mut con, 0).await;
    assert_eq!((c.jobs.len(), c.handed), (0, 0));
    let offer_key: Option<String> = con.get(tk.offer()).await.unwrap();
    let until: Option<i64> = con
        .hget(tk.counts(), scanq::keys::OFFER_UNTIL)
        .await
        .unwrap();
    assert_eq!((offer_key, until), (None, None));
    // A breaker that refuses (open) starts nothing, and the offer stays for a later job.
    offer(&mut con).await;
    force(&mut con, ForceAction::Open).await;
    enqueue(&mut con, "a/four").await;
    assert_eq!(
        state(&mut con, "a/four").await[0].as_deref(),
        Some("queued")
    );
    let offer_key: Option<String> = con.get(tk.offer()).await.unwrap();
    assert_eq!(offer_key.as_deref(), Some("w1"));
    // A disabled tool (the switch `set_tool_enabled` writes) starts nothing either.
    force(&mut con, ForceAction::Close).await;
    let _: () = con.set(tk.disabled(), "1").await.unwrap();
    enqueue(&mut con, "a/five").await;
    assert_eq!(
        state(&mut con, "a/five").await[0].as_deref(),
        Some("queued")
    );
    let _: () = con.del(tk.disabled()).await.unwrap();
    enqueue(&mut con, "a/six").await;
    assert_eq!(
        state(&mut con, "a/six").await[0].as_deref(),
        Some("running")
    );
    let counts: std::collections::HashMap<String, String> = con.hgetall(tk.counts()).await.unwrap();
    assert_eq!(
        counts.get("running").map(String::as_str),
        Some("3"),
        "{counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_started_on_a_dead_workers_offer_runs_again_when_its_lease_lapses() {
    let redis = RedisServer::start().await;
    let (mut cfg, catalog, _fx) = stack(&redis, "direct-dead");
    // A long idle wait: the offer outlives the worker by seconds, so the submit below takes it.
    cfg.reap_interval_ms = 2000;
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let mut doomed_cfg = cfg.clone();
    doomed_cfg.worker_id = Some("doomed".into());
    let port = (
        "SCANQ_WORKER_METRICS_ADDR",
        format!("127.0.0.1:{}", free_port()),
    );
    let mut doomed = Proc::spawn("scanq-worker", &doomed_cfg, &[port]);
    assert_eq!(offered(&redis, &cfg, "noop").await, "doomed");
    doomed.signal(nix::sys::signal::Signal::SIGKILL);
    doomed.wait_exit(Duration::from_secs(10)).await;

    submit(
        &base,
        json!({"tool": "noop", "target": "127.0.0.1", "correlation_id": "orphan"}),
    )
    .await;
    let d = job_doc(&base, "orphan").await;
    assert_eq!(d["state"], "running", "{d}");
    assert_eq!(d["worker"], "doomed", "{d}");

    // Another worker's reaper finds the lease lapsed and the job runs again.
    cfg.reap_interval_ms = 100;
    let _rescuer = start_worker(cfg, catalog).await;
    let d = until_job(&base, "orphan", "succeeded", |d| d["state"] == "succeeded").await;
    assert_eq!(d["attempt"], 2, "{d}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_one_slot_never_runs_two_jobs() {
    let redis = RedisServer::start().await;
    let (mut cfg, _, fx) = stack(&redis, "direct-one");
    cfg.worker_concurrency = 1;
    // One tool: a worker offers itself in as many tools as it has free slots.
    let catalog = Catalog::load(Some(&fx.catalog(
        "mode = \"replace\"\n[tools.sleep]\nexecutor = \"sleep\"\n[[tools.sleep.args.flags]]\nname = \"--ms\"\nvalue = { type = \"int\", min = 0, max = 3600000 }\n",
    )))
    .unwrap();
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let (_worker, metrics) = start_worker_with_metrics(cfg.clone(), catalog).await;
    offered(&redis, &cfg, "sleep").await;

    let ids: Vec<String> = (0..6).map(|i| format!("one-{i}")).collect();
    for id in &ids {
        submit(
            &base,
            json!({"tool": "sleep", "target": "127.0.0.1", "args": "--ms 150",
                   "correlation_id": id}),
        )
        .await;
    }
    // (RFC 3339 times in UTC with milliseconds: they sort as text.)
    let mut runs: Vec<(String, String)> = Vec::new();
    for id in &ids {
        let d = until_job(&base, id, "succeeded", |d| d["state"] == "succeeded").await;
        let at = |f: &str| d[f].as_str().unwrap().to_owned();
        runs.push((at("started_at"), at("finished_at")));
    }
    runs.sort();
    for w in runs.windows(2) {
        assert!(
            w[1].0 >= w[0].1,
            "two jobs ran at once on one slot: {runs:?}"
        );
    }
    assert!(direct_starts(&metrics, "sleep").await >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_worker_takes_its_offer_back() {
    let redis = RedisServer::start().await;
    let (cfg, catalog, _fx) = stack(&redis, "direct-stop");
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let worker = start_worker(cfg.clone(), catalog.clone()).await;
    offered(&redis, &cfg, "noop").await;
    worker.shutdown().await;

    let mut con = redis.con().await;
    let offer: Option<String> = con.get(keys(&cfg, "noop").offer()).await.unwrap();
    assert_eq!(offer, None);
    submit(
        &base,
        json!({"tool": "noop", "target": "127.0.0.1", "correlation_id": "later"}),
    )
    .await;
    assert_eq!(job_doc(&base, "later").await["state"], "queued");
    let _next = start_worker(cfg, catalog).await;
    until_job(&base, "later", "succeeded", |d| d["state"] == "succeeded").await;
}
