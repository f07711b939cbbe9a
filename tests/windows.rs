//! Engagement windows end to end (DESIGN §14, issue 23): a real Redis, the API and workers
//! started for real, jobs submitted over HTTP with `engagement`, and the engagements written
//! with `Queue::put_engagement` (the REST CRUD is another change). Targets are 127.0.0.1 only.
//!
//! Windows are written in UTC with second precision, a few seconds around now, so each test
//! waits seconds, not minutes; every wait polls with a deadline.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::AsyncCommands;
use scanq::catalog::Catalog;
use scanq::config::Config;
use scanq::domain::{CorrelationId, EngagementId, JobId, TenantId, ToolName, Zone};
use scanq::engagement::Engagement;
use scanq::keys::Keys;
use scanq::queue::Queue;
use scanq_tests::*;
use serde_json::{Value, json};

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A window in UTC from `from_ms` to `to_ms` (less than a day apart), on the weekday of its
/// start, at whole seconds.
fn window(from_ms: u64, to_ms: u64) -> Value {
    let clock = |ms: u64| {
        let s = ms / 1000 % 86_400;
        format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    };
    // 1970-01-01 was a Thursday.
    let day = DAYS[((from_ms / 86_400_000 + 3) % 7) as usize];
    json!({"days": [day], "start": clock(from_ms), "end": clock(to_ms)})
}

/// The whole second at or after `ms` (a window's start has second precision).
fn next_second(ms: u64) -> u64 {
    ms.div_ceil(1000) * 1000
}

fn parse_time(s: &str) -> u64 {
    humantime::parse_rfc3339(s)
        .expect("an RFC 3339 time")
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

struct Stack {
    cfg: Config,
    catalog: Catalog,
    queue: Queue,
    base: String,
    starts: std::path::PathBuf,
    _api: Task,
    _fx: Fixture,
    redis: RedisServer,
}

/// What `slownmap` prints before it sleeps: the start of an nmap run with one host found.
const PARTIAL_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<nmaprun scanner="nmap" args="nmap -oX - 127.0.0.1" start="1796000000" version="7.94" xmloutputversion="1.05">
<host starttime="1796000001" endtime="1796000002"><status state="up" reason="localhost-response"/>
<address addr="127.0.0.1" addrtype="ipv4"/>
<ports><port protocol="tcp" portid="22"><state state="open" reason="syn-ack"/><service name="ssh"/></port></ports>
</host>
"#;

/// Redis and the API, with the in-process tools, the fake exec tool `fake` (whose starts are
/// recorded) and `slownmap`, parsed as nmap, which prints [`PARTIAL_XML`] then sleeps 30 s.
async fn stack(name: &str) -> Stack {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let starts = fx.path("starts.log");
    let fake = fx.script("fake", &fake_tool_script(Some(&starts)));
    let slow = fx.script(
        "slownmap",
        &format!("#!/bin/bash\ncat <<'EOF'\n{PARTIAL_XML}EOF\nsleep 30\n"),
    );
    let toml = format!(
        "{INPROCESS_TOOLS}{}{}",
        fake_tool_catalog("fake", &fake, ""),
        fake_tool_catalog("slownmap", &slow, "parser = \"nmap\"")
    );
    let catalog = Catalog::load(Some(&fx.catalog(&toml))).unwrap();
    let cfg = test_config(&redis, name);
    let queue = Queue::with_catalog(scanq::queue::pool(&cfg).unwrap(), &cfg, &catalog);
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    Stack {
        cfg,
        catalog,
        queue,
        base,
        starts,
        _api: api,
        _fx: fx,
        redis,
    }
}

impl Stack {
    async fn worker(&self) -> Task {
        start_worker(self.cfg.clone(), self.catalog.clone()).await
    }

    /// Writes engagement `id` of the open-mode tenant: 127.0.0.1, the given calendar fields.
    async fn engage(&self, id: &str, extra: Value) {
        let mut e = json!({"id": id, "targets": ["127.0.0.1"], "approval": "never"});
        for (k, v) in extra.as_object().unwrap() {
            e[k] = v.clone();
        }
        let e: Engagement = serde_json::from_value(e).expect("an engagement");
        e.calendar.check().expect("a checked calendar");
        self.queue
            .put_engagement(&TenantId::default_tenant(), &e, now_ms())
            .await
            .expect("engagement stored");
    }

    async fn submit(&self, body: Value) {
        let r = post_json(&self.base, "/v1/jobs", &body).await;
        assert_eq!(r.status(), 202, "{:?}", r.text().await);
    }

    async fn job(&self, cid: &str) -> Value {
        get_json(&self.base, &format!("/v1/jobs/{cid}")).await
    }

    /// Polls the job until `pred` holds; returns the document.
    async fn job_until(&self, cid: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        eventually(Duration::from_secs(20), what, || async {
            let doc = self.job(cid).await;
            pred(&doc).then_some(doc)
        })
        .await
    }

    fn starts(&self) -> usize {
        std::fs::read_to_string(&self.starts)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    fn job_id(&self, tool: &str, cid: &str) -> JobId {
        JobId::new(
            ToolName::parse(tool).unwrap(),
            Zone::default(),
            TenantId::default_tenant(),
            CorrelationId::parse(cid).unwrap(),
        )
    }
}

/// A scheduled job waiting for its window says so and when it opens.
fn assert_waits_for_window(doc: &Value, opens_ms: u64) {
    assert_eq!(doc["state"], "scheduled", "{doc}");
    assert_eq!(doc["waiting_for"], "window", "{doc}");
    let retry_at = parse_time(doc["retry_at"].as_str().expect("retry_at"));
    assert!(
        retry_at.abs_diff(opens_ms) <= 1000,
        "retry_at {retry_at} is the opening {opens_ms}: {doc}"
    );
}

#[tokio::test]
async fn a_job_outside_its_window_waits_visibly_then_runs_when_it_opens() {
    // Arrange: a window opening in about three seconds.
    let s = stack("win_opens").await;
    let _worker = s.worker().await;
    let opens = next_second(now_ms() + 3000);
    s.engage(
        "soon",
        json!({"windows": [window(opens, opens + 3_600_000)]}),
    )
    .await;

    // Act
    s.submit(
        json!({"tool": "noop", "target": "127.0.0.1", "engagement": "soon",
        "correlation_id": "w-opens"}),
    )
    .await;

    // Assert: waiting, in the document and the summary, then run once the window opens.
    let doc = s.job("w-opens").await;
    assert_waits_for_window(&doc, opens);
    let summary = get_json(&s.base, "/v1/jobs/w-opens?view=summary").await;
    assert_eq!(summary["waiting_for"], "window", "{summary}");
    let done = wait_done(&s.base, "w-opens", Duration::from_secs(20)).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(done.get("waiting_for").is_none(), "{done}");
    let started = parse_time(done["started_at"].as_str().unwrap());
    assert!(
        started >= opens,
        "started {started} before the opening {opens}"
    );
    assert_eq!(done["attempt"], 1);
}

#[tokio::test]
async fn a_blackout_ending_in_seconds_defers_the_job_which_then_runs() {
    let s = stack("win_blackout").await;
    let _worker = s.worker().await;
    let now = now_ms();
    let ends = now + 3000;
    s.engage(
        "frozen",
        json!({"blackouts": [{"start_ms": now - 60_000, "end_ms": ends, "reason": "change freeze"}]}),
    )
    .await;

    s.submit(
        json!({"tool": "noop", "target": "127.0.0.1", "engagement": "frozen",
        "correlation_id": "w-blackout"}),
    )
    .await;

    assert_waits_for_window(&s.job("w-blackout").await, ends);
    let done = wait_done(&s.base, "w-blackout", Duration::from_secs(20)).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(parse_time(done["started_at"].as_str().unwrap()) >= ends);
}

#[tokio::test]
async fn a_window_closing_mid_scan_stops_the_job_and_keeps_its_partial_result() {
    // Arrange: a window that opened a minute ago and closes in about three seconds, with
    // stop_at_window_end; a scan that prints as it goes and would run for 30 s.
    let s = stack("win_closes").await;
    let _worker = s.worker().await;
    let now = now_ms();
    let closes = next_second(now + 3000);
    s.engage(
        "closing",
        json!({"windows": [window(now - 60_000, closes)], "stop_at_window_end": true}),
    )
    .await;

    // Act
    s.submit(
        json!({"tool": "fake", "target": "127.0.0.1", "engagement": "closing",
        "args": "--progress 2 --sleep-ms 30000", "max_attempts": 3,
        "correlation_id": "w-closes"}),
    )
    .await;

    // Assert
    s.job_until("w-closes", "running", |d| d["state"] == "running")
        .await;
    let done = wait_done(&s.base, "w-closes", Duration::from_secs(20)).await;
    assert_eq!(done["state"], "cancelled", "{done}");
    assert_eq!(done["error"]["type"], "window_closed", "{done}");
    assert!(
        done["error"]["recovery_suggestion"]
            .as_str()
            .unwrap()
            .contains("next window")
    );
    assert_eq!(done["stop_reason"], "window_closed", "{done}");
    let stdout = done["result"]["stdout"].as_str().unwrap_or_default();
    assert!(
        stdout.contains("scanned 127.0.0.1"),
        "partial result kept: {done}"
    );
    let finished = parse_time(done["finished_at"].as_str().unwrap());
    assert!(
        finished >= closes && finished < closes + 10_000,
        "stopped at the window's end ({closes}), not at the scan's: {finished}"
    );
    // Not retried by itself, though attempts remain: cancelled is final.
    assert_eq!(done["attempt"], 1);
    assert!(done["retry_at"].is_null(), "{done}");
    assert_eq!(s.starts(), 1);
}

/// The fleet's check on its own: the engagement does not say `stop_at_window_end`, so the
/// running worker neither registers an end nor arms a timer; the test registers the attempt's
/// end in its queue's `ends` zset directly (as a worker would), due by Redis' clock. A second
/// worker runs beside the first, and whichever worker's duty loop sweeps first stops the job
/// through Redis (`cancel_requested`, `stop_reason`, the cancel channel): nothing in the
/// running worker's own clock is involved.
#[tokio::test]
async fn the_fleets_sweep_stops_a_running_job_by_redis_time_without_the_workers_timer() {
    let s = stack("win_fleet").await;
    let _first = s.worker().await;
    let now = now_ms();
    s.engage(
        "open",
        json!({"windows": [window(now - 60_000, now + 3_600_000)]}),
    )
    .await;
    s.submit(
        json!({"tool": "fake", "target": "127.0.0.1", "engagement": "open",
        "args": "--progress 2 --sleep-ms 30000", "correlation_id": "w-fleet"}),
    )
    .await;
    s.job_until("w-fleet", "running", |d| d["state"] == "running")
        .await;
    let _second = s.worker().await;

    // Act: register the end, one second from Redis' now.
    let keys = Keys::for_fleet(&s.cfg, Some(&s.catalog));
    let id = s.job_id("fake", "w-fleet");
    let mut con = s.redis.con().await;
    let fence: String = con.hget(keys.job(&id), "fence").await.unwrap();
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut con).await.unwrap();
    let end = secs * 1000 + micros / 1000 + 1000;
    let _: i64 = con
        .zadd(
            keys.job_keys(&id).window_ends(),
            format!("{fence}:{}", id.job_ref()),
            end,
        )
        .await
        .unwrap();

    // Assert
    let done = wait_done(&s.base, "w-fleet", Duration::from_secs(20)).await;
    assert_eq!(done["state"], "cancelled", "{done}");
    assert_eq!(done["error"]["type"], "window_closed", "{done}");
    assert_eq!(done["stop_reason"], "window_closed", "{done}");
    let stdout = done["result"]["stdout"].as_str().unwrap_or_default();
    assert!(
        stdout.contains("scanned 127.0.0.1"),
        "partial result kept: {done}"
    );
    let left: u64 = con.zcard(keys.job_keys(&id).window_ends()).await.unwrap();
    assert_eq!(left, 0, "the swept member is gone");
}

#[tokio::test]
async fn a_job_claimed_outside_its_window_goes_back_to_scheduled_without_using_an_attempt() {
    // Arrange: admitted while the engagement is open, then the engagement changes to a window
    // opening in a few seconds before any worker claims the job.
    let s = stack("win_defer").await;
    s.engage("changing", json!({})).await;
    s.submit(
        json!({"tool": "noop", "target": "127.0.0.1", "engagement": "changing",
        "max_attempts": 1, "correlation_id": "w-defer"}),
    )
    .await;
    assert_eq!(s.job("w-defer").await["state"], "queued");
    let opens = next_second(now_ms() + 4000);
    s.engage(
        "changing",
        json!({"windows": [window(opens, opens + 3_600_000)]}),
    )
    .await;

    // Act
    let _worker = s.worker().await;

    // Assert: back to scheduled for the opening, the attempt not counted; then it runs.
    let doc = s
        .job_until("w-defer", "deferred to its window", |d| {
            d["state"] == "scheduled"
        })
        .await;
    assert_waits_for_window(&doc, opens);
    assert_eq!(doc["attempt"], 0, "{doc}");
    let done = wait_done(&s.base, "w-defer", Duration::from_secs(20)).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(
        done["attempt"], 1,
        "the deferred claim used no attempt: {done}"
    );
}

#[tokio::test]
async fn a_job_whose_engagement_was_deleted_fails_without_running() {
    let s = stack("win_deleted").await;
    s.engage("gone", json!({})).await;
    s.submit(
        json!({"tool": "fake", "target": "127.0.0.1", "engagement": "gone",
        "max_attempts": 3, "correlation_id": "w-gone"}),
    )
    .await;
    let deleted = s
        .queue
        .delete_engagement(
            &TenantId::default_tenant(),
            &EngagementId::parse("gone").unwrap(),
        )
        .await
        .unwrap();
    assert!(deleted);

    let _worker = s.worker().await;

    let done = wait_done(&s.base, "w-gone", Duration::from_secs(20)).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(done["error"]["type"], "validation_error", "{done}");
    let message = done["error"]["message"].as_str().unwrap();
    assert!(message.contains("engagement gone"), "{message}");
    assert_eq!(s.starts(), 0, "the tool never ran");
}

#[tokio::test]
async fn a_job_whose_engagement_expired_while_it_waited_fails_without_running() {
    // Arrange: admitted a moment before the engagement expires; no worker until after.
    let s = stack("win_expired").await;
    let expires = now_ms() + 1500;
    s.engage("brief", json!({"expires_at_ms": expires})).await;
    s.submit(
        json!({"tool": "fake", "target": "127.0.0.1", "engagement": "brief",
        "correlation_id": "w-expired"}),
    )
    .await;
    eventually(Duration::from_secs(5), "the engagement expired", || async {
        (now_ms() > expires).then_some(())
    })
    .await;

    // Act
    let _worker = s.worker().await;

    // Assert
    let done = wait_done(&s.base, "w-expired", Duration::from_secs(20)).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(done["error"]["type"], "validation_error", "{done}");
    let message = done["error"]["message"].as_str().unwrap();
    assert!(message.contains("engagement brief expired"), "{message}");
    assert_eq!(s.starts(), 0, "the tool never ran");
}

#[tokio::test]
async fn an_nmap_scan_stopped_at_its_windows_end_keeps_its_xml_for_export() {
    // Arrange
    let s = stack("win_xml").await;
    let _worker = s.worker().await;
    let now = now_ms();
    let closes = next_second(now + 3000);
    s.engage(
        "night",
        json!({"windows": [window(now - 60_000, closes)], "stop_at_window_end": true}),
    )
    .await;

    // Act
    s.submit(
        json!({"tool": "slownmap", "target": "127.0.0.1", "engagement": "night",
        "correlation_id": "w-xml"}),
    )
    .await;
    let done = wait_done(&s.base, "w-xml", Duration::from_secs(20)).await;

    // Assert: the XML as the tool wrote it, and what it found parsed and exportable.
    assert_eq!(done["state"], "cancelled", "{done}");
    assert_eq!(done["stop_reason"], "window_closed", "{done}");
    assert_eq!(
        done["result"]["parsed"]["hosts"][0]["ports"][0]["port"], 22,
        "{done}"
    );
    let xml = http()
        .get(format!("{}/v1/jobs/w-xml/result.xml", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(xml.status(), 200);
    assert_eq!(xml.text().await.unwrap(), PARTIAL_XML);
    let csv = http()
        .get(format!("{}/v1/jobs/w-xml/result.csv", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(
        csv.text()
            .await
            .unwrap()
            .contains("127.0.0.1,22,tcp,open,ssh")
    );
}
