//! Tokens, scopes and tenants (issue 6): every endpoint against every kind of caller, tenant
//! isolation of correlation IDs, admin access to other tenants, reload on SIGHUP, the
//! `token new` command and open mode.

use std::time::Duration;

use reqwest::Method;
use scanq::catalog::Catalog;
use scanq::config::Config;
use scanq_tests::*;
use serde_json::{Value, json};

/// Tokens of the matrix: blue has one token per scope mix, red is the other tenant.
const TOKENS: &[(&str, &str, &str)] = &[
    ("blue-all", "blue", "submit,read,cancel"),
    ("blue-read", "blue", "read"),
    ("blue-submit", "blue", "submit"),
    ("red-all", "red", "submit,read,cancel"),
    ("ops", "ops", "admin"),
];

/// Every blue job of the matrix carries this in its correlation ID and this target, so any body
/// that shows blue's data to someone else is caught.
const MARK: &str = "bluesecret";
const BLUE_TARGET: &str = "10.0.0.77";

struct Stack {
    redis: RedisServer,
    _api: Task,
    base: String,
    tokens: Tokens,
    cfg: Config,
    catalog: Catalog,
    _dir: tempfile::TempDir,
}

async fn stack(tune: impl FnOnce(&mut Config)) -> Stack {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = Tokens::write(dir.path(), TOKENS, "");
    let fixture = Fixture::new();
    let catalog = Catalog::load(Some(&fixture.catalog(INPROCESS_TOOLS))).unwrap();
    let mut cfg = test_config(&redis, "auth");
    cfg.api_tokens_file = Some(tokens.path.clone());
    tune(&mut cfg);
    // No worker: jobs stay queued, so cancel and retry rows find them where they expect.
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

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn call(
    base: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Reply {
    let mut req = http().request(method, format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_owned());
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let streaming = headers
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"));
    // An event stream of a queued job never ends: the status and headers are the answer.
    let body = if streaming {
        String::new()
    } else {
        resp.text().await.unwrap_or_default()
    };
    Reply {
        status,
        headers,
        body,
    }
}

async fn submit_as(base: &str, token: &str, cid: &str, target: &str) -> Value {
    let r = call(
        base,
        Method::POST,
        "/v1/jobs",
        Some(token),
        Some(&json!({"tool": "noop", "target": target, "correlation_id": cid}).to_string()),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

/// What a row's `{id}` names.
#[derive(Debug, Clone, Copy)]
enum Job {
    /// No job.
    None,
    /// A fresh queued blue job.
    Queued,
    /// A fresh cancelled blue job.
    Cancelled,
}

/// What a route needs; decides the wrong-scope and right tokens of a row.
#[derive(Debug, Clone, Copy)]
enum Need {
    Open,
    Read,
    Submit,
    Cancel,
    Admin,
}

impl Need {
    fn wrong_token(self) -> &'static str {
        match self {
            Need::Read => "blue-submit",
            Need::Submit | Need::Cancel | Need::Open => "blue-read",
            // A non-admin naming another tenant.
            Need::Admin => "red-all",
        }
    }

    fn right_token(self) -> &'static str {
        match self {
            Need::Admin => "ops",
            _ => "blue-all",
        }
    }
}

/// One line of the matrix: the request, what it needs, and the status for the right token and
/// for the other tenant's token. `{id}` is the row's job, `{cid}` a fresh correlation ID.
struct Row {
    method: Method,
    path: &'static str,
    body: Option<&'static str>,
    job: Job,
    need: Need,
    right: u16,
    other: u16,
}

const fn row(
    method: Method,
    path: &'static str,
    body: Option<&'static str>,
    job: Job,
    need: Need,
    right: u16,
    other: u16,
) -> Row {
    Row {
        method,
        path,
        body,
        job,
        need,
        right,
        other,
    }
}

const SUBMIT: &str = r#"{"tool":"noop","target":"10.0.0.5","correlation_id":"{cid}"}"#;

/// Every endpoint on this branch; later endpoints are one line each.
fn matrix() -> Vec<Row> {
    use Job as J;
    use Need as N;
    vec![
        row(
            Method::POST,
            "/v1/jobs",
            Some(SUBMIT),
            J::None,
            N::Submit,
            202,
            202,
        ),
        row(Method::GET, "/v1/jobs", None, J::Queued, N::Read, 200, 200),
        row(
            Method::GET,
            "/v1/jobs/{id}",
            None,
            J::Queued,
            N::Read,
            200,
            404,
        ),
        row(
            Method::GET,
            "/v1/jobs/{id}?wait=1",
            None,
            J::Queued,
            N::Read,
            200,
            404,
        ),
        row(
            Method::GET,
            "/v1/jobs/{id}/events",
            None,
            J::Queued,
            N::Read,
            200,
            404,
        ),
        row(
            Method::DELETE,
            "/v1/jobs/{id}",
            None,
            J::Queued,
            N::Cancel,
            200,
            404,
        ),
        row(
            Method::POST,
            "/v1/jobs/{id}/retry",
            None,
            J::Cancelled,
            N::Submit,
            202,
            404,
        ),
        row(Method::GET, "/v1/tools", None, J::None, N::Read, 200, 200),
        row(Method::GET, "/metrics", None, J::None, N::Read, 200, 200),
        row(
            Method::GET,
            "/v1/jobs/{id}?tenant=blue",
            None,
            J::Queued,
            N::Admin,
            200,
            403,
        ),
        row(
            Method::GET,
            "/v1/jobs?tenant=blue",
            None,
            J::Queued,
            N::Admin,
            200,
            403,
        ),
        row(Method::GET, "/healthz", None, J::None, N::Open, 200, 200),
        row(Method::GET, "/readyz", None, J::None, N::Open, 200, 200),
    ]
}

#[tokio::test]
async fn every_endpoint_answers_each_kind_of_caller_as_the_matrix_says() {
    // /metrics needs a token even from loopback here, so its row is like the others.
    let s = stack(|c| c.metrics_open = false).await;
    let mut n = 0;
    for (i, r) in matrix().into_iter().enumerate() {
        // A job per row, in the state the row needs.
        let id = format!("{MARK}-{i}");
        match r.job {
            Job::None => {}
            Job::Queued | Job::Cancelled => {
                submit_as(&s.base, s.tokens.get("blue-all"), &id, BLUE_TARGET).await;
            }
        }
        if let Job::Cancelled = r.job {
            let c = call(
                &s.base,
                Method::DELETE,
                &format!("/v1/jobs/{id}"),
                Some(s.tokens.get("blue-all")),
                None,
            )
            .await;
            assert_eq!(c.status, 200, "{}", c.body);
        }
        let open = matches!(r.need, Need::Open);
        let columns: [(&str, Option<&str>, u16); 5] = [
            ("no token", None, if open { 200 } else { 401 }),
            (
                "unknown token",
                Some("sq_not-a-token"),
                if open { 200 } else { 401 },
            ),
            (
                "wrong scope",
                Some(s.tokens.get(r.need.wrong_token())),
                if open { 200 } else { 403 },
            ),
            ("other tenant", Some(s.tokens.get("red-all")), r.other),
            (
                "right token",
                Some(s.tokens.get(r.need.right_token())),
                r.right,
            ),
        ];
        for (k, (column, token, want)) in columns.into_iter().enumerate() {
            let cid = format!("cid-{i}-{k}");
            let path = r.path.replace("{id}", &id);
            let body = r.body.map(|b| b.replace("{cid}", &cid));
            let got = call(&s.base, r.method.clone(), &path, token, body.as_deref()).await;
            let what = format!("{} {path} with {column}", r.method);
            assert_eq!(got.status, want, "{what}: {}", got.body);
            n += 1;
            if got.status == 401 {
                let challenge = got.headers["www-authenticate"].to_str().unwrap();
                assert!(challenge.starts_with("Bearer"), "{what}: {challenge}");
            }
            if got.status >= 400 {
                assert_eq!(
                    got.headers["content-type"], "application/problem+json",
                    "{what}"
                );
                let p: Value = serde_json::from_str(&got.body).unwrap();
                assert_eq!(p["status"], got.status, "{what}");
            }
            // Nobody but blue (and its admin) sees blue's jobs.
            let blue_reader =
                column == "right token" || (column == "wrong scope" && got.status < 300);
            if !blue_reader {
                assert!(
                    !got.body.contains(MARK) && !got.body.contains(BLUE_TARGET),
                    "{what} shows blue's data: {}",
                    got.body
                );
            }
        }
    }
    assert_eq!(n, matrix().len() * 5);
    drop(s.redis);
}

#[tokio::test]
async fn two_tenants_using_the_same_correlation_id_get_two_jobs() {
    let s = stack(|_| {}).await;
    let blue = submit_as(&s.base, s.tokens.get("blue-all"), "scan-42", "10.0.0.5").await;
    let red = submit_as(&s.base, s.tokens.get("red-all"), "scan-42", "10.0.0.6").await;
    assert_eq!(blue["correlation_id"], "scan-42");
    assert_eq!(red["correlation_id"], "scan-42");

    let get = |token: &'static str| {
        let base = s.base.clone();
        let t = s.tokens.get(token).to_owned();
        async move {
            let r = call(&base, Method::GET, "/v1/jobs/scan-42", Some(&t), None).await;
            assert_eq!(r.status, 200, "{}", r.body);
            serde_json::from_str::<Value>(&r.body).unwrap()
        }
    };
    assert_eq!(get("blue-all").await["target"], "10.0.0.5");
    assert_eq!(get("red-all").await["target"], "10.0.0.6");

    // Each tenant's list holds only its own job.
    for (token, target) in [("blue-read", "10.0.0.5"), ("red-all", "10.0.0.6")] {
        let r = call(
            &s.base,
            Method::GET,
            "/v1/jobs",
            Some(s.tokens.get(token)),
            None,
        )
        .await;
        let list: Value = serde_json::from_str(&r.body).unwrap();
        let jobs = list["jobs"].as_array().unwrap();
        assert_eq!(jobs.len(), 1, "{list}");
        assert_eq!(jobs[0]["target"], target);
    }

    // Cancelling red's job leaves blue's alone.
    let r = call(
        &s.base,
        Method::DELETE,
        "/v1/jobs/scan-42",
        Some(s.tokens.get("red-all")),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(get("blue-all").await["state"], "queued");
}

#[tokio::test]
async fn an_admin_acts_for_any_tenant_and_others_may_only_name_their_own() {
    let s = stack(|_| {}).await;
    submit_as(&s.base, s.tokens.get("blue-all"), "b1", "10.0.0.5").await;
    let admin = s.tokens.get("ops");

    let r = call(
        &s.base,
        Method::GET,
        "/v1/jobs?tenant=blue",
        Some(admin),
        None,
    )
    .await;
    let list: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(list["jobs"][0]["correlation_id"], "b1", "{list}");
    // Without the parameter an admin is in its own tenant.
    let r = call(&s.base, Method::GET, "/v1/jobs/b1", Some(admin), None).await;
    assert_eq!(r.status, 404);
    // An admin cancels blue's job.
    let r = call(
        &s.base,
        Method::DELETE,
        "/v1/jobs/b1?tenant=blue",
        Some(admin),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Naming one's own tenant is fine; another is 403; a malformed one is 422 for an admin.
    let blue = s.tokens.get("blue-read");
    let r = call(
        &s.base,
        Method::GET,
        "/v1/jobs/b1?tenant=blue",
        Some(blue),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        serde_json::from_str::<Value>(&r.body).unwrap()["state"],
        "cancelled"
    );
    let r = call(
        &s.base,
        Method::GET,
        "/v1/jobs?tenant=red",
        Some(blue),
        None,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = call(
        &s.base,
        Method::GET,
        "/v1/jobs?tenant=a/b",
        Some(admin),
        None,
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.body);
}

#[tokio::test]
async fn the_authorization_header_must_be_a_bearer_token() {
    let s = stack(|_| {}).await;
    let token = s.tokens.get("blue-read");
    let send = |value: String| {
        let url = format!("{}/v1/jobs", s.base);
        async move {
            http()
                .get(url)
                .header("authorization", value)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(send(format!("Bearer {token}")).await, 200);
    assert_eq!(send(format!("bearer {token}")).await, 200);
    assert_eq!(send(format!("Basic {token}")).await, 401);
    assert_eq!(send(token.to_owned()).await, 401);
    assert_eq!(send("Bearer ".into()).await, 401);
    assert_eq!(
        send(format!("Bearer {}", &token[..token.len() - 1])).await,
        401
    );
}

#[tokio::test]
async fn metrics_are_open_to_loopback_by_default_and_need_read_otherwise() {
    let s = stack(|_| {}).await;
    let r = call(&s.base, Method::GET, "/metrics", None, None).await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("scanq_"), "{}", r.body);
    // A token presented is still checked.
    let r = call(&s.base, Method::GET, "/metrics", Some("sq_nope"), None).await;
    assert_eq!(r.status, 401);
    drop(s);

    let s = stack(|c| c.metrics_open = false).await;
    let r = call(&s.base, Method::GET, "/metrics", None, None).await;
    assert_eq!(r.status, 401);
    let r = call(
        &s.base,
        Method::GET,
        "/metrics",
        Some(s.tokens.get("blue-read")),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn an_invalid_tokens_file_stops_the_api_from_starting() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.toml");
    std::fs::write(&path, "[[tokens]]\nname = \"x\"\n").unwrap();
    let mut cfg = test_config(&redis, "badtokens");
    cfg.api_tokens_file = Some(path);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = scanq_api::run(listener, cfg, Catalog::builtin(), async {})
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("tokens file"), "{err}");
}

#[tokio::test]
async fn open_mode_refuses_to_start_on_a_non_loopback_address() {
    let redis = RedisServer::start().await;
    let cfg = test_config(&redis, "open");
    // Bound, never served: nothing is sent anywhere.
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let err = scanq_api::run(listener, cfg.clone(), Catalog::builtin(), async {})
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("scanq-api token new"), "{err}");
    assert!(err.contains("SCANQ_API_TOKENS_FILE"), "{err}");

    // The binary says the same and exits non-zero.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("api.log");
    let mut api = Proc::spawn_logged(
        "scanq-api",
        &cfg,
        &[("SCANQ_API_ADDR", "0.0.0.0:0".into())],
        &log,
    );
    let status = api.wait_exit(Duration::from_secs(20)).await;
    assert!(!status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("scanq-api token new"), "{text}");
}

#[tokio::test]
async fn open_mode_on_loopback_serves_without_a_token_and_warns() {
    let redis = RedisServer::start().await;
    let mut cfg = test_config(&redis, "openlo");
    let port = free_port();
    cfg.api_addr = format!("127.0.0.1:{port}").parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("api.log");
    let _api = Proc::spawn_logged("scanq-api", &cfg, &[], &log);
    let base = format!("http://127.0.0.1:{port}");
    eventually(Duration::from_secs(20), "API ready", || {
        let url = format!("{base}/v1/jobs");
        async move { (http().get(url).send().await.ok()?.status() == 200).then_some(()) }
    })
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("WITHOUT authentication"), "{text}");
}

#[tokio::test]
async fn the_tokens_file_is_read_again_on_sighup() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let first = Tokens::write(dir.path(), &[("a", "blue", "read")], "");
    let path = first.path.clone();
    let mut cfg = test_config(&redis, "hup");
    cfg.api_tokens_file = Some(path.clone());
    let port = free_port();
    cfg.api_addr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = dir.path().join("api.log");
    let api = Proc::spawn_logged("scanq-api", &cfg, &[], &log);
    let base = format!("http://127.0.0.1:{port}");
    let status = |token: String| {
        let url = format!("{base}/v1/jobs");
        async move {
            http()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .ok()
                .map(|r| r.status().as_u16())
        }
    };
    let a = first.get("a").to_owned();
    eventually(Duration::from_secs(20), "token a works", || {
        let f = status(a.clone());
        async move { (f.await == Some(200)).then_some(()) }
    })
    .await;

    // Replace the file: b in, a out.
    let second_dir = tempfile::tempdir().unwrap();
    let second = Tokens::write(second_dir.path(), &[("b", "blue", "read")], "");
    let b = second.get("b").to_owned();
    assert_eq!(status(b.clone()).await, Some(401));
    std::fs::copy(&second.path, &path).unwrap();
    api.signal(nix::sys::signal::Signal::SIGHUP);
    eventually(
        Duration::from_secs(10),
        "token b works after SIGHUP",
        || {
            let f = status(b.clone());
            async move { (f.await == Some(200)).then_some(()) }
        },
    )
    .await;
    assert_eq!(status(a.clone()).await, Some(401));

    // A broken file on reload leaves the tokens in force.
    std::fs::write(&path, "this is not toml [").unwrap();
    api.signal(nix::sys::signal::Signal::SIGHUP);
    eventually(
        Duration::from_secs(10),
        "the failed reload is logged",
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            async move { text.contains("reload failed").then_some(()) }
        },
    )
    .await;
    assert_eq!(status(b.clone()).await, Some(200));
    // Then a good file again.
    let third_dir = tempfile::tempdir().unwrap();
    let third = Tokens::write(
        third_dir.path(),
        &[("b", "blue", "read"), ("c", "blue", "read")],
        "",
    );
    let third_text = std::fs::read_to_string(&third.path).unwrap();
    std::fs::write(&path, third_text).unwrap();
    api.signal(nix::sys::signal::Signal::SIGHUP);
    let c = third.get("c").to_owned();
    eventually(Duration::from_secs(10), "token c works", || {
        let f = status(c.clone());
        async move { (f.await == Some(200)).then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn token_new_prints_a_token_once_and_the_entry_that_admits_it() {
    let out = std::process::Command::new(bin("scanq-api"))
        .args([
            "token",
            "new",
            "--name",
            "ci",
            "--tenant",
            "blue",
            "--scopes",
            "submit,read",
        ])
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let token = text
        .split_whitespace()
        .find(|w| w.starts_with("sq_"))
        .expect("a token")
        .to_owned();
    let entry = &text[text.find("[[tokens]]").expect("an entry")..];
    assert!(!entry.contains(&token), "the entry must hold only the hash");
    assert!(
        entry.contains("name = \"ci\"") && entry.contains("tenant = \"blue\""),
        "{entry}"
    );

    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.toml");
    std::fs::write(&path, entry).unwrap();
    let mut cfg = test_config(&redis, "tokennew");
    cfg.api_tokens_file = Some(path);
    let fixture = Fixture::new();
    let catalog = Catalog::load(Some(&fixture.catalog(INPROCESS_TOOLS))).unwrap();
    let (_api, base) = start_api(cfg, catalog).await;
    let r = call(
        &base,
        Method::POST,
        "/v1/jobs",
        Some(&token),
        Some(r#"{"tool":"noop","target":"10.0.0.5","correlation_id":"x"}"#),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = call(&base, Method::DELETE, "/v1/jobs/x", Some(&token), None).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("cancel"), "{}", r.body);

    // Bad arguments: a non-zero exit naming the problem.
    let out = std::process::Command::new(bin("scanq-api"))
        .args([
            "token", "new", "--name", "ci", "--tenant", "blue", "--scopes", "write",
        ])
        .env_clear()
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scope `write`"));
}

#[tokio::test]
async fn a_route_outside_the_auth_layer_gets_no_caller_in_auth_mode() {
    // The layer covers /v1 and /mcp; a path that only looks like them is not served.
    let s = stack(|_| {}).await;
    for path in ["/v1//jobs", "/%76%31/jobs", "/V1/jobs"] {
        let r = call(&s.base, Method::GET, path, None, None).await;
        assert!(r.status == 401 || r.status == 404, "{path}: {}", r.status);
        // No job list (a 404 is a problem document naming the path).
        assert!(!r.body.contains("\"jobs\":"), "{path}: {}", r.body);
    }
    let _ = (&s.cfg, &s.catalog);
}
