//! Approvals (DESIGN §14, issue 23 part 4): a job that needs a person's yes is created
//! `awaiting_approval`, holds no queue slot while a worker runs beside it, and runs only once a
//! token with the `approve` scope other than its submitter's approves it; a rejection cancels it
//! with the reason; both are on the job and in the audit log; `job.awaiting_approval` reaches a
//! loopback webhook receiver; a retry of a rejected job waits for the person again; MCP clients
//! of 2026-07-28 see `input_required`; open mode refuses approvals. In-process tools only
//! (`noop`), loopback targets only.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use scanq::catalog::Catalog;
use scanq::config::Config;
use scanq::domain::{EngagementId, TenantId};
use scanq::engagement::{Approval, Calendar, Engagement};
use scanq_tests::*;
use serde_json::{Value, json};

/// What the webhook receiver accepted: (event, body).
type Seen = Arc<Mutex<Vec<(String, Value)>>>;

async fn hook(State(seen): State<Seen>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    let event = headers
        .get("scanq-event")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let doc: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    seen.lock().unwrap().push((event, doc));
    StatusCode::NO_CONTENT
}

/// A loopback webhook receiver; returns its URL.
async fn receiver(seen: Seen) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/hook", post(hook))
        .with_state(seen);
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, task)
}

/// A bearer-token client of one API.
struct As<'a> {
    base: &'a str,
    token: Option<&'a str>,
}

impl As<'_> {
    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let req = match self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
    async fn post(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        let req = http().post(format!("{}{path}", self.base));
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        self.send(req).await
    }
    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(http().get(format!("{}{path}", self.base))).await
    }
    async fn submit(&self, body: Value) -> Value {
        let (status, doc) = self.post("/v1/jobs", Some(body)).await;
        assert_eq!(status, 202, "{doc}");
        doc
    }
}

fn config(redis: &RedisServer, name: &str, fx: &Fixture) -> (Config, Catalog) {
    let mut cfg = test_config(redis, name);
    cfg.catalog = Some(fx.catalog(INPROCESS_TOOLS));
    cfg.allow_intrusive = true;
    let catalog = Catalog::load(cfg.catalog.as_deref()).unwrap();
    (cfg, catalog)
}

/// The audit lines of `action` in a JSON log.
fn audits(log: &std::path::Path, action: &str) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| {
            if v["fields"].is_object() {
                v["fields"].clone()
            } else {
                v
            }
        })
        .filter(|v| v["audit"] == action)
        .collect()
}

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
    let ids: Vec<&str> = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["correlation_id"].as_str().unwrap())
        .collect();
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

/// An MCP call over the 2026-07-28 wire with the tasks extension, as `token`.
async fn modern(base: &str, token: &str, method: &str, params: Value) -> Value {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities":
            {"extensions": {"io.modelcontextprotocol/tasks": {}}},
    });
    let name = params["name"].as_str().unwrap_or("").to_owned();
    let mut req = http()
        .post(format!("{base}/mcp"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method);
    if method == "tools/call" {
        req = req.header("mcp-name", name);
    }
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let text = req
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .rev()
        .filter_map(|l| l.strip_prefix("data: "))
        .find_map(|d| serde_json::from_str(d).ok())
        .unwrap_or_else(|| serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_engagement_that_says_always_holds_every_job_and_an_agent_sees_input_required() {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let tokens = Tokens::write(
        &fx.path(""),
        &[
            ("agent", "red", "submit,read"),
            ("lead", "red", "read,approve"),
        ],
        "",
    );
    let (mut cfg, catalog) = config(&redis, "approvals-eng", &fx);
    cfg.api_tokens_file = Some(tokens.path.clone());
    let queue = scanq::queue::Queue::new(scanq::queue::pool(&cfg).unwrap(), &cfg);
    let engagement = Engagement {
        id: EngagementId::parse("pentest-q4").unwrap(),
        description: None,
        targets: vec!["127.0.0.0/8".into()],
        denied_targets: vec![],
        tools: vec![],
        templates: vec![],
        calendar: Calendar::default(),
        starts_at_ms: None,
        expires_at_ms: None,
        approval: Approval::Always,
        stop_at_window_end: false,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    queue
        .put_engagement(&TenantId::parse("red").unwrap(), &engagement, now)
        .await
        .unwrap();
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let worker = start_worker(cfg, catalog).await;
    let agent = tokens.get("agent");

    // Not intrusive, but the engagement holds every job (the server itself says `never`).
    let as_agent = As {
        base: &base,
        token: Some(agent),
    };
    let doc = as_agent
        .submit(
            json!({"tool": "noop", "target": "127.0.0.1", "engagement": "pentest-q4",
                       "correlation_id": "eng-1"}),
        )
        .await;
    assert_eq!(doc["state"], "awaiting_approval", "{doc}");
    let id = "eng-1".to_owned();
    // A 2026-07-28 agent polling the task is told a person must act, and how.
    let got = modern(&base, agent, "tasks/get", json!({"taskId": id})).await;
    let t = &got["result"];
    assert_eq!(t["status"], "input_required", "{got}");
    let message = t["statusMessage"].as_str().unwrap();
    assert!(
        message.contains(&format!("A person must approve job {id}"))
            && message.contains("/approve")
            && message.contains("cannot approve it yourself"),
        "{message}"
    );
    // Its own scan call under the server rule (`never`) is not held: only the engagement's are.
    let created = modern(
        &base,
        agent,
        "tools/call",
        json!({"name": "noop_scan", "arguments": {"target": "127.0.0.1", "wait_sec": 0}}),
    )
    .await;
    assert_ne!(created["result"]["status"], "input_required", "{created}");
    let view = modern(
        &base,
        agent,
        "tools/call",
        json!({"name": "job_status", "arguments": {"correlation_id": id}}),
    )
    .await;
    assert!(
        view.to_string().contains("awaiting_approval"),
        "the job view says it: {view}"
    );

    // The agent's token cannot approve (no scope); the lead's can, and the task completes.
    let (status, _) = as_agent.post(&format!("/v1/jobs/{id}/approve"), None).await;
    assert_eq!(status, 403);
    let lead = As {
        base: &base,
        token: Some(tokens.get("lead")),
    };
    let (status, doc) = lead.post(&format!("/v1/jobs/{id}/approve"), None).await;
    assert_eq!(status, 200, "{doc}");
    // Approved before its time (a delay), it waits in the schedule rather than the queue.
    let later = as_agent
        .submit(
            json!({"tool": "noop", "target": "127.0.0.1", "engagement": "pentest-q4",
                       "delay_sec": 3600, "correlation_id": "eng-later"}),
        )
        .await;
    assert_eq!(later["state"], "awaiting_approval", "{later}");
    let (status, later) = lead.post("/v1/jobs/eng-later/approve", None).await;
    assert_eq!(status, 200, "{later}");
    assert_eq!(later["state"], "scheduled", "{later}");
    assert!(later["retry_at"].is_string(), "{later}");
    let done = eventually(Duration::from_secs(20), "task completed", || {
        let (base, id) = (base.clone(), id.clone());
        async move {
            let r = modern(&base, agent, "tasks/get", json!({"taskId": id})).await;
            (r["result"]["status"] == "completed").then_some(r)
        }
    })
    .await;
    assert_eq!(done["result"]["status"], "completed");

    worker.shutdown().await;
    api.shutdown().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_big_scan_waits_whole_and_spawns_its_chunks_only_when_approved() {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let tokens = Tokens::write(
        &fx.path(""),
        &[
            ("dev", "blue", "submit,read,cancel"),
            ("lead", "blue", "read,approve"),
        ],
        "",
    );
    let (mut cfg, catalog) = config(&redis, "approvals-big", &fx);
    cfg.api_tokens_file = Some(tokens.path.clone());
    cfg.approval = Approval::Always;
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let worker = start_worker(cfg, catalog).await;
    let dev = As {
        base: &base,
        token: Some(tokens.get("dev")),
    };
    let lead = As {
        base: &base,
        token: Some(tokens.get("lead")),
    };
    let big = |id: &str| json!({"tool": "noop", "target": "127.0.3.0/28", "chunk_hosts": 4, "correlation_id": id});

    let parent = dev.submit(big("big-1")).await;
    assert_eq!(parent["state"], "awaiting_approval", "{parent}");
    assert_eq!(parent["chunks"]["total"], 4);
    // Another job runs to its end meanwhile; the parent still waits with no chunk queued.
    let (status, _) = dev
        .post(
            "/v1/jobs",
            Some(json!({"tool": "noop", "target": "127.0.0.1", "correlation_id": "p"})),
        )
        .await;
    assert_eq!(status, 202);
    let (status, p) = lead.post("/v1/jobs/p/approve", None).await;
    assert_eq!(status, 200, "{p}");
    wait_done_as(&base, Some(tokens.get("dev")), "p", Duration::from_secs(20)).await;
    let (_, held) = dev.get("/v1/jobs/big-1").await;
    assert_eq!(held["state"], "awaiting_approval", "{held}");
    let (_, chunk) = dev.get("/v1/jobs/big-1:0").await;
    assert_ne!(
        chunk["state"], "succeeded",
        "no chunk ran before approval: {chunk}"
    );

    // Approved: its chunks are queued and run; the parent succeeds.
    let (status, doc) = lead
        .post(
            "/v1/jobs/big-1/approve",
            Some(json!({"reason": "whole range agreed"})),
        )
        .await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["approval"]["by"], "lead");
    let done = wait_done_as(
        &base,
        Some(tokens.get("dev")),
        "big-1",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["chunks"]["succeeded"], 4, "{done}");

    // Rejected: cancelled with the reason, no chunk made; a retry waits for the person again,
    // and a cancel while it waits ends it.
    dev.submit(big("big-2")).await;
    let (status, doc) = lead
        .post("/v1/jobs/big-2/reject", Some(json!({"reason": "too wide"})))
        .await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["state"], "cancelled");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too wide"),
        "{doc}"
    );
    let (status, retried) = dev.post("/v1/jobs/big-2/retry", None).await;
    assert_eq!(status, 202, "{retried}");
    assert_eq!(retried["state"], "awaiting_approval", "{retried}");
    let (status, cancelled) = dev
        .send(http().delete(format!("{base}/v1/jobs/big-2")))
        .await;
    assert!(status == 200 || status == 202, "{cancelled}");
    let done = wait_done_as(
        &base,
        Some(tokens.get("dev")),
        "big-2",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(done["state"], "cancelled", "{done}");
    let (_, chunk) = dev.get("/v1/jobs/big-2:0").await;
    assert_ne!(chunk["state"], "succeeded", "{chunk}");

    worker.shutdown().await;
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_schedules_intrusive_run_waits_is_told_and_any_approver_may_decide() {
    let redis = RedisServer::start().await;
    let (mut cfg, catalog, fx) = scheduling(&redis, "approvals-sched");
    let tokens = Tokens::write(
        &fx.path(""),
        &[("ops", "blue", "submit,read,cancel,approve")],
        "",
    );
    cfg.api_tokens_file = Some(tokens.path.clone());
    cfg.allow_intrusive = true;
    cfg.approval = Approval::Intrusive;
    let seen: Seen = Arc::default();
    let (url, server) = receiver(seen.clone()).await;
    cfg.webhook_allowed_urls = url.clone();
    cfg.webhook_retry_base_ms = 100;
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let ops = As {
        base: &base,
        token: Some(tokens.get("ops")),
    };
    let (status, _) = ops
        .post(
            "/v1/webhooks",
            Some(json!({"url": url, "events": ["job.awaiting_approval"]})),
        )
        .await;
    assert_eq!(status, 201);
    let (status, s) = ops
        .send(
            http()
                .put(format!("{base}/v1/schedules/nightly"))
                .json(&json!({
            "tool": "noop", "target": "127.0.0.1", "intrusive": true, "every_sec": 3600})),
        )
        .await;
    assert!(status == 200 || status == 201, "{s}");
    let (status, _) = ops.post("/v1/schedules/nightly/trigger", None).await;
    assert!((200..300).contains(&status));

    // The run waits; it is nobody's token's own, so the schedule's writer may approve it.
    let (_, page) = ops.get("/v1/jobs?state=awaiting_approval").await;
    let run = page["jobs"][0]["correlation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(run.starts_with("nightly."), "{page}");
    assert_eq!(page["jobs"][0]["submitted_by"], "schedule:nightly");
    let (status, doc) = ops.post(&format!("/v1/jobs/{run}/approve"), None).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["approval"]["by"], "ops");

    // A run fired by the scheduler itself is told to the webhook.
    let (status, _) = ops
        .send(
            http()
                .put(format!("{base}/v1/schedules/often"))
                .json(&json!({
            "tool": "noop", "target": "127.0.0.1", "intrusive": true, "every_sec": 1})),
        )
        .await;
    assert!(status == 200 || status == 201);
    let heard = eventually(
        Duration::from_secs(20),
        "a scheduled run's wait told",
        || {
            let seen = seen.clone();
            async move {
                seen.lock()
                    .unwrap()
                    .iter()
                    .find(|(_, b)| b["data"]["schedule_id"] == "often")
                    .cloned()
            }
        },
    )
    .await;
    assert_eq!(heard.0, "job.awaiting_approval");
    assert_eq!(heard.1["data"]["submitted_by"], "schedule:often");

    api.shutdown().await;
    server.abort();
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
