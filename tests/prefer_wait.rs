//! `Prefer: wait=N` on `POST /v1/jobs` (RFC 7240): a submit that answers once its job is
//! terminal, or after the wait with the job as it is then; a malformed `Prefer` is ignored; the
//! two-request path (submit, then `GET ?wait=`) is unchanged. Real redis-server, API and worker.

use std::time::{Duration, Instant};

use scanq::catalog::Catalog;
use scanq::config::Config;
use scanq_tests::*;
use serde_json::Value;

async fn stack_with(tune: impl FnOnce(&mut Config)) -> InProcess {
    in_process("prefer", tune).await
}

async fn stack() -> InProcess {
    stack_with(|_| {}).await
}

/// Posts `body` with the given `Prefer` header values: the status, the document and the headers.
async fn post(base: &str, body: &str, prefer: &[&str]) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = http()
        .post(format!("{base}/v1/jobs"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for p in prefer {
        req = req.header("prefer", *p);
    }
    let resp = req.send().await.expect("post");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.json().await.unwrap_or(Value::Null), headers)
}

fn applied(h: &reqwest::header::HeaderMap) -> Option<&str> {
    h.get("preference-applied").map(|v| v.to_str().unwrap())
}

fn terminal(doc: &Value) -> bool {
    matches!(
        doc["state"].as_str(),
        Some("succeeded" | "failed" | "cancelled")
    )
}

async fn cancel(base: &str, id: &str) {
    let _ = http()
        .delete(format!("{base}/v1/jobs/{id}"))
        .send()
        .await
        .expect("cancel");
}

#[tokio::test]
async fn a_noop_job_submitted_with_prefer_wait_comes_back_succeeded_in_the_same_answer() {
    let s = stack().await;
    let (status, doc, h) = post(
        &s.base,
        r#"{"tool":"noop","target":"10.0.0.5","correlation_id":"one-request"}"#,
        &["wait=5"],
    )
    .await;
    assert_eq!(status, 202, "{doc}");
    assert_eq!(doc["state"], "succeeded", "{doc}");
    assert_eq!(doc["correlation_id"], "one-request");
    assert_eq!(h["location"], "/v1/jobs/one-request");
    assert_eq!(applied(&h), Some("wait=5"));
    assert!(doc["result"].is_object(), "{doc}");

    // The answer is the job as a read gives it.
    let read = get_json(&s.base, "/v1/jobs/one-request").await;
    assert_eq!(read["state"], "succeeded");
    assert_eq!(read["finished_ms"], doc["finished_ms"]);

    // Without a correlation ID the server names the job, and still waits for it.
    let (status, doc, h) = post(
        &s.base,
        r#"{"tool":"noop","target":"10.0.0.6"}"#,
        &["respond-async, wait=5"],
    )
    .await;
    assert_eq!(status, 202, "{doc}");
    assert_eq!(doc["state"], "succeeded", "{doc}");
    let cid = doc["correlation_id"].as_str().unwrap();
    assert_eq!(h["location"], format!("/v1/jobs/{cid}").as_str());
    assert_eq!(applied(&h), Some("wait=5"));
}

#[tokio::test]
async fn a_job_longer_than_the_wait_comes_back_unfinished_after_the_wait() {
    let s = stack().await;
    let started = Instant::now();
    let (status, doc, h) = post(
        &s.base,
        r#"{"tool":"sleep","target":"10.0.0.5","args":"--ms 60000","correlation_id":"long"}"#,
        &["wait=1"],
    )
    .await;
    let took = started.elapsed();
    assert_eq!(status, 202, "{doc}");
    assert!(
        matches!(doc["state"].as_str(), Some("queued" | "running")),
        "{doc}"
    );
    assert_eq!(applied(&h), Some("wait=1"));
    assert_eq!(h["location"], "/v1/jobs/long");
    // It ended (not timed to the millisecond: the wait is at most a second and some).
    assert!(took < Duration::from_secs(20), "{took:?}");
    cancel(&s.base, "long").await;
}

#[tokio::test]
async fn the_wait_is_capped_by_max_wait_sec_and_outlasts_the_request_timeout() {
    // A 1 s request timeout: the honoured wait is added to it, as a long-poll's is.
    let s = stack_with(|c| {
        c.max_wait_sec = 2;
        c.request_timeout_sec = 1;
    })
    .await;
    let (status, doc, h) = post(
        &s.base,
        r#"{"tool":"sleep","target":"10.0.0.5","args":"--ms 60000","correlation_id":"capped"}"#,
        &["wait=600"],
    )
    .await;
    assert_eq!(status, 202, "{doc}");
    assert!(!terminal(&doc), "{doc}");
    assert_eq!(applied(&h), Some("wait=2"));
    cancel(&s.base, "capped").await;
}

#[tokio::test]
async fn a_malformed_or_unknown_prefer_is_ignored_and_answered_as_today() {
    let s = stack().await;
    let cases: &[&[&str]] = &[
        &["wait=soon"],
        &["wait=90000"],
        &["wait=-1"],
        &["wait"],
        &["respond-async"],
        &["handling=strict"],
        &["wait=soon, wait=5"],
    ];
    for (i, prefer) in cases.iter().enumerate() {
        let body =
            format!(r#"{{"tool":"noop","target":"10.0.0.5","correlation_id":"ignored-{i}"}}"#);
        let (status, doc, h) = post(&s.base, &body, prefer).await;
        assert_eq!(status, 202, "{prefer:?}: {doc}");
        // The answer of a submit that does not wait: the job as created.
        assert_eq!(doc["state"], "queued", "{prefer:?}: {doc}");
        assert_eq!(applied(&h), None, "{prefer:?}");
        assert_eq!(h["location"], format!("/v1/jobs/ignored-{i}").as_str());
    }
    // `wait=0`: honoured, no wait.
    let (status, doc, h) = post(
        &s.base,
        r#"{"tool":"noop","target":"10.0.0.5","correlation_id":"zero"}"#,
        &["wait=0"],
    )
    .await;
    assert_eq!(status, 202, "{doc}");
    assert_eq!(doc["state"], "queued", "{doc}");
    assert_eq!(applied(&h), Some("wait=0"));
}

#[tokio::test]
async fn an_idempotent_repeat_with_prefer_wait_waits_too() {
    let s = stack().await;
    let body = r#"{"tool":"sleep","target":"10.0.0.5","args":"--ms 300","correlation_id":"again"}"#;
    let (status, doc, h) = post(&s.base, body, &[]).await;
    assert_eq!(status, 202, "{doc}");
    assert_eq!(doc["state"], "queued");
    assert_eq!(applied(&h), None);

    let (status, doc, h) = post(&s.base, body, &["wait=5"]).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["state"], "succeeded", "{doc}");
    assert_eq!(applied(&h), Some("wait=5"));
    assert_eq!(h["location"], "/v1/jobs/again");

    // A different request under the same ID is still a conflict, waiting or not.
    let (status, problem, h) = post(
        &s.base,
        r#"{"tool":"sleep","target":"10.0.0.6","args":"--ms 300","correlation_id":"again"}"#,
        &["wait=5"],
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(applied(&h), None);
}

#[tokio::test]
async fn a_refused_submit_with_prefer_wait_is_refused_at_once() {
    let s = stack().await;
    let (status, problem, h) = post(&s.base, r#"{"tool":"noop"}"#, &["wait=5"]).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["field"], "target");
    assert_eq!(applied(&h), None);
}

#[tokio::test]
async fn a_job_that_fails_comes_back_failed() {
    let s = stack().await;
    let (status, doc, h) = post(
        &s.base,
        r#"{"tool":"sleep","target":"10.0.0.5","args":"--ms 10 --fail","max_attempts":1,"correlation_id":"fails"}"#,
        &["wait=10"],
    )
    .await;
    assert_eq!(status, 202, "{doc}");
    assert_eq!(doc["state"], "failed", "{doc}");
    assert_eq!(applied(&h), Some("wait=10"));
}

#[tokio::test]
async fn the_two_request_path_is_unchanged() {
    let s = stack().await;
    let (status, doc, h) = post(
        &s.base,
        r#"{"tool":"noop","target":"10.0.0.5","correlation_id":"two"}"#,
        &[],
    )
    .await;
    assert_eq!(status, 202, "{doc}");
    assert_eq!(doc["state"], "queued");
    assert_eq!(applied(&h), None);
    let resp = http()
        .get(format!("{}/v1/jobs/two?wait=5", s.base))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("etag"));
    let done: Value = resp.json().await.unwrap();
    assert_eq!(done["state"], "succeeded", "{done}");

    // A job submitted waiting is read and long-polled like any other.
    let (_, doc, _) = post(
        &s.base,
        r#"{"tool":"noop","target":"10.0.0.5","correlation_id":"then-read"}"#,
        &["wait=5"],
    )
    .await;
    assert_eq!(doc["state"], "succeeded", "{doc}");
    let again = get_json(&s.base, "/v1/jobs/then-read?wait=5").await;
    assert_eq!(again["state"], "succeeded");
    assert_eq!(again["result"], doc["result"]);
}

#[tokio::test]
async fn prefer_wait_is_woken_by_the_publish_on_a_redis_cluster() {
    // The API's listener subscribes (SUBSCRIBE, not sharded) on one node, whichever; the
    // completion's PUBLISH on the master of the tool's keyspace reaches it through the cluster
    // bus, as it does for `GET ?wait=`.
    let cluster = RedisCluster::start_masters(3).await;
    let fx = Fixture::new();
    let catalog = Catalog::load(Some(&fx.catalog(INPROCESS_TOOLS))).expect("catalog");
    let cfg = cluster.config("prefer-cluster");
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;
    for i in 0..6 {
        let body = format!(r#"{{"tool":"noop","target":"10.0.0.5","correlation_id":"c-{i}"}}"#);
        let started = Instant::now();
        let (status, doc, h) = post(&base, &body, &["wait=30"]).await;
        assert_eq!(status, 202, "{doc}");
        assert_eq!(doc["state"], "succeeded", "{doc}");
        assert_eq!(applied(&h), Some("wait=30"));
        // Woken by the completion's publish, not by the 5 s re-read without one.
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn a_big_scan_submitted_with_prefer_wait_comes_back_with_its_parent_finished() {
    // A parent and its chunks (real nmap -sn on loopback addresses): the wait is the parent's,
    // as `GET ?wait=` waits for it.
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let catalog = bignmap(&fx, "none");
    let cfg = test_config(&redis, "prefer-big");
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;
    let (status, doc, h) = post(
        &base,
        r#"{"tool":"bignmap","target":"127.1.0.0/29","args":"-sn -n","chunk_hosts":4,"correlation_id":"big"}"#,
        &["wait=60"],
    )
    .await;
    assert_eq!(status, 202, "{doc}");
    assert_eq!(doc["state"], "succeeded", "{doc}");
    assert_eq!(doc["chunks"]["succeeded"], 2, "{doc}");
    assert_eq!(applied(&h), Some("wait=60"));
    assert_eq!(h["location"], "/v1/jobs/big");
}

#[tokio::test]
async fn a_wait_that_loses_redis_answers_with_the_job_as_submitted() {
    let mut redis = RedisServer::start().await;
    let fx = Fixture::new();
    let catalog = Catalog::load(Some(&fx.catalog(INPROCESS_TOOLS))).expect("catalog");
    let cfg = test_config(&redis, "prefer-lost");
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;
    let waiting = tokio::spawn({
        let base = base.clone();
        async move {
            post(
                &base,
                r#"{"tool":"sleep","target":"10.0.0.5","args":"--ms 60000","correlation_id":"lost"}"#,
                &["wait=30"],
            )
            .await
        }
    });
    eventually(Duration::from_secs(20), "the job running", || {
        let base = base.clone();
        async move { (get_json(&base, "/v1/jobs/lost").await["state"] == "running").then_some(()) }
    })
    .await;
    redis.kill();
    // The listener's lost connection wakes the wait; its re-read fails: the job as the submit
    // left it (`queued`: any read that succeeded would have found it `running`), not a 503.
    let (status, doc, h) = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the answer came before the wait's end")
        .expect("post task");
    assert_eq!(status, 202, "{doc}");
    assert_eq!(doc["correlation_id"], "lost");
    assert_eq!(doc["state"], "queued", "{doc}");
    assert_eq!(h["location"], "/v1/jobs/lost");
    assert_eq!(applied(&h), Some("wait=30"));
}

#[tokio::test]
async fn a_listed_browser_origin_may_send_prefer_and_read_preference_applied() {
    let s = stack_with(|c| c.cors_origins = "https://dash.example".into()).await;
    let pre = http()
        .request(reqwest::Method::OPTIONS, format!("{}/v1/jobs", s.base))
        .header("origin", "https://dash.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type, prefer")
        .send()
        .await
        .expect("preflight");
    assert_eq!(pre.status(), 200);
    let allowed = pre.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(allowed.contains("prefer"), "{allowed}");
    let resp = http()
        .post(format!("{}/v1/jobs", s.base))
        .header("origin", "https://dash.example")
        .header("content-type", "application/json")
        .header("prefer", "wait=5")
        .body(r#"{"tool":"noop","target":"10.0.0.5","correlation_id":"cors"}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.headers()["preference-applied"], "wait=5");
    let exposed = resp.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(exposed.contains("preference-applied"), "{exposed}");
}
