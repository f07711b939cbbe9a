//! Logs: with `SCANQ_LOG_FORMAT=json`, the API's and the worker's lines about one job carry the
//! same `correlation_id` (and `tool`), so one grep follows a job across the Redis hop.

use std::time::Duration;

use scanq::config::LogFormat;
use scanq_tests::*;
use serde_json::{Value, json};

fn mentions(line: &Value, key: &str, want: &str) -> bool {
    line[key] == want || line["span"][key] == want || line["fields"][key] == want
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_and_the_worker_log_the_same_correlation_id_for_a_job() {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let fake = fx.script("fake", &fake_tool_script(None));
    let mut cfg = test_config(&redis, "logs");
    cfg.catalog = Some(fx.catalog(&fake_tool_catalog("fake", &fake, "")));
    cfg.log_format = LogFormat::Json;
    let port = free_port();
    cfg.api_addr = format!("127.0.0.1:{port}").parse().unwrap();
    let api_log = fx.path("api.log");
    let worker_log = fx.path("worker.log");
    let _api = Proc::spawn_logged("scanq-api", &cfg, &[], &api_log);
    let _worker = Proc::spawn_logged(
        "scanq-worker",
        &cfg,
        &[(
            "SCANQ_WORKER_METRICS_ADDR",
            format!("127.0.0.1:{}", free_port()),
        )],
        &worker_log,
    );
    let base = format!("http://127.0.0.1:{port}");
    eventually(Duration::from_secs(20), "API ready", || {
        let url = format!("{base}/readyz");
        async move { (http().get(url).send().await.ok()?.status() == 200).then_some(()) }
    })
    .await;

    let r = post_json(
        &base,
        "/v1/jobs",
        &json!({"tool":"fake","target":"127.0.0.1","correlation_id":"trace-me"}),
    )
    .await;
    assert_eq!(r.status(), 202);
    let done = wait_done(&base, "trace-me", Duration::from_secs(30)).await;
    assert_eq!(done["state"], "succeeded");
    // The effective command is on record: program, policy-checked args, resolved address.
    let fake_path = fake.display().to_string();
    assert_eq!(
        done["result"]["command"],
        json!([fake_path, "127.0.0.1"]),
        "{done}"
    );

    let parse = |p: &std::path::Path| -> Vec<Value> {
        lines(p)
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    let api_lines: Vec<Value> = parse(&api_log)
        .into_iter()
        .filter(|l| mentions(l, "correlation_id", "trace-me"))
        .collect();
    let worker_lines: Vec<Value> =
        eventually(Duration::from_secs(10), "worker logged the job", || {
            let found: Vec<Value> = parse(&worker_log)
                .into_iter()
                .filter(|l| mentions(l, "correlation_id", "trace-me"))
                .collect();
            async move { (found.len() >= 2).then_some(found) }
        })
        .await;
    assert!(!api_lines.is_empty(), "no API line names the job");
    assert!(
        worker_lines.iter().all(|l| mentions(l, "tool", "fake")),
        "{worker_lines:?}"
    );
    let messages: Vec<&str> = worker_lines
        .iter()
        .filter_map(|l| l["message"].as_str().or(l["fields"]["message"].as_str()))
        .collect();
    assert!(messages.contains(&"Job started"), "{messages:?}");
    assert!(messages.contains(&"Job succeeded"), "{messages:?}");
    // ...and in the worker's audit trail, with the job's correlation ID.
    let exec = worker_lines
        .iter()
        .find(|l| l["audit"] == "exec")
        .expect("the worker's exec audit line");
    let argv = exec["argv"].as_str().unwrap();
    assert!(
        argv.contains(&fake_path) && argv.contains("127.0.0.1"),
        "{exec}"
    );
}
