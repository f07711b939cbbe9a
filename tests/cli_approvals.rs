//! `scanq approve|reject ID [--reason ..]` (issue 23 part 4) as the real binary against a live
//! API with a tokens file and a worker: the submitter's own token is refused (exit 3, with the
//! server's reason), another token with `approve` approves (the job runs) or rejects (the job
//! is cancelled with the reason). In-process tools, loopback targets.

use std::process::Output;
use std::time::Duration;

use scanq::catalog::Catalog;
use scanq::engagement::Approval;
use scanq_tests::*;
use serde_json::{Value, json};

/// Runs `scanq ARGS` against `url` as `token` (off the async runtime).
async fn scanq(url: &str, token: &str, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(bin("scanq"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SCANQ_URL", url)
        .env("SCANQ_TOKEN", token)
        .args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap());
    tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("scanq finished")
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanq_approve_and_reject_decide_as_a_second_person() {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let tokens = Tokens::write(
        &fx.path(""),
        &[
            ("dev", "blue", "submit,read,cancel,approve"),
            ("lead", "blue", "read,approve"),
        ],
        "",
    );
    let mut cfg = test_config(&redis, "cli-approvals");
    cfg.api_tokens_file = Some(tokens.path.clone());
    cfg.approval = Approval::Always;
    let catalog = Catalog::from_sources(
        scanq::catalog::DEFAULT_CATALOG,
        Some(("test", INPROCESS_TOOLS)),
    )
    .unwrap();
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let worker = start_worker(cfg, catalog).await;
    let (dev, lead) = (tokens.get("dev"), tokens.get("lead"));

    for id in ["c-1", "c-2"] {
        let out = scanq(&base, dev, &["submit", "noop", "127.0.0.1", "--id", id]).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("awaiting_approval"),
            "{}",
            text(&out.stdout)
        );
    }
    let out = scanq(&base, dev, &["jobs", "--state", "awaiting_approval"]).await;
    assert!(
        text(&out.stdout).contains("c-1") && text(&out.stdout).contains("c-2"),
        "{}",
        text(&out.stdout)
    );

    // The submitter's own token: refused with the server's reason (exit 3).
    let out = scanq(&base, dev, &["approve", "c-1"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("token that submitted it"),
        "{}",
        text(&out.stderr)
    );

    let out = scanq(
        &base,
        lead,
        &["--json", "approve", "c-1", "--reason", "ticket 7"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["approval"]["by"], "lead");
    assert_eq!(doc["approval"]["reason"], "ticket 7");
    let done = wait_done_as(&base, Some(lead), "c-1", Duration::from_secs(20)).await;
    assert_eq!(done["state"], "succeeded", "{done}");

    let out = scanq(
        &base,
        lead,
        &["--json", "reject", "c-2", "--reason", "wrong host"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["state"], "cancelled");
    assert_eq!(
        doc["approval"],
        json!({"decision": "rejected", "by": "lead",
        "reason": "wrong host", "at": doc["approval"]["at"]})
    );
    // Decided once: a second decision is a conflict (exit 3).
    let out = scanq(&base, lead, &["reject", "c-2"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));

    worker.shutdown().await;
    api.shutdown().await;
}
