//! `GET /v1/stats` and `/metrics` (DESIGN §2, §7): counts, queue depth and age, percentiles of
//! queue wait and run time, and Prometheus text from the API and a worker that moves as jobs
//! finish. Real redis-server, real API and worker in-process.

use std::collections::BTreeMap;
use std::time::Duration;

use scanq::catalog::Catalog;
use scanq::config::Config;
use scanq::domain::ToolName;
use scanq::keys::Keys;
use scanq::stats::Stats;
use scanq_tests::*;
use serde_json::Value;

fn catalog(fixture: &Fixture) -> Catalog {
    Catalog::load(Some(&fixture.catalog(INPROCESS_TOOLS))).expect("catalog")
}

async fn submit(base: &str, body: &str) -> Value {
    let resp = http()
        .post(format!("{base}/v1/jobs"))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 202, "submit {body}");
    resp.json().await.expect("json")
}

async fn get_json(url: &str) -> Value {
    let resp = http().get(url).send().await.expect("get");
    assert_eq!(resp.status(), 200, "{url}");
    resp.json().await.expect("json")
}

fn tool_stats<'a>(stats: &'a Value, tool: &str) -> &'a Value {
    stats["tools"]
        .as_array()
        .expect("tools array")
        .iter()
        .find(|t| t["tool"] == tool)
        .unwrap_or_else(|| panic!("no stats for {tool}: {stats}"))
}

/// One sample of the Prometheus text format: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text exposition format (0.0.4) strictly enough to catch a malformed
/// line: names and label names from the allowed alphabet, quoted label values with escapes,
/// a float value, and a `# TYPE` before any sample of a family.
fn parse_prometheus(text: &str) -> Vec<Sample> {
    let is_name = |s: &str| {
        !s.is_empty()
            && !s.starts_with(|c: char| c.is_ascii_digit())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap_or("");
            let name = parts.next().unwrap_or("");
            assert!(is_name(name), "bad metric name in {line:?}");
            if kind == "TYPE" {
                let t = parts.next().unwrap_or("");
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                    "bad type in {line:?}"
                );
                typed.insert(name.to_owned(), t.to_owned());
            } else {
                assert_eq!(kind, "HELP", "unknown comment {line:?}");
            }
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => panic!("no value in {line:?}"),
        };
        assert!(is_name(name), "bad metric name in {line:?}");
        let (labels, rest) = match rest.strip_prefix('{') {
            Some(body) => parse_labels(body, line),
            None => (BTreeMap::new(), rest),
        };
        let value_text = rest.trim().split(' ').next().unwrap_or("");
        let value = match value_text {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value {v:?} in {line:?}")),
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| typed.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        assert!(
            typed.contains_key(family),
            "sample before its # TYPE: {line:?}"
        );
        out.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    out
}

/// Parses `k="v",…}` and returns the labels and what follows the `}`; panics when malformed
/// (an index out of bounds included).
fn parse_labels<'a>(body: &'a str, line: &str) -> (BTreeMap<String, String>, &'a str) {
    let b = body.as_bytes();
    let mut labels = BTreeMap::new();
    let mut i = 0;
    loop {
        match b[i] {
            b'}' => return (labels, &body[i + 1..]),
            b',' => i += 1,
            _ => {
                let eq = body[i..].find('=').expect("label =") + i;
                let key = &body[i..eq];
                assert!(
                    !key.is_empty()
                        && key.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
                        && !key.starts_with(|c: char| c.is_ascii_digit()),
                    "bad label name {key:?} in {line:?}"
                );
                assert_eq!(b[eq + 1], b'"', "unquoted label value in {line:?}");
                i = eq + 2;
                let mut value = Vec::new();
                loop {
                    match b[i] {
                        b'"' => break,
                        b'\\' => {
                            value.push(match b[i + 1] {
                                b'n' => b'\n',
                                c @ (b'\\' | b'"') => c,
                                c => panic!("bad escape {c} in {line:?}"),
                            });
                            i += 2;
                        }
                        c => {
                            value.push(c);
                            i += 1;
                        }
                    }
                }
                i += 1;
                labels.insert(key.to_owned(), String::from_utf8(value).expect("utf-8"));
            }
        }
    }
}

/// The value of the sample named `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

#[tokio::test]
async fn stats_percentiles_match_the_recorded_samples_exactly() {
    let redis = RedisServer::start().await;
    let fixture = Fixture::new();
    let cfg = test_config(&redis, "pct");
    let (_api, base) = start_api(cfg.clone(), catalog(&fixture)).await;
    let tk = Keys::new(&cfg.key_prefix).tool(&ToolName::parse("noop").unwrap());
    let mut con = redis.con().await;
    // Newest first, as the scripts LPUSH them: run times 1..=100 ms, waits 10, 20, 30 ms.
    for ms in (1..=100u64).rev() {
        let _: () = redis::cmd("LPUSH")
            .arg(tk.run_samples())
            .arg(ms)
            .query_async(&mut con)
            .await
            .unwrap();
    }
    let _: () = redis::cmd("LPUSH")
        .arg(tk.wait_samples())
        .arg(&[30, 10, 20])
        .query_async(&mut con)
        .await
        .unwrap();

    let stats = get_json(&format!("{base}/v1/stats")).await;

    let noop = tool_stats(&stats, "noop");
    assert_eq!(noop["run_time"]["samples"], 100, "{noop}");
    assert_eq!(noop["run_time"]["p50_ms"], 50);
    assert_eq!(noop["run_time"]["p95_ms"], 95);
    assert_eq!(noop["run_time"]["p99_ms"], 99);
    assert_eq!(noop["queue_wait"]["p50_ms"], 20);
    assert_eq!(noop["queue_wait"]["p99_ms"], 30);
    let sleep = tool_stats(&stats, "sleep");
    assert_eq!(sleep["run_time"]["samples"], 0);
    assert_eq!(sleep["run_time"]["p50_ms"], Value::Null);
}

#[tokio::test]
async fn stats_percentiles_follow_the_run_times_of_sleep_jobs() {
    let redis = RedisServer::start().await;
    let fixture = Fixture::new();
    let cfg = Config {
        worker_concurrency: 16,
        ..test_config(&redis, "sleeps")
    };
    let (_api, base) = start_api(cfg.clone(), catalog(&fixture)).await;
    let _worker = start_worker(cfg, catalog(&fixture)).await;

    // Ten jobs sleeping 200, 400, … 2000 ms: nearest-rank p50 is the 5th (1000 ms), p95 and
    // p99 the 10th (2000 ms). Gaps of 200 ms leave room for claim and write overhead.
    for i in 1..=10 {
        submit(
            &base,
            &format!(
                r#"{{"tool":"sleep","target":"10.0.0.5","args":"--ms {}","correlation_id":"s{i}"}}"#,
                i * 200
            ),
        )
        .await;
    }
    for i in 1..=10 {
        let done = wait_done(&base, &format!("s{i}"), Duration::from_secs(30)).await;
        assert_eq!(done["state"], "succeeded", "{done}");
    }

    let stats = get_json(&format!("{base}/v1/stats")).await;

    let sleep = tool_stats(&stats, "sleep");
    let run = &sleep["run_time"];
    assert_eq!(run["samples"], 10, "{sleep}");
    let ms = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("{sleep}"));
    assert!((1000..1200).contains(&ms(&run["p50_ms"])), "{sleep}");
    assert!((2000..2200).contains(&ms(&run["p95_ms"])), "{sleep}");
    assert!((2000..2200).contains(&ms(&run["p99_ms"])), "{sleep}");
    assert_eq!(sleep["queue_wait"]["samples"], 10);
    assert_eq!(sleep["counts"]["succeeded"], 10);
    assert_eq!(sleep["counts"]["running"], 0);
    assert_eq!(sleep["queue_depth"], 0);
    assert_eq!(sleep["oldest_queued_age_ms"], Value::Null);

    // The last hour, per minute: the ten finished jobs are counted (by the completion script),
    // and the API sampled depth and p95s into the series (it samples at start, then every 20 s).
    let series = sleep["series"]
        .as_array()
        .unwrap_or_else(|| panic!("{sleep}"));
    assert_eq!(series.len(), 60, "one point a minute for an hour");
    let finished: i64 = series.iter().map(|p| p["finished"].as_i64().unwrap()).sum();
    assert_eq!(finished, 10, "{series:?}");
    assert!(
        series
            .windows(2)
            .all(|w| w[0]["minute_ms"].as_u64() < w[1]["minute_ms"].as_u64()),
        "oldest first"
    );
    eventually(Duration::from_secs(30), "a sampled minute", || {
        let base = base.clone();
        async move {
            let stats = get_json(&format!("{base}/v1/stats")).await;
            let sleep = tool_stats(&stats, "sleep");
            sleep["series"]
                .as_array()?
                .iter()
                .any(|p| p["depth"].is_i64())
                .then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn queue_depth_and_oldest_age_show_waiting_jobs_in_stats_and_metrics() {
    let redis = RedisServer::start().await;
    let fixture = Fixture::new();
    let cfg = test_config(&redis, "depth");
    // No worker: the jobs stay queued.
    let (_api, base) = start_api(cfg.clone(), catalog(&fixture)).await;
    for i in 0..3 {
        submit(
            &base,
            &format!(r#"{{"tool":"noop","target":"10.0.0.5","correlation_id":"q{i}"}}"#),
        )
        .await;
    }

    // The oldest job ages with the clock: wait until it is a second old.
    let stats = eventually(Duration::from_secs(10), "oldest job 1 s old", || {
        let url = format!("{base}/v1/stats");
        async move {
            let stats = get_json(&url).await;
            (tool_stats(&stats, "noop")["oldest_queued_age_ms"].as_u64()? >= 1000).then_some(stats)
        }
    })
    .await;
    let noop = tool_stats(&stats, "noop");
    assert_eq!(noop["counts"]["queued"], 3, "{noop}");
    assert_eq!(noop["queue_depth"], 3);
    assert_eq!(tool_stats(&stats, "sleep")["queue_depth"], 0);
    let metrics = parse_prometheus(&get_text(&format!("{base}/metrics")).await);
    assert_eq!(
        value(&metrics, "scanq_queue_depth", &[("tool", "noop")]),
        Some(3.0)
    );
    assert!(
        value(
            &metrics,
            "scanq_queue_oldest_age_seconds",
            &[("tool", "noop")]
        ) >= Some(1.0)
    );
    assert_eq!(value(&metrics, "scanq_workers_alive", &[]), Some(0.0));

    // Cancelled jobs leave their stream entries behind; they are not counted as waiting.
    for i in 0..3 {
        let resp = http()
            .delete(format!("{base}/v1/jobs/q{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let stats = get_json(&format!("{base}/v1/stats")).await;
    let noop = tool_stats(&stats, "noop");
    assert_eq!(noop["queue_depth"], 0, "{noop}");
    assert_eq!(noop["oldest_queued_age_ms"], Value::Null);
    assert_eq!(noop["counts"]["cancelled"], 3);
}

#[tokio::test]
async fn the_stats_reader_counts_only_workers_whose_heartbeat_is_live() {
    let redis = RedisServer::start().await;
    let cfg = test_config(&redis, "alive");
    let keys = Keys::new(&cfg.key_prefix);
    let stats = Stats::new(scanq::queue::pool(&cfg).unwrap(), keys.clone());
    let mut con = redis.con().await;
    let (secs, _): (u64, u64) = redis::cmd("TIME").query_async(&mut con).await.unwrap();
    let now_ms = secs * 1000;
    let doc = |id: &str| format!(r#"{{"id":"{id}","pid":7,"tools":{{"noop":true}}}}"#);
    let _: () = redis::pipe()
        .zadd(keys.workers(), "live", now_ms + 60_000)
        .zadd(keys.workers(), "lapsed", now_ms - 1)
        .set(keys.worker("live"), doc("live"))
        .set(keys.worker("lapsed"), doc("lapsed"))
        .query_async(&mut con)
        .await
        .unwrap();

    let alive = stats.workers_alive().await.unwrap();
    let workers = stats.workers().await.unwrap();

    assert_eq!(alive, 1);
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].id, "live");
    assert_eq!(workers[0].heartbeat_expires_ms, now_ms + 60_000);
    assert_eq!(workers[0].tools.get("noop"), Some(&true));
}

#[tokio::test]
async fn api_and_worker_metrics_parse_and_move_as_jobs_finish() {
    let redis = RedisServer::start().await;
    let fixture = Fixture::new();
    let cfg = test_config(&redis, "metrics");
    let (_api, base) = start_api(cfg.clone(), catalog(&fixture)).await;
    let (_worker, worker_url) = start_worker_with_metrics(cfg, catalog(&fixture)).await;
    let before = parse_prometheus(&get_text(&format!("{worker_url}/metrics")).await);
    assert_eq!(
        value(&before, "scanq_jobs_finished_total", &[("tool", "noop")]),
        None
    );

    for i in 0..3 {
        submit(
            &base,
            &format!(r#"{{"tool":"noop","target":"10.0.0.5","correlation_id":"ok{i}"}}"#),
        )
        .await;
    }
    submit(
        &base,
        r#"{"tool":"sleep","target":"10.0.0.5","args":"--ms 10 --fail","correlation_id":"bad"}"#,
    )
    .await;
    for id in ["ok0", "ok1", "ok2", "bad"] {
        wait_done(&base, id, Duration::from_secs(20)).await;
    }

    // The worker counts a job once its result is written, just after the state changes.
    let worker = eventually(Duration::from_secs(10), "worker counted 4 jobs", || {
        let url = format!("{worker_url}/metrics");
        async move {
            let m = parse_prometheus(&get_text(&url).await);
            let failed = value(
                &m,
                "scanq_jobs_finished_total",
                &[("tool", "sleep"), ("state", "failed")],
            )?;
            (failed == 1.0).then_some(m)
        }
    })
    .await;
    let noop = [("tool", "noop")];
    assert_eq!(
        value(
            &worker,
            "scanq_jobs_finished_total",
            &[("tool", "noop"), ("state", "succeeded"), ("error_type", "")]
        ),
        Some(3.0)
    );
    assert_eq!(
        value(
            &worker,
            "scanq_jobs_finished_total",
            &[("tool", "sleep"), ("error_type", "execution_error")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&worker, "scanq_job_queue_wait_seconds_count", &noop),
        Some(3.0)
    );
    assert_eq!(
        value(&worker, "scanq_job_run_seconds_count", &noop),
        Some(3.0)
    );
    assert_eq!(value(&worker, "scanq_jobs_running", &noop), Some(0.0));

    let api = parse_prometheus(&get_text(&format!("{base}/metrics")).await);
    assert_eq!(value(&api, "scanq_jobs_submitted_total", &noop), Some(3.0));
    assert_eq!(value(&api, "scanq_workers_alive", &[]), Some(1.0));
    assert_eq!(value(&api, "scanq_queue_depth", &noop), Some(0.0));
    assert_eq!(
        value(&api, "scanq_queue_oldest_age_seconds", &noop),
        Some(0.0)
    );
    assert!(
        value(
            &api,
            "scanq_http_requests_total",
            &[("route", "/v1/jobs"), ("method", "POST"), ("status", "202")]
        ) == Some(4.0)
    );
    assert!(
        value(
            &api,
            "scanq_http_request_duration_seconds_count",
            &[("route", "/v1/jobs")]
        )
        .is_some()
    );
}

#[tokio::test]
async fn metrics_still_answer_without_fleet_gauges_when_redis_is_down() {
    let mut redis = RedisServer::start().await;
    let fixture = Fixture::new();
    let cfg = test_config(&redis, "metrics-down");
    let (_api, base) = start_api(cfg, catalog(&fixture)).await;
    let up = parse_prometheus(&get_text(&format!("{base}/metrics")).await);
    assert_eq!(
        value(&up, "scanq_queue_depth", &[("tool", "noop")]),
        Some(0.0)
    );

    redis.kill();
    let down = parse_prometheus(&get_text(&format!("{base}/metrics")).await);
    let stats = http().get(format!("{base}/v1/stats")).send().await.unwrap();

    assert!(
        down.iter().all(|s| s.name != "scanq_queue_depth"),
        "stale depth exported while Redis is down"
    );
    assert_eq!(value(&down, "scanq_workers_alive", &[]), Some(0.0));
    assert_eq!(stats.status(), 503);
    assert_eq!(stats.headers()["content-type"], "application/problem+json");
}

#[test]
fn the_prometheus_parser_refuses_malformed_text() {
    let ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\\\"2\",y=\"\"} 3\n";
    let s = parse_prometheus(ok);
    assert_eq!(s[0].labels["x"], "1\"2");
    assert_eq!(s[0].value, 3.0);
    for bad in [
        "a_total 1\n",                    // no TYPE
        "# TYPE a counter\na{x=1} 1\n",   // unquoted label
        "# TYPE a counter\na 1x\n",       // bad value
        "# TYPE a counter\n1a 1\n",       // bad name
        "# TYPE a counter\na{x=\"1} 1\n", // unterminated
    ] {
        assert!(
            std::panic::catch_unwind(|| parse_prometheus(bad)).is_err(),
            "accepted {bad:?}"
        );
    }
}

/// The metric names of DESIGN §7 (the public contract dashboards rely on).
const DESIGN_METRICS: &[&str] = &[
    "scanq_jobs_submitted_total",
    "scanq_jobs_finished_total",
    "scanq_job_queue_wait_seconds",
    "scanq_job_run_seconds",
    "scanq_jobs_running",
    "scanq_queue_depth",
    "scanq_queue_oldest_age_seconds",
    "scanq_breaker_state",
    "scanq_breaker_transitions_total",
    "scanq_http_requests_total",
    "scanq_http_request_duration_seconds",
    "scanq_workers_alive",
];

#[test]
fn the_grafana_dashboard_queries_only_the_designed_metrics_and_covers_them() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana-scanq.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard file"))
            .expect("JSON");
    let exprs: Vec<&str> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .map(|t| t["expr"].as_str().expect("expr"))
        .collect();
    let mut used = std::collections::BTreeSet::new();
    for expr in &exprs {
        for (i, _) in expr.match_indices("scanq_") {
            let name: String = expr[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let family = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|f| DESIGN_METRICS.contains(f))
                .unwrap_or(&name)
                .to_owned();
            assert!(
                DESIGN_METRICS.contains(&family.as_str()),
                "{name} is not a DESIGN §7 metric"
            );
            used.insert(family);
        }
    }
    for wanted in [
        "scanq_queue_depth",
        "scanq_queue_oldest_age_seconds",
        "scanq_jobs_finished_total",
        "scanq_job_queue_wait_seconds",
        "scanq_job_run_seconds",
        "scanq_breaker_state",
        "scanq_workers_alive",
        "scanq_http_requests_total",
        "scanq_http_request_duration_seconds",
    ] {
        assert!(
            used.contains(wanted),
            "the dashboard does not chart {wanted}"
        );
    }
    // Every DESIGN metric is one this code base registers under that name.
    let m = scanq::metrics::Metrics::new();
    m.jobs_submitted.with_label_values(&["t", "z"]).inc();
    m.jobs_finished
        .with_label_values(&["t", "z", "s", "e"])
        .inc();
    m.queue_wait.with_label_values(&["t", "z"]).observe(1.0);
    m.run_time.with_label_values(&["t", "z"]).observe(1.0);
    m.jobs_running.with_label_values(&["t", "z"]).set(1);
    m.queue_depth.with_label_values(&["t", "z"]).set(1);
    m.queue_oldest_age.with_label_values(&["t", "z"]).set(1);
    m.breaker_state.with_label_values(&["t", "z"]).set(1);
    m.breaker_transitions
        .with_label_values(&["t", "z", "closed", "open"])
        .inc();
    m.http_requests
        .with_label_values(&["r", "GET", "200"])
        .inc();
    m.http_duration.with_label_values(&["r"]).observe(1.0);
    m.workers_alive.set(1);
    let text = m.render();
    parse_prometheus(&text);
    for name in DESIGN_METRICS {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("# TYPE {name} "))),
            "{name} is not registered"
        );
    }
}
