//! Server-Sent Events: `state`, `progress`, `output` and `done`, resumable with `Last-Event-ID`.

use std::time::Duration;

use scanq::catalog::Catalog;
use scanq_tests::*;
use serde_json::{Value, json};

async fn stack(name: &str) -> (RedisServer, Task, Task, String, Fixture) {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let fake = fx.script("fake", &fake_tool_script(None));
    let cat = fx.catalog(&format!(
        "{}{}",
        fake_tool_catalog("fake", &fake, "progress = \"nmap\""),
        INPROCESS_TOOLS
    ));
    let catalog = Catalog::load(Some(&cat)).unwrap();
    let cfg = test_config(&redis, name);
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let worker = start_worker(cfg, catalog).await;
    (redis, api, worker, base, fx)
}

async fn submit(base: &str, body: Value) {
    let r = http()
        .post(format!("{base}/v1/jobs"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

#[tokio::test]
async fn the_stream_delivers_state_changes_and_done_with_the_final_document() {
    let (_r, _a, _w, base, _fx) = stack("sse").await;
    submit(
        &base,
        json!({"tool":"sleep","target":"10.0.0.5","args":"--ms 200","correlation_id":"s1"}),
    )
    .await;

    let events = read_sse(
        &format!("{base}/v1/jobs/s1/events"),
        None,
        Duration::from_secs(20),
        |e| e.event == "done",
    )
    .await;

    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"state"));
    assert_eq!(kinds.last(), Some(&"done"), "{kinds:?}");
    let done: Value = serde_json::from_str(&events.last().unwrap().data).unwrap();
    assert_eq!(done["state"], "succeeded");
    let states: Vec<String> = events
        .iter()
        .filter(|e| e.event == "state")
        .map(|e| {
            serde_json::from_str::<Value>(&e.data).unwrap()["state"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(states, vec!["queued", "running", "succeeded"]);
}

#[tokio::test]
async fn a_client_that_reconnects_with_last_event_id_sees_every_event_exactly_once() {
    let (_r, _a, _w, base, _fx) = stack("resume").await;
    submit(
        &base,
        json!({"tool":"fake","target":"127.0.0.1","args":"--progress 5","correlation_id":"r1"}),
    )
    .await;
    let url = format!("{base}/v1/jobs/r1/events?include=output");

    // Read until the job is running, then drop the connection.
    let first = read_sse(&url, None, Duration::from_secs(20), |e| {
        e.data.contains("\"running\"")
    })
    .await;
    let last = first.last().unwrap().id.unwrap();
    let rest = read_sse(&url, Some(last), Duration::from_secs(30), |e| {
        e.event == "done"
    })
    .await;

    let ids: Vec<u64> = first.iter().chain(&rest).map(|e| e.id.unwrap()).collect();
    let expected: Vec<u64> = (1..=*ids.last().unwrap()).collect();
    assert_eq!(ids, expected, "every position once, in order");
    assert_eq!(rest.last().unwrap().event, "done");
    assert!(
        rest.iter().any(|e| e.event == "output"),
        "output events with ?include=output"
    );

    // Progress never goes backwards and arrives while the tool runs.
    let percents: Vec<f64> = rest
        .iter()
        .filter(|e| e.event == "progress")
        .map(|e| {
            serde_json::from_str::<Value>(&e.data).unwrap()["percent"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert!(percents.len() >= 2, "{percents:?}");
    assert!(percents.windows(2).all(|w| w[0] < w[1]), "{percents:?}");
    let doc: Value = http()
        .get(format!("{base}/v1/jobs/r1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["progress"]["percent"].as_f64().unwrap() > 0.0, "{doc}");
    assert_eq!(doc["progress"]["phase"], "Connect Scan");
}

#[tokio::test]
async fn output_events_are_left_out_unless_asked_for() {
    let (_r, _a, _w, base, _fx) = stack("light").await;
    submit(
        &base,
        json!({"tool":"fake","target":"127.0.0.1","args":"--out-kb 8","correlation_id":"o1"}),
    )
    .await;
    let light = read_sse(
        &format!("{base}/v1/jobs/o1/events"),
        None,
        Duration::from_secs(20),
        |e| e.event == "done",
    )
    .await;
    assert!(light.iter().all(|e| e.event != "output"));
    let full = read_sse(
        &format!("{base}/v1/jobs/o1/events?include=output"),
        None,
        Duration::from_secs(20),
        |e| e.event == "done",
    )
    .await;
    let outputs: Vec<&SseEvent> = full.iter().filter(|e| e.event == "output").collect();
    assert!(outputs.len() >= 2, "8 KiB comes in chunks of at most 4 KiB");
    assert!(outputs.iter().all(|e| e.data.len() < 6000));
}
