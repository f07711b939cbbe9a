//! A hostile corpus of schedule bodies sent over real HTTP (issue 19): numeric extremes,
//! floats, strings for numbers, wrong types, unicode (RTL, zero-width), control characters,
//! ~1 MB strings, duplicate keys, nested junk, unknown fields, bad cron expressions and time
//! zones, start/end out of bounds. Every one is refused with a problem+json naming the field
//! (422; a duplicate key is the JSON layer's 400, naming the key), never a 5xx, nothing is
//! stored, and the scheduler still fires a good schedule afterwards. The in-process `noop` tool.

use std::time::Duration;

use scanq::catalog::Catalog;
use scanq::domain::TenantId;
use scanq::schedule::ScheduleStore;
use scanq_tests::*;
use serde_json::{Value, json};

/// One hostile body: the raw JSON text, the field the refusal must name, the status.
struct Case {
    body: String,
    field: String,
    status: u16,
}

fn case(body: Value, field: &str) -> Case {
    Case {
        body: body.to_string(),
        field: field.to_owned(),
        status: 422,
    }
}

/// A good template with `field` set to the raw JSON `value` (numbers too big for serde_json's
/// own types are written as text).
fn with_raw(base: &str, field: &str, value: &str) -> String {
    format!(
        "{{\"tool\":\"noop\",\"target\":\"127.0.0.1\"{base},\"{field}\":{value}}}",
        base = if base.is_empty() {
            String::new()
        } else {
            format!(",{base}")
        }
    )
}

fn raw(body: String, field: &str) -> Case {
    Case {
        body,
        field: field.to_owned(),
        status: 422,
    }
}

fn corpus() -> Vec<Case> {
    let mut cases = Vec::new();
    let huge = "x".repeat(1_000_000);
    let numeric_junk = [
        "2305843009213693952",  // 2^61: wrapped `* 1000` to 0
        "2305843009213693953",  // 2^61 + 1: wrapped to 1 s
        "18446744073709551616", // 2^64
        "18446744073709551615", // u64::MAX
        "340282366920938463463374607431768211456",
        "-1",
        "-9223372036854775808",
        "1e308",
        "-1e308",
        "1.5",
        "0.0001",
        "\"3600\"",
        "\"0x10\"",
        "true",
        "[]",
        "[3600]",
        "{}",
        "{\"$gt\":0}",
    ];
    // The schedule's numbers, each with a cadence that is otherwise fine.
    for (field, base) in [
        ("every_sec", ""),
        ("jitter_sec", "\"every_sec\":60"),
        ("catchup_sec", "\"every_sec\":60"),
    ] {
        for v in numeric_junk {
            cases.push(raw(with_raw(base, field, v), field));
        }
    }
    for v in ["0", "31622401"] {
        cases.push(raw(with_raw("", "every_sec", v), "every_sec"));
    }
    cases.push(raw(
        with_raw("\"every_sec\":60", "jitter_sec", "3601"),
        "jitter_sec",
    ));
    cases.push(raw(
        with_raw("\"every_sec\":60", "catchup_sec", "31622401"),
        "catchup_sec",
    ));
    // The template's numbers.
    for field in ["timeout_sec", "max_attempts", "delay_sec"] {
        for v in ["18446744073709551616", "-1", "1e308", "\"10\"", "[1]"] {
            cases.push(raw(with_raw("\"every_sec\":60", field, v), field));
        }
    }
    let t = |extra: Value| {
        let mut b = json!({"tool":"noop","target":"127.0.0.1"});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    // Cron expressions.
    for c in [
        json!(""),
        json!("   "),
        json!("@reboot"),
        json!("* * * * * *"),
        json!("0 */5 * * * *"),
        json!("61 * * * *"),
        json!("60 24 32 13 8"),
        json!("*/0 * * * *"),
        json!("0 0 31 2 *"),
        json!("\u{202e}0 3 * * *"),
        json!("0\u{200b} 3 * * *"),
        json!("0 3 * * *\u{0007}"),
        json!("0 3 * * *\u{0000}"),
        json!(huge.clone()),
        json!(42),
        json!(["0 3 * * *"]),
        json!({"minute": 0}),
        json!(true),
    ] {
        cases.push(case(t(json!({ "cron": c })), "cron"));
    }
    // Time zones.
    for z in [
        json!("Mars/Olympus"),
        json!(""),
        json!("UTC\u{0000}"),
        json!("Europe/Paris\u{200b}"),
        json!("\u{202e}UTC"),
        json!("../../etc/passwd"),
        json!("Etc/GMT+99"),
        json!(huge.clone()),
        json!(5),
        json!(["UTC"]),
    ] {
        cases.push(case(
            t(json!({"cron": "0 3 * * *", "timezone": z})),
            "timezone",
        ));
    }
    cases.push(case(
        t(json!({"every_sec": 60, "timezone": "UTC"})),
        "timezone",
    ));
    // Overlap policies.
    for o in [
        json!("sometimes"),
        json!(""),
        json!("SKIP"),
        json!("skip\u{0000}"),
        json!("s\u{200b}kip"),
        json!(huge.clone()),
        json!(1),
        json!(["skip"]),
    ] {
        cases.push(case(t(json!({"every_sec": 60, "overlap": o})), "overlap"));
    }
    // Start and end times.
    for field in ["start_at", "end_at"] {
        for v in [
            json!("1970-01-01T00:00:00Z"),
            json!("1999-12-31T23:59:59Z"),
            json!("2200-01-01T00:00:00Z"),
            json!("9999-12-31T23:59:59Z"),
            json!("+275760-09-13T00:00:00Z"),
            json!("2026-13-01T00:00:00Z"),
            json!("not a time"),
            json!(""),
            json!("2026-11-29T10:00:00Z\u{0000}"),
            json!("\u{202e}2026-11-29T10:00:00Z"),
            json!(huge.clone()),
            json!(1_700_000_000),
        ] {
            cases.push(case(t(json!({"every_sec": 60, field: v})), field));
        }
    }
    cases.push(case(
        t(json!({"every_sec": 60, "start_at": "2030-01-02T00:00:00Z",
                 "end_at": "2030-01-01T00:00:00Z"})),
        "end_at",
    ));
    // Cadence: both, neither.
    cases.push(case(
        t(json!({"every_sec": 60, "cron": "0 3 * * *"})),
        "every_sec",
    ));
    cases.push(case(t(json!({})), "cron"));
    // The template's strings.
    for target in [
        json!("192.0.2.1"),
        json!(""),
        json!("127.0.0.1\u{0000}"),
        json!(huge.clone()),
        json!(5),
        json!(["127.0.0.1"]),
    ] {
        cases.push(case(
            json!({"tool": "noop", "target": target, "every_sec": 60}),
            "target",
        ));
    }
    cases.push(case(
        json!({"tool": 7, "target": "127.0.0.1", "every_sec": 60}),
        "tool",
    ));
    cases.push(case(
        t(json!({"every_sec": 60, "args": [[[[[[[[[[{"a": null}]]]]]]]]]]})),
        "args",
    ));
    cases.push(case(
        t(json!({"every_sec": 60, "intrusive": "yes"})),
        "intrusive",
    ));
    // Unknown fields, including look-alikes of known ones.
    for k in [
        "bogus",
        "correlation_id",
        "run_at",
        "__proto__",
        "every_sec\u{0000}",
        "\u{00e9}very_sec",
        "\u{202e}every_sec",
        "every_sec\u{200b}",
        "",
    ] {
        let mut b = t(json!({"every_sec": 60}));
        b[k] = json!(1);
        cases.push(case(b, k));
    }
    let long_key = "k".repeat(10_000);
    let mut b = t(json!({"every_sec": 60}));
    b[long_key.as_str()] = json!(1);
    cases.push(case(b, &"k".repeat(64)));
    // Not an object at all.
    for body in [
        "[]",
        "\"every_sec\"",
        "3600",
        "null",
        "true",
        "[{\"every_sec\":60}]",
    ] {
        cases.push(raw(body.to_owned(), "body"));
    }
    // Duplicate keys: refused by the JSON layer (400), naming the key.
    for (body, field) in [
        (
            "{\"tool\":\"noop\",\"target\":\"127.0.0.1\",\"every_sec\":60,\"every_sec\":1}",
            "every_sec",
        ),
        (
            "{\"tool\":\"noop\",\"target\":\"127.0.0.2\",\"target\":\"127.0.0.1\",\"every_sec\":60}",
            "target",
        ),
        (
            "{\"tool\":\"noop\",\"target\":\"127.0.0.1\",\"cron\":\"0 3 * * *\",\"cron\":\"* * * * *\"}",
            "cron",
        ),
    ] {
        cases.push(Case {
            body: body.to_owned(),
            field: field.to_owned(),
            status: 400,
        });
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_schedule_body_is_refused_naming_its_field_and_the_scheduler_fires_on() {
    let redis = RedisServer::start().await;
    let mut cfg = test_config(&redis, "schedcorpus");
    cfg.schedule_min_every_sec = 1;
    cfg.schedule_tick_ms = 100;
    // Room for the ~1 MB strings: they reach the schedule's checks, not the size limit.
    cfg.max_body_bytes = 2 * 1024 * 1024;
    let fx = Fixture::new();
    let catalog = Catalog::load(Some(&fx.catalog(INPROCESS_TOOLS))).unwrap();
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg.clone(), catalog).await;

    let cases = corpus();
    assert!(cases.len() >= 100, "{} cases", cases.len());
    for (i, c) in cases.iter().enumerate() {
        let shown: String = c.body.chars().take(160).collect();
        let r = http()
            .put(format!("{base}/v1/schedules/c{i}"))
            .header("content-type", "application/json")
            .body(c.body.clone())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let kind = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let problem: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, c.status, "case {i} {shown}: {problem}");
        assert!(
            kind.starts_with("application/problem+json"),
            "case {i}: {kind}"
        );
        assert_eq!(
            problem["field"].as_str(),
            Some(c.field.as_str()),
            "case {i} {shown}: {problem}"
        );
        assert!(
            !problem["hint"].as_str().unwrap_or("").is_empty(),
            "case {i}: {problem}"
        );
        // The answer stays small whatever the body was.
        assert!(problem.to_string().len() < 4096, "case {i}: a large answer");
    }
    // Nothing was stored.
    assert_eq!(
        get_json(&base, "/v1/schedules").await["schedules"],
        json!([])
    );

    // The scheduler still fires a good schedule.
    let good = json!({"tool":"noop","target":"127.0.0.1","every_sec":1});
    let r = http()
        .put(format!("{base}/v1/schedules/good"))
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let store = ScheduleStore::new(scanq::queue::pool(&cfg).unwrap(), &cfg.key_prefix);
    let tenant = TenantId::parse("default").unwrap();
    eventually(
        Duration::from_secs(15),
        "the good schedule fires",
        || async { (store.runs(&tenant, "good", 10).await.unwrap().len() >= 2).then_some(()) },
    )
    .await;
}
