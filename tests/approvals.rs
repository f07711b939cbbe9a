//! Approvals (DESIGN §14, issue 23 part 4): a job that needs a person's yes is created
//! `awaiting_approval`, holds no queue slot while a worker runs beside it, and runs only once a
//! token with the `approve` scope other than its submitter's approves it; a rejection cancels it
//! with the reason; both are on the job and in the audit log; `job.awaiting_approval` reaches a
//! loopback webhook receiver; a retry of a rejected job waits for the person again; a held job
//! takes its tenant's place only when approved; open mode refuses approvals. In-process tools
//! only (`noop`), loopback targets only (a private one only where no worker runs). Engagements,
//! MCP, big scans and schedules: `tests/approvals_programs.rs`.

use std::sync::Arc;
use std::time::Duration;

use scanq::engagement::Approval;
use scanq_tests::approve::*;
use scanq_tests::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_intrusive_job_waits_for_a_person_who_is_not_its_submitter() {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let tokens = Tokens::write(
        &fx.path(""),
        &[
            ("ann", "blue", "submit,read,cancel,approve"),
            ("bob", "blue", "read,approve"),
            ("carol", "blue", "submit,read,cancel"),
            ("root", "ops", "admin"),
        ],
        "",
    );
    let (mut cfg, catalog) = config(&redis, "approvals", &fx);
    cfg.api_tokens_file = Some(tokens.path.clone());
    cfg.approval = Approval::Intrusive;
    cfg.log_format = scanq::config::LogFormat::Json;
    let seen: Seen = Arc::default();
    let (url, server) = receiver(seen.clone()).await;
    cfg.webhook_allowed_urls = url.clone();
    cfg.webhook_retry_base_ms = 100;
    let port = free_port();
    cfg.api_addr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = fx.path("api.log");
    let _api = Proc::spawn_logged("scanq-api", &cfg, &[], &log);
    let base = format!("http://127.0.0.1:{port}");
    eventually(Duration::from_secs(20), "API ready", || {
        let url = format!("{base}/readyz");
        async move { (http().get(url).send().await.ok()?.status() == 200).then_some(()) }
    })
    .await;
    let worker = start_worker(cfg.clone(), catalog).await;
    let (ann, bob, carol, root) = (
        As {
            base: &base,
            token: Some(tokens.get("ann")),
        },
        As {
            base: &base,
            token: Some(tokens.get("bob")),
        },
        As {
            base: &base,
            token: Some(tokens.get("carol")),
        },
        As {
            base: &base,
            token: Some(tokens.get("root")),
        },
    );
    let (status, _) = ann
        .post(
            "/v1/webhooks",
            Some(json!({"url": url, "events": ["job.awaiting_approval"]})),
        )
        .await;
    assert_eq!(status, 201);

    // An intrusive job waits; a plain one submitted after it runs to its end beside it.
    let intrusive = json!({"tool": "noop", "target": "127.0.0.1", "intrusive": true,
                           "correlation_id": "intr-1"});
    let doc = ann.submit(intrusive.clone()).await;
    assert_eq!(doc["state"], "awaiting_approval", "{doc}");
    assert_eq!(doc["submitted_by"], "ann");
    assert_eq!(doc["approval"]["decision"], "pending");
    // The same request again is the same job (idempotent); another one under its ID a conflict.
    let (status, again) = ann.post("/v1/jobs", Some(intrusive.clone())).await;
    assert_eq!(
        (status, &again["state"]),
        (200, &json!("awaiting_approval"))
    );
    let (status, _) = ann
        .post(
            "/v1/jobs",
            Some(
                json!({"tool": "noop", "target": "127.0.0.2", "intrusive": true,
                                      "correlation_id": "intr-1"}),
            ),
        )
        .await;
    assert_eq!(status, 409);
    let plain = ann
        .submit(json!({"tool": "noop", "target": "127.0.0.1", "correlation_id": "plain-1"}))
        .await;
    assert_eq!(
        plain["state"], "queued",
        "only intrusive jobs wait: {plain}"
    );
    let done = wait_done_as(
        &base,
        Some(tokens.get("ann")),
        "plain-1",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(done["state"], "succeeded");
    let (_, held) = ann.get("/v1/jobs/intr-1").await;
    assert_eq!(
        held["state"], "awaiting_approval",
        "a running worker did not take it: {held}"
    );
    let (_, listed) = ann.get("/v1/jobs?state=awaiting_approval").await;
    let ids = listed_ids(&listed);
    assert_eq!(ids, ["intr-1"], "{listed}");
    let (_, stats) = root.get("/v1/stats").await;
    let noop = stats["tools"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["tool"] == "noop"))
        .cloned()
        .unwrap_or_else(|| panic!("no stats for noop: {stats}"));
    assert_eq!(noop["queue_depth"], 0, "it holds no queue slot: {stats}");
    assert_eq!(noop["counts"]["awaiting_approval"], 1, "{stats}");

    // Who may decide: not the submitter (even with `approve`), not a token without the scope.
    let (status, p) = ann.post("/v1/jobs/intr-1/approve", None).await;
    assert_eq!(status, 403, "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("token that submitted it"),
        "{p}"
    );
    let (status, p) = carol.post("/v1/jobs/intr-1/approve", None).await;
    assert_eq!(status, 403, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("approve"), "{p}");
    let (status, p) = bob
        .post(
            "/v1/jobs/intr-1/approve",
            Some(json!({"reason": "x".repeat(501)})),
        )
        .await;
    assert_eq!((status, p["field"].as_str()), (422, Some("reason")), "{p}");
    let (status, p) = bob
        .post("/v1/jobs/intr-1/approve", Some(json!({"because": "yes"})))
        .await;
    assert_eq!(status, 422, "{p}");
    let (status, _) = bob.post("/v1/jobs/nope/approve", None).await;
    assert_eq!(status, 404);
    let (status, p) = bob.post("/v1/jobs/plain-1/approve", None).await;
    assert_eq!(status, 409, "only a job awaiting approval: {p}");

    // Another token with `approve` says yes: it runs to its end.
    let (status, approved) = bob
        .post(
            "/v1/jobs/intr-1/approve",
            Some(json!({"reason": "change ticket 42"})),
        )
        .await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["approval"]["decision"], "approved");
    assert_eq!(approved["approval"]["by"], "bob");
    assert_eq!(approved["approval"]["reason"], "change ticket 42");
    assert!(approved["approval"]["at"].is_string());
    let done = wait_done_as(
        &base,
        Some(tokens.get("ann")),
        "intr-1",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let (status, _) = bob.post("/v1/jobs/intr-1/approve", None).await;
    assert_eq!(status, 409, "decided once");

    // A rejection cancels with the reason; a retry puts it back before a person.
    ann.submit(
        json!({"tool": "noop", "target": "127.0.0.1", "intrusive": true,
                      "correlation_id": "intr-2"}),
    )
    .await;
    let (status, rejected) = bob
        .post(
            "/v1/jobs/intr-2/reject",
            Some(json!({"reason": "not during the freeze"})),
        )
        .await;
    assert_eq!(status, 200, "{rejected}");
    assert_eq!(rejected["state"], "cancelled");
    assert_eq!(rejected["error"]["type"], "cancelled");
    assert!(
        rejected["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not during the freeze"),
        "{rejected}"
    );
    assert_eq!(rejected["approval"]["decision"], "rejected");
    let (status, retried) = ann.post("/v1/jobs/intr-2/retry", None).await;
    assert_eq!(status, 202, "{retried}");
    assert_eq!(
        retried["state"], "awaiting_approval",
        "never around the person: {retried}"
    );
    assert_eq!(retried["approval"]["decision"], "pending");
    // Cancelling a job that awaits approval works.
    let (status, cancelled) = ann
        .send(http().delete(format!("{base}/v1/jobs/intr-2")))
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["job"]["state"], "cancelled");

    // The webhook heard each wait (two jobs, one of them twice).
    let events = eventually(
        Duration::from_secs(20),
        "three job.awaiting_approval",
        || {
            let seen = seen.clone();
            async move {
                let s = seen.lock().unwrap().clone();
                (s.len() >= 3).then_some(s)
            }
        },
    )
    .await;
    let mut heard: Vec<String> = events
        .iter()
        .map(|(e, b)| {
            assert_eq!(e, "job.awaiting_approval");
            assert_eq!(b["type"], "job.awaiting_approval");
            assert_eq!(b["data"]["submitted_by"], "ann");
            b["data"]["correlation_id"].as_str().unwrap().to_owned()
        })
        .collect();
    heard.sort();
    assert_eq!(heard, ["intr-1", "intr-2", "intr-2"]);

    // Every decision is audited: who, what, why, and the refusals.
    let lines = eventually(Duration::from_secs(10), "the audit lines", || {
        let log = log.clone();
        async move {
            let a = audits(&log, "approve");
            let r = audits(&log, "reject");
            (a.iter().any(|l| l["outcome"] == "approved") && !r.is_empty()).then_some((a, r))
        }
    })
    .await;
    let (approves, rejects) = lines;
    let ok = approves
        .iter()
        .find(|l| l["outcome"] == "approved")
        .unwrap();
    assert_eq!(ok["token"], "bob");
    assert_eq!(ok["correlation_id"], "intr-1");
    assert_eq!(ok["reason"], "change ticket 42");
    assert!(
        approves
            .iter()
            .any(|l| l["token"] == "ann" && l["outcome"] == "own_job"),
        "{approves:?}"
    );
    assert_eq!(rejects[0]["token"], "bob");
    assert_eq!(rejects[0]["outcome"], "rejected");
    assert_eq!(rejects[0]["reason"], "not during the freeze");
    for l in approves.iter().chain(&rejects) {
        let text = l.to_string();
        assert!(tokens.all().all(|t| !text.contains(t)), "no token in logs");
    }

    worker.shutdown().await;
    server.abort();
}

#[tokio::test]
async fn open_mode_refuses_approvals_for_want_of_a_second_identity() {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let (mut cfg, catalog) = config(&redis, "approvals-open", &fx);
    cfg.approval = Approval::Always;
    let (api, base) = start_api(cfg, catalog).await;
    let open = As {
        base: &base,
        token: None,
    };
    let doc = open
        .submit(json!({"tool": "noop", "target": "10.0.0.5", "correlation_id": "o-1"}))
        .await;
    assert_eq!(doc["state"], "awaiting_approval", "{doc}");
    assert_eq!(doc["submitted_by"], "open");
    for action in ["approve", "reject"] {
        let (status, p) = open.post(&format!("/v1/jobs/o-1/{action}"), None).await;
        assert_eq!(status, 403, "{p}");
        assert!(p["detail"].as_str().unwrap().contains("open mode"), "{p}");
    }
    let (_, still) = open.get("/v1/jobs/o-1").await;
    assert_eq!(still["state"], "awaiting_approval");
    api.shutdown().await;
}

#[tokio::test]
async fn a_held_job_takes_its_tenant_place_only_when_approved() {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let tokens = Tokens::write(
        &fx.path(""),
        &[
            ("dev", "blue", "submit,read,cancel"),
            ("lead", "blue", "read,approve"),
        ],
        "[tenants.blue]\nmax_queued = 1\n",
    );
    let (mut cfg, catalog) = config(&redis, "approvals-caps", &fx);
    cfg.api_tokens_file = Some(tokens.path.clone());
    cfg.approval = Approval::Always;
    // No worker: approved jobs stay queued, holding their tenant's places.
    let (api, base) = start_api(cfg, catalog).await;
    let dev = As {
        base: &base,
        token: Some(tokens.get("dev")),
    };
    let lead = As {
        base: &base,
        token: Some(tokens.get("lead")),
    };
    for id in ["cap-1", "cap-2", "cap-3"] {
        let doc = dev
            .submit(json!({"tool": "noop", "target": "127.0.0.1", "correlation_id": id}))
            .await;
        assert_eq!(
            doc["state"], "awaiting_approval",
            "held jobs take no place: {doc}"
        );
    }
    let (status, doc) = lead.post("/v1/jobs/cap-1/approve", None).await;
    assert_eq!((status, &doc["state"]), (200, &json!("queued")), "{doc}");
    let (status, p) = lead.post("/v1/jobs/cap-2/approve", None).await;
    assert_eq!(status, 429, "the tenant's one place is taken: {p}");
    let (_, still) = dev.get("/v1/jobs/cap-2").await;
    assert_eq!(
        still["state"], "awaiting_approval",
        "a refused approval leaves it waiting"
    );
    // Cancelling the queued job gives the place back: the next approval is admitted.
    let (status, _) = dev
        .send(http().delete(format!("{base}/v1/jobs/cap-1")))
        .await;
    assert_eq!(status, 200);
    let (status, doc) = lead.post("/v1/jobs/cap-2/approve", None).await;
    assert_eq!((status, &doc["state"]), (200, &json!("queued")), "{doc}");
    api.shutdown().await;
}
