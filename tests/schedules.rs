//! Schedules (`/v1/schedules`): refused bodies, exactly one run per slot fleet-wide, overlap
//! policies, pause/resume/trigger, catch-up after a full stop, and a claimant killed mid-fire.
//! Timing cases use `every_sec` of 1 s and the in-process `noop`/`sleep` tools.

use std::collections::BTreeSet;
use std::time::Duration;

use scanq::catalog::Catalog;
use scanq::config::Config;
use scanq::domain::{CorrelationId, TenantId};
use scanq::queue::Queue;
use scanq::request::Policy;
use scanq::schedule::{ScheduleStore, run_id};
use scanq::validate::TargetPolicy;
use scanq_tests::*;
use serde_json::{Value, json};

fn setup(redis: &RedisServer, name: &str) -> (Config, Catalog, Fixture) {
    scheduling(redis, name)
}

async fn put(base: &str, id: &str, body: &Value) -> reqwest::Response {
    http()
        .put(format!("{base}/v1/schedules/{id}"))
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn post(base: &str, path: &str) -> reqwest::Response {
    http().post(format!("{base}{path}")).send().await.unwrap()
}

/// The schedule's runs, newest first.
async fn runs(base: &str, id: &str) -> Vec<Value> {
    get_json(base, &format!("/v1/schedules/{id}/runs?limit=500")).await["runs"]
        .as_array()
        .unwrap()
        .clone()
}

fn ms(rfc3339: &Value) -> u64 {
    let t = humantime::parse_rfc3339(rfc3339.as_str().unwrap()).unwrap();
    t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Sum of `scanq_schedule_runs_total{result}` over the processes' `/metrics`.
async fn fired(metrics: &[String], result: &str) -> u64 {
    let series = format!("scanq_schedule_runs_total{{result=\"{result}\"}}");
    let mut n = 0;
    for base in metrics {
        n += metric(base, &series).await.unwrap_or(0);
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_schedules_are_refused_with_422_naming_the_field() {
    let redis = RedisServer::start().await;
    let (mut cfg, catalog, _fx) = setup(&redis, "schedbad");
    cfg.schedule_min_every_sec = 5;
    let (_api, base) = start_api(cfg, catalog).await;
    let ok = json!({"tool":"noop","target":"10.0.0.5","every_sec":5});
    let cases = [
        (
            "cron",
            json!({"tool":"noop","target":"10.0.0.5","cron":"61 * * * *"}),
        ),
        (
            "cron",
            json!({"tool":"noop","target":"10.0.0.5","cron":"0 */5 * * * *"}),
        ),
        ("cron", json!({"tool":"noop","target":"10.0.0.5"})),
        (
            "timezone",
            json!({"tool":"noop","target":"10.0.0.5","cron":"0 3 * * *","timezone":"Mars/Olympus"}),
        ),
        (
            "overlap",
            json!({"tool":"noop","target":"10.0.0.5","every_sec":5,"overlap":"sometimes"}),
        ),
        (
            "target",
            json!({"tool":"noop","target":"8.8.8.8","every_sec":5}),
        ),
        (
            "every_sec",
            json!({"tool":"noop","target":"10.0.0.5","every_sec":2}),
        ),
        (
            "every_sec",
            json!({"tool":"noop","target":"10.0.0.5","every_sec":5,"cron":"* * * * *"}),
        ),
        (
            "correlation_id",
            json!({"tool":"noop","target":"10.0.0.5","every_sec":5,"correlation_id":"x"}),
        ),
        (
            "end_at",
            json!({"tool":"noop","target":"10.0.0.5","every_sec":5,"start_at":"2030-01-02T00:00:00Z","end_at":"2030-01-01T00:00:00Z"}),
        ),
    ];
    for (field, body) in cases {
        let r = put(&base, "s1", &body).await;
        assert_eq!(r.status(), 422, "{body}");
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem["field"], field, "{body}: {problem}");
        assert!(
            !problem["hint"].as_str().unwrap_or("").is_empty(),
            "{problem}"
        );
    }
    let r = put(&base, &"x".repeat(49), &ok).await;
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["field"], "id");
    // Nothing was stored; a good body creates (201), the same again replaces (200).
    assert_eq!(
        get_json(&base, "/v1/schedules").await["schedules"],
        json!([])
    );
    assert_eq!(put(&base, "s1", &ok).await.status(), 201);
    let r = put(&base, "s1", &ok).await;
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["overlap"], "skip");
    assert!(doc["next_run_at"].is_string(), "{doc}");
    let cron =
        json!({"tool":"noop","target":"10.0.0.5","cron":"0 3 * * 1-5","timezone":"Europe/Paris"});
    assert_eq!(put(&base, "nightly", &cron).await.status(), 201);
    let r = http()
        .delete(format!("{base}/v1/schedules/nightly"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = http()
        .get(format!("{base}/v1/schedules/nightly"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_slot_fires_exactly_once_across_two_apis_and_three_workers() {
    let redis = RedisServer::start().await;
    let (cfg, catalog, _fx) = setup(&redis, "schedfleet");
    let (_api1, base) = start_api(cfg.clone(), catalog.clone()).await;
    let (_api2, base2) = start_api(cfg.clone(), catalog.clone()).await;
    let mut metrics = vec![base.clone(), base2];
    let mut workers = Vec::new();
    for _ in 0..3 {
        let (w, m) = start_worker_with_metrics(cfg.clone(), catalog.clone()).await;
        workers.push(w);
        metrics.push(m);
    }

    let body = json!({"tool":"noop","target":"10.0.0.5","every_sec":1});
    assert_eq!(put(&base, "tick", &body).await.status(), 201);
    eventually(Duration::from_secs(20), "five runs", || async {
        (runs(&base, "tick").await.len() >= 5).then_some(())
    })
    .await;
    let r = post(&base, "/v1/schedules/tick/pause").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["paused"], true);

    // Every fired slot is one run: the processes together fired exactly as many as are listed.
    let listed = eventually(Duration::from_secs(10), "fired == listed", || async {
        let listed = runs(&base, "tick").await;
        let n = fired(&metrics, "fired").await;
        (n == listed.len() as u64).then_some(listed)
    })
    .await;
    let slots: Vec<u64> = listed.iter().map(|r| ms(&r["slot_at"])).collect();
    let distinct: BTreeSet<u64> = slots.iter().copied().collect();
    assert_eq!(distinct.len(), slots.len(), "{listed:?}");
    // Whole slots, newest first. (A process stalled past a slot fires only the latest one, so a
    // gap of several seconds is allowed on a loaded machine; a repeated slot never is.)
    assert!(
        slots
            .windows(2)
            .all(|w| w[0] > w[1] && (w[0] - w[1]).is_multiple_of(1000)),
        "{slots:?}"
    );
    for run in &listed {
        let cid = run["correlation_id"].as_str().unwrap();
        let doc = wait_done(&base, cid, Duration::from_secs(10)).await;
        assert_eq!(doc["schedule_id"], "tick", "{doc}");
        assert_eq!(doc["state"], "succeeded", "{doc}");
    }

    // Paused: no slot fires. (Observation window: asserting that nothing happens.)
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(runs(&base, "tick").await.len(), listed.len());
    let doc = get_json(&base, "/v1/schedules/tick").await;
    assert_eq!(doc["next_run_at"], Value::Null, "{doc}");
    assert_eq!(
        doc["last_run"]["correlation_id"],
        listed[0]["correlation_id"]
    );

    // Trigger runs now, outside the cadence; resume continues without a burst.
    let r = post(&base, "/v1/schedules/tick/trigger").await;
    assert_eq!(r.status(), 202);
    let run = r.json::<Value>().await.unwrap()["run"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_done(&base, &run, Duration::from_secs(10)).await;
    assert_eq!(runs(&base, "tick").await[0]["correlation_id"], run.as_str());
    let before = runs(&base, "tick").await.len();
    assert_eq!(post(&base, "/v1/schedules/tick/resume").await.status(), 200);
    eventually(Duration::from_secs(10), "runs after resume", || async {
        (runs(&base, "tick").await.len() >= before + 2).then_some(())
    })
    .await;
    let after: Vec<u64> = runs(&base, "tick").await[..2]
        .iter()
        .map(|r| ms(&r["slot_at"]))
        .collect();
    assert!(
        after[0] > after[1] && (after[0] - after[1]).is_multiple_of(1000),
        "{after:?}"
    );
    for w in workers {
        w.shutdown().await;
    }
}

/// Start and finish times of the schedule's runs, oldest first, once `n` have finished.
async fn finished_runs(base: &str, id: &str, n: usize) -> Vec<(u64, u64, String)> {
    eventually(Duration::from_secs(30), "finished runs", || async {
        let mut out = Vec::new();
        for r in runs(base, id).await.iter().rev() {
            let doc = get_json(
                base,
                &format!("/v1/jobs/{}", r["correlation_id"].as_str().unwrap()),
            )
            .await;
            if let (Some(s), Some(f)) = (doc["started_at"].as_str(), doc["finished_at"].as_str()) {
                out.push((
                    ms(&json!(s)),
                    ms(&json!(f)),
                    doc["state"].as_str().unwrap().to_owned(),
                ));
            }
        }
        (out.len() >= n).then_some(out)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_policies_skip_hold_or_cancel_the_previous_run() {
    let redis = RedisServer::start().await;
    let (cfg, catalog, _fx) = setup(&redis, "schedoverlap");
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let (_worker, wm) = start_worker_with_metrics(cfg, catalog).await;
    let metrics = vec![base.clone(), wm];

    // skip: while the first run sleeps, later slots are skipped, never queued.
    let long = json!({"tool":"sleep","target":"10.0.0.5","args":"--ms 30000","every_sec":1});
    assert_eq!(put(&base, "long", &long).await.status(), 201);
    eventually(Duration::from_secs(15), "two skipped slots", || async {
        (fired(&metrics, "skipped").await >= 2).then_some(())
    })
    .await;
    let listed = runs(&base, "long").await;
    assert_eq!(listed.len(), 1, "{listed:?}");

    // cancel_previous: the next slot cancels the sleeping run and starts a new one.
    let mut cancel = long.clone();
    cancel["overlap"] = json!("cancel_previous");
    assert_eq!(put(&base, "long", &cancel).await.status(), 200);
    let first = listed[0]["correlation_id"].as_str().unwrap().to_owned();
    let doc = wait_done(&base, &first, Duration::from_secs(15)).await;
    assert_eq!(doc["state"], "cancelled", "{doc}");
    // The new run is recorded once it is admitted, a moment after the cancel.
    let all = eventually(Duration::from_secs(15), "the new run recorded", || async {
        let all = runs(&base, "long").await;
        (all.len() >= 2).then_some(all)
    })
    .await;
    assert_eq!(
        http()
            .delete(format!("{base}/v1/schedules/long"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    for r in all {
        let _ = http()
            .delete(format!(
                "{base}/v1/jobs/{}",
                r["correlation_id"].as_str().unwrap()
            ))
            .send()
            .await;
    }

    // queue_one: a slot that finds the previous run busy waits for it; runs never overlap.
    let held = json!({"tool":"sleep","target":"10.0.0.5","args":"--ms 1500","every_sec":1,"overlap":"queue_one"});
    assert_eq!(put(&base, "held", &held).await.status(), 201);
    let done = finished_runs(&base, "held", 3).await;
    for w in done.windows(2) {
        assert!(w[1].0 >= w[0].1, "runs overlapped: {done:?}");
    }
    assert!(done.iter().all(|r| r.2 == "succeeded"), "{done:?}");
    assert!(fired(&metrics, "held").await >= 1);
    assert_eq!(post(&base, "/v1/schedules/held/pause").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_full_stop_one_missed_slot_is_caught_up_never_a_burst() {
    let redis = RedisServer::start().await;
    let (cfg, catalog, _fx) = setup(&redis, "schedcatch");
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let worker = start_worker(cfg.clone(), catalog.clone()).await;
    let body = json!({"tool":"noop","target":"10.0.0.5","every_sec":1,"catchup_sec":60});
    assert_eq!(put(&base, "watch", &body).await.status(), 201);
    eventually(Duration::from_secs(10), "two runs", || async {
        (runs(&base, "watch").await.len() >= 2).then_some(())
    })
    .await;
    api.shutdown().await;
    worker.shutdown().await;
    let store = ScheduleStore::new(scanq::queue::pool(&cfg).unwrap(), &cfg.key_prefix);
    let tenant = TenantId::parse("default").unwrap();
    let stopped_at = store.now_ms().await.unwrap();
    let last_before = store.runs(&tenant, "watch", 1).await.unwrap()[0].1;
    // Downtime: every process stays stopped until three slots have passed on Redis's clock.
    let restarted_at = eventually(
        Duration::from_secs(10),
        "three slots of downtime",
        || async {
            let now = store.now_ms().await.ok()?;
            (now >= stopped_at + 3200).then_some(now)
        },
    )
    .await;

    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;
    eventually(
        Duration::from_secs(10),
        "runs after the restart",
        || async {
            let n = store
                .runs(&tenant, "watch", 100)
                .await
                .unwrap()
                .iter()
                .filter(|(_, slot)| *slot > restarted_at)
                .count();
            (n >= 1).then_some(())
        },
    )
    .await;
    let mut after: Vec<u64> = store
        .runs(&tenant, "watch", 100)
        .await
        .unwrap()
        .iter()
        .map(|(_, slot)| *slot)
        .filter(|slot| *slot > last_before)
        .collect();
    after.sort_unstable();
    // No burst: none of the slots that passed during the downtime fired, except the latest
    // (the one catch-up run), which fired at once after the restart.
    assert!(
        after[0] > restarted_at - 1000,
        "burst of missed slots: {after:?}"
    );
    assert!(after[0] > stopped_at, "{after:?}");
    assert!(
        after[0] <= restarted_at + 1000,
        "no catch-up run: {after:?}"
    );
    let doc = get_json(&base, "/v1/schedules/watch").await;
    assert!(doc["next_run_at"].is_string(), "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimant_killed_mid_fire_neither_loses_nor_doubles_its_slot() {
    let redis = RedisServer::start().await;
    let (cfg, catalog, _fx) = setup(&redis, "schedkill");
    // Create the schedule with no process firing (the API is stopped right after the PUT).
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let body = json!({"tool":"noop","target":"10.0.0.5","every_sec":1,"catchup_sec":60});
    assert_eq!(put(&base, "crash", &body).await.status(), 201);
    api.shutdown().await;
    let pool = scanq::queue::pool(&cfg).unwrap();
    let store = ScheduleStore::new(pool.clone(), &cfg.key_prefix);
    let tenant = TenantId::parse("default").unwrap();
    let before = store.runs(&tenant, "crash", 100).await.unwrap().len();

    // A claimant takes the due slot, enqueues its run, and dies before committing.
    let claimed = eventually(Duration::from_secs(5), "a due slot", || async {
        store.claim(5_000).await.unwrap().into_due()
    })
    .await;
    let run = run_id("crash", claimed.firing);
    let targets =
        TargetPolicy::parse(&cfg.allowed_targets, &cfg.denied_targets, cfg.max_hosts).unwrap();
    let policy = Policy {
        catalog: &catalog,
        targets: &targets,
        zones: &scanq::validate::ZoneMap::default(),
        allow_intrusive: false,
        default_max_attempts: 1,
        require_engagement: false,
        approval: scanq::engagement::Approval::Never,
    };
    let spec = claimed
        .def
        .run_spec(&policy, &CorrelationId::parse(&run).unwrap())
        .unwrap();
    Queue::new(pool, &cfg).submit(&tenant, &spec).await.unwrap();
    drop(claimed);

    // The fleet comes back: after the claim's lease the same slot is fired once, as that run.
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;
    let listed = eventually(
        Duration::from_secs(15),
        "the crashed slot recorded",
        || async {
            let listed = store.runs(&tenant, "crash", 100).await.unwrap();
            listed.iter().any(|(c, _)| *c == run).then_some(listed)
        },
    )
    .await;
    assert_eq!(listed.iter().filter(|(c, _)| *c == run).count(), 1);
    assert!(listed.len() > before);
    let jobs = get_json(&base, "/v1/jobs?limit=500").await;
    let same: Vec<&Value> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["correlation_id"] == run.as_str())
        .collect();
    assert_eq!(same.len(), 1, "{jobs}");
    let slots: BTreeSet<u64> = listed.iter().map(|(_, s)| *s).collect();
    assert_eq!(slots.len(), listed.len(), "no slot fired twice: {listed:?}");
}

/// One MCP call in a 2025-11-25 session; returns the JSON-RPC `result`.
async fn mcp(base: &str, session: &str, name: &str, arguments: Value) -> Value {
    let r = http()
        .post(format!("{base}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .body(json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":name,"arguments":arguments}}).to_string())
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    let msg: Value = text
        .lines()
        .rev()
        .filter_map(|l| l.strip_prefix("data: "))
        .find_map(|d| serde_json::from_str(d).ok())
        .or_else(|| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null);
    msg["result"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_sets_up_a_recurring_scan_and_reads_what_changed_over_mcp() {
    let open_a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = open_a.local_addr().unwrap().port();
    let b = free_port();
    let redis = RedisServer::start().await;
    let mut cfg = test_config(&redis, "schedmcp");
    cfg.schedule_min_every_sec = 1;
    cfg.schedule_tick_ms = 100;
    let catalog = Catalog::builtin();
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;
    let session = mcp_session(&base).await;

    // A bad cadence is refused like on REST, naming the field.
    let bad = mcp(
        &base,
        &session,
        "schedule_upsert",
        json!({"id":"hourly","tool":"nmap","target":"127.0.0.1","cron":"every hour"}),
    )
    .await;
    assert_eq!(bad["isError"], true, "{bad}");
    assert!(bad.to_string().contains("cron"), "{bad}");
    let made = mcp(
        &base,
        &session,
        "schedule_upsert",
        json!({
        "id":"hourly","tool":"nmap","target":"127.0.0.1",
        "args":format!("-sT -Pn -n -p {a},{b}"),"every_sec":1}),
    )
    .await;
    assert_eq!(made["structuredContent"]["created"], true, "{made}");
    let first = eventually(Duration::from_secs(30), "a succeeded run", || async {
        let listed = mcp(&base, &session, "schedule_list", json!({})).await;
        let s = listed["structuredContent"]["schedules"][0].clone();
        (s["last_run"]["state"] == "succeeded")
            .then(|| s["last_run"]["correlation_id"].as_str().unwrap().to_owned())
    })
    .await;
    let open_b = std::net::TcpListener::bind(("127.0.0.1", b)).unwrap();
    let changed = eventually(Duration::from_secs(30), "a run that changed", || async {
        let listed = mcp(&base, &session, "schedule_list", json!({})).await;
        let s = listed["structuredContent"]["schedules"][0].clone();
        (s["last_change"]["changed"] == true)
            .then(|| s["last_change"]["run"].as_str().unwrap().to_owned())
    })
    .await;
    let paused = mcp(&base, &session, "schedule_pause", json!({"id":"hourly"})).await;
    assert_eq!(
        paused["structuredContent"]["schedule"]["paused"], true,
        "{paused}"
    );
    let diff = mcp(
        &base,
        &session,
        "job_diff",
        json!({"correlation_id": changed}),
    )
    .await;
    let d = &diff["structuredContent"];
    assert_eq!(d["changed"], true, "{diff}");
    assert_eq!(d["summary"]["ports_opened"], 1, "{diff}");
    assert_eq!(d["hosts"][0]["ports"][0]["port"], b, "{diff}");
    assert!(
        diff["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("opened 1"),
        "{diff}"
    );
    let same = mcp(
        &base,
        &session,
        "job_diff",
        json!({"correlation_id": first, "against": first}),
    )
    .await;
    assert_eq!(same["structuredContent"]["changed"], false, "{same}");
    let resumed = mcp(&base, &session, "schedule_resume", json!({"id":"hourly"})).await;
    assert_eq!(
        resumed["structuredContent"]["schedule"]["paused"], false,
        "{resumed}"
    );
    mcp(&base, &session, "schedule_pause", json!({"id":"hourly"})).await;
    drop((open_a, open_b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_tool_does_not_make_a_schedule_pile_up_runs() {
    let redis = RedisServer::start().await;
    let (cfg, catalog, _fx) = setup(&redis, "scheddisabled");
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let (_worker, wm) = start_worker_with_metrics(cfg, catalog).await;
    let metrics = vec![base.clone(), wm];
    assert!(
        post(&base, "/v1/tools/noop/disable")
            .await
            .status()
            .is_success()
    );

    // Runs pass the gate like any submit: this template lets them wait for the switched-off
    // tool (without it they would be refused, tests/schedule_limits.rs).
    let body = json!({"tool":"noop","target":"10.0.0.5","every_sec":1,"queue_if_unavailable":true});
    assert_eq!(put(&base, "idle", &body).await.status(), 201);
    // The first run waits (the tool is off); every later slot is skipped, not queued.
    eventually(Duration::from_secs(15), "two skipped slots", || async {
        (fired(&metrics, "skipped").await >= 2).then_some(())
    })
    .await;
    let listed = runs(&base, "idle").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["state"], "queued", "{listed:?}");

    // Switched back on, the waiting run completes and the schedule fires again.
    assert!(
        post(&base, "/v1/tools/noop/enable")
            .await
            .status()
            .is_success()
    );
    let first = listed[0]["correlation_id"].as_str().unwrap();
    assert_eq!(
        wait_done(&base, first, Duration::from_secs(15)).await["state"],
        "succeeded"
    );
    eventually(Duration::from_secs(15), "firing resumed", || async {
        (runs(&base, "idle").await.len() >= 2).then_some(())
    })
    .await;
    assert_eq!(post(&base, "/v1/schedules/idle/pause").await.status(), 200);
}
