//! `GET /v1/stats` is tenant-scoped (issue 14): a tenant's token sees its own counts, depth and
//! oldest queued age; an admin sees the fleet, or one tenant's view with `?tenant=`. No worker
//! runs, so every job stays where the test put it.

use scanq::catalog::Catalog;
use scanq_tests::*;
use serde_json::{Value, json};

const TOKENS: &[(&str, &str, &str)] = &[
    ("blue", "blue", "submit,read,cancel"),
    ("red", "red", "submit,read,cancel"),
    ("ops", "ops", "admin"),
];

async fn call(
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn noop(stats: &Value) -> &Value {
    stats["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tool"] == "noop")
        .expect("noop in stats")
}

#[tokio::test]
async fn a_tenant_sees_its_own_counts_and_an_admin_sees_the_fleet() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = Tokens::write(dir.path(), TOKENS, "");
    let fixture = Fixture::new();
    let catalog = Catalog::load(Some(&fixture.catalog(INPROCESS_TOOLS))).unwrap();
    let mut cfg = test_config(&redis, "tstats");
    cfg.api_tokens_file = Some(tokens.path.clone());
    let (_api, base) = start_api(cfg, catalog).await;
    let post = reqwest::Method::POST;
    for (token, id) in [
        ("blue", "b1"),
        ("blue", "b2"),
        ("blue", "b3"),
        ("red", "r1"),
    ] {
        let body = json!({"tool": "noop", "target": "10.0.0.5", "correlation_id": id});
        let (status, doc) = call(
            &base,
            post.clone(),
            "/v1/jobs",
            tokens.get(token),
            Some(body),
        )
        .await;
        assert_eq!(status, 202, "{doc}");
    }
    let (status, _) = call(
        &base,
        reqwest::Method::DELETE,
        "/v1/jobs/b3",
        tokens.get("blue"),
        None,
    )
    .await;
    assert_eq!(status, 200);

    let get = reqwest::Method::GET;
    let (status, blue) = call(&base, get.clone(), "/v1/stats", tokens.get("blue"), None).await;
    assert_eq!(status, 200, "{blue}");
    assert_eq!(blue["scope"], "tenant");
    assert_eq!(blue["tenant"], "blue");
    assert_eq!(blue["truncated"], false);
    let n = noop(&blue);
    assert_eq!(n["counts"]["queued"], 2, "{blue}");
    assert_eq!(n["counts"]["cancelled"], 1, "{blue}");
    assert_eq!(n["queue_depth"], 2, "{blue}");
    assert!(n["oldest_queued_age_ms"].is_u64(), "{blue}");

    let (_, red) = call(&base, get.clone(), "/v1/stats", tokens.get("red"), None).await;
    assert_eq!(noop(&red)["counts"]["queued"], 1, "{red}");
    assert_eq!(noop(&red)["counts"]["cancelled"], 0, "{red}");

    let (_, fleet) = call(&base, get.clone(), "/v1/stats", tokens.get("ops"), None).await;
    assert_eq!(fleet["scope"], "fleet");
    assert_eq!(noop(&fleet)["counts"]["queued"], 3, "{fleet}");
    assert_eq!(noop(&fleet)["queue_depth"], 3, "{fleet}");

    let (_, as_blue) = call(
        &base,
        get.clone(),
        "/v1/stats?tenant=blue",
        tokens.get("ops"),
        None,
    )
    .await;
    assert_eq!(as_blue["scope"], "tenant");
    assert_eq!(noop(&as_blue)["counts"]["queued"], 2, "{as_blue}");

    // Naming another tenant is an admin's privilege.
    let (status, problem) =
        call(&base, get, "/v1/stats?tenant=red", tokens.get("blue"), None).await;
    assert_eq!(status, 403, "{problem}");
}
