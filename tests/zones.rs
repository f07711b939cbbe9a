//! Zones (issue 22, DESIGN §13): a job runs only on a worker of its zone. Three workers, of zones
//! `a` (127.0.1.0/24), `b` (127.0.2.0/24) and `default`, each with its own copy of the fake tool
//! that records every start in its own file, so which worker ran a job is read both from the job
//! document (`worker`) and from the workers' own records. A zone with no worker waits visibly
//! while the others drain, and runs once a worker of it starts. A target spanning zones is one
//! big scan whose chunks run in their own zones. A zone's breaker opens for that zone only. The
//! fake tool scans nothing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use scanq::catalog::Catalog;
use scanq::config::{Config, ZonesSetting};
use scanq::domain::Zone;
use scanq_tests::*;
use serde_json::{Value, json};

const MAP: &str = "a=127.0.1.0/24;b=127.0.2.0/24;c=127.0.3.0/24";

/// The fleet: an API (its catalog's fake tool records into `starts-api`, never run) and the
/// config every process shares.
struct Fleet {
    fx: Fixture,
    /// Catalog lines every process's fake tool gets (its breaker settings).
    extra: String,
    cfg: Config,
    base: String,
    tasks: Vec<Task>,
}

impl Fleet {
    async fn start(redis: &RedisServer, name: &str) -> Self {
        Self::start_with(redis, name, "").await
    }

    async fn start_with(redis: &RedisServer, name: &str, extra: &str) -> Self {
        let fx = Fixture::new();
        let cfg = Config {
            zones: ZonesSetting::Text(MAP.into()),
            worker_concurrency: 4,
            ..test_config(redis, name)
        };
        let (catalog, _) = Self::catalog(&fx, extra, "api");
        let (api, base) = start_api(cfg.clone(), catalog).await;
        Self {
            fx,
            extra: extra.to_owned(),
            cfg,
            base,
            tasks: vec![api],
        }
    }

    /// The fake tool recording into `starts-<who>`.
    fn catalog(fx: &Fixture, extra: &str, who: &str) -> (Catalog, PathBuf) {
        let starts = fx.path(&format!("starts-{who}"));
        let cmd = fx.script(&format!("fake-{who}"), &fake_tool_script(Some(&starts)));
        let toml = fake_tool_catalog("fake", &cmd, extra);
        let path = fx.path(&format!("catalog-{who}.toml"));
        std::fs::write(&path, toml).unwrap();
        (Catalog::load(Some(&path)).unwrap(), starts)
    }

    /// Starts worker `w-<zone>` of `zone`; returns where it records its starts.
    async fn worker(&mut self, zone: &str) -> PathBuf {
        let (catalog, starts) = Self::catalog(&self.fx, &self.extra, zone);
        let cfg = Config {
            worker_id: Some(format!("w-{zone}")),
            worker_zone: Zone::parse(zone).unwrap(),
            worker_metrics_addr: ([127, 0, 0, 1], free_port()).into(),
            ..self.cfg.clone()
        };
        self.tasks.push(start_worker(cfg, catalog).await);
        starts
    }

    async fn submit(&self, body: Value) -> Value {
        let resp = post_json(&self.base, "/v1/jobs", &body).await;
        let status = resp.status().as_u16();
        let doc: Value = resp.json().await.unwrap();
        assert_eq!(status, 202, "{doc}");
        doc
    }

    async fn shutdown(self) {
        for t in self.tasks.into_iter().rev() {
            t.shutdown().await;
        }
    }
}

/// The targets a worker's fake tool was started for (its last argument).
fn started(starts: &Path) -> BTreeSet<String> {
    lines(starts)
        .iter()
        .filter_map(|l| l.rsplit(' ').next().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_runs_on_a_worker_of_its_zone_only() {
    let redis = RedisServer::start().await;
    let mut fleet = Fleet::start(&redis, "zones-route").await;
    let mut starts = Vec::new();
    for zone in ["a", "b", "default"] {
        starts.push((zone, fleet.worker(zone).await));
    }
    // 30 jobs, 10 per zone, submitted interleaved.
    let mut expected: Vec<(String, &str, String)> = Vec::new();
    for i in 0..10 {
        for (zone, net) in [("a", 1), ("b", 2), ("default", 9)] {
            let (cid, target) = (format!("{zone}-{i}"), format!("127.0.{net}.{}", i + 1));
            let doc = fleet
                .submit(json!({"tool": "fake", "target": target, "correlation_id": cid}))
                .await;
            assert_eq!(doc["zone"], zone, "placed by the map: {doc}");
            expected.push((cid, zone, target));
        }
    }
    for (cid, zone, _) in &expected {
        let done = wait_done(&fleet.base, cid, Duration::from_secs(60)).await;
        assert_eq!(done["state"], "succeeded", "{done}");
        assert_eq!(done["zone"], *zone, "{done}");
        assert_eq!(
            done["worker"].as_str().unwrap_or_default(),
            format!("w-{zone}"),
            "{done}"
        );
    }
    // The workers' own records: each ran exactly its zone's ten targets.
    for (zone, path) in &starts {
        let want: BTreeSet<String> = expected
            .iter()
            .filter(|(_, z, _)| z == zone)
            .map(|(_, _, t)| t.clone())
            .collect();
        assert_eq!(started(path), want, "worker of zone {zone}");
        assert_eq!(lines(path).len(), 10, "each started once in zone {zone}");
    }

    // Seen per zone: the workers, the stats rows, the metrics.
    let workers = get_json(&fleet.base, "/v1/workers").await;
    let zones: BTreeSet<String> = workers["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            format!(
                "{}={}",
                w["id"].as_str().unwrap(),
                w["zone"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        zones,
        BTreeSet::from(["w-a=a".into(), "w-b=b".into(), "w-default=default".into()])
    );
    let stats = get_json(&fleet.base, "/v1/stats").await;
    for zone in ["a", "b", "default"] {
        let row = stats["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tool"] == "fake" && t["zone"] == zone)
            .unwrap_or_else(|| panic!("no fake/{zone} row: {stats}"));
        assert_eq!(row["counts"]["succeeded"], 10, "{row}");
    }
    let metrics = http()
        .get(format!("{}/metrics", fleet.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for zone in ["a", "b", "c", "default"] {
        let series = format!("scanq_queue_depth{{tool=\"fake\",zone=\"{zone}\"}} 0");
        assert!(metrics.contains(&series), "{series} in\n{metrics}");
    }

    // A target spanning zones: one big scan, each chunk run by its zone's worker.
    let parent = fleet
        .submit(
            json!({"tool": "fake", "target": "127.0.0.0/22", "correlation_id": "span",
            "chunk_hosts": 256}),
        )
        .await;
    assert_eq!(
        parent["zones"],
        json!(["default", "a", "b", "c"]),
        "{parent}"
    );
    // Zone c has no worker: its chunk waits, saying why, while the others run.
    let chunks = eventually(Duration::from_secs(60), "the others ran", || async {
        let page = get_json(&fleet.base, "/v1/jobs/span/chunks?limit=10").await;
        let jobs = page["chunks"].as_array()?.clone();
        let done = jobs.iter().filter(|j| j["state"] == "succeeded").count();
        (done == 3).then_some(jobs)
    })
    .await;
    let c = chunks.iter().find(|j| j["zone"] == "c").unwrap();
    assert_eq!(c["state"], "queued", "{c}");
    assert_eq!(c["waiting_for"], "zone:c", "{c}");
    for j in &chunks {
        if j["zone"] != "c" {
            let worker = format!("w-{}", j["zone"].as_str().unwrap());
            assert_eq!(j["worker"].as_str(), Some(worker.as_str()), "{j}");
        }
    }
    assert!(started(&starts[0].1).contains("127.0.1.0/24"));
    assert!(started(&starts[1].1).contains("127.0.2.0/24"));
    let default_ran = started(&starts[2].1);
    assert!(
        default_ran.contains("127.0.0.0/24") && !default_ran.contains("127.0.3.0/24"),
        "{default_ran:?}"
    );
    // Zone c's worker starts: its chunk runs there and the parent (living in zone default)
    // is settled across the zones of its chunks.
    let c_ran = fleet.worker("c").await;
    let done = wait_done(&fleet.base, "span", Duration::from_secs(60)).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["chunks"]["succeeded"], 4, "{done}");
    assert_eq!(started(&c_ran), BTreeSet::from(["127.0.3.0/24".to_owned()]));
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_without_a_worker_waits_visibly_and_runs_when_one_starts() {
    let redis = RedisServer::start().await;
    let mut fleet = Fleet::start(&redis, "zones-wait").await;
    fleet.worker("a").await;
    fleet.worker("default").await;
    for i in 0..3 {
        for (zone, net) in [("a", 1), ("c", 3), ("default", 9)] {
            fleet
                .submit(
                    json!({"tool": "fake", "target": format!("127.0.{net}.{}", i + 1),
                    "correlation_id": format!("{zone}-{i}")}),
                )
                .await;
        }
    }
    // The other zones drain.
    for i in 0..3 {
        for zone in ["a", "default"] {
            let done =
                wait_done(&fleet.base, &format!("{zone}-{i}"), Duration::from_secs(60)).await;
            assert_eq!(done["state"], "succeeded", "{done}");
        }
    }
    // Zone c's jobs wait and say for what, in the document and in the listing.
    for i in 0..3 {
        let d = get_json(&fleet.base, &format!("/v1/jobs/c-{i}")).await;
        assert_eq!(
            (d["state"].as_str(), d["zone"].as_str()),
            (Some("queued"), Some("c"))
        );
        assert_eq!(d["waiting_for"], "zone:c", "{d}");
    }
    let listed = get_json(&fleet.base, "/v1/jobs?state=queued").await;
    let jobs = listed["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 3, "{listed}");
    assert!(
        jobs.iter().all(|j| j["waiting_for"] == "zone:c"),
        "{listed}"
    );
    let metrics = http()
        .get(format!("{}/metrics", fleet.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("scanq_queue_depth{tool=\"fake\",zone=\"c\"} 3"),
        "{metrics}"
    );

    // A worker of zone c starts: they run, on it.
    let starts = fleet.worker("c").await;
    for i in 0..3 {
        let done = wait_done(&fleet.base, &format!("c-{i}"), Duration::from_secs(60)).await;
        assert_eq!(done["state"], "succeeded", "{done}");
        assert_eq!(done["worker"], "w-c", "{done}");
        assert!(done.get("waiting_for").is_none(), "{done}");
    }
    assert_eq!(lines(&starts).len(), 3);
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_submit_naming_a_zone_its_target_is_not_in_is_refused_naming_the_field() {
    let redis = RedisServer::start().await;
    let fleet = Fleet::start(&redis, "zones-refuse").await;
    let cases = [
        (
            json!({"tool": "fake", "target": "127.0.1.5", "zone": "b"}),
            "in zone a",
        ),
        (
            json!({"tool": "fake", "target": "127.0.9.5", "zone": "a"}),
            "in zone default",
        ),
        (
            json!({"tool": "fake", "target": "127.0.1.0/24,127.0.2.0/24", "zone": "a"}),
            "spans zones a, b",
        ),
        (
            json!({"tool": "fake", "target": "127.0.1.5", "zone": "A!"}),
            "zone must be",
        ),
    ];
    for (body, words) in cases {
        let resp = post_json(&fleet.base, "/v1/jobs", &body).await;
        assert_eq!(resp.status(), 422, "{body}");
        let problem: Value = resp.json().await.unwrap();
        let text = problem.to_string();
        assert!(
            text.contains("\"zone\"") && text.contains(words),
            "{body}: {problem}"
        );
    }
    // Nothing was queued by the refusals.
    let listed = get_json(&fleet.base, "/v1/jobs").await;
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 0, "{listed}");
    // A schedule's template is placed and checked the same way.
    let put = |id: &'static str, body: Value| {
        let url = format!("{}/v1/schedules/{id}", fleet.base);
        async move { http().put(url).json(&body).send().await.unwrap() }
    };
    let r = put(
        "bad",
        json!({"tool": "fake", "target": "127.0.1.5", "zone": "b", "every_sec": 3600}),
    )
    .await;
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["field"], "zone");
    let r = put(
        "good",
        json!({"tool": "fake", "target": "127.0.1.5", "zone": "a", "every_sec": 3600}),
    )
    .await;
    assert_eq!(r.status(), 201);
    // The zone it is in is accepted.
    let doc = fleet
        .submit(json!({"tool": "fake", "target": "127.0.1.5", "zone": "a"}))
        .await;
    assert_eq!(doc["zone"], "a");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zones_breaker_opens_for_that_zone_only() {
    let redis = RedisServer::start().await;
    let breaker = "[tools.fake.breaker]\nfailure_threshold = 3\nrecovery_timeout_sec = 600\n\
                   max_open_sec = 600\njitter = 0.0\nfailure_kinds = [\"exit_nonzero\"]\n";
    let mut fleet = Fleet::start_with(&redis, "zones-breaker", breaker).await;
    fleet.worker("a").await;
    let b_ran = fleet.worker("b").await;
    // Zone a's network fails every scan: its breaker opens.
    for i in 0..3 {
        fleet
            .submit(
                json!({"tool": "fake", "target": format!("127.0.1.{}", i + 1),
                "args": "--exit 1", "max_attempts": 1, "correlation_id": format!("bad-{i}")}),
            )
            .await;
    }
    for i in 0..3 {
        let done = wait_done(&fleet.base, &format!("bad-{i}"), Duration::from_secs(60)).await;
        assert_eq!(done["state"], "failed", "{done}");
    }
    let refused = eventually(Duration::from_secs(10), "zone a refuses", || async {
        let body = json!({"tool": "fake", "target": "127.0.1.9"});
        let r = post_json(&fleet.base, "/v1/jobs", &body).await;
        (r.status() == 503).then_some(r)
    })
    .await;
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["error_type"], "circuit_breaker_open", "{problem}");
    // Zone b's breaker is its own: b's jobs are admitted and run.
    for i in 0..3 {
        fleet
            .submit(
                json!({"tool": "fake", "target": format!("127.0.2.{}", i + 1),
                "correlation_id": format!("good-{i}")}),
            )
            .await;
    }
    for i in 0..3 {
        let done = wait_done(&fleet.base, &format!("good-{i}"), Duration::from_secs(60)).await;
        assert_eq!(
            (done["state"].as_str(), done["worker"].as_str()),
            (Some("succeeded"), Some("w-b"))
        );
    }
    assert_eq!(lines(&b_ran).len(), 3);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_whose_workers_all_died_has_its_leases_taken_over_by_another_zones_worker() {
    let redis = RedisServer::start().await;
    let mut fleet = Fleet::start(&redis, "zones-reap").await;
    // Zone a's only worker is a process of its own, killed mid-job.
    let (_, _) = Fleet::catalog(&fleet.fx, "", "a");
    let cfg = Config {
        catalog: Some(fleet.fx.path("catalog-a.toml")),
        worker_id: Some("w-a".into()),
        worker_zone: Zone::parse("a").unwrap(),
        worker_metrics_addr: ([127, 0, 0, 1], free_port()).into(),
        ..fleet.cfg.clone()
    };
    let mut a = Proc::spawn("scanq-worker", &cfg, &[]);
    fleet
        .submit(
            json!({"tool": "fake", "target": "127.0.1.5", "args": "--sleep-ms 60000",
            "correlation_id": "long"}),
        )
        .await;
    eventually(Duration::from_secs(30), "running on w-a", || async {
        let d = get_json(&fleet.base, "/v1/jobs/long").await;
        (d["state"] == "running" && d["worker"] == "w-a").then_some(())
    })
    .await;
    a.signal(nix::sys::signal::Signal::SIGKILL);
    a.wait_exit(Duration::from_secs(10)).await;
    // Only a worker of zone default is left: it takes the lapsed lease over (reaping needs no
    // network), and the job waits in its own zone again, saying for what; it never runs here.
    let default_ran = fleet.worker("default").await;
    let d = eventually(Duration::from_secs(30), "lease taken over", || async {
        let d = get_json(&fleet.base, "/v1/jobs/long").await;
        (d["state"] == "queued" || d["state"] == "scheduled").then_some(d)
    })
    .await;
    assert_eq!(d["zone"], "a", "{d}");
    let d = eventually(Duration::from_secs(30), "waiting for zone a", || async {
        let d = get_json(&fleet.base, "/v1/jobs/long").await;
        (d["waiting_for"] == "zone:a").then_some(d)
    })
    .await;
    assert_eq!(d["attempt"], 1, "{d}");
    assert!(
        !default_ran.exists(),
        "the default zone's worker never ran it"
    );
    fleet.shutdown().await;
}
