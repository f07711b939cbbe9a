//! Enforcement: expiry (new jobs refused, schedules parked), deletion (new jobs and retries
//! refused), `SCANQ_REQUIRE_ENGAGEMENT`, and a big scan's chunks carrying their engagement.

use scanq::domain::{CorrelationId, TenantId, chunk_id};
use scanq::queue::Queue;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_engagement_refuses_new_jobs_and_parks_its_schedule() {
    let e = env("engexpiry").await;
    let (_api, base) = start_api(e.cfg.clone(), e.catalog.clone()).await;
    // Runs finish, so each slot fires (a queued previous run would make it skip).
    let _worker = start_worker(e.cfg.clone(), e.catalog.clone()).await;
    let blue = e.tokens.get("blue");
    let (status, doc) = put_eng(
        &base,
        blue,
        "brief",
        json!({"targets": ["127.0.1.0/24"], "expires_at": in_secs(3)}),
    )
    .await;
    assert_eq!(status, 201, "{doc}");
    // A schedule naming an unknown engagement is refused; naming this one, accepted.
    let sched = |eng: &str| json!({"tool": "noop", "target": "127.0.1.7", "every_sec": 1, "engagement": eng});
    let put_sched = |body: Value| {
        call(
            &base,
            blue,
            Method::PUT,
            "/v1/schedules/nightly",
            Some(body),
        )
    };
    refused(&put_sched(sched("nope")).await, "engagement");
    let (status, doc) = put_sched(sched("brief")).await;
    assert_eq!(status, 201, "{doc}");
    assert_eq!(doc["template"]["engagement"], "brief", "{doc}");

    eventually(
        Duration::from_secs(15),
        "the engagement to expire",
        || async {
            let (_, doc) = call(&base, blue, Method::GET, "/v1/engagements/brief", None).await;
            (doc["state"] == "expired").then_some(())
        },
    )
    .await;
    let r = submit(
        &base,
        blue,
        json!({"tool": "noop", "target": "127.0.1.5", "engagement": "brief"}),
    )
    .await;
    refused(&r, "engagement");
    assert!(
        r.1["detail"].as_str().unwrap().contains("expired"),
        "{}",
        r.1
    );

    // A triggered run is refused the same way.
    refused(
        &call(
            &base,
            blue,
            Method::POST,
            "/v1/schedules/nightly/trigger",
            None,
        )
        .await,
        "engagement",
    );

    let parked = eventually(
        Duration::from_secs(15),
        "the schedule to be parked",
        || async {
            let (_, doc) = call(&base, blue, Method::GET, "/v1/schedules/nightly", None).await;
            (doc["state"] == "parked").then_some(doc)
        },
    )
    .await;
    let reason = parked["parked_reason"].as_str().unwrap_or("");
    assert!(reason.contains("engagement brief expired"), "{parked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_engagement_refuses_new_jobs_and_retries() {
    let e = env("engdeleted").await;
    let (_api, base) = start_api(e.cfg.clone(), e.catalog.clone()).await;
    let _worker = start_worker(e.cfg.clone(), e.catalog.clone()).await;
    let blue = e.tokens.get("blue");
    assert_eq!(
        put_eng(&base, blue, "gone", json!({"targets": ["127.0.1.0/24"]}))
            .await
            .0,
        201
    );
    let (status, job) = submit(
        &base,
        blue,
        json!({"tool": "sleep", "target": "127.0.1.5", "args": "--fail", "max_attempts": 1, "engagement": "gone"}),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let id = job["correlation_id"].as_str().unwrap();
    let done = wait_done_as(&base, Some(blue), id, Duration::from_secs(20)).await;
    assert_eq!(done["state"], "failed", "{done}");
    // While the engagement stands, the retry is admitted (and fails again).
    let retry = format!("/v1/jobs/{id}/retry");
    let (status, doc) = call(&base, blue, Method::POST, &retry, None).await;
    assert_eq!(status, 202, "{doc}");
    let done = wait_done_as(&base, Some(blue), id, Duration::from_secs(20)).await;
    assert_eq!(done["state"], "failed", "{done}");

    assert_eq!(
        call(&base, blue, Method::DELETE, "/v1/engagements/gone", None)
            .await
            .0,
        204
    );
    refused(
        &submit(
            &base,
            blue,
            json!({"tool": "noop", "target": "127.0.1.5", "engagement": "gone"}),
        )
        .await,
        "engagement",
    );
    let r = call(&base, blue, Method::POST, &retry, None).await;
    refused(&r, "engagement");
    assert!(
        r.1["detail"].as_str().unwrap().contains("no longer exists"),
        "{}",
        r.1
    );
    let (_, doc) = call(&base, blue, Method::GET, &format!("/v1/jobs/{id}"), None).await;
    assert_eq!(
        doc["state"], "failed",
        "a refused retry leaves the job as it was: {doc}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_require_engagement_a_submit_or_schedule_without_one_is_refused_naming_engagement() {
    let mut e = env("engrequire").await;
    e.cfg.require_engagement = true;
    let (_api, base) = start_api(e.cfg.clone(), e.catalog.clone()).await;
    let blue = e.tokens.get("blue");
    assert_eq!(
        put_eng(&base, blue, "must", json!({"targets": ["127.0.1.0/24"]}))
            .await
            .0,
        201
    );
    let r = submit(&base, blue, json!({"tool": "noop", "target": "127.0.1.5"})).await;
    refused(&r, "engagement");
    assert!(
        r.1["detail"].as_str().unwrap().contains("required"),
        "{}",
        r.1
    );
    let (status, doc) = submit(
        &base,
        blue,
        json!({"tool": "noop", "target": "127.0.1.5", "engagement": "must"}),
    )
    .await;
    assert_eq!(status, 202, "{doc}");
    // A schedule too: its template is a submit.
    let sched = |extra: Value| {
        let mut b = json!({"tool": "noop", "target": "127.0.1.5", "every_sec": 3600});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        call(&base, blue, Method::PUT, "/v1/schedules/s", Some(b))
    };
    refused(&sched(json!({})).await, "engagement");
    assert_eq!(sched(json!({"engagement": "must"})).await.0, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_scan_under_an_engagement_stores_it_on_every_chunk() {
    let e = env("engbig").await;
    let (_api, base) = start_api(e.cfg.clone(), e.catalog.clone()).await;
    let blue = e.tokens.get("blue");
    assert_eq!(
        put_eng(&base, blue, "wide", json!({"targets": ["127.0.4.0/24"]}))
            .await
            .0,
        201
    );
    // A big scan reaching outside the engagement is refused whole.
    refused(
        &submit(&base, blue, json!({"tool": "noop", "target": "127.0.4.0/24,127.0.5.0/30", "chunk_hosts": 64, "engagement": "wide"})).await,
        "target",
    );
    let (status, doc) = submit(
        &base,
        blue,
        json!({"tool": "noop", "target": "127.0.4.0/24", "chunk_hosts": 64, "correlation_id": "big-1", "engagement": "wide"}),
    )
    .await;
    assert_eq!(status, 202, "{doc}");
    let queue = Queue::new(scanq::queue::pool(&e.cfg).unwrap(), &e.cfg);
    let tenant = TenantId::parse("blue").unwrap();
    let parent = CorrelationId::parse("big-1").unwrap();
    for n in 0..4 {
        let chunk = chunk_id(&parent, n);
        let f = queue
            .job_fields(&tenant, &chunk, &["engagement", "parent"])
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("chunk {chunk} exists"));
        assert_eq!(
            f.get("engagement").map(String::as_str),
            Some("wide"),
            "{chunk}: {f:?}"
        );
        assert_eq!(f.get("parent").map(String::as_str), Some("big-1"));
    }
    drop(e.redis);
}
