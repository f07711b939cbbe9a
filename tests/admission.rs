//! The one admission path: a retry is admitted like a new job. It meets the tool's queue
//! length, the tenant's queued cap, the fair-share window and the gate (a switched-off tool),
//! exactly as a submit does — a tenant cannot park failed or cancelled jobs under its cap and
//! then retry them all at once. No worker runs: jobs stay where the admission put them, and
//! cancelled jobs (retryable like failed ones) are made by cancelling queued ones.

use scanq::catalog::Catalog;
use scanq::config::Config;
use scanq::domain::{CorrelationId, JobId, TenantId, ToolName};
use scanq::keys::Keys;
use scanq::queue::Queue;
use scanq_tests::*;
use serde_json::{Value, json};

struct Stack {
    redis: RedisServer,
    _api: Task,
    base: String,
    tokens: Tokens,
    cfg: Config,
    catalog: Catalog,
    _dir: tempfile::TempDir,
}

async fn stack(extra: &str, tune: impl Fn(&mut Config)) -> Stack {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = Tokens::write(
        dir.path(),
        &[
            ("blue", "blue", "submit,read,cancel"),
            ("ops", "ops", "admin"),
        ],
        extra,
    );
    let fx = Fixture::new();
    let catalog = Catalog::load(Some(&fx.catalog(INPROCESS_TOOLS))).unwrap();
    let mut cfg = test_config(&redis, "admission");
    cfg.api_tokens_file = Some(tokens.path.clone());
    tune(&mut cfg);
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    Stack {
        redis,
        _api: api,
        base,
        tokens,
        cfg,
        catalog,
        _dir: dir,
    }
}

impl Stack {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = http()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.tokens.get("blue"));
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    async fn submit(&self, cid: &str) -> u16 {
        let body = json!({"tool": "noop", "target": "127.0.0.1", "correlation_id": cid});
        self.call(reqwest::Method::POST, "/v1/jobs", Some(body))
            .await
            .status()
            .as_u16()
    }

    async fn cancel(&self, cid: &str) {
        let r = self
            .call(reqwest::Method::DELETE, &format!("/v1/jobs/{cid}"), None)
            .await;
        assert_eq!(r.status(), 200, "cancel {cid}");
    }

    async fn retry(&self, cid: &str) -> reqwest::Response {
        self.call(
            reqwest::Method::POST,
            &format!("/v1/jobs/{cid}/retry"),
            None,
        )
        .await
    }

    /// Makes `n` cancelled jobs `<prefix>-<i>`, submitting and cancelling `batch` at a time (so
    /// no cap is ever met while they are made).
    async fn cancelled_jobs(&self, prefix: &str, n: usize, batch: usize) -> Vec<String> {
        let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
        for chunk in ids.chunks(batch) {
            for id in chunk {
                assert_eq!(self.submit(id).await, 202, "submit {id}");
            }
            for id in chunk {
                self.cancel(id).await;
            }
        }
        ids
    }

    fn queue(&self) -> Queue {
        Queue::with_catalog(
            scanq::queue::pool(&self.cfg).unwrap(),
            &self.cfg,
            &self.catalog,
        )
    }
}

async fn problem(resp: reqwest::Response) -> Value {
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    resp.json().await.unwrap()
}

#[tokio::test]
async fn retries_meet_the_tools_queue_length() {
    let s = stack("", |c| c.max_queue_len = 5).await;
    let ids = s.cancelled_jobs("q", 20, 5).await;
    let mut statuses = Vec::new();
    for id in &ids {
        statuses.push(s.retry(id).await.status().as_u16());
    }
    let queued = statuses.iter().filter(|c| **c == 202).count();
    assert_eq!(queued, 5, "{statuses:?}");
    assert!(statuses[5..].iter().all(|c| *c == 429), "{statuses:?}");
    let refused = s.retry(&ids[19]).await;
    assert!(refused.headers().contains_key("retry-after"));
    let p = problem(refused).await;
    assert_eq!(p["status"], 429, "{p}");
    // A refused retry leaves the job as it was: cancelled, retryable later.
    let job: Value = s
        .call(reqwest::Method::GET, &format!("/v1/jobs/{}", ids[19]), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(job["state"], "cancelled", "{job}");
    // Once a place frees up, the same retry is admitted.
    s.cancel(&ids[0]).await;
    assert_eq!(s.retry(&ids[19]).await.status(), 202);
}

#[tokio::test]
async fn retries_meet_the_tenants_queued_cap_and_give_back_refused_places() {
    let s = stack("[tenants.blue]\nmax_queued = 2\n", |_| {}).await;
    let ids = s.cancelled_jobs("t", 6, 2).await;
    let mut statuses = Vec::new();
    for id in &ids {
        statuses.push(s.retry(id).await.status().as_u16());
    }
    assert_eq!(statuses, vec![202, 202, 429, 429, 429, 429]);
    let p = problem(s.retry(&ids[5]).await).await;
    assert!(p["detail"].as_str().unwrap().contains("cap is 2"), "{p}");
    let tenant = TenantId::parse("blue").unwrap();
    assert_eq!(s.queue().tenant_queued(&tenant).await.unwrap(), 2);
    // Retrying a job that is queued again is a conflict, and takes no second place.
    assert_eq!(s.retry(&ids[0]).await.status(), 409);
    s.cancel(&ids[0]).await;
    assert_eq!(s.retry(&ids[5]).await.status(), 202);
    assert_eq!(s.queue().tenant_queued(&tenant).await.unwrap(), 2);
}

#[tokio::test]
async fn retries_meet_the_gate_of_a_switched_off_tool() {
    let s = stack("", |_| {}).await;
    let ids = s.cancelled_jobs("g", 1, 1).await;
    let off = http()
        .post(format!("{}/v1/tools/noop/disable", s.base))
        .bearer_auth(s.tokens.get("ops"))
        .send()
        .await
        .unwrap();
    assert!(off.status().is_success(), "{}", off.status());
    let refused = s.retry(&ids[0]).await;
    assert_eq!(refused.status(), 503);
    let p = problem(refused).await;
    assert!(p["detail"].as_str().unwrap().contains("disabled"), "{p}");
}

#[tokio::test]
async fn retried_jobs_over_the_fair_share_window_wait_in_the_tenants_backlog() {
    let s = stack("", |c| c.fair_window = 2).await;
    let ids = s.cancelled_jobs("f", 6, 6).await;
    for id in &ids {
        assert_eq!(s.retry(id).await.status(), 202, "retry {id}");
    }
    // The tenant's entries in the ready streams never pass the window, whatever the retries.
    let keys = Keys::for_fleet(&s.cfg, Some(&s.catalog));
    let tk = keys.job_keys(&JobId::new(
        ToolName::parse("noop").unwrap(),
        Default::default(),
        TenantId::parse("blue").unwrap(),
        CorrelationId::parse("f-0").unwrap(),
    ));
    let mut con = s
        .redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let share: Option<u64> = redis::cmd("HGET")
        .arg(tk.counts())
        .arg("share:blue")
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(
        share.unwrap_or(0) <= 2,
        "share {share:?} over the window of 2"
    );
}

/// Cancel and retry write one audit line each, of one shape, whichever door they came through
/// (REST `DELETE`, MCP `job_cancel`, MCP `tasks/cancel`, REST retry), and so does a refusal.
#[tokio::test]
async fn cancel_and_retry_are_audited_once_in_one_shape_from_rest_and_mcp() {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let tokens = Tokens::write(&fx.path(""), &[("blue", "blue", "submit,read,cancel")], "");
    let mut cfg = test_config(&redis, "auditshape");
    cfg.catalog = Some(fx.catalog(INPROCESS_TOOLS));
    cfg.api_tokens_file = Some(tokens.path.clone());
    cfg.log_format = scanq::config::LogFormat::Json;
    let port = free_port();
    cfg.api_addr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = fx.path("api.log");
    let _api = Proc::spawn_logged("scanq-api", &cfg, &[], &log);
    let base = format!("http://127.0.0.1:{port}");
    eventually(std::time::Duration::from_secs(20), "API ready", || {
        let url = format!("{base}/readyz");
        async move { (http().get(url).send().await.ok()?.status() == 200).then_some(()) }
    })
    .await;
    let blue = tokens.get("blue");
    let send =
        |req: reqwest::RequestBuilder| async move { req.bearer_auth(blue).send().await.unwrap() };
    for cid in ["rest", "mcp", "task"] {
        let body = json!({"tool": "noop", "target": "127.0.0.1", "correlation_id": cid});
        let r = send(http().post(format!("{base}/v1/jobs")).json(&body)).await;
        assert_eq!(r.status(), 202);
    }
    assert_eq!(
        send(http().delete(format!("{base}/v1/jobs/rest")))
            .await
            .status(),
        200
    );
    let mcp = |body: Value, session: Option<String>| {
        let mut req = http()
            .post(format!("{base}/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string());
        if let Some(s) = session {
            req = req
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-11-25");
        }
        send(req)
    };
    let init = mcp(
        json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}),
        None,
    )
    .await;
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
        "params":{"name":"job_cancel","arguments":{"correlation_id":"mcp"}}});
    assert_eq!(mcp(call, Some(session.clone())).await.status(), 200);
    let call = json!({"jsonrpc":"2.0","id":2,"method":"tasks/cancel","params":{"taskId":"task"}});
    assert_eq!(mcp(call, Some(session)).await.status(), 200);
    let retry = send(http().post(format!("{base}/v1/jobs/rest/retry"))).await;
    assert_eq!(retry.status(), 202);
    // A refusal is audited too: the job is queued again, so a second retry is a conflict.
    let again = send(http().post(format!("{base}/v1/jobs/rest/retry"))).await;
    assert_eq!(again.status(), 409);

    let audits = eventually(
        std::time::Duration::from_secs(10),
        "the audit lines",
        || {
            let log = log.clone();
            async move {
                let lines: Vec<Value> = std::fs::read_to_string(&log)
                    .ok()?
                    .lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .filter(|v| {
                        matches!(
                            v["fields"]["audit"].as_str().or(v["audit"].as_str()),
                            Some("cancel" | "retry")
                        )
                    })
                    .map(|v| {
                        if v["fields"].is_object() {
                            v["fields"].clone()
                        } else {
                            v
                        }
                    })
                    .collect();
                (lines.len() >= 5).then_some(lines)
            }
        },
    )
    .await;
    let of = |action: &str, cid: &str| -> Vec<&Value> {
        audits
            .iter()
            .filter(|a| a["audit"] == action && a["correlation_id"] == cid)
            .collect()
    };
    for cid in ["rest", "mcp", "task"] {
        let lines = of("cancel", cid);
        assert_eq!(lines.len(), 1, "one cancel line for {cid}: {audits:?}");
        let a = lines[0];
        assert_eq!(a["token"], "blue");
        assert_eq!(a["tenant"], "blue");
        assert_eq!(a["tool"], "noop");
        assert_eq!(a["scan_target"], "127.0.0.1");
        assert_eq!(a["outcome"], "cancelled");
    }
    let retries = of("retry", "rest");
    assert_eq!(retries.len(), 2, "{audits:?}");
    assert_eq!(retries[0]["outcome"], "queued");
    assert_eq!(retries[0]["tool"], "noop");
    assert_eq!(retries[1]["outcome"], "conflict");
}
