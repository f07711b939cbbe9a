//! SSE and revocation (issue 19, item 7): an event stream, and an MCP session's stream, opened
//! with a token that a reload of the tokens file (SIGHUP) revokes end, while a stream of a token
//! that stays keeps going.
//! The API is the real binary (it gets the signal); the worker runs the in-process `sleep` tool.

use std::time::Duration;

use futures::StreamExt;
use scanq::catalog::Catalog;
use scanq_tests::*;
use serde_json::json;

/// A tokens file holding `entries` as `(name, tenant, scopes, plaintext token)`.
fn tokens_file(entries: &[(&str, &str, &str, &str)]) -> String {
    entries
        .iter()
        .map(|(name, tenant, scopes, token)| {
            scanq_api::auth::entry_toml(
                name,
                &scanq::domain::TenantId::parse(tenant).unwrap(),
                scanq_api::auth::Scopes::parse_list(scopes).unwrap(),
                token,
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// An open event stream, read chunk by chunk.
struct Stream {
    body: futures::stream::BoxStream<'static, reqwest::Result<axum::body::Bytes>>,
    seen: String,
}

impl Stream {
    async fn open(base: &str, token: &str, id: &str) -> Self {
        let resp = http()
            .get(format!("{base}/v1/jobs/{id}/events"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        Self {
            body: resp.bytes_stream().boxed(),
            seen: String::new(),
        }
    }

    /// Reads until `text` has been received (true) or the stream ends (false), with a deadline.
    async fn until(&mut self, text: &str, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while !self.seen.contains(text) {
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Ok(Some(Ok(chunk))) => self.seen.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(_) => return false,
                Err(_) => panic!(
                    "neither `{text}` nor the end within {limit:?}: {}",
                    self.seen
                ),
            }
        }
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_token_a_reload_revoked_ends_and_others_go_on() {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let catalog_path = fx.catalog(INPROCESS_TOOLS);
    let catalog = Catalog::load(Some(&catalog_path)).unwrap();
    let (gone, stays) = (
        scanq_api::auth::generate_token().unwrap(),
        scanq_api::auth::generate_token().unwrap(),
    );
    let path = fx.path("tokens.toml");
    std::fs::write(
        &path,
        tokens_file(&[
            ("gone", "blue", "submit,read", &gone),
            ("stays", "blue", "read,cancel", &stays),
        ]),
    )
    .unwrap();
    let mut cfg = test_config(&redis, "ssehup");
    cfg.api_tokens_file = Some(path.clone());
    cfg.catalog = Some(catalog_path);
    let port = free_port();
    cfg.api_addr = format!("127.0.0.1:{port}").parse().unwrap();
    let api = Proc::spawn_logged("scanq-api", &cfg, &[], &fx.path("api.log"));
    let base = format!("http://127.0.0.1:{port}");
    let _worker = start_worker(cfg, catalog).await;
    eventually(Duration::from_secs(20), "the API answers", || {
        let req = http().get(format!("{base}/readyz"));
        async move { (req.send().await.ok()?.status() == 200).then_some(()) }
    })
    .await;

    let r = http()
        .post(format!("{base}/v1/jobs"))
        .bearer_auth(&gone)
        .json(&json!({"tool":"sleep","target":"10.0.0.5","args":"--ms 60000","correlation_id":"long"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let mut revoked = Stream::open(&base, &gone, "long").await;
    let mut kept = Stream::open(&base, &stays, "long").await;
    for s in [&mut revoked, &mut kept] {
        assert!(
            s.until("\"running\"", Duration::from_secs(20)).await,
            "{}",
            s.seen
        );
    }

    // The revoked token's MCP session has a stream open too (`GET /mcp`, keep-alives only).
    let init = http()
        .post(format!("{base}/mcp"))
        .bearer_auth(&gone)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(
            json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion":"2025-11-25","capabilities":{},
                "clientInfo":{"name":"test","version":"0"}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(init.status(), 200);
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let mcp = http()
        .get(format!("{base}/mcp"))
        .bearer_auth(&gone)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(mcp.status(), 200);
    let mut mcp_stream = mcp.bytes_stream().boxed();

    // The operator removes `gone` and reloads.
    std::fs::write(
        &path,
        tokens_file(&[("stays", "blue", "read,cancel", &stays)]),
    )
    .unwrap();
    api.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(
        !revoked.until("event: done", Duration::from_secs(10)).await,
        "the revoked token's stream ended before the job did: {}",
        revoked.seen
    );
    // Its MCP stream ends as well.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = mcp_stream.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the revoked token's MCP stream is still open"
    );
    let r = http()
        .get(format!("{base}/v1/jobs/long/events"))
        .bearer_auth(&gone)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "and cannot be reopened");

    // The other stream is still open: it sees the job end.
    let r = http()
        .delete(format!("{base}/v1/jobs/long"))
        .bearer_auth(&stays)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert!(
        kept.until("event: done", Duration::from_secs(20)).await,
        "{}",
        kept.seen
    );
    drop(api);
}
