//! Submit → poll → result over real HTTP, with a real redis-server and real workers; the
//! request-level refusals of DESIGN §2.

use std::time::Duration;

use scanq::catalog::Catalog;
use scanq_tests::*;
use serde_json::Value;

struct Stack {
    _redis: RedisServer,
    _api: Task,
    _worker: Task,
    base: String,
    fixture: Fixture,
}

async fn stack() -> Stack {
    let redis = RedisServer::start().await;
    let fixture = Fixture::new();
    let fake = fixture.script("fake", &fake_tool_script(None));
    let catalog_path = fixture.catalog(&format!(
        "{}{}",
        fake_tool_catalog("fake", &fake, ""),
        INPROCESS_TOOLS
    ));
    let catalog = Catalog::load(Some(&catalog_path)).expect("catalog");
    let cfg = test_config(&redis, "api");
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let worker = start_worker(cfg, catalog).await;
    Stack {
        _redis: redis,
        _api: api,
        _worker: worker,
        base,
        fixture,
    }
}

async fn post(base: &str, body: &str) -> (u16, Value, reqwest::header::HeaderMap) {
    let resp = http()
        .post(format!("{base}/v1/jobs"))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("post");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.json().await.unwrap_or(Value::Null), headers)
}

#[tokio::test]
async fn a_fake_tool_job_is_submitted_polled_and_succeeds() {
    let s = stack().await;
    let (status, doc, headers) = post(
        &s.base,
        r#"{"tool":"fake","target":"127.0.0.1","args":"--sleep-ms 50","correlation_id":"job-1"}"#,
    )
    .await;
    assert_eq!(status, 202, "{doc}");
    assert_eq!(headers["location"], "/v1/jobs/job-1");
    assert_eq!(doc["state"], "queued");

    let done = wait_done(&s.base, "job-1", Duration::from_secs(20)).await;

    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["result"]["exit_code"], 0);
    assert!(
        done["result"]["stdout"]
            .as_str()
            .unwrap()
            .contains("scanned 127.0.0.1")
    );
    assert_eq!(done["attempt"], 1);
    assert!(done["duration_ms"].as_u64().is_some());
    drop(s.fixture);
}

#[tokio::test]
async fn resubmitting_the_same_request_is_idempotent_and_a_different_one_conflicts() {
    let s = stack().await;
    let body = r#"{"tool":"noop","target":"10.0.0.5","correlation_id":"same"}"#;
    let (first, _, _) = post(&s.base, body).await;
    let (again, doc, _) = post(&s.base, body).await;
    let (other, problem, _) = post(
        &s.base,
        r#"{"tool":"noop","target":"10.0.0.6","correlation_id":"same"}"#,
    )
    .await;

    assert_eq!(first, 202);
    assert_eq!(again, 200);
    assert_eq!(doc["correlation_id"], "same");
    assert_eq!(other, 409, "{problem}");
    assert_eq!(problem["status"], 409);
}

#[tokio::test]
async fn bad_requests_get_problem_documents_naming_the_field() {
    let s = stack().await;
    let (status, p, h) = post(&s.base, r#"{"tool":"nope","target":"10.0.0.5"}"#).await;
    assert_eq!(status, 404);
    assert_eq!(p["field"], "tool");
    assert_eq!(h["content-type"], "application/problem+json");

    let (status, p, _) = post(&s.base, r#"{"tool":"noop","#).await;
    assert_eq!(status, 400, "{p}");

    let (status, p, _) = post(&s.base, r#"{"tool":"noop"}"#).await;
    assert_eq!(status, 422);
    assert_eq!(p["field"], "target");
    assert!(p["hint"].as_str().unwrap().contains("IPv4"), "{p}");

    let (status, p, _) = post(
        &s.base,
        r#"{"tool":"noop","target":"10.0.0.5","colour":"red"}"#,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(p["field"], "colour");

    let big = format!(
        r#"{{"tool":"noop","target":"10.0.0.5","args":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let (status, _, _) = post(&s.base, &big).await;
    assert_eq!(status, 413);

    // Nothing was enqueued by any of these.
    let list: Value = http()
        .get(format!("{}/v1/jobs", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["jobs"].as_array().unwrap().len(), 0, "{list}");
}

#[tokio::test]
async fn a_body_naming_a_key_twice_is_refused_naming_the_key() {
    let s = stack().await;
    // A reader that takes the first `target` would see 127.0.0.1; last-value-wins would run
    // 10.0.0.5. Neither happens: the request is refused.
    let (status, p, h) = post(
        &s.base,
        r#"{"tool":"noop","target":"127.0.0.1","target":"10.0.0.5"}"#,
    )
    .await;
    assert_eq!(status, 400, "{p}");
    assert_eq!(h["content-type"], "application/problem+json");
    assert_eq!(p["field"], "target", "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("duplicate key `target`"),
        "{p}"
    );
    assert!(p["hint"].as_str().unwrap().contains("once"), "{p}");

    // Same keys in different objects are not duplicates; only a true repeat is.
    let (status, p, _) = post(
        &s.base,
        r#"{"tool":"noop","tool":"noop","target":"10.0.0.5"}"#,
    )
    .await;
    assert_eq!((status, p["field"].as_str()), (400, Some("tool")), "{p}");

    // A refused flag is refused for what nmap would really make of it.
    let (status, p, _) = post(
        &s.base,
        r#"{"tool":"nmap","target":"127.0.0.1","args":"-excludef /tmp/x"}"#,
    )
    .await;
    assert_eq!(status, 422, "{p}");
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.contains("`--excludefile`") && detail.contains("reads a file"),
        "{p}"
    );
    assert!(!detail.contains("interface"), "{p}");

    let list = get_json(&s.base, "/v1/jobs").await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 0, "{list}");
}

#[tokio::test]
async fn an_unknown_job_is_not_found() {
    let s = stack().await;
    let resp = http()
        .get(format!("{}/v1/jobs/never-made", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn output_over_the_cap_is_truncated_with_the_flag_set() {
    let redis = RedisServer::start().await;
    let fixture = Fixture::new();
    let fake = fixture.script("fake", &fake_tool_script(None));
    let cat = fixture.catalog(&fake_tool_catalog("fake", &fake, "stdout_cap = 4096"));
    let catalog = Catalog::load(Some(&cat)).unwrap();
    let cfg = test_config(&redis, "cap");
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;

    let (status, _, _) = post(
        &base,
        r#"{"tool":"fake","target":"127.0.0.1","args":"--out-kb 64","correlation_id":"big"}"#,
    )
    .await;
    assert_eq!(status, 202);
    let done = wait_done(&base, "big", Duration::from_secs(20)).await;

    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["result"]["truncated_stdout"], true);
    assert_eq!(done["result"]["stdout"].as_str().unwrap().len(), 4096);
}

#[tokio::test]
async fn a_tool_missing_from_path_fails_as_not_found() {
    let redis = RedisServer::start().await;
    let fixture = Fixture::new();
    let cat = fixture.catalog(&fake_tool_catalog(
        "ghost",
        std::path::Path::new("no-such-binary-scanq"),
        "",
    ));
    let catalog = Catalog::load(Some(&cat)).unwrap();
    let cfg = test_config(&redis, "ghost");
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;

    let (status, _, _) = post(
        &base,
        r#"{"tool":"ghost","target":"127.0.0.1","correlation_id":"g"}"#,
    )
    .await;
    assert_eq!(status, 202);
    let done = wait_done(&base, "g", Duration::from_secs(20)).await;

    assert_eq!(done["state"], "failed");
    assert_eq!(done["error"]["type"], "not_found", "{done}");
    assert!(
        !done["error"]["recovery_suggestion"]
            .as_str()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_long_poll_returns_as_soon_as_the_job_finishes() {
    let s = stack().await;
    post(
        &s.base,
        r#"{"tool":"sleep","target":"10.0.0.5","args":"--ms 300","correlation_id":"lp"}"#,
    )
    .await;
    let doc: Value = http()
        .get(format!("{}/v1/jobs/lp?wait=30", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["state"], "succeeded", "{doc}");
}

#[tokio::test]
async fn the_long_poll_answer_carries_the_tag_of_a_plain_read() {
    let s = stack().await;
    post(
        &s.base,
        r#"{"tool":"sleep","target":"10.0.0.5","args":"--ms 100","correlation_id":"lp-tag"}"#,
    )
    .await;
    let get = |path: &str, tag: Option<&str>| {
        let mut req = http().get(format!("{}{path}", s.base));
        if let Some(t) = tag {
            req = req.header("if-none-match", t);
        }
        async move {
            let resp = req.send().await.expect("get");
            let status = resp.status().as_u16();
            let etag = resp
                .headers()
                .get("etag")
                .map(|v| v.to_str().expect("ascii").to_owned());
            (status, etag, resp.text().await.expect("body"))
        }
    };
    let (status, waited_tag, body) = get("/v1/jobs/lp-tag?wait=30", None).await;
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, doc["state"].as_str()),
        (200, Some("succeeded")),
        "{doc}"
    );
    assert!(doc["result"].is_object(), "the whole document: {doc}");

    let (_, plain_tag, plain) = get("/v1/jobs/lp-tag", None).await;
    assert!(waited_tag.is_some());
    assert_eq!(
        waited_tag, plain_tag,
        "the same job answers with the same tag"
    );
    assert_eq!(doc, serde_json::from_str::<Value>(&plain).unwrap());
    // A long-poll of a finished job the client already has: 304, no body.
    let (again, _, empty) = get("/v1/jobs/lp-tag?wait=30", waited_tag.as_deref()).await;
    assert_eq!((again, empty.as_str()), (304, ""));
    // The summary view still answers with the summary.
    let (_, _, summary) = get("/v1/jobs/lp-tag?wait=30&view=summary", None).await;
    let summary: Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["state"], "succeeded", "{summary}");
    assert!(summary.get("result").is_none(), "{summary}");
}

#[tokio::test]
async fn the_dashboard_is_served() {
    let s = stack().await;
    let page = http()
        .get(format!("{}/", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<title>scanq</title>"));
}
