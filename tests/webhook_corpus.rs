//! A hostile corpus of webhook bodies over real HTTP: numeric extremes, wrong types, Unicode
//! tricks (RTL overrides, zero-width, full-width), control characters in every string field,
//! ~1 MB values within the body limit, duplicate keys, nested junk, unknown fields, bad events
//! and bad URLs. Every one is refused as problem+json naming the field (422; a key named twice
//! is refused by the strict JSON reader before any route, 400, naming the key), never a 5xx,
//! and nothing is stored; then a good webhook still delivers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::routing::post;
use scanq::catalog::Catalog;
use scanq_tests::*;
use serde_json::{Map, Value, json};

const MB: usize = 1_000_000;

/// `(expected field, raw JSON body)`.
fn corpus(good: &str) -> Vec<(String, String)> {
    let base = |k: &str, v: Value| {
        let mut m = Map::new();
        m.insert("url".into(), json!(good));
        m.insert("events".into(), json!(["job.succeeded"]));
        m.insert(k.into(), v);
        Value::Object(m).to_string()
    };
    let mut out: Vec<(String, String)> = Vec::new();
    let mut add = |field: &str, body: String| out.push((field.to_owned(), body));

    // Wrong types and numeric extremes in every field.
    let junk = [
        json!(null),
        json!(true),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(1e308),
        json!(-1e308),
        json!(u64::MAX),
        json!(i64::MIN),
        json!([]),
        json!({}),
        json!({"a": {"b": {"c": [1, 2, {"d": null}]}}}),
        json!([[[[[[[[[[good]]]]]]]]]]),
    ];
    for v in &junk {
        for field in ["url", "events", "schedule_id", "description"] {
            if v.is_null() && matches!(field, "schedule_id" | "description") {
                continue; // null is "absent" for the optional fields
            }
            // A list of lists is a list whose first entry is refused.
            let named = if field == "events" && v.get(0).is_some() {
                "events[0]"
            } else {
                field
            };
            add(named, base(field, v.clone()));
        }
    }
    add("events", base("events", json!("job.succeeded")));

    // Bad events, by position.
    let bad_events = [
        json!(1),
        json!(null),
        json!([]),
        json!({}),
        json!(""),
        json!("JOB.SUCCEEDED"),
        json!("job.succeeded "),
        json!(" job.succeeded"),
        json!("job.*"),
        json!("job.exploded"),
        json!("job.succeeded\u{0}"),
        json!("job.succeeded\n"),
        json!("job.\u{202e}succeeded"),
        json!("job.succeeded\u{200b}"),
        json!("ｊｏｂ.succeeded"),
        json!("x".repeat(MB)),
    ];
    for e in bad_events {
        add("events[1]", base("events", json!(["job.failed", e])));
    }
    add("events", base("events", json!([])));
    add("events", base("events", json!(vec!["job.dead"; 17])));

    // Bad URLs.
    let port_path = good.trim_start_matches("http://127.0.0.1");
    let bad_urls = [
        String::new(),
        " ".into(),
        "not a url".into(),
        "javascript:alert(1)".into(),
        "file:///etc/passwd".into(),
        "ftp://127.0.0.1/hook".into(),
        "gopher://127.0.0.1:6379/_FLUSHALL".into(),
        "http://".into(),
        "http://169.254.169.254/latest/meta-data/".into(),
        "http://127.0.0.2/hook".into(),
        "http://[::1]/hook".into(),
        format!("{good}\u{0}"),
        format!("{good}\r\nX-Injected: 1"),
        format!("{good}\t"),
        format!("{good} "),
        format!("{good}\u{7f}"),
        format!("{good}\u{202e}"),
        format!("{good}\u{200b}"),
        format!("{good}\u{feff}"),
        format!("http://１２７.0.0.1{port_path}"),
        format!("http://user:pw@127.0.0.1{port_path}"),
        format!("http://127.0.0.1@127.0.0.1{port_path}"),
        format!("{good}#fragment"),
        "http://127.0.0.1:99999/hook".into(),
        format!("HTTP://127.0.0.1{}", port_path.to_uppercase()),
        format!("http://127.0.0.1{}evil", port_path),
        format!("http://127.0.0.1{port_path}.evil.net/"),
        format!("https://127.0.0.1{port_path}"),
        format!("{good}/{}", "a".repeat(3 * 1024)),
        format!("{good}/{}", "a".repeat(MB)),
    ];
    for u in bad_urls {
        add("url", base("url", json!(u)));
    }

    // Bad descriptions and schedule ids.
    for d in [
        "a".repeat(201),
        "é".repeat(201),
        "x".repeat(MB),
        "line\nbreak".into(),
        "nul\u{0}".into(),
        "bell\u{7}".into(),
        "\u{202e}evil".into(),
        "zero\u{200b}width".into(),
        "\u{2066}isolate\u{2069}".into(),
        "bom\u{feff}".into(),
        "c1\u{85}".into(),
    ] {
        add("description", base("description", json!(d)));
    }
    for s in [
        String::new(),
        "a".repeat(129),
        "x".repeat(MB),
        "nul\u{0}".into(),
        "\u{202e}".into(),
        "no-such-schedule".into(),
    ] {
        add("schedule_id", base("schedule_id", json!(s)));
    }

    // Unknown fields, missing fields, bodies that are no object.
    let long_key = "k".repeat(10_000);
    for k in [
        "secret",
        "id",
        "created_at",
        "URL",
        "url ",
        "Events",
        "__proto__",
        "constructor",
        "",
        "\u{0}",
        "\u{202e}url",
        long_key.as_str(),
    ] {
        add(k, base(k, json!({"nested": [1, {"junk": true}]})));
    }
    add("url", json!({"events": ["job.succeeded"]}).to_string());
    add("events", json!({ "url": good }).to_string());
    add("url", "{}".into());
    let positional = format!("[\"{good}\", [\"job.succeeded\"]]");
    for b in [
        "[]",
        "[1]",
        positional.as_str(),
        "\"x\"",
        "1",
        "null",
        "true",
    ] {
        add("body", b.to_owned());
    }
    // Keys named twice.
    add(
        "url",
        format!(
            "{{\"url\":\"{good}\",\"url\":\"http://127.0.0.2/\",\"events\":[\"job.succeeded\"]}}"
        ),
    );
    add(
        "events",
        format!("{{\"url\":\"{good}\",\"events\":[\"job.succeeded\"],\"events\":[\"job.dead\"]}}"),
    );
    add(
        "description",
        format!(
            "{{\"url\":\"{good}\",\"events\":[\"job.succeeded\"],\"description\":\"a\",\"description\":\"b\"}}"
        ),
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_webhook_body_is_refused_naming_its_field() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let good = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move || {
            count.fetch_add(1, Ordering::SeqCst);
            async { axum::http::StatusCode::NO_CONTENT }
        }),
    );
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    let redis = RedisServer::start().await;
    let mut cfg = test_config(&redis, "hookcorpus");
    cfg.webhook_allowed_urls = good.clone();
    cfg.max_body_bytes = 2 * 1024 * 1024;
    cfg.webhook_retry_base_ms = 100;
    cfg.schedule_tick_ms = 100;
    let fx = Fixture::new();
    let catalog = Catalog::load(Some(&fx.catalog(INPROCESS_TOOLS))).unwrap();
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;

    let cases = corpus(&good);
    assert!(cases.len() >= 100, "{} cases", cases.len());
    let client = http();
    for (field, body) in &cases {
        let shown: String = body.chars().take(160).collect();
        let r = client
            .post(format!("{base}/v1/webhooks"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let ctype = r.headers()["content-type"].to_str().unwrap().to_owned();
        let p: Value = r.json().await.unwrap_or(Value::Null);
        let twice = body.matches(&format!("\"{field}\":")).count() > 1;
        let expected = if twice { 400 } else { 422 };
        assert_eq!(status, expected, "{shown}: {p}");
        assert_eq!(ctype, "application/problem+json", "{shown}");
        assert_eq!(p["field"], field.as_str(), "{shown}: {p}");
        assert!(p["hint"].is_string(), "{shown}: {p}");
    }
    let listed = get_json(&base, "/v1/webhooks").await;
    assert_eq!(listed["webhooks"], json!([]), "a hostile body was stored");

    // A good one still delivers.
    let r = post_json(
        &base,
        "/v1/webhooks",
        &json!({"url": good, "events": ["job.succeeded"], "description": "Ünïcode is fine"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let r = post_json(
        &base,
        "/v1/jobs",
        &json!({"tool": "noop", "target": "127.0.0.1", "correlation_id": "after"}),
    )
    .await;
    assert_eq!(r.status(), 202);
    eventually(
        Duration::from_secs(30),
        "the good webhook's delivery",
        || async { (seen.load(Ordering::SeqCst) >= 1).then_some(()) },
    )
    .await;
    server.abort();
}
