//! Schedules under attack (issue 19): a schedule that cannot be fired (hostile or corrupt entry
//! in Redis, slot arithmetic out of range) is parked with a visible reason and every other
//! schedule keeps firing; cadences that would wrap are refused; the per-tenant cap; trimmed run
//! lists and stored change summaries; a tenant removed from the tokens file is parked, and caps
//! that cannot be read refuse a slot (fail closed). The in-process `noop` tool only.

use std::time::Duration;

use nix::sys::signal::Signal;
use scanq::catalog::Catalog;
use scanq::config::Config;
use scanq::domain::{CorrelationId, JobId, TenantId, ToolName};
use scanq::keys::Keys;
use scanq::queue::Queue;
use scanq::schedule::{ScheduleBody, ScheduleDef, ScheduleStore};
use scanq::scripts::TenantCaps;
use scanq_tests::*;
use serde_json::{Value, json};

fn setup(redis: &RedisServer, name: &str) -> (Config, Catalog, Fixture) {
    scheduling(redis, name)
}

fn store(cfg: &Config) -> ScheduleStore {
    ScheduleStore::new(scanq::queue::pool(cfg).unwrap(), &cfg.key_prefix)
}

async fn put(base: &str, id: &str, body: &Value) -> reqwest::Response {
    http()
        .put(format!("{base}/v1/schedules/{id}"))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Sum of one series over several processes' `/metrics`.
async fn total(bases: &[&str], series: &str) -> u64 {
    let mut n = 0;
    for b in bases {
        n += metric(b, series).await.unwrap_or(0);
    }
    n
}

/// Writes a schedule entry straight into Redis, due now: what an older, buggy version (or
/// anything else with access to Redis) might have stored.
async fn inject(redis: &RedisServer, cfg: &Config, member: &str, fields: &[(&str, String)]) {
    let keys = Keys::new(&cfg.key_prefix).sched();
    let mut con = redis.con().await;
    let mut hset = redis::cmd("HSET");
    hset.arg(keys.def(member));
    for (k, v) in fields {
        hset.arg(*k).arg(v);
    }
    let () = hset.query_async(&mut con).await.unwrap();
    let () = redis::cmd("ZADD")
        .arg(keys.due())
        .arg(0)
        .arg(member)
        .query_async::<i64>(&mut con)
        .await
        .map(|_| ())
        .unwrap();
}

async fn due_members(redis: &RedisServer, cfg: &Config) -> Vec<String> {
    let keys = Keys::new(&cfg.key_prefix).sched();
    let mut con = redis.con().await;
    redis::cmd("ZRANGE")
        .arg(keys.due())
        .arg(0)
        .arg(-1)
        .query_async(&mut con)
        .await
        .unwrap()
}

fn def_json(body: Value) -> String {
    let def = ScheduleDef::try_from(ScheduleBody::from_json(&body).unwrap()).unwrap();
    serde_json::to_string(&def).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_that_cannot_be_fired_is_parked_and_every_other_keeps_firing() {
    let redis = RedisServer::start().await;
    let (cfg, catalog, _fx) = setup(&redis, "schedpark");
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let (_worker, wm) = start_worker_with_metrics(cfg.clone(), catalog).await;
    let store = store(&cfg);
    let default = TenantId::parse("default").unwrap();
    let mallory = TenantId::parse("mallory").unwrap();
    let good = json!({"tool":"noop","target":"10.0.0.5","every_sec":1});
    assert_eq!(put(&base, "good", &good).await.status(), 201);
    assert_eq!(put(&base, "corrupt", &good).await.status(), 201);

    // Hostile entries, as if stored by an older version: unreadable JSON, every_sec values
    // that wrapped `every_sec * 1000` (2^61 → 0) or divided by zero, a slot past u64, a due
    // member that names no tenant.
    let now = store.now_ms().await.unwrap().to_string();
    inject(
        &redis,
        &cfg,
        "default/corrupt",
        &[("def", "{not json".into())],
    )
    .await;
    let hostile = |every: u64| {
        json!({"every_sec": every, "jitter_sec": 0, "overlap": "skip", "catchup_sec": 0,
               "template": {"tool":"noop","target":"10.0.0.5"}})
        .to_string()
    };
    for (id, every) in [
        ("wrap", 1u64 << 61),
        ("wrap1", (1u64 << 61) + 1),
        ("zero", 0),
    ] {
        inject(
            &redis,
            &cfg,
            &format!("mallory/{id}"),
            &[
                ("def", hostile(every)),
                ("next_slot", now.clone()),
                ("anchor_ms", now.clone()),
            ],
        )
        .await;
    }
    let fine = def_json(json!({"tool":"noop","target":"10.0.0.5","every_sec":60}));
    inject(
        &redis,
        &cfg,
        "mallory/overflow",
        &[
            ("def", fine.clone()),
            // With anchor 0, the slot after u64::MAX - 2 lies past u64::MAX.
            ("next_slot", (u64::MAX - 1).to_string()),
            ("anchor_ms", "0".into()),
        ],
    )
    .await;
    inject(
        &redis,
        &cfg,
        "noslash",
        &[("def", fine), ("next_slot", now.clone())],
    )
    .await;

    // Each is parked with its reason, out of the due set.
    let expect = [
        (&default, "corrupt", "unreadable definition"),
        (&mallory, "wrap", "every_sec"),
        (&mallory, "wrap1", "every_sec"),
        (&mallory, "zero", "every_sec"),
        (&mallory, "overflow", "slot arithmetic"),
    ];
    for (tenant, id, why) in expect {
        let reason = eventually(Duration::from_secs(15), "the schedule parked", || async {
            store.get(tenant, id).await.unwrap().and_then(|v| v.parked)
        })
        .await;
        assert!(reason.contains(why), "{id}: {reason}");
    }
    eventually(
        Duration::from_secs(15),
        "every bad entry left the due set",
        || async {
            let due = due_members(&redis, &cfg).await;
            (due == ["default/good"]).then_some(())
        },
    )
    .await;
    let bases = [base.as_str(), wm.as_str()];
    assert!(
        total(&bases, "scanq_schedules_parked_total{reason=\"unfit\"}").await >= 5,
        "corrupt, wrap, wrap1, zero and the tenantless member"
    );
    assert!(total(&bases, "scanq_schedules_parked_total{reason=\"slot\"}").await >= 1);

    // The good schedule keeps firing after all of that.
    let fired = store.runs(&default, "good", 500).await.unwrap().len();
    eventually(
        Duration::from_secs(15),
        "the good schedule fires on",
        || async {
            let n = store.runs(&default, "good", 500).await.unwrap().len();
            (n >= fired + 3).then_some(())
        },
    )
    .await;

    // The parked schedule's document says so; a replace un-parks it.
    let doc = get_json(&base, "/v1/schedules/corrupt").await;
    assert_eq!(doc["state"], "parked", "{doc}");
    assert!(
        doc["parked_reason"]
            .as_str()
            .unwrap()
            .contains("unreadable definition"),
        "{doc}"
    );
    assert!(doc["next_run_at"].is_null(), "{doc}");
    let listed = get_json(&base, "/v1/schedules").await;
    assert_eq!(listed["schedules"].as_array().unwrap().len(), 2, "{listed}");
    let r = put(&base, "corrupt", &good).await;
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["state"], "active", "{doc}");
    assert!(doc.get("parked_reason").is_none(), "{doc}");
    eventually(
        Duration::from_secs(15),
        "the replaced schedule fires",
        || async { (!store.runs(&default, "corrupt", 5).await.unwrap().is_empty()).then_some(()) },
    )
    .await;

    // A resume un-parks too.
    assert!(store.park("default/good", "parked by hand").await.unwrap());
    let doc = get_json(&base, "/v1/schedules/good").await;
    assert_eq!(doc["state"], "parked", "{doc}");
    let r = http()
        .post(format!("{base}/v1/schedules/good/resume"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["state"], "active", "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cadences_that_would_wrap_or_outrun_the_minimum_are_refused_naming_the_field() {
    let redis = RedisServer::start().await;
    let (mut cfg, catalog, _fx) = setup(&redis, "schedwrap");
    cfg.schedule_min_every_sec = 60;
    let (_a, base) = start_api(cfg.clone(), catalog.clone()).await;
    let mut hourly = cfg.clone();
    hourly.schedule_min_every_sec = 3600;
    let (_b, base_hourly) = start_api(hourly, catalog).await;
    let t = |extra: Value| {
        let mut b = json!({"tool":"noop","target":"10.0.0.5"});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let refused = [
        ("every_sec", t(json!({"every_sec": 1u64 << 61}))),
        ("every_sec", t(json!({"every_sec": (1u64 << 61) + 1}))),
        ("every_sec", t(json!({"every_sec": 366 * 86_400 + 1}))),
        (
            "catchup_sec",
            t(json!({"every_sec": 60, "catchup_sec": 1u64 << 61})),
        ),
        (
            "jitter_sec",
            t(json!({"every_sec": 60, "jitter_sec": 1u64 << 61})),
        ),
        (
            "start_at",
            t(json!({"every_sec": 60, "start_at": "1970-01-01T00:00:00Z"})),
        ),
        (
            "end_at",
            t(json!({"every_sec": 60, "end_at": "9999-01-01T00:00:00Z"})),
        ),
        ("cron", t(json!({"cron": "0 0 31 2 *"}))),
    ];
    for (field, body) in refused {
        let r = put(&base, "s", &body).await;
        assert_eq!(r.status(), 422, "{body}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["field"], field, "{body}: {p}");
    }
    // The minimum interval binds cron: every minute is refused under 3600 s, naming cron.
    let r = put(&base_hourly, "s", &t(json!({"cron": "* * * * *"}))).await;
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["field"], "cron", "{p}");
    assert!(p["detail"].as_str().unwrap().contains("3600"), "{p}");
    let r = put(&base_hourly, "s", &t(json!({"cron": "0,30 * * * *"}))).await;
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["field"], "cron");
    // ... and every five minutes is fine under 60 s; the longest every_sec too.
    assert_eq!(
        put(&base, "five", &t(json!({"cron": "*/5 * * * *"})))
            .await
            .status(),
        201
    );
    assert_eq!(
        put(&base, "yearly", &t(json!({"every_sec": 366 * 86_400})))
            .await
            .status(),
        201
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_at_its_schedule_cap_creates_no_more_but_may_replace() {
    let redis = RedisServer::start().await;
    let (mut cfg, catalog, _fx) = setup(&redis, "schedcap");
    cfg.tenant_max_schedules = 3;
    let (_api, base) = start_api(cfg, catalog).await;
    let body = json!({"tool":"noop","target":"10.0.0.5","every_sec":3600});
    for id in ["s1", "s2", "s3"] {
        assert_eq!(put(&base, id, &body).await.status(), 201);
    }
    let r = put(&base, "s4", &body).await;
    assert_eq!(r.status(), 429);
    let p: Value = r.json().await.unwrap();
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("SCANQ_TENANT_MAX_SCHEDULES"),
        "{p}"
    );
    assert_eq!(put(&base, "s1", &body).await.status(), 200);
    let r = http()
        .delete(format!("{base}/v1/schedules/s1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(put(&base, "s4", &body).await.status(), 201);
    let listed = get_json(&base, "/v1/schedules").await;
    assert_eq!(listed["schedules"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_lists_are_trimmed_and_reads_use_the_change_stored_with_the_run() {
    let redis = RedisServer::start().await;
    let (cfg, catalog, _fx) = setup(&redis, "schedtrim");
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg.clone(), catalog).await;
    let store = store(&cfg);
    let tenant = TenantId::parse("default").unwrap();
    let body = json!({"tool":"noop","target":"10.0.0.5","every_sec":1});
    assert_eq!(put(&base, "tick", &body).await.status(), 201);
    let first = eventually(Duration::from_secs(15), "a succeeded run", || async {
        let doc = get_json(&base, "/v1/schedules/tick").await;
        (doc["last_run"]["state"] == "succeeded").then(|| {
            doc["last_run"]["correlation_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
    })
    .await;
    let r = http()
        .post(format!("{base}/v1/schedules/tick/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The change summary stored with a run (written once when it finished) is what reads
    // show: here a marker no diff could produce.
    let queue = Queue::new(scanq::queue::pool(&cfg).unwrap(), &cfg);
    let cid = CorrelationId::parse(&first).unwrap();
    let job = JobId::new(
        ToolName::parse("noop").unwrap(),
        Default::default(),
        tenant.clone(),
        cid,
    );
    let marker =
        json!({"against": "marker-run", "changed": true, "summary": {"hosts_appeared": 7}});
    let mut con = redis.con().await;
    let () = redis::cmd("HSET")
        .arg(queue.keys().job(&job))
        .arg("change")
        .arg(marker.to_string())
        .query_async::<i64>(&mut con)
        .await
        .map(|_| ())
        .unwrap();
    let doc = get_json(&base, "/v1/schedules/tick").await;
    let change = &doc["last_change"];
    assert_eq!(change["against"], "marker-run", "{doc}");
    assert_eq!(change["run"], first.as_str(), "{doc}");
    assert_eq!(change["summary"]["hosts_appeared"], 7, "{doc}");

    // However many runs are recorded, the list keeps the newest 100.
    let later = store.now_ms().await.unwrap() + 1_000_000;
    for i in 0..130u64 {
        store
            .record_run(&tenant, "tick", &format!("tick.t{i}"), later + i)
            .await
            .unwrap();
    }
    let kept = store.runs(&tenant, "tick", 1000).await.unwrap();
    assert_eq!(kept.len(), 100);
    assert_eq!(kept[0].0, "tick.t129");
    let listed = get_json(&base, "/v1/schedules/tick/runs?limit=500").await;
    assert_eq!(listed["runs"].as_array().unwrap().len(), 100, "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_caps_refuse_a_slot_and_a_revoked_tenant_is_parked() {
    let redis = RedisServer::start().await;
    let (cfg, catalog, _fx) = setup(&redis, "schedstanding");
    // A worker only: no API has published the fleet's auth mode or caps.
    let (_worker, wm) = start_worker_with_metrics(cfg.clone(), catalog).await;
    let store = store(&cfg);
    let queue = Queue::new(scanq::queue::pool(&cfg).unwrap(), &cfg);
    let (red, blue) = (
        TenantId::parse("red").unwrap(),
        TenantId::parse("blue").unwrap(),
    );
    let def = ScheduleDef::try_from(
        ScheduleBody::from_json(&json!({"tool":"noop","target":"10.0.0.5","every_sec":1})).unwrap(),
    )
    .unwrap();
    for t in [&red, &blue] {
        let now = store.now_ms().await.unwrap();
        store
            .put(t, "s", &def, now, Some((now, now)), 100)
            .await
            .unwrap();
    }
    // Fail closed: refused, not fired, not parked.
    eventually(Duration::from_secs(15), "a refused slot", || async {
        (total(
            &[wm.as_str()],
            "scanq_schedule_runs_total{result=\"refused\"}",
        )
        .await
            >= 2)
            .then_some(())
    })
    .await;
    for t in [&red, &blue] {
        assert!(store.runs(t, "s", 10).await.unwrap().is_empty());
        assert_eq!(store.get(t, "s").await.unwrap().unwrap().parked, None);
    }

    // A tokens file that names blue only: blue fires under its caps, red is parked.
    let caps = TenantCaps {
        max_queued: 100,
        max_running: 0,
    };
    queue
        .publish_fleet(false, &[(blue.clone(), caps)])
        .await
        .unwrap();
    let reason = eventually(Duration::from_secs(15), "red parked", || async {
        store.get(&red, "s").await.unwrap().and_then(|v| v.parked)
    })
    .await;
    assert_eq!(reason, "tenant revoked");
    eventually(Duration::from_secs(15), "blue fires", || async {
        (store.runs(&blue, "s", 10).await.unwrap().len() >= 2).then_some(())
    })
    .await;
    assert!(store.runs(&red, "s", 10).await.unwrap().is_empty());
    assert!(
        total(
            &[wm.as_str()],
            "scanq_schedules_parked_total{reason=\"revoked\"}"
        )
        .await
            >= 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_removed_from_the_tokens_file_has_its_schedules_parked_while_others_fire() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = Tokens::write(
        dir.path(),
        &[
            ("red", "red", "submit,read,cancel"),
            ("blue", "blue", "submit,read,cancel"),
        ],
        "",
    );
    let fx = Fixture::new();
    let mut cfg = test_config(&redis, "schedrevoke");
    cfg.schedule_min_every_sec = 1;
    cfg.schedule_tick_ms = 100;
    cfg.catalog = Some(fx.catalog(INPROCESS_TOOLS));
    cfg.api_tokens_file = Some(tokens.path.clone());
    let port = free_port();
    cfg.api_addr = format!("127.0.0.1:{port}").parse().unwrap();
    cfg.worker_metrics_addr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (api_log, worker_log) = (dir.path().join("api.log"), dir.path().join("worker.log"));
    let mut api = Proc::spawn_logged("scanq-api", &cfg, &[], &api_log);
    let mut worker = Proc::spawn_logged("scanq-worker", &cfg, &[], &worker_log);
    let base = format!("http://127.0.0.1:{port}");
    eventually(Duration::from_secs(20), "the API is up", || async {
        let r = http().get(format!("{base}/healthz")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    let call = |method: reqwest::Method, path: &str, token: &str| {
        http()
            .request(method, format!("{base}{path}"))
            .bearer_auth(token)
    };
    let body = json!({"tool":"noop","target":"10.0.0.5","every_sec":1});
    for who in ["red", "blue"] {
        let r = call(reqwest::Method::PUT, "/v1/schedules/s", tokens.get(who))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{who}");
    }
    let store = store(&cfg);
    let (red, blue) = (
        TenantId::parse("red").unwrap(),
        TenantId::parse("blue").unwrap(),
    );
    eventually(
        Duration::from_secs(20),
        "both tenants' schedules fire",
        || async {
            let r = store.runs(&red, "s", 10).await.unwrap().len();
            let b = store.runs(&blue, "s", 10).await.unwrap().len();
            (r >= 1 && b >= 1).then_some(())
        },
    )
    .await;

    // Red leaves the tokens file; a reload publishes the fleet's tenants.
    tokens.revoke_tenant("red");
    api.signal(Signal::SIGHUP);
    let reason = eventually(Duration::from_secs(20), "red's schedule parked", || async {
        store.get(&red, "s").await.unwrap().and_then(|v| v.parked)
    })
    .await;
    assert_eq!(reason, "tenant revoked");
    let red_runs = store.runs(&red, "s", 100).await.unwrap().len();
    let blue_runs = store.runs(&blue, "s", 100).await.unwrap().len();
    eventually(Duration::from_secs(20), "blue fires on", || async {
        let n = store.runs(&blue, "s", 100).await.unwrap().len();
        (n >= blue_runs + 2).then_some(())
    })
    .await;
    assert_eq!(store.runs(&red, "s", 100).await.unwrap().len(), red_runs);
    assert_eq!(
        call(reqwest::Method::GET, "/v1/schedules/s", tokens.get("red"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    // Blue's schedule actions are audited; the fired runs are logged naming their schedule.
    let blue_token = tokens.get("blue");
    for (method, path) in [
        (reqwest::Method::POST, "/v1/schedules/s/pause"),
        (reqwest::Method::POST, "/v1/schedules/s/resume"),
        (reqwest::Method::POST, "/v1/schedules/s/trigger"),
        (reqwest::Method::PUT, "/v1/schedules/s"),
        (reqwest::Method::DELETE, "/v1/schedules/s"),
    ] {
        let r = call(method.clone(), path, blue_token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{method} {path}: {}", r.status());
    }
    let audited = eventually(Duration::from_secs(10), "the audit lines", || async {
        let text = std::fs::read_to_string(&api_log).unwrap_or_default();
        [
            "schedule.create",
            "schedule.pause",
            "schedule.resume",
            "schedule.trigger",
            "schedule.replace",
            "schedule.delete",
        ]
        .iter()
        .all(|a| text.contains(a))
        .then_some(text)
    })
    .await;
    assert!(audited.contains("schedule_id"), "{audited}");
    let logs = format!(
        "{audited}{}",
        std::fs::read_to_string(&worker_log).unwrap_or_default()
    );
    assert!(
        logs.lines()
            .any(|l| l.contains("Scheduled run fired") && l.contains("schedule_id")),
        "no fired-run line names its schedule"
    );
    api.signal(Signal::SIGTERM);
    worker.signal(Signal::SIGTERM);
    api.wait_exit(Duration::from_secs(10)).await;
    worker.wait_exit(Duration::from_secs(10)).await;
}
