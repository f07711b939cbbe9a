//! `/openapi.json` is generated from the handlers' types, and the API keeps to it: every
//! rejection (body, path, query, unknown route) is problem+json naming what was refused, and
//! schemathesis (`--checks all`, a fixed seed, a bounded number of examples, an admin token)
//! finds no failure against a live API. No worker runs, so no job ever executes.
//!
//! schemathesis lives in `.tools/venv-schemathesis` (`scripts/install-test-tools.sh`, run by
//! `make test`); when it is missing the fuzz test fails, unless `SCANQ_SKIP_CLIENT_TESTS=1`
//! says to skip it. Its settings are in `tests/schemathesis.toml`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use scanq::catalog::Catalog;
use scanq_tests::*;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

struct Stack {
    _redis: RedisServer,
    _api: Task,
    base: String,
    admin: String,
    _dir: tempfile::TempDir,
}

/// Redis and an API (no worker) with the built-in catalog plus the in-process tools, an admin
/// token whose request rate is high enough for a fuzzer, and `/metrics` behind a token.
async fn stack(name: &str) -> Stack {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = Tokens::write(dir.path(), &[("ops", "ops", "admin")], "");
    let text = std::fs::read_to_string(&tokens.path).unwrap();
    let text = text.replace(
        "scopes = [\"admin\"]",
        "scopes = [\"admin\"]\nrate_per_sec = 100000\nburst = 100000",
    );
    std::fs::write(&tokens.path, text).unwrap();
    let mut cfg = test_config(&redis, name);
    cfg.api_tokens_file = Some(tokens.path.clone());
    cfg.metrics_open = false;
    cfg.allowed_targets = "127.0.0.0/8,.lab.internal".into();
    // Webhooks may go only here (no worker runs, so nothing is ever delivered).
    cfg.webhook_allowed_urls = "http://127.0.0.1:9/hooks".into();
    let catalog = Catalog::from_sources(
        scanq::catalog::DEFAULT_CATALOG,
        Some(("test", INPROCESS_TOOLS)),
    )
    .unwrap();
    let (api, base) = start_api(cfg, catalog).await;
    Stack {
        _redis: redis,
        _api: api,
        base,
        admin: tokens.get("ops").to_owned(),
        _dir: dir,
    }
}

async fn get(s: &Stack, path: &str) -> reqwest::Response {
    http()
        .get(format!("{}{path}", s.base))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap()
}

/// Asserts a problem+json answer with `status` that names `field`.
async fn assert_problem(r: reqwest::Response, status: u16, field: Option<&str>) -> Value {
    assert_eq!(r.status().as_u16(), status, "{}", r.url());
    let ct = r.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(ct, "application/problem+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], status, "{body}");
    if let Some(field) = field {
        assert_eq!(body["field"], field, "{body}");
        assert!(
            body["hint"].as_str().is_some_and(|h| !h.is_empty()),
            "{body}"
        );
    }
    body
}

#[tokio::test]
async fn query_path_and_route_rejections_are_problem_documents_naming_the_field() {
    let s = stack("oa-reject").await;
    for (path, field) in [
        ("/v1/jobs?limit=abc", "limit"),
        ("/v1/jobs?limit=0", "limit"),
        ("/v1/jobs?cursor=-1", "cursor"),
        ("/v1/jobs?state=closed", "state"),
        ("/v1/jobs?tool=no%20such", "tool"),
        ("/v1/jobs/some-job?wait=x", "wait"),
        ("/v1/jobs/some-job?wait=84445693047553849819136", "wait"),
        ("/v1/jobs/some-job/events?include=everything", "include"),
    ] {
        let body = assert_problem(get(&s, path).await, 422, Some(field)).await;
        assert!(
            body["detail"].as_str().unwrap().starts_with(field),
            "{path}: {body}"
        );
    }
    let r = http()
        .get(format!("{}/v1/jobs/some-job/events", s.base))
        .bearer_auth(&s.admin)
        .header("Last-Event-ID", "seven")
        .send()
        .await
        .unwrap();
    assert_problem(r, 422, Some("Last-Event-ID")).await;
    // A path segment that is not UTF-8 once decoded.
    assert_problem(get(&s, "/v1/breakers/%FF").await, 422, Some("path")).await;
    let body = assert_problem(get(&s, "/v1/nothing-here").await, 404, None).await;
    assert!(
        body["hint"].as_str().unwrap().contains("/openapi.json"),
        "{body}"
    );
    let r = http()
        .post(format!("{}/v1/jobs", s.base))
        .bearer_auth(&s.admin)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, Some("body")).await;
    // A run_at long past is refused rather than run at once (up to 5 minutes is clock skew).
    let r = http()
        .post(format!("{}/v1/jobs", s.base))
        .bearer_auth(&s.admin)
        .json(&serde_json::json!({"tool": "noop", "target": "127.0.0.1",
            "run_at": "2000-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 422, Some("run_at")).await;
}

#[tokio::test]
async fn the_document_is_generated_with_the_live_catalog_and_the_enforced_constraints() {
    let s = stack("oa-doc").await;
    let r = http()
        .get(format!("{}/openapi.json", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let submit = &doc["components"]["schemas"]["Submit"];
    assert_eq!(
        submit["properties"]["tool"]["enum"],
        serde_json::json!(["nmap", "noop", "sleep"])
    );
    assert_eq!(submit["properties"]["target"]["minLength"], 1);
    assert_eq!(submit["properties"]["max_attempts"]["maximum"], 20);
    assert_eq!(submit["additionalProperties"], false);
    let list = &doc["paths"]["/v1/jobs"]["get"];
    let limit = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["schema"]["minimum"], 1);
    assert_eq!(limit["schema"]["maximum"], 500);
    // Token-guarded routes document the auth refusals; open ones need no token.
    assert!(list["responses"]["401"].is_object());
    assert!(list["responses"]["429"].is_object());
    assert_eq!(
        doc["paths"]["/healthz"]["get"]["security"],
        serde_json::json!([])
    );
    // The scan-program routes are documented like the rest.
    for path in [
        "/v1/schedules",
        "/v1/schedules/{id}",
        "/v1/schedules/{id}/runs",
        "/v1/schedules/{id}/trigger",
        "/v1/webhooks",
        "/v1/webhooks/{id}",
        "/v1/jobs/{id}/diff",
        "/v1/jobs/{id}/result.xml",
        "/v1/jobs/{id}/result.csv",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
    // Every documented operation is routed (a bogus id, tool or action is refused, not 405).
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{id}", "no-such-job")
            .replace("{tool}", "noop")
            .replace("{action}", "bogus");
        for method in ops.as_object().unwrap().keys() {
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = http()
                .request(m, format!("{}{concrete}", s.base))
                .bearer_auth(&s.admin)
                .send()
                .await
                .unwrap();
            assert_ne!(r.status().as_u16(), 405, "{method} {path}");
            if r.status().as_u16() == 404 {
                let body: Value = r.json().await.unwrap();
                assert_ne!(
                    body["title"], "No such route",
                    "{method} {path} is not routed"
                );
            }
        }
    }
}

#[tokio::test]
async fn schemathesis_finds_no_failure_against_a_live_api() {
    let exe = repo().join(".tools/venv-schemathesis/bin/schemathesis");
    if !exe.exists() {
        if std::env::var("SCANQ_SKIP_CLIENT_TESTS").as_deref() == Ok("1") {
            eprintln!("\n!!! SKIPPED: {} is not installed.\n", exe.display());
            return;
        }
        panic!(
            "{} is missing: run scripts/install-test-tools.sh (make test does), or set SCANQ_SKIP_CLIENT_TESTS=1",
            exe.display()
        );
    }
    let s = stack("oa-fuzz").await;
    let work = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(&exe)
        .arg("--config-file")
        .arg(repo().join("tests/schemathesis.toml"))
        .args(["run", &format!("{}/openapi.json", s.base)])
        .args(["--checks", "all", "--seed", "1", "--max-examples", "20"])
        .args(["--header", &format!("Authorization: Bearer {}", s.admin)])
        .args(["--no-color"])
        .current_dir(work.path())
        .env("SCHEMATHESIS_HOOKS", "")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let read = async {
        use tokio::io::AsyncReadExt;
        let (mut out, mut err) = (String::new(), String::new());
        let _ = tokio::join!(
            stdout.read_to_string(&mut out),
            stderr.read_to_string(&mut err)
        );
        let status = child.wait().await.unwrap();
        (status, out, err)
    };
    let (status, out, err) = tokio::time::timeout(Duration::from_secs(240), read)
        .await
        .expect("schemathesis finished within 240 s");
    assert!(
        status.success(),
        "schemathesis found failures:\n{out}\n{err}"
    );
    assert!(out.contains("passed"), "{out}");
}
