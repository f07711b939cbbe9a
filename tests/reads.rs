//! Reads at dashboard scale (DESIGN §15) over real HTTP, a real redis-server and, where a job
//! must finish, a real worker: lists of summaries (no result unless `?include=result`), the
//! cheap `?view=summary` read, and `ETag` / `If-None-Match` → 304 on a job, a list and the stats.

use std::time::Duration;

use reqwest::StatusCode;
use scanq::catalog::Catalog;
use scanq_tests::*;
use serde_json::{Value, json};

struct Stack {
    redis: RedisServer,
    _api: Task,
    _worker: Option<Task>,
    base: String,
    _fixture: Fixture,
}

/// An API (and, with `worker`, a worker) over the in-process tools and a fake exec tool.
async fn stack(worker: bool) -> Stack {
    let redis = RedisServer::start().await;
    let fixture = Fixture::new();
    let fake = fixture.script("fake", &fake_tool_script(None));
    let catalog_path = fixture.catalog(&format!(
        "{}{}",
        fake_tool_catalog("fake", &fake, ""),
        INPROCESS_TOOLS
    ));
    let catalog = Catalog::load(Some(&catalog_path)).expect("catalog");
    let cfg = test_config(&redis, "reads");
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let worker = match worker {
        true => Some(start_worker(cfg, catalog).await),
        false => None,
    };
    Stack {
        redis,
        _api: api,
        _worker: worker,
        base,
        _fixture: fixture,
    }
}

/// A GET with an optional `If-None-Match`: status, `ETag`, body text.
async fn get(base: &str, path: &str, tag: Option<&str>) -> (StatusCode, Option<String>, String) {
    let mut req = http().get(format!("{base}{path}"));
    if let Some(t) = tag {
        req = req.header("if-none-match", t);
    }
    let resp = req.send().await.expect("get");
    let status = resp.status();
    let etag = resp
        .headers()
        .get("etag")
        .map(|v| v.to_str().expect("ascii").to_owned());
    (status, etag, resp.text().await.expect("body"))
}

async fn submit(base: &str, body: Value) {
    let resp = post_json(base, "/v1/jobs", &body).await;
    assert_eq!(
        resp.status().as_u16(),
        202,
        "{}",
        resp.text().await.unwrap()
    );
}

#[tokio::test]
async fn a_list_has_summaries_without_result_unless_include_result() {
    let s = stack(true).await;
    submit(
        &s.base,
        json!({"tool":"fake","target":"127.0.0.1","args":"--sleep-ms 10","correlation_id":"done-1"}),
    )
    .await;
    wait_done(&s.base, "done-1", Duration::from_secs(20)).await;

    let list = get_json(&s.base, "/v1/jobs").await;
    let full = get_json(&s.base, "/v1/jobs?include=result").await;

    let job = &list["jobs"][0];
    assert_eq!(job["correlation_id"], "done-1", "{list}");
    assert_eq!(job["state"], "succeeded");
    assert_eq!(
        (job["tool"].as_str(), job["zone"].as_str()),
        (Some("fake"), Some("default"))
    );
    assert!(
        job["finished_at"].is_string() && job["duration_ms"].is_u64(),
        "{job}"
    );
    assert!(
        job.get("result").is_none(),
        "a summary has no result: {job}"
    );
    assert!(
        job.get("args").is_none(),
        "nor the request's details: {job}"
    );
    let with = &full["jobs"][0];
    assert_eq!(with["result"]["exit_code"], 0, "{with}");
    assert!(
        with["result"]["stdout"]
            .as_str()
            .unwrap()
            .contains("scanned 127.0.0.1")
    );
}

#[tokio::test]
async fn a_summary_read_of_one_job_has_no_result() {
    let s = stack(true).await;
    submit(
        &s.base,
        json!({"tool":"fake","target":"127.0.0.1","args":"--sleep-ms 10","correlation_id":"one"}),
    )
    .await;
    wait_done(&s.base, "one", Duration::from_secs(20)).await;

    let (status, tag, body) = get(&s.base, "/v1/jobs/one?view=summary", None).await;
    let summary: Value = serde_json::from_str(&body).unwrap();
    let (_, full_tag, _) = get(&s.base, "/v1/jobs/one", None).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(summary["state"], "succeeded", "{summary}");
    assert!(summary.get("result").is_none(), "{summary}");
    assert_ne!(
        tag, full_tag,
        "a summary and a document are different answers"
    );
    let (again, _, empty) = get(&s.base, "/v1/jobs/one?view=summary", tag.as_deref()).await;
    assert_eq!((again, empty.as_str()), (StatusCode::NOT_MODIFIED, ""));
}

#[tokio::test]
async fn a_job_tag_gives_304_until_the_job_changes() {
    let s = stack(false).await; // no worker: the job stays queued until cancelled
    submit(
        &s.base,
        json!({"tool":"noop","target":"127.0.0.1","correlation_id":"q-1"}),
    )
    .await;

    let (status, tag, _) = get(&s.base, "/v1/jobs/q-1", None).await;
    let tag = tag.expect("an ETag");
    let (same, same_tag, body) = get(&s.base, "/v1/jobs/q-1", Some(&tag)).await;
    let (other, _, _) = get(&s.base, "/v1/jobs/q-1", Some("\"j-0000000000000000\"")).await;
    let cancel = http()
        .delete(format!("{}/v1/jobs/q-1", s.base))
        .send()
        .await
        .unwrap();
    let (after, new_tag, doc) = get(&s.base, "/v1/jobs/q-1", Some(&tag)).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(same, StatusCode::NOT_MODIFIED);
    assert_eq!(
        (same_tag.as_deref(), body.as_str()),
        (Some(tag.as_str()), "")
    );
    assert_eq!(other, StatusCode::OK, "another tag is not current");
    assert_eq!(cancel.status().as_u16(), 200);
    assert_eq!(after, StatusCode::OK, "a change gives the document again");
    assert_ne!(new_tag.as_deref(), Some(tag.as_str()));
    assert_eq!(
        serde_json::from_str::<Value>(&doc).unwrap()["state"],
        "cancelled"
    );
}

#[tokio::test]
async fn a_list_tag_changes_when_a_job_on_the_page_changes() {
    let s = stack(false).await;
    for id in ["l-1", "l-2"] {
        submit(
            &s.base,
            json!({"tool":"noop","target":"127.0.0.1","correlation_id": id}),
        )
        .await;
    }
    let (_, tag, body) = get(&s.base, "/v1/jobs?limit=20", None).await;
    let tag = tag.expect("an ETag");
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["jobs"].as_array().unwrap().len(), 2, "{page}");
    let (same, _, _) = get(&s.base, "/v1/jobs?limit=20", Some(&tag)).await;
    let (_, full_tag, _) = get(&s.base, "/v1/jobs?limit=20&include=result", None).await;
    let full_tag = full_tag.expect("an ETag");
    let (full_same, _, _) = get(&s.base, "/v1/jobs?limit=20&include=result", Some(&full_tag)).await;
    http()
        .delete(format!("{}/v1/jobs/l-1", s.base))
        .send()
        .await
        .unwrap();
    let (after, new_tag, _) = get(&s.base, "/v1/jobs?limit=20", Some(&tag)).await;
    submit(
        &s.base,
        json!({"tool":"noop","target":"127.0.0.1","correlation_id":"l-3"}),
    )
    .await;
    let new_tag = new_tag.expect("an ETag");
    let (added, _, _) = get(&s.base, "/v1/jobs?limit=20", Some(&new_tag)).await;

    assert_eq!(same, StatusCode::NOT_MODIFIED);
    assert_eq!(full_same, StatusCode::NOT_MODIFIED);
    assert_ne!(full_tag, tag, "a page with results is another answer");
    assert_eq!(after, StatusCode::OK, "a job on the page was cancelled");
    assert_ne!(new_tag, tag);
    assert_eq!(added, StatusCode::OK, "a new job joins the page");
}

#[tokio::test]
async fn the_stats_tag_gives_304_until_a_count_changes() {
    let s = stack(false).await;
    // Nothing is queued, so the tag moves only with the counts (and the minute: a page read
    // across a minute's edge gets a new tag, so take a fresh one until two reads agree).
    let tag = eventually(Duration::from_secs(10), "two stats reads agree", || {
        let base = s.base.clone();
        async move {
            let (_, tag, _) = get(&base, "/v1/stats", None).await;
            let tag = tag?;
            let (status, _, body) = get(&base, "/v1/stats", Some(&tag)).await;
            (status == StatusCode::NOT_MODIFIED && body.is_empty()).then_some(tag)
        }
    })
    .await;
    submit(
        &s.base,
        json!({"tool":"noop","target":"127.0.0.1","correlation_id":"s-1"}),
    )
    .await;
    let (after, new_tag, body) = get(&s.base, "/v1/stats", Some(&tag)).await;

    assert_eq!(after, StatusCode::OK, "a submit changes the counts");
    assert_ne!(new_tag.as_deref(), Some(tag.as_str()));
    let stats: Value = serde_json::from_str(&body).unwrap();
    let noop = stats["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tool"] == "noop")
        .unwrap();
    assert_eq!(noop["counts"]["queued"], 1, "{stats}");
}

#[tokio::test]
async fn unknown_view_and_include_values_are_refused_naming_the_parameter() {
    let s = stack(false).await;
    for (path, field) in [
        ("/v1/jobs/x?view=everything", "view"),
        ("/v1/jobs?include=output", "include"),
    ] {
        let resp = http()
            .get(format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let problem: Value = resp.json().await.unwrap();
        assert_eq!(status, 422, "{path}: {problem}");
        assert_eq!(problem["field"], field, "{problem}");
    }
}

/// Many clients polling one job and one page share the API's reads (`api/src/reads`), yet a
/// read sent after a change always sees it: while 16 pollers flood the same job and list, each
/// of ten rounds submits a job, reads it and the list, cancels it, and reads both again.
#[tokio::test]
async fn reads_shared_by_a_flood_of_pollers_never_answer_with_the_past() {
    let s = stack(false).await; // no worker: a job stays queued until cancelled
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let polled = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let pollers: Vec<_> = (0..16)
        .map(|n| {
            let (base, stop, polled) = (s.base.clone(), stop.clone(), polled.clone());
            tokio::spawn(async move {
                let client = http();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let path = match n % 2 {
                        0 => "/v1/jobs?limit=5".to_owned(),
                        _ => format!("/v1/jobs/f-{}", n % 10),
                    };
                    let resp = client.get(format!("{base}{path}")).send().await.unwrap();
                    assert!(
                        matches!(resp.status().as_u16(), 200 | 404),
                        "{path}: {}",
                        resp.status()
                    );
                    polled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    eventually(Duration::from_secs(10), "the pollers run", || async {
        (polled.load(std::sync::atomic::Ordering::Relaxed) > 100).then_some(())
    })
    .await;

    for round in 0..10 {
        let id = format!("f-{round}");
        submit(
            &s.base,
            json!({"tool":"noop","target":"127.0.0.1","correlation_id":id}),
        )
        .await;
        let doc = get_json(&s.base, &format!("/v1/jobs/{id}")).await;
        assert_eq!(doc["state"], "queued", "round {round}: {doc}");
        let list = get_json(&s.base, "/v1/jobs?limit=5").await;
        assert_eq!(list["jobs"][0]["correlation_id"], id.as_str(), "{list}");
        assert_eq!(list["jobs"][0]["state"], "queued", "{list}");

        let cancel = http()
            .delete(format!("{}/v1/jobs/{id}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(cancel.status().as_u16(), 200);
        let doc = get_json(&s.base, &format!("/v1/jobs/{id}")).await;
        assert_eq!(doc["state"], "cancelled", "round {round}: {doc}");
        let summary = get_json(&s.base, &format!("/v1/jobs/{id}?view=summary")).await;
        assert_eq!(summary["state"], "cancelled", "round {round}: {summary}");
        let list = get_json(&s.base, "/v1/jobs?limit=5").await;
        assert_eq!(
            list["jobs"][0]["state"], "cancelled",
            "round {round}: {list}"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for p in pollers {
        p.await.expect("a poller saw only 200 and 404");
    }
}

/// A listing entry is written just before its job's hash (one round trip apart). A list read
/// that falls between them skips the job but must not remove its entry, or the job would be
/// missing from every list from then on (found by the flood test above).
#[tokio::test]
async fn a_list_read_between_a_jobs_listing_entry_and_its_hash_keeps_the_entry() {
    let s = stack(false).await;
    submit(
        &s.base,
        json!({"tool":"noop","target":"127.0.0.1","correlation_id":"real-1"}),
    )
    .await;
    let mut con = redis::Client::open(s.redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*jobs:default")
        .query_async(&mut con)
        .await
        .unwrap();
    let [listing] = keys.as_slice() else {
        panic!("one tenant listing: {keys:?}")
    };
    let score: f64 = redis::cmd("ZSCORE")
        .arg(listing)
        .arg("real-1")
        .query_async(&mut con)
        .await
        .unwrap();
    // A job being submitted: its entry (same queue, a moment later), no hash yet.
    let _: () = redis::cmd("ZADD")
        .arg(listing)
        .arg(score + f64::from(1u32 << 12))
        .arg("being-1")
        .query_async(&mut con)
        .await
        .unwrap();

    let list = get_json(&s.base, "/v1/jobs?limit=5").await;
    let still: Option<f64> = redis::cmd("ZSCORE")
        .arg(listing)
        .arg("being-1")
        .query_async(&mut con)
        .await
        .unwrap();

    let ids = listed_ids(&list);
    assert_eq!(
        ids,
        ["real-1"],
        "the job without a hash is not shown: {list}"
    );
    assert!(still.is_some(), "its listing entry is kept");
}
