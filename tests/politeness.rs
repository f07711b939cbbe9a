//! Politeness per target network (docs/queue.md): with a cap of running jobs per target group,
//! no group ever runs more than the cap across the workers (read from the workers' own records
//! in the job documents), other groups are not held back, a parked job says why it waits, a
//! cancelled parked job and a killed worker leak no place of the group, no cap stores nothing,
//! and a bad group prefix stops a process at start. Targets: group A = 127.2.0.x, group B =
//! 127.3.0.x, run by the in-process `sleep` tool (nothing is scanned).

use std::time::Duration;

use redis::AsyncCommands;
use scanq::catalog::Catalog;
use scanq::config::Config;
use scanq::domain::{Priority, ToolName, Verdict};
use scanq::keys::{Keys, ToolKeys};
use scanq::queue::script_settings;
use scanq::scripts::{BreakerArgs, Completion, ScriptSettings, Scripts};
use scanq_tests::*;
use serde_json::json;

const A: &str = "127.2.0.0/24";
const B: &str = "127.3.0.0/24";

/// A fleet config with a group cap, the in-process tools' catalog (path set, so processes
/// started from it find it too) and its fixture.
fn capped(redis: &RedisServer, name: &str, cap: u32) -> (Config, Catalog, Fixture) {
    let fx = Fixture::new();
    let path = fx.catalog(INPROCESS_TOOLS);
    let cfg = Config {
        catalog: Some(path.clone()),
        target_group_max_running: cap,
        worker_concurrency: 4,
        ..test_config(redis, name)
    };
    (cfg, Catalog::load(Some(&path)).unwrap(), fx)
}

async fn submit(base: &str, cid: &str, target: &str, ms: u64) {
    let body = json!({"tool": "sleep", "target": target, "args": format!("--ms {ms}"),
        "correlation_id": cid, "max_attempts": 1});
    let resp = post_json(base, "/v1/jobs", &body).await;
    assert_eq!(resp.status(), 202, "{cid}");
}

fn sleep_keys(cfg: &Config) -> ToolKeys {
    Keys::new(&cfg.key_prefix).tool(&ToolName::parse("sleep").unwrap())
}

/// The partition's group bookkeeping: (running count of `group`, parked items, parked counter).
async fn books(redis: &RedisServer, tk: &ToolKeys, group: &str) -> (i64, i64, i64) {
    let mut con = redis.con().await;
    let running: Option<i64> = con.hget(tk.group_running(), group).await.unwrap();
    let parked: i64 = con.llen(tk.group_wait(group)).await.unwrap();
    let counted: Option<i64> = con.hget(tk.counts(), "group_waiting").await.unwrap();
    (running.unwrap_or(0), parked, counted.unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_never_runs_two_at_once_and_other_groups_are_not_held_back() {
    let redis = RedisServer::start().await;
    let (cfg, catalog, _fx) = capped(&redis, "polite", 1);
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _w1 = start_worker(cfg.clone(), catalog.clone()).await;
    let _w2 = start_worker(cfg.clone(), catalog).await;
    let jobs: Vec<(String, &str)> = (1..=4)
        .map(|i| (format!("a{i}"), A))
        .chain((1..=4).map(|i| (format!("b{i}"), B)))
        .collect();
    for (i, (cid, _)) in jobs.iter().enumerate() {
        let host = if i < 4 { "127.2.0" } else { "127.3.0" };
        submit(&base, cid, &format!("{host}.{}", i % 4 + 1), 300).await;
    }

    let mut ran = Vec::new();
    for (cid, group) in &jobs {
        let d = wait_done(&base, cid, Duration::from_secs(60)).await;
        assert_eq!(d["state"], "succeeded", "{d}");
        assert_eq!(d["target_group"], *group, "{d}");
        let at = |k: &str| d[k].as_str().unwrap().to_owned();
        assert!(d["worker"].is_string(), "{d}");
        ran.push((*group, at("started_at"), at("finished_at"), cid.clone()));
    }
    // The workers' own records (RFC 3339 with ms, so they compare as text): within a group no
    // two runs overlap.
    for (i, x) in ran.iter().enumerate() {
        for y in &ran[i + 1..] {
            if x.0 == y.0 {
                assert!(
                    !(x.1 < y.2 && y.1 < x.2),
                    "{} and {} of {} overlapped: {x:?} {y:?}",
                    x.3,
                    y.3,
                    x.0
                );
            }
        }
    }
    let first_b = ran.iter().filter(|r| r.0 == B).map(|r| &r.1).min().unwrap();
    let last_a = ran.iter().filter(|r| r.0 == A).map(|r| &r.2).max().unwrap();
    assert!(first_b < last_a, "B waited for A: {ran:?}");
    // Nothing left counted or parked.
    let tk = sleep_keys(&cfg);
    assert_eq!(books(&redis, &tk, A).await, (0, 0, 0));
    assert_eq!(books(&redis, &tk, B).await, (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_job_says_it_waits_for_its_group_and_cancelling_it_leaks_no_place() {
    let redis = RedisServer::start().await;
    let (cfg, catalog, _fx) = capped(&redis, "parked", 1);
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let (_worker, worker_base) = start_worker_with_metrics(cfg.clone(), catalog).await;
    submit(&base, "long", "127.2.0.1", 60_000).await;
    until_job(&base, "long", "running", |d| d["state"] == "running").await;
    submit(&base, "parked", "127.2.0.2", 10).await;
    submit(&base, "next", "127.2.0.3", 10).await;
    submit(&base, "other", "127.3.0.1", 10).await;

    let d = until_job(&base, "parked", "waiting for its group", |d| {
        d["waiting_for"] == "target_group"
    })
    .await;
    assert_eq!(d["state"], "queued", "{d}");
    assert_eq!(d["target_group"], A, "{d}");
    until_job(&base, "next", "waiting for its group", |d| {
        d["waiting_for"] == "target_group"
    })
    .await;
    let other = wait_done(&base, "other", Duration::from_secs(30)).await;
    assert_eq!(
        other["state"], "succeeded",
        "group B ran meanwhile: {other}"
    );
    assert!(other.get("waiting_for").is_none(), "{other}");
    let tk = sleep_keys(&cfg);
    assert_eq!(books(&redis, &tk, A).await, (1, 2, 2));
    let stats = get_json(&base, "/v1/stats").await;
    let sleep = stats["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tool"] == "sleep")
        .unwrap();
    assert_eq!(sleep["waiting_for_group"], 2, "{stats}");
    let parked_total = metric(&worker_base, "scanq_group_parked_total{tool=\"sleep\"}").await;
    assert_eq!(
        parked_total,
        Some(2),
        "the worker counted what its claims parked"
    );

    // Cancel the parked job, then the running one: the group's next job runs, nothing leaks.
    let client = http();
    let cancel = |cid: &str| client.delete(format!("{base}/v1/jobs/{cid}")).send();
    assert!(cancel("parked").await.unwrap().status().is_success());
    let d = job_doc(&base, "parked").await;
    assert_eq!(d["state"], "cancelled", "{d}");
    assert!(d.get("waiting_for").is_none(), "{d}");
    assert_eq!(books(&redis, &tk, A).await, (1, 1, 1));
    assert!(cancel("long").await.unwrap().status().is_success());
    let next = wait_done(&base, "next", Duration::from_secs(30)).await;
    assert_eq!(next["state"], "succeeded", "{next}");
    assert!(next.get("waiting_for").is_none(), "{next}");
    assert_eq!(
        wait_done(&base, "long", Duration::from_secs(30)).await["state"],
        "cancelled"
    );
    assert_eq!(books(&redis, &tk, A).await, (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_group_place_comes_back_when_its_lease_lapses() {
    let redis = RedisServer::start().await;
    let (cfg, catalog, _fx) = capped(&redis, "killed", 1);
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let port = (
        "SCANQ_WORKER_METRICS_ADDR",
        format!("127.0.0.1:{}", free_port()),
    );
    let mut doomed = Proc::spawn("scanq-worker", &cfg, &[port]);
    submit(&base, "held", "127.2.0.1", 600_000).await;
    let held = until_job(&base, "held", "running", |d| d["state"] == "running").await;
    submit(&base, "after", "127.2.0.2", 10).await;
    until_job(&base, "after", "waiting for its group", |d| {
        d["waiting_for"] == "target_group"
    })
    .await;

    doomed.signal(nix::sys::signal::Signal::SIGKILL);
    doomed.wait_exit(Duration::from_secs(10)).await;
    // The survivor's reaper takes the lapsed lease over and releases the group's place.
    let _survivor = start_worker(cfg.clone(), catalog).await;
    let after = wait_done(&base, "after", Duration::from_secs(30)).await;
    assert_eq!(after["state"], "succeeded", "{after}");
    assert_ne!(after["worker"], held["worker"], "{after}");
    let lost = wait_done(&base, "held", Duration::from_secs(30)).await;
    assert_eq!(lost["error"]["type"], "worker_lost", "{lost}");
    assert!(lost["finished_at"].as_str() <= after["started_at"].as_str());
    assert_eq!(books(&redis, &sleep_keys(&cfg), A).await, (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_cap_no_group_is_stored_and_a_group_runs_at_once() {
    let redis = RedisServer::start().await;
    let (cfg, catalog, _fx) = capped(&redis, "uncapped", 0);
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg.clone(), catalog).await;
    submit(&base, "one", "127.2.0.1", 60_000).await;
    submit(&base, "two", "127.2.0.2", 60_000).await;
    for cid in ["one", "two"] {
        let d = until_job(&base, cid, "running", |d| d["state"] == "running").await;
        assert!(d.get("target_group").is_none(), "{d}");
    }
    let tk = sleep_keys(&cfg);
    let mut con = redis.con().await;
    let stored: bool = con.hexists(tk.job("default/one"), "tgroup").await.unwrap();
    assert!(!stored, "a job of an uncapped tool stores no group");
    let counted: bool = con.exists(tk.group_running()).await.unwrap();
    assert!(!counted, "nothing counted per group");
}

#[tokio::test]
async fn a_bad_group_prefix_is_refused_at_start_naming_the_variable() {
    let redis = RedisServer::start().await;
    let (cfg, _catalog, fx) = capped(&redis, "badprefix", 1);
    for bin in ["scanq-worker", "scanq-api"] {
        let log = fx.path(&format!("{bin}.log"));
        let mut p = Proc::spawn_logged(
            bin,
            &cfg,
            &[
                ("SCANQ_TARGET_GROUP_PREFIX", "40".into()),
                ("SCANQ_API_ADDR", format!("127.0.0.1:{}", free_port())),
                (
                    "SCANQ_WORKER_METRICS_ADDR",
                    format!("127.0.0.1:{}", free_port()),
                ),
            ],
            &log,
        );
        let status = p.wait_exit(Duration::from_secs(20)).await;
        assert!(!status.success(), "{bin} started");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.contains("SCANQ_TARGET_GROUP_PREFIX") && text.contains("8..=32"),
            "{bin}: {text}"
        );
    }
}

// ── The scripts directly: claim parks and reads on, completion and cancel release ──────────

struct Direct {
    _redis: RedisServer,
    con: redis::aio::MultiplexedConnection,
    scripts: Scripts,
    set: ScriptSettings,
    tk: ToolKeys,
}

const BREAKER: BreakerArgs<'static> = BreakerArgs {
    settings_json: "{}",
    held_error_json: "{}",
};

impl Direct {
    async fn new() -> Self {
        let redis = RedisServer::start().await;
        let con = redis.con().await;
        let keys = Keys::new(&unique_prefix("g"));
        let set = script_settings(&Config::default(), &keys);
        let tk = keys.tool(&ToolName::parse("t").unwrap());
        Self {
            _redis: redis,
            con,
            scripts: Scripts::new(),
            set,
            tk,
        }
    }

    async fn enqueue(&mut self, r: &str, group: &str) {
        self.enqueue_capped(r, group, 0).await;
    }

    /// A job whose tenant may run `max_running` jobs of the tool at once (0 = no cap).
    async fn enqueue_capped(&mut self, r: &str, group: &str, max_running: u64) {
        let mut fields = vec![
            ("target", "127.0.0.1".to_owned()),
            ("max_attempts", "1".to_owned()),
            ("tgroup", group.to_owned()),
        ];
        if max_running > 0 {
            fields.push(("max_running", max_running.to_string()));
        }
        self.scripts
            .enqueue(
                &mut self.con,
                &self.tk,
                &self.set,
                r,
                r,
                Priority::Normal,
                false,
                (0, false),
                &fields,
            )
            .await
            .unwrap();
    }

    /// Claims up to `want` with a group cap of 1: (started refs and fences, parked count).
    async fn claim(&mut self, want: usize) -> (Vec<(String, u64)>, u64) {
        let c = self
            .scripts
            .claim(
                &mut self.con,
                &self.tk,
                &self.set,
                "w1",
                want,
                0,
                "t",
                BREAKER,
                "",
                false,
                1,
                false,
            )
            .await
            .unwrap();
        let started = c.jobs.into_iter().map(|j| (j.job_ref, j.fence)).collect();
        (started, c.parked)
    }

    async fn succeed(&mut self, r: &str, fence: u64) {
        let c = Completion {
            job_ref: r.into(),
            fence,
            outcome: "succeeded".parse().unwrap(),
            result_json: String::new(),
            error_json: String::new(),
            delay_ms: 0,
            verdict: Verdict::Ignored,
            breaker_reason: String::new(),
        };
        self.scripts
            .complete(&mut self.con, &self.tk, &self.set, "t", "{}", "w1", &[c])
            .await
            .unwrap();
    }

    async fn cancel(&mut self, r: &str) {
        self.scripts
            .cancel(&mut self.con, &self.tk, &self.set, r, "t", "{}")
            .await
            .unwrap();
    }

    async fn parked(&mut self, group: &str) -> Vec<String> {
        self.con
            .lrange(self.tk.group_wait(group), 0, -1)
            .await
            .unwrap()
    }

    async fn running(&mut self, group: &str) -> i64 {
        let n: Option<i64> = self.con.hget(self.tk.group_running(), group).await.unwrap();
        n.unwrap_or(0)
    }
}

#[tokio::test]
async fn the_claim_parks_a_full_groups_jobs_reads_on_and_each_stop_lets_one_in() {
    let mut f = Direct::new().await;
    for r in ["d/a1", "d/a2", "d/a3"] {
        f.enqueue(r, A).await;
    }
    f.enqueue("d/b1", B).await;

    // a1 starts; a2 and a3 are parked and the claim reads on to b1 (no head-of-line blocking).
    let (started, parked) = f.claim(2).await;
    let refs: Vec<&str> = started.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(refs, ["d/a1", "d/b1"]);
    assert_eq!(parked, 2);
    assert_eq!(f.parked(A).await, ["normal|d/a2", "normal|d/a3"]);
    assert_eq!((f.running(A).await, f.running(B).await), (1, 1));
    let waiting: Option<String> = f.con.hget(f.tk.job("d/a2"), "waiting").await.unwrap();
    assert_eq!(waiting.as_deref(), Some("target_group"));

    // A parked job cancelled leaves the list; a1's end lets a3 in, which then starts.
    f.cancel("d/a2").await;
    assert_eq!(f.parked(A).await, ["normal|d/a3"]);
    f.succeed("d/a1", started[0].1).await;
    assert_eq!(f.running(A).await, 0);
    assert!(f.parked(A).await.is_empty());
    let (started, parked) = f.claim(2).await;
    assert_eq!((started.len(), parked), (1, 0));
    assert_eq!(started[0].0, "d/a3");
    let waiting: Option<String> = f.con.hget(f.tk.job("d/a3"), "waiting").await.unwrap();
    assert_eq!(waiting, None, "a started job no longer waits");

    // A job let in and cancelled before it started passes the group's turn on.
    f.enqueue("d/a4", A).await;
    f.enqueue("d/a5", A).await;
    assert_eq!(f.claim(2).await.1, 2);
    f.succeed("d/a3", started[0].1).await;
    assert_eq!(f.parked(A).await, ["normal|d/a5"], "a4 let in");
    f.cancel("d/a4").await;
    assert!(f.parked(A).await.is_empty(), "a5 let in instead");
    let (started, _) = f.claim(2).await;
    let refs: Vec<&str> = started.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(refs, ["d/a5"]);
    let counts: std::collections::HashMap<String, i64> =
        f.con.hgetall(f.tk.counts()).await.unwrap();
    assert_eq!(
        counts.get("group_waiting").copied().unwrap_or(0),
        0,
        "{counts:?}"
    );
    assert_eq!(counts.get("running").copied(), Some(2), "{counts:?}");
    assert_eq!(
        counts.get("share:d").copied().unwrap_or(0),
        0,
        "fair shares stay exact: {counts:?}"
    );
}

#[tokio::test]
async fn a_job_let_in_for_its_group_but_held_by_its_tenants_cap_passes_the_turn_on() {
    let mut f = Direct::new().await;
    f.enqueue("u/a1", A).await;
    let (a1, _) = f.claim(1).await;
    f.enqueue_capped("t1/a2", A, 1).await;
    f.enqueue("u/a3", A).await;
    assert_eq!(f.claim(2).await.1, 2, "both wait for group A");
    f.enqueue_capped("t1/b1", B, 1).await;
    let (b1, _) = f.claim(1).await;
    assert_eq!(b1[0].0, "t1/b1", "t1 now runs its one job");

    // a1 ends: t1/a2 is let in, but t1 runs its cap, so the group's turn goes to u/a3.
    f.succeed("u/a1", a1[0].1).await;
    assert_eq!(f.parked(A).await, ["normal|u/a3"]);
    let (started, parked) = f.claim(2).await;
    assert_eq!(
        (started.len(), parked),
        (0, 0),
        "t1/a2 back in its tenant's backlog"
    );
    assert!(f.parked(A).await.is_empty(), "u/a3 let in");
    let (started, _) = f.claim(2).await;
    let refs: Vec<&str> = started.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(refs, ["u/a3"]);
    assert_eq!(f.running(A).await, 1);
}
