//! Approvals in programs (DESIGN §14, issue 23 part 4): an engagement that says `always` holds
//! every job and a 2026-07-28 MCP agent polling its task sees `input_required` with what a
//! person must do; a big scan waits whole and spawns its chunks only when approved; a schedule's
//! intrusive run waits, submitted by `schedule:<id>`, and is told to the webhook. In-process
//! tools (`noop`), loopback targets only.

use std::sync::Arc;
use std::time::Duration;

use scanq::domain::{EngagementId, TenantId};
use scanq::engagement::{Approval, Calendar, Engagement};
use scanq_tests::approve::*;
use scanq_tests::*;
use serde_json::{Value, json};

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
    // So is the run the trigger made.
    let triggered = eventually(
        Duration::from_secs(20),
        "a triggered run's wait told",
        || {
            let seen = seen.clone();
            async move {
                seen.lock()
                    .unwrap()
                    .iter()
                    .find(|(_, b)| b["data"]["schedule_id"] == "nightly")
                    .cloned()
            }
        },
    )
    .await;
    assert_eq!(triggered.0, "job.awaiting_approval");

    api.shutdown().await;
    server.abort();
}
