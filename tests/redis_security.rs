//! Redis with ACL users and passwords, Redis over TLS with client certificates, and a capture of
//! every log line of a whole run that must contain no token and no Redis password.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use scanq::catalog::Catalog;
use scanq::config::{Config, LogFormat};
use scanq_tests::*;
use serde_json::{Value, json};

const API_PASSWORD: &str = "api-pw-Zq81vRm2";
const WORKER_PASSWORD: &str = "worker-pw-Lx47kTe9";
const ADMIN_PASSWORD: &str = "admin-pw-Hc63wNa5";

/// The `--user …` arguments for the ACL lines of docs/security.md, with the test's key prefix
/// and passwords: the test runs with exactly what the documentation tells operators to use.
fn documented_acl(prefix: &str) -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/security.md"))
        .expect("docs/security.md");
    let block = doc
        .split("```acl\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("an ```acl block in docs/security.md");
    let mut args = Vec::new();
    for line in block.lines().filter(|l| l.starts_with("user ")) {
        let line = line
            .replace("API_PASSWORD", API_PASSWORD)
            .replace("WORKER_PASSWORD", WORKER_PASSWORD)
            .replace("~scanq:*", &format!("~{prefix}:*"))
            .replace("&scanq:*", &format!("&{prefix}:*"));
        let mut words = line.split_whitespace().skip(1);
        args.push("--user".to_owned());
        args.extend(words.by_ref().map(str::to_owned));
    }
    assert_eq!(args.iter().filter(|a| *a == "--user").count(), 2, "{block}");
    args
}

/// Commands Redis refused (its ACL LOG), as readable lines.
async fn acl_denials(redis: &RedisServer) -> Vec<String> {
    let mut con = redis.con().await;
    let log: Vec<Vec<redis::Value>> = redis::cmd("ACL")
        .arg("LOG")
        .query_async(&mut con)
        .await
        .unwrap();
    log.iter().map(|entry| format!("{entry:?}")).collect()
}

struct Flow {
    base: String,
    token: String,
}

/// The webhook receiver `run_programs` subscribes: nothing listens there, so every delivery
/// fails and is retried. Its URL must be in the configuration's allow-list.
fn dead_receiver() -> String {
    format!("http://127.0.0.1:{}/hook", free_port())
}

/// Submit → events → result, a cancel and a retry, a list: what the API and a worker do to Redis
/// in a day.
async fn run_jobs(f: &Flow) {
    let client = http();
    let submit = |body: Value| {
        client
            .post(format!("{}/v1/jobs", f.base))
            .bearer_auth(&f.token)
            .json(&body)
            .send()
    };
    let r = submit(json!({"tool": "fake", "target": "127.0.0.1", "correlation_id": "ok"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let done = wait_done_as(&f.base, Some(&f.token), "ok", Duration::from_secs(30)).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let events = client
        .get(format!("{}/v1/jobs/ok/events", f.base))
        .bearer_auth(&f.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(events.contains("event: done"), "{events}");

    let r = submit(
        json!({"tool": "fake", "target": "127.0.0.1", "args": "--sleep-ms 60000",
        "correlation_id": "long"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    eventually(Duration::from_secs(20), "the long job runs", || {
        let req = client
            .get(format!("{}/v1/jobs/long", f.base))
            .bearer_auth(&f.token);
        async move {
            let doc: Value = req.send().await.ok()?.json().await.ok()?;
            (doc["state"] == "running").then_some(())
        }
    })
    .await;
    let r = client
        .delete(format!("{}/v1/jobs/long", f.base))
        .bearer_auth(&f.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let done = wait_done_as(&f.base, Some(&f.token), "long", Duration::from_secs(30)).await;
    assert_eq!(done["state"], "cancelled", "{done}");
    let r = client
        .post(format!("{}/v1/jobs/long/retry", f.base))
        .bearer_auth(&f.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = client
        .delete(format!("{}/v1/jobs/long", f.base))
        .bearer_auth(&f.token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let list: Value = client
        .get(format!("{}/v1/jobs", f.base))
        .bearer_auth(&f.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["jobs"].as_array().unwrap().len(), 2, "{list}");
}

/// A schedule that fires, a webhook whose deliveries fail and are retried, exports and a diff:
/// what scan programs do to Redis.
async fn run_programs(f: &Flow, url: &str) {
    let client = http();
    let send = |m: reqwest::Method, path: &str, body: Option<Value>| {
        let mut r = client
            .request(m, format!("{}{path}", f.base))
            .bearer_auth(&f.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send()
    };
    let r = send(
        reqwest::Method::POST,
        "/v1/webhooks",
        Some(json!({"url": url, "events": ["job.succeeded"]})),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let hook: Value = r.json().await.unwrap();
    let body = json!({"tool": "fake", "target": "127.0.0.1", "every_sec": 1});
    let r = send(reqwest::Method::PUT, "/v1/schedules/tick", Some(body))
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let runs = eventually(Duration::from_secs(20), "two finished runs", || async {
        let v: Value = send(reqwest::Method::GET, "/v1/schedules/tick/runs", None)
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let runs = v["runs"].as_array()?.clone();
        let done = runs.iter().filter(|r| r["state"] == "succeeded").count();
        (done >= 2).then_some(runs)
    })
    .await;
    for path in ["/v1/schedules/tick/pause", "/v1/schedules/tick/trigger"] {
        let r = send(reqwest::Method::POST, path, None).await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }
    let run = runs[0]["correlation_id"].as_str().unwrap();
    for path in [
        format!("/v1/jobs/{run}/result.csv"),
        format!("/v1/jobs/{run}/diff"),
    ] {
        let r = send(reqwest::Method::GET, &path, None).await.unwrap();
        assert_eq!(r.status(), 409, "{path}: fake output is no nmap report");
    }
    let id = hook["id"].as_str().unwrap().to_owned();
    eventually(
        Duration::from_secs(20),
        "failed deliveries logged",
        || async {
            let v: Value = send(reqwest::Method::GET, &format!("/v1/webhooks/{id}"), None)
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let failed = v["deliveries"]
                .as_array()?
                .iter()
                .filter(|d| d["outcome"] == "failed")
                .count();
            (failed >= 2).then_some(())
        },
    )
    .await;
    for path in [
        "/v1/schedules/tick".to_owned(),
        format!("/v1/webhooks/{id}"),
    ] {
        let r = send(reqwest::Method::DELETE, &path, None).await.unwrap();
        assert_eq!(r.status(), 204, "{path}");
    }
}

/// One JSON-RPC message to `/mcp` in a 2025-11-25 session (`session` None: `initialize`);
/// returns the HTTP status, the session id the reply names, and the reply (JSON or the last
/// SSE `data:` line).
async fn mcp(f: &Flow, session: Option<&str>, msg: Value) -> (u16, Option<String>, Value) {
    let mut req = http()
        .post(format!("{}/mcp", f.base))
        .bearer_auth(&f.token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(id) = session {
        req = req
            .header("mcp-session-id", id)
            .header("mcp-protocol-version", "2025-11-25");
    }
    let r = req.body(msg.to_string()).send().await.unwrap();
    let status = r.status().as_u16();
    let id = r
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = r.text().await.unwrap();
    let reply = text
        .lines()
        .rev()
        .filter_map(|l| l.strip_prefix("data: "))
        .find_map(|d| serde_json::from_str(d).ok())
        .or_else(|| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null);
    (status, id, reply)
}

/// An MCP session (kept in Redis with `SETEX`, renewed with `GETEX`): initialize, a scan that
/// waits for its result, status, result, list, and the end of the session.
async fn run_mcp(f: &Flow) {
    let (status, id, init) = mcp(
        f,
        None,
        json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion":"2025-11-25","capabilities":{},
            "clientInfo":{"name":"acl-test","version":"0"}}}),
    )
    .await;
    assert_eq!(status, 200, "{init}");
    let session = id.expect("a session id");
    let (status, _, _) = mcp(
        f,
        Some(&session),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    )
    .await;
    assert_eq!(status, 202);
    let call = |id: u64, name: &str, arguments: Value| {
        json!({"jsonrpc":"2.0","id":id,"method":"tools/call",
            "params":{"name":name,"arguments":arguments}})
    };
    let (_, _, scan) = mcp(
        f,
        Some(&session),
        call(
            1,
            "fake_scan",
            json!({"target":"127.0.0.1","correlation_id":"mcp-1","wait_sec":20}),
        ),
    )
    .await;
    assert_eq!(scan["result"]["isError"], false, "{scan}");
    let done = wait_done_as(&f.base, Some(&f.token), "mcp-1", Duration::from_secs(30)).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    for (i, (name, args)) in [
        ("job_status", json!({"correlation_id":"mcp-1"})),
        ("job_result", json!({"correlation_id":"mcp-1"})),
        ("job_list", json!({})),
    ]
    .into_iter()
    .enumerate()
    {
        let (status, _, reply) = mcp(f, Some(&session), call(2 + i as u64, name, args)).await;
        assert_eq!(status, 200, "{name}: {reply}");
        assert_eq!(reply["result"]["isError"], false, "{name}: {reply}");
    }
    let r = http()
        .delete(format!("{}/mcp", f.base))
        .bearer_auth(&f.token)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

fn fake_catalog(fixture: &Fixture) -> Catalog {
    let fake = fixture.script("fake", &fake_tool_script(None));
    Catalog::load(Some(
        &fixture.catalog(&fake_tool_catalog("fake", &fake, "")),
    ))
    .unwrap()
}

#[tokio::test]
async fn api_and_worker_run_jobs_as_acl_users_with_only_the_documented_commands() {
    let prefix = unique_prefix("acl");
    let acl = documented_acl(&prefix);
    let args: Vec<&str> = acl.iter().map(String::as_str).collect();
    let redis = RedisServer::start_secured(ADMIN_PASSWORD, &args).await;
    let fixture = Fixture::new();
    let catalog = fake_catalog(&fixture);
    let tokens = Tokens::write(
        fixture.dir.path(),
        &[("ci", "blue", "submit,read,cancel")],
        "",
    );
    let mut cfg = test_config(&redis, "acl");
    cfg.key_prefix = prefix;
    cfg.schedule_min_every_sec = 1;
    cfg.schedule_tick_ms = 100;
    cfg.webhook_retry_base_ms = 100;
    let hook_url = dead_receiver();
    cfg.webhook_allowed_urls = hook_url.clone();
    cfg.api_tokens_file = Some(tokens.path.clone());

    let api_cfg = Config {
        redis_url: redis.url_as("scanq-api", API_PASSWORD),
        ..cfg.clone()
    };
    let worker_cfg = Config {
        redis_url: redis.url_as("scanq-worker", WORKER_PASSWORD),
        ..cfg.clone()
    };
    let (_api, base) = start_api(api_cfg, catalog.clone()).await;
    let _worker = start_worker(worker_cfg, catalog).await;

    let flow = Flow {
        base,
        token: tokens.get("ci").to_owned(),
    };
    run_jobs(&flow).await;
    run_programs(&flow, &hook_url).await;
    run_mcp(&flow).await;

    let denied = acl_denials(&redis).await;
    assert!(denied.is_empty(), "Redis refused: {denied:#?}");
}

#[tokio::test]
async fn a_wrong_redis_password_is_refused_and_the_api_says_redis_is_unavailable() {
    let prefix = unique_prefix("aclbad");
    let acl = documented_acl(&prefix);
    let args: Vec<&str> = acl.iter().map(String::as_str).collect();
    let redis = RedisServer::start_secured(ADMIN_PASSWORD, &args).await;
    let mut cfg = test_config(&redis, "aclbad");
    cfg.key_prefix = prefix;
    cfg.redis_url = redis.url_as("scanq-api", "not-the-password");
    let (_api, base) = start_api(cfg, Catalog::builtin()).await;
    let r = http().get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let r = http().get(format!("{base}/v1/jobs")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    assert!(!body.contains("not-the-password"), "{body}");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl.
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn make() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(d)
                .output()
                .expect("openssl is installed (make test installs it)");
            assert!(out.status.success(), "openssl {args:?}: {out:?}");
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        ssl(&[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=scanq test CA",
            ],
        ]
        .concat());
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        std::fs::write(d.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for who in ["server", "client"] {
            ssl(&[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    &format!("{who}.key"),
                    "-out",
                    &format!("{who}.csr"),
                    "-subj",
                    &format!("/CN={who}"),
                ],
            ]
            .concat());
            ssl(&[
                "x509",
                "-req",
                "-in",
                &format!("{who}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{who}.crt"),
                "-days",
                "2",
                "-extfile",
                &format!("{who}.ext"),
            ]);
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[tokio::test]
async fn api_and_worker_run_jobs_over_tls_with_client_certificates() {
    let certs = Certs::make();
    let tls_port = free_port();
    let prefix = unique_prefix("tls");
    let mut args = vec![
        "--tls-port".to_owned(),
        tls_port.to_string(),
        "--tls-cert-file".into(),
        s(&certs.path("server.crt")),
        "--tls-key-file".into(),
        s(&certs.path("server.key")),
        "--tls-ca-cert-file".into(),
        s(&certs.path("ca.crt")),
    ];
    args.extend(documented_acl(&prefix));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // The plain port stays for the harness's own checks; the services only get the TLS port.
    let redis = RedisServer::start_secured(ADMIN_PASSWORD, &args).await;
    let fixture = Fixture::new();
    let catalog = fake_catalog(&fixture);
    let tokens = Tokens::write(
        fixture.dir.path(),
        &[("ci", "blue", "submit,read,cancel")],
        "",
    );
    let mut cfg = test_config(&redis, "tls");
    cfg.key_prefix = prefix;
    cfg.api_tokens_file = Some(tokens.path.clone());
    cfg.redis_tls_ca_file = Some(certs.path("ca.crt"));
    cfg.redis_tls_cert_file = Some(certs.path("client.crt"));
    cfg.redis_tls_key_file = Some(certs.path("client.key"));
    let url = |user: &str, pw: &str| format!("rediss://{user}:{pw}@127.0.0.1:{tls_port}/");

    let api_cfg = Config {
        redis_url: url("scanq-api", API_PASSWORD),
        ..cfg.clone()
    };
    let worker_cfg = Config {
        redis_url: url("scanq-worker", WORKER_PASSWORD),
        ..cfg.clone()
    };
    let (_api, base) = start_api(api_cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(worker_cfg, catalog.clone()).await;

    run_jobs(&Flow {
        base,
        token: tokens.get("ci").to_owned(),
    })
    .await;
    let mut con = redis.con().await;
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(clients.contains("user=scanq-worker"), "{clients}");

    // Without the client certificate the server refuses the connection.
    let no_cert = Config {
        redis_tls_cert_file: None,
        redis_tls_key_file: None,
        key_prefix: unique_prefix("tls2"),
        ..api_cfg
    };
    let (_api2, base2) = start_api(no_cert, catalog).await;
    let r = http().get(format!("{base2}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
}

#[tokio::test]
async fn a_log_capture_of_a_whole_run_contains_no_token_and_no_redis_password() {
    let prefix = unique_prefix("logs");
    let acl = documented_acl(&prefix);
    let args: Vec<&str> = acl.iter().map(String::as_str).collect();
    let redis = RedisServer::start_secured(ADMIN_PASSWORD, &args).await;
    let fixture = Fixture::new();
    let fake = fixture.script("fake", &fake_tool_script(None));
    let catalog_path = fixture.catalog(&fake_tool_catalog("fake", &fake, ""));
    let tokens = Tokens::write(
        fixture.dir.path(),
        &[
            ("ci", "blue", "submit,read,cancel"),
            ("viewer", "blue", "read"),
            ("red", "red", "read"),
        ],
        "",
    );
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("run.log");
    let port = free_port();
    let mut cfg = test_config(&redis, "logs");
    cfg.key_prefix = prefix;
    cfg.api_tokens_file = Some(tokens.path.clone());
    cfg.catalog = Some(catalog_path);
    cfg.api_addr = format!("127.0.0.1:{port}").parse().unwrap();
    cfg.worker_metrics_addr = "127.0.0.1:0".parse().unwrap();
    cfg.log_format = LogFormat::Json;
    let debug = [("RUST_LOG", "debug".to_owned())];
    let api_cfg = Config {
        redis_url: redis.url_as("scanq-api", API_PASSWORD),
        ..cfg.clone()
    };
    let worker_cfg = Config {
        redis_url: redis.url_as("scanq-worker", WORKER_PASSWORD),
        log_format: LogFormat::Text,
        ..cfg.clone()
    };
    let mut api = Proc::spawn_logged("scanq-api", &api_cfg, &debug, &log);
    let mut worker = Proc::spawn_logged("scanq-worker", &worker_cfg, &debug, &log);
    let base = format!("http://127.0.0.1:{port}");
    eventually(Duration::from_secs(20), "API ready", || {
        let url = format!("{base}/readyz");
        async move { (http().get(url).send().await.ok()?.status() == 200).then_some(()) }
    })
    .await;

    // A day's traffic, refusals included.
    run_jobs(&Flow {
        base: base.clone(),
        token: tokens.get("ci").to_owned(),
    })
    .await;
    let unknown = scanq_api::auth::generate_token().unwrap();
    for (token, path, want) in [
        (unknown.as_str(), "/v1/jobs", 401),
        (tokens.get("viewer"), "/v1/jobs/ok", 200),
        (tokens.get("red"), "/v1/jobs/ok", 404),
    ] {
        let r = http()
            .get(format!("{base}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), want);
    }
    let r = http()
        .delete(format!("{base}/v1/jobs/ok"))
        .bearer_auth(tokens.get("viewer"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    api.signal(nix::sys::signal::Signal::SIGHUP);
    eventually(Duration::from_secs(10), "the reload is logged", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        async move { text.contains("Tokens file reloaded").then_some(()) }
    })
    .await;
    // An API with a wrong password logs Redis errors.
    let wrong = Config {
        redis_url: redis.url_as("scanq-api", "wrong-pw-Ty52"),
        api_addr: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        ..api_cfg.clone()
    };
    let mut wrong_api = Proc::spawn_logged("scanq-api", &wrong, &debug, &log);
    let wrong_base = format!("http://{}", wrong.api_addr);
    eventually(
        Duration::from_secs(20),
        "the misconfigured API answers",
        || {
            let url = format!("{wrong_base}/v1/jobs");
            let t = tokens.get("ci").to_owned();
            async move {
                (http().get(url).bearer_auth(t).send().await.ok()?.status() == 503).then_some(())
            }
        },
    )
    .await;
    // --print-config goes to the same capture.
    let printed = Command::new(bin("scanq-api"))
        .arg("--print-config")
        .env_clear()
        .envs(config_env(&api_cfg))
        .output()
        .unwrap();
    assert!(printed.status.success());
    std::fs::write(logs.path().join("print-config.txt"), &printed.stdout).unwrap();
    for p in [&mut api, &mut worker, &mut wrong_api] {
        p.signal(nix::sys::signal::Signal::SIGTERM);
        p.wait_exit(Duration::from_secs(30)).await;
    }

    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str(&String::from_utf8_lossy(&printed.stdout));
    let secrets: Vec<&str> = tokens
        .all()
        .chain([
            unknown.as_str(),
            API_PASSWORD,
            WORKER_PASSWORD,
            ADMIN_PASSWORD,
            "wrong-pw-Ty52",
        ])
        .collect();
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "the logs contain a secret ({}…)",
            &secret[..6]
        );
        // Nor its SHA-256 hex: nothing about a token but its name belongs in a log.
        assert!(!text.contains(&scanq_api::auth::hash_token(secret)));
    }
    assert!(
        text.contains("scanq-api:***@"),
        "print-config shows the redacted URL"
    );

    // Not vacuous: the run was logged, with one audit line per submit, cancel and retry.
    let audits: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("audit").is_some())
        .collect();
    let actions: Vec<&str> = audits
        .iter()
        .map(|a| a["audit"].as_str().unwrap())
        .collect();
    assert!(
        actions.iter().filter(|a| **a == "submit").count() >= 2
            && actions.contains(&"cancel")
            && actions.contains(&"retry"),
        "{actions:?}"
    );
    let submit = audits
        .iter()
        .find(|a| a["audit"] == "submit" && a["correlation_id"] == "ok")
        .expect("the audit line of the first submit");
    assert_eq!(submit["token"], "ci");
    assert_eq!(submit["tenant"], "blue");
    assert_eq!(submit["tool"], "fake");
    assert_eq!(submit["scan_target"], "127.0.0.1");
    assert_eq!(submit["outcome"], "created");
    let refused_cancel = audits
        .iter()
        .find(|a| a["audit"] == "cancel" && a["token"] == "viewer");
    assert!(refused_cancel.is_none(), "a 403 never reaches the handler");
}

#[tokio::test]
async fn an_unreadable_tls_file_stops_the_api_with_the_file_named() {
    let redis = RedisServer::start().await;
    let mut cfg = test_config(&redis, "tlsfile");
    cfg.redis_url = format!("rediss://scanq-api:{API_PASSWORD}@127.0.0.1:1/");
    cfg.redis_tls_ca_file = Some("/nonexistent/scanq-ca.pem".into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = scanq_api::run(listener, cfg, Catalog::builtin(), async {})
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/scanq-ca.pem"), "{err}");
    assert!(!err.contains(API_PASSWORD), "{err}");
}
