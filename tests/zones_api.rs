//! Zones seen through the API and MCP (issue 22, DESIGN §13): `GET /v1/zones` (workers, queued
//! jobs, the map's entries for admins only), the `/health` warning for a zone with queued jobs
//! and no live worker, the tenant's `/v1/stats` rows per (tool, zone), breakers per zone
//! (`?zone=`, the `zone` label), job metrics labelled with the zone, and over MCP the scan
//! tools' `zone` argument and the `scanq://zones` resource. Zones are loopback sub-ranges and
//! the tools the in-process `noop`/`sleep`, so nothing leaves the machine.

use std::time::Duration;

use scanq::catalog::Catalog;
use scanq::config::{Config, ZonesSetting};
use scanq::domain::Zone;
use scanq_tests::*;
use serde_json::{Value, json};

const MAP: &str = "a=127.0.1.0/24;b=127.0.2.0/24";

const TOKENS: &[(&str, &str, &str)] = &[
    ("blue", "blue", "submit,read,cancel"),
    ("red", "red", "submit,read,cancel"),
    ("ops", "ops", "admin"),
];

/// A config with the zone map `MAP`, and the in-process tools' catalog.
fn zoned(redis: &RedisServer, name: &str, fx: &Fixture) -> (Config, Catalog) {
    let mut cfg = test_config(redis, name);
    cfg.zones = ZonesSetting::Text(MAP.into());
    let catalog = Catalog::load(Some(&fx.catalog(INPROCESS_TOOLS))).unwrap();
    (cfg, catalog)
}

fn in_zone(cfg: &Config, zone: &str) -> Config {
    Config {
        worker_zone: Zone::parse(zone).unwrap(),
        ..cfg.clone()
    }
}

async fn call(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let method: reqwest::Method = method.parse().unwrap();
    let mut req = http().request(method, format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn submit(
    base: &str,
    token: Option<&str>,
    tool: &str,
    target: &str,
    id: &str,
) -> (u16, Value) {
    let body = json!({"tool": tool, "target": target, "correlation_id": id});
    call(base, "POST", "/v1/jobs", token, Some(body)).await
}

/// The entry of zone `name` in a `zones` list.
fn zone<'a>(zones: &'a Value, name: &str) -> &'a Value {
    zones["zones"]
        .as_array()
        .unwrap_or_else(|| panic!("no zones in {zones}"))
        .iter()
        .find(|z| z["name"] == name)
        .unwrap_or_else(|| panic!("no zone {name} in {zones}"))
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report}"))
}

/// The value of the first series of `name` whose labels include every `labels` pair.
fn series(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zones_and_health_show_a_zone_with_queued_jobs_and_no_worker_until_one_starts() {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let tokens = Tokens::write(dir.path(), TOKENS, "");
    let (mut cfg, catalog) = zoned(&redis, "zones-api", &fx);
    cfg.api_tokens_file = Some(tokens.path.clone());
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let (worker_a, worker_a_base) =
        start_worker_with_metrics(in_zone(&cfg, "a"), catalog.clone()).await;
    let (blue, ops) = (Some(tokens.get("blue")), Some(tokens.get("ops")));
    eventually(Duration::from_secs(10), "zone a's worker is live", || {
        let base = base.clone();
        async move {
            let (_, zones) = call(&base, "GET", "/v1/zones", ops, None).await;
            (zones["zones"].is_array() && zone(&zones, "a")["workers"] == 1).then_some(())
        }
    })
    .await;

    // One job in zone a (its worker runs it), one in zone b (no worker there).
    let (status, doc) = submit(&base, blue, "noop", "127.0.1.5", "in-a").await;
    assert_eq!((status, doc["zone"].as_str()), (202, Some("a")), "{doc}");
    let (status, doc) = submit(&base, blue, "noop", "127.0.2.5", "in-b").await;
    assert_eq!((status, doc["zone"].as_str()), (202, Some("b")), "{doc}");
    let done = wait_done_as(&base, blue, "in-a", Duration::from_secs(20)).await;
    assert_eq!(done["state"], "succeeded", "{done}");

    // Every zone with its workers and queued jobs; the map's entries for admins only.
    let (status, seen) = call(&base, "GET", "/v1/zones", blue, None).await;
    assert_eq!(status, 200, "{seen}");
    let names: Vec<&str> = seen["zones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "a", "b"], "{seen}");
    assert_eq!(
        (
            zone(&seen, "a")["workers"].as_u64(),
            zone(&seen, "a")["queued"].as_i64()
        ),
        (Some(1), Some(0))
    );
    assert_eq!(
        (
            zone(&seen, "b")["workers"].as_u64(),
            zone(&seen, "b")["queued"].as_i64()
        ),
        (Some(0), Some(1))
    );
    assert_eq!(zone(&seen, "default")["workers"], 0);
    assert!(
        seen["zones"]
            .as_array()
            .unwrap()
            .iter()
            .all(|z| z.get("targets").is_none()),
        "a tenant sees where the zones are: {seen}"
    );
    let (_, admin) = call(&base, "GET", "/v1/zones", ops, None).await;
    assert_eq!(zone(&admin, "a")["targets"], json!(["127.0.1.0/24"]));
    assert_eq!(zone(&admin, "b")["targets"], json!(["127.0.2.0/24"]));
    assert_eq!(zone(&admin, "default")["targets"], json!([]));
    let (status, _) = call(&base, "GET", "/v1/zones", None, None).await;
    assert_eq!(status, 401, "no token, no zones");

    // Health warns, naming the zone; the zone of the finished job is not named.
    let (status, report) = call(&base, "GET", "/health", None, None).await;
    assert_eq!(
        (status, report["status"].as_str()),
        (200, Some("degraded")),
        "{report}"
    );
    let zones_check = check(&report, "zones");
    assert_eq!(zones_check["status"], "fail", "{report}");
    assert_eq!(zones_check["priority"], "important");
    let detail = zones_check["detail"].as_str().unwrap();
    assert!(
        detail.contains("zone b has 1 queued and no live worker") && !detail.contains("zone a"),
        "{detail}"
    );

    // The job metrics carry the zone: the API's submits, the worker's finished jobs.
    let api_metrics = metrics_text(&base).await;
    assert_eq!(
        series(
            &api_metrics,
            "scanq_jobs_submitted_total",
            &[("tool", "noop"), ("zone", "a")]
        ),
        Some(1.0),
        "{api_metrics}"
    );
    assert_eq!(
        series(
            &api_metrics,
            "scanq_jobs_submitted_total",
            &[("tool", "noop"), ("zone", "b")]
        ),
        Some(1.0)
    );
    let worker_metrics = metrics_text(&worker_a_base).await;
    let finished = [("tool", "noop"), ("zone", "a"), ("state", "succeeded")];
    assert_eq!(
        series(&worker_metrics, "scanq_jobs_finished_total", &finished),
        Some(1.0),
        "{worker_metrics}"
    );
    assert_eq!(
        series(
            &worker_metrics,
            "scanq_job_run_seconds_count",
            &[("tool", "noop"), ("zone", "a")]
        ),
        Some(1.0)
    );
    assert_eq!(
        series(
            &worker_metrics,
            "scanq_jobs_running",
            &[("tool", "noop"), ("zone", "a")]
        ),
        Some(0.0)
    );

    // A worker for zone b takes the job, and the warning clears.
    let worker_b = start_worker(in_zone(&cfg, "b"), catalog).await;
    let done = wait_done_as(&base, blue, "in-b", Duration::from_secs(20)).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let report = eventually(Duration::from_secs(10), "the zones check passes", || {
        let base = base.clone();
        async move {
            let (_, report) = call(&base, "GET", "/health", None, None).await;
            (check(&report, "zones")["status"] == "pass").then_some(report)
        }
    })
    .await;
    assert_eq!(report["status"], "healthy", "{report}");
    let (_, seen) = call(&base, "GET", "/v1/zones", blue, None).await;
    assert_eq!(
        (
            zone(&seen, "b")["workers"].as_u64(),
            zone(&seen, "b")["queued"].as_i64()
        ),
        (Some(1), Some(0))
    );

    worker_b.shutdown().await;
    worker_a.shutdown().await;
    api.shutdown().await;
}

#[tokio::test]
async fn a_tenants_stats_row_for_a_zone_counts_only_its_jobs_in_that_zone() {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let tokens = Tokens::write(dir.path(), TOKENS, "");
    let (mut cfg, catalog) = zoned(&redis, "zones-tally", &fx);
    cfg.api_tokens_file = Some(tokens.path.clone());
    // No worker: every job stays queued where the test put it.
    let (api, base) = start_api(cfg, catalog).await;
    let (blue, red, ops) = (
        Some(tokens.get("blue")),
        Some(tokens.get("red")),
        Some(tokens.get("ops")),
    );
    for (token, target, id) in [
        (blue, "127.0.1.5", "b1"),
        (blue, "127.0.1.6", "b2"),
        (blue, "127.0.0.1", "b3"),
        (red, "127.0.1.7", "r1"),
    ] {
        let (status, doc) = submit(&base, token, "noop", target, id).await;
        assert_eq!(status, 202, "{doc}");
    }
    let row = |stats: &Value, zone: &str| -> Value {
        stats["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tool"] == "noop" && t["zone"] == zone)
            .unwrap_or_else(|| panic!("no noop row for zone {zone}: {stats}"))
            .clone()
    };

    let (status, mine) = call(&base, "GET", "/v1/stats", blue, None).await;
    let (_, fleet) = call(&base, "GET", "/v1/stats", ops, None).await;

    assert_eq!(
        (status, mine["scope"].as_str()),
        (200, Some("tenant")),
        "{mine}"
    );
    assert_eq!(row(&mine, "a")["counts"]["queued"], 2, "{mine}");
    assert_eq!(row(&mine, "a")["queue_depth"], 2);
    assert!(row(&mine, "a")["oldest_queued_age_ms"].is_u64());
    assert_eq!(row(&mine, "default")["counts"]["queued"], 1);
    assert_eq!(row(&mine, "b")["counts"]["queued"], 0);
    assert!(row(&mine, "b")["oldest_queued_age_ms"].is_null());
    assert_eq!(fleet["scope"], "fleet");
    assert_eq!(row(&fleet, "a")["queue_depth"], 3, "{fleet}");
    let (_, theirs) = call(&base, "GET", "/v1/stats", red, None).await;
    assert_eq!(row(&theirs, "a")["counts"]["queued"], 1, "{theirs}");
    assert_eq!(row(&theirs, "default")["counts"]["queued"], 0);
    api.shutdown().await;
}

#[tokio::test]
async fn breakers_are_per_zone_and_an_unknown_zone_is_refused_naming_zone() {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let (cfg, catalog) = zoned(&redis, "zones-breakers", &fx);
    let (api, base) = start_api(cfg, catalog).await;

    let (status, forced) = call(&base, "POST", "/v1/breakers/noop/open?zone=a", None, None).await;
    assert_eq!(status, 200, "{forced}");
    assert_eq!(forced["breaker"]["state"], "forced_open");
    assert_eq!(
        (
            forced["breaker"]["tool"].as_str(),
            forced["breaker"]["zone"].as_str()
        ),
        (Some("noop"), Some("a"))
    );

    // Only zone a's breaker is open.
    let (_, default) = call(&base, "GET", "/v1/breakers/noop", None, None).await;
    let (_, in_a) = call(&base, "GET", "/v1/breakers/noop?zone=a", None, None).await;
    assert_eq!(
        (default["state"].as_str(), default["zone"].as_str()),
        (Some("closed"), Some("default")),
        "{default}"
    );
    assert_eq!(
        (in_a["state"].as_str(), in_a["zone"].as_str()),
        (Some("forced_open"), Some("a")),
        "{in_a}"
    );
    let (_, all) = call(&base, "GET", "/v1/breakers", None, None).await;
    let keys: Vec<&str> = all["breakers"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in ["noop", "noop@a", "noop@b", "sleep", "sleep@a", "sleep@b"] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    assert_eq!(all["breakers"]["noop@a"]["state"], "forced_open");
    assert_eq!(all["breakers"]["noop@a"]["zone"], "a");
    assert_eq!(all["breakers"]["noop@b"]["state"], "closed");
    let metrics = metrics_text(&base).await;
    assert_eq!(
        series(
            &metrics,
            "scanq_breaker_state",
            &[("tool", "noop"), ("zone", "a")]
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        series(
            &metrics,
            "scanq_breaker_state",
            &[("tool", "noop"), ("zone", "default")]
        ),
        Some(0.0)
    );

    // The open breaker refuses zone a's submits only.
    let (status, refused) = submit(&base, None, "noop", "127.0.1.5", "to-a").await;
    assert_ne!(status, 202, "{refused}");
    let (status, doc) = submit(&base, None, "noop", "127.0.0.1", "to-default").await;
    assert_eq!(status, 202, "{doc}");

    // An unknown or malformed zone is a 422 naming `zone`, with the zones that would do.
    for path in [
        "/v1/breakers/noop?zone=nowhere",
        "/v1/breakers/noop?zone=Not%20a%20zone",
    ] {
        let (status, problem) = call(&base, "GET", path, None, None).await;
        assert_eq!(
            (status, problem["field"].as_str()),
            (422, Some("zone")),
            "{path}: {problem}"
        );
        assert!(
            problem["hint"].as_str().unwrap().contains("default"),
            "{problem}"
        );
    }
    let (status, problem) = call(
        &base,
        "POST",
        "/v1/breakers/noop/close?zone=nowhere",
        None,
        None,
    )
    .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (422, Some("zone")),
        "{problem}"
    );
    let (_, still) = call(&base, "GET", "/v1/breakers/noop?zone=a", None, None).await;
    assert_eq!(
        still["state"], "forced_open",
        "a refused call changes nothing"
    );

    // Closing it in zone a lets zone a's submits in again.
    let (status, closed) = call(&base, "POST", "/v1/breakers/noop/close?zone=a", None, None).await;
    assert_eq!(
        (status, closed["breaker"]["zone"].as_str()),
        (200, Some("a")),
        "{closed}"
    );
    let (status, doc) = submit(&base, None, "noop", "127.0.1.5", "to-a-again").await;
    assert_eq!(status, 202, "{doc}");
    api.shutdown().await;
}

/// One JSON-RPC request in an MCP session (protocol 2025-11-25); the JSON-RPC reply.
async fn mcp(base: &str, session: &str, id: u64, method: &str, params: Value) -> Value {
    let resp = http()
        .post(format!("{base}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .body(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string())
        .send()
        .await
        .expect("post /mcp");
    let sse = resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"));
    let text = resp.text().await.unwrap_or_default();
    if sse {
        text.lines()
            .rev()
            .filter_map(|l| l.strip_prefix("data: "))
            .find_map(|d| serde_json::from_str(d).ok())
            .unwrap_or(Value::Null)
    } else {
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_scans_take_a_zone_and_the_zones_resource_says_which_have_live_workers() {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let (cfg, catalog) = zoned(&redis, "zones-mcp", &fx);
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let worker = start_worker(in_zone(&cfg, "a"), catalog).await;
    let session = mcp_session(&base).await;

    // The scan tools offer `zone` with the map's zones, and point at the resource.
    let list = mcp(&base, &session, 1, "tools/list", json!({})).await;
    let scan = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "noop_scan")
        .unwrap_or_else(|| panic!("no noop_scan in {list}"))
        .clone();
    let prop = &scan["inputSchema"]["properties"]["zone"];
    assert_eq!(prop["enum"], json!(["a", "b", "default"]), "{prop}");
    assert!(
        prop["description"]
            .as_str()
            .unwrap()
            .contains("scanq://zones")
    );
    let resources = mcp(&base, &session, 2, "resources/list", json!({})).await;
    assert_eq!(
        resources["result"]["resources"][0]["uri"], "scanq://zones",
        "{resources}"
    );

    // The resource: every zone and whether it has live workers.
    let zones = eventually(
        Duration::from_secs(10),
        "zone a live in scanq://zones",
        || {
            let (base, session) = (base.clone(), session.clone());
            async move {
                let read = mcp(
                    &base,
                    &session,
                    3,
                    "resources/read",
                    json!({"uri": "scanq://zones"}),
                )
                .await;
                let content = &read["result"]["contents"][0];
                assert_eq!(content["mimeType"], "application/json", "{read}");
                let zones: Value = serde_json::from_str(content["text"].as_str()?).ok()?;
                (zone(&zones, "a")["live"] == true).then_some(zones)
            }
        },
    )
    .await;
    assert_eq!(zone(&zones, "b")["live"], false, "{zones}");
    assert_eq!(zone(&zones, "default")["workers"], 0);
    let unknown = mcp(
        &base,
        &session,
        4,
        "resources/read",
        json!({"uri": "scanq://nothing"}),
    )
    .await;
    assert_eq!(unknown["error"]["code"], -32002, "{unknown}");

    // A zone that does not hold the target: the submit's 422 as a tool error naming `zone`.
    let call = |id: u64, args: Value| {
        let (base, session) = (base.clone(), session.clone());
        async move {
            mcp(
                &base,
                &session,
                id,
                "tools/call",
                json!({"name": "noop_scan", "arguments": args}),
            )
            .await
        }
    };
    let refused = call(5, json!({"target": "127.0.1.5", "zone": "b"})).await;
    let result = &refused["result"];
    assert_eq!(result["isError"], true, "{refused}");
    assert_eq!(result["structuredContent"]["field"], "zone", "{refused}");
    assert!(
        result["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("`zone`")
    );

    // The right zone: the job runs on zone a's worker, and its view says the zone.
    let ran = call(
        6,
        json!({"target": "127.0.1.5", "zone": "a", "correlation_id": "mcp-a", "wait_sec": 20}),
    )
    .await;
    let view = &ran["result"]["structuredContent"];
    assert_eq!(ran["result"]["isError"], false, "{ran}");
    assert_eq!(
        (view["zone"].as_str(), view["correlation_id"].as_str()),
        (Some("a"), Some("mcp-a")),
        "{ran}"
    );
    let done = wait_done(&base, "mcp-a", Duration::from_secs(20)).await;
    assert_eq!(
        (done["state"].as_str(), done["zone"].as_str()),
        (Some("succeeded"), Some("a")),
        "{done}"
    );

    // A scan in zone b waits, and its view says why.
    let waits = call(7, json!({"target": "127.0.2.5", "correlation_id": "mcp-b"})).await;
    assert_eq!(waits["result"]["structuredContent"]["zone"], "b", "{waits}");
    let status = eventually(Duration::from_secs(10), "mcp-b waits for its zone", || {
        let (base, session) = (base.clone(), session.clone());
        async move {
            let r = mcp(
                &base,
                &session,
                8,
                "tools/call",
                json!({"name": "job_status", "arguments": {"correlation_id": "mcp-b"}}),
            )
            .await;
            (r["result"]["structuredContent"]["waiting_for"] == "zone:b").then_some(r)
        }
    })
    .await;
    let next = status["result"]["structuredContent"]["next_step"]
        .as_str()
        .unwrap();
    assert!(next.contains("zone b"), "{next}");

    worker.shutdown().await;
    api.shutdown().await;
}

#[tokio::test]
async fn zones_answer_503_and_the_zones_check_fails_while_redis_is_down() {
    let mut redis = RedisServer::start().await;
    let fx = Fixture::new();
    let (cfg, catalog) = zoned(&redis, "zones-down", &fx);
    let (api, base) = start_api(cfg, catalog).await;
    let (status, _) = call(&base, "GET", "/v1/zones", None, None).await;
    assert_eq!(status, 200);

    redis.kill();
    let resp = http().get(format!("{base}/v1/zones")).send().await.unwrap();
    let (status, kind) = (
        resp.status().as_u16(),
        resp.headers()["content-type"].clone(),
    );
    let (_, report) = call(&base, "GET", "/health", None, None).await;

    assert_eq!(
        (status, kind.to_str().unwrap()),
        (503, "application/problem+json")
    );
    let zones_check = check(&report, "zones");
    assert_eq!(zones_check["status"], "fail", "{report}");
    assert_eq!(
        zones_check["detail"], "cannot read the zones: Redis unreachable",
        "{report}"
    );
    api.shutdown().await;
}
