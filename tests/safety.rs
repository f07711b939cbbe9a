//! The safe-scan contract end to end (DESIGN §4): every hostile case of the adversarial table
//! is refused by the HTTP API with 422 naming the right field, and by the worker's own check;
//! a hostname is scanned by the address it resolved to; a sandboxed job that exceeds its limits
//! is reported plainly. No case here sends a packet anywhere: refusals stop at validation, and
//! the accepted jobs run a fake tool against loopback names.

use std::time::Duration;

use scanq::catalog::Catalog;
use scanq::config::Config;
use scanq::domain::ToolName;
use scanq::request::{StoredRequest, recheck};
use scanq::validate::TargetPolicy;
use scanq::validate::adversarial::CASES;
use scanq_tests::*;
use serde_json::{Value, json};

#[tokio::test]
async fn every_adversarial_case_is_refused_by_the_api_and_by_the_worker_check() {
    assert!(CASES.len() >= 150, "{} cases", CASES.len());
    let redis = RedisServer::start().await;
    // The server's defaults: RFC 1918 + .lab.internal, intrusive scans off.
    let cfg = Config {
        redis_url: redis.url(),
        key_prefix: unique_prefix("adv"),
        ..Config::default()
    };
    let catalog = Catalog::builtin();
    let (_api, base) = start_api(cfg, catalog.clone()).await;
    let nmap = catalog.get(&ToolName::parse("nmap").unwrap()).unwrap();
    let policy = TargetPolicy::default();

    let client = http();
    for case in CASES {
        let body =
            json!({"tool":"nmap","target":case.target,"args":case.args,"intrusive":case.intrusive});
        let resp = client
            .post(format!("{base}/v1/jobs"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let problem: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 422, "{}: {problem}", case.name);
        assert_eq!(
            problem["field"], case.expect_field,
            "{}: {problem}",
            case.name
        );
        assert!(
            !problem["hint"].as_str().unwrap_or("").is_empty(),
            "{}: no hint",
            case.name
        );

        let stored = StoredRequest {
            target: case.target,
            template: None,
            raw_args: case.args,
            intrusive: case.intrusive,
        };
        let worker_view = recheck(nmap, &policy, false, &stored);
        assert!(
            worker_view.is_err(),
            "{}: the worker's check accepted it",
            case.name
        );
    }
    let list: Value = get_json(&base, "/v1/jobs").await;
    assert_eq!(
        list["jobs"].as_array().unwrap().len(),
        0,
        "nothing was enqueued"
    );
}

#[tokio::test]
async fn intrusive_flags_say_which_switch_is_missing() {
    let redis = RedisServer::start().await;
    let cfg = Config {
        redis_url: redis.url(),
        key_prefix: unique_prefix("intr"),
        ..Config::default()
    };
    let (_api, base) = start_api(cfg, Catalog::builtin()).await;
    let p: Value = post_json(
        &base,
        "/v1/jobs",
        &json!({"tool":"nmap","target":"10.0.0.5","args":"-sC","intrusive":true}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(p["field"], "args");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("SCANQ_ALLOW_INTRUSIVE"),
        "{p}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostname_allowed_by_configuration_is_scanned_by_its_resolved_address() {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let starts = fx.path("starts");
    let fake = fx.script("fake", &fake_tool_script(Some(&starts)));
    let catalog = Catalog::load(Some(&fx.catalog(&fake_tool_catalog("fake", &fake, "")))).unwrap();
    let mut cfg = test_config(&redis, "resolve");
    cfg.allowed_targets = "127.0.0.0/8,localhost".into();
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _w = start_worker(cfg, catalog).await;

    let r = post_json(
        &base,
        "/v1/jobs",
        &json!({"tool":"fake","target":"localhost","correlation_id":"byname"}),
    )
    .await;
    assert_eq!(r.status(), 202);
    let done = wait_done(&base, "byname", Duration::from_secs(20)).await;

    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["target"], "localhost");
    let started = lines(&starts);
    assert!(
        started[0].ends_with(" 127.0.0.1"),
        "the tool got the address, not the name: {started:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_over_its_cpu_limit_is_stopped_and_reported_as_resource_exhausted() {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let burner = fx.script("burner", "#!/bin/bash\nwhile :; do :; done\n");
    let catalog = Catalog::load(Some(&fx.catalog(&format!(
        "[tools.burner]\nexecutor = \"exec\"\ncommand = \"{}\"\ndefault_timeout_sec = 30\n[tools.burner.limits]\ncpu_sec = 1\n",
        burner.display()
    ))))
    .unwrap();
    let cfg = test_config(&redis, "cpu");
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _w = start_worker(cfg, catalog).await;

    post_json(
        &base,
        "/v1/jobs",
        &json!({"tool":"burner","target":"127.0.0.1","correlation_id":"burn","max_attempts":1}),
    )
    .await;
    let done = wait_done(&base, "burn", Duration::from_secs(30)).await;

    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(done["error"]["type"], "resource_exhausted", "{done}");
    assert!(done["error"]["message"].as_str().unwrap().contains("cpu"));
}
