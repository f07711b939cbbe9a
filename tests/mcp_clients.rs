//! `/mcp` driven by real MCP clients: the official Python SDK (2.x for 2026-07-28 and 2025-11-25
//! sessions, 1.27 for 2025-11-25 tasks), the MCP Inspector CLI, and the `mcp-stdio` bridge.
//! The clients live in `.tools/` (`scripts/install-test-tools.sh`, run by `make test`); when
//! they are missing these tests fail, unless `SCANQ_SKIP_CLIENT_TESTS=1` says to skip them.
//! The scripts are in `tests/mcp_clients/`; each prints one JSON line per step and exits
//! non-zero on the first failed check.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use scanq::catalog::Catalog;
use scanq::config::Config;
use scanq_tests::*;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The client program, or `None` (after a loud message) when it is absent and skipping is allowed.
fn tool(relative: &str) -> Option<PathBuf> {
    let p = repo().join(".tools").join(relative);
    if p.exists() {
        return Some(p);
    }
    if std::env::var("SCANQ_SKIP_CLIENT_TESTS").as_deref() == Ok("1") {
        eprintln!(
            "\n!!! SKIPPED: {} is not installed (SCANQ_SKIP_CLIENT_TESTS=1). Run scripts/install-test-tools.sh.\n",
            p.display()
        );
        return None;
    }
    panic!(
        "{} is missing: run scripts/install-test-tools.sh (make test does), or set SCANQ_SKIP_CLIENT_TESTS=1",
        p.display()
    );
}

struct Stack {
    _redis: RedisServer,
    cfg: Config,
    catalog: Catalog,
    _api: Task,
    _worker: Task,
    url: String,
    _fixture: Fixture,
}

/// Redis, an API and a worker with the built-in nmap (loopback allowed), a slow fake tool and
/// the in-process tools.
async fn stack(name: &str) -> Stack {
    let redis = RedisServer::start().await;
    let fixture = Fixture::new();
    let fake = fixture.script("fake", &fake_tool_script(None));
    let path = fixture.catalog(&format!(
        "{}{}",
        fake_tool_catalog("slow", &fake, ""),
        INPROCESS_TOOLS
    ));
    let catalog = Catalog::load(Some(&path)).expect("catalog");
    let cfg = test_config(&redis, name);
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let worker = start_worker(cfg.clone(), catalog.clone()).await;
    Stack {
        _redis: redis,
        cfg,
        catalog,
        _api: api,
        _worker: worker,
        url: format!("{base}/mcp"),
        _fixture: fixture,
    }
}

/// Runs a client to completion (bounded by `limit`) and returns its JSON step lines.
async fn run_client(program: &Path, args: &[&str], limit: Duration) -> Vec<Value> {
    let home = tempfile::tempdir().expect("temp home");
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(repo())
        .env("HOME", home.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().expect("spawn client");
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{} {args:?} did not finish within {limit:?}",
                program.display()
            )
        })
        .expect("client output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} {args:?} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        program.display(),
        out.status
    );
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn script(name: &str) -> String {
    repo()
        .join("tests/mcp_clients")
        .join(name)
        .display()
        .to_string()
}

fn step<'a>(steps: &'a [Value], name: &str) -> &'a Value {
    steps
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {steps:?}"))
}

const LIMIT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn python_sdk_2_speaks_2026_07_28_lists_scans_follows_and_collects() {
    let Some(py) = tool("venv-mcp2/bin/python") else {
        return;
    };
    let s = stack("mcp-py2").await;
    let steps = run_client(
        &py,
        &[&script("client_v2.py"), "basic", "--url", &s.url],
        LIMIT,
    )
    .await;
    assert_eq!(step(&steps, "connected")["protocol_version"], "2026-07-28");
    assert_eq!(step(&steps, "invalid")["content"]["field"], "args");
    step(&steps, "ok");
}

#[tokio::test]
async fn python_sdk_2_in_legacy_mode_uses_a_2025_11_25_session() {
    let Some(py) = tool("venv-mcp2/bin/python") else {
        return;
    };
    let s = stack("mcp-py2-legacy").await;
    let steps = run_client(
        &py,
        &[
            &script("client_v2.py"),
            "basic",
            "--url",
            &s.url,
            "--mode",
            "legacy",
        ],
        LIMIT,
    )
    .await;
    assert_eq!(step(&steps, "connected")["protocol_version"], "2025-11-25");
    step(&steps, "ok");
}

#[tokio::test]
async fn python_sdk_1_27_scans_and_runs_tasks_get_result_list_and_cancel() {
    let Some(py) = tool("venv-mcp1/bin/python") else {
        return;
    };
    let s = stack("mcp-py1").await;
    let basic = run_client(
        &py,
        &[&script("client_v1.py"), "basic", "--url", &s.url],
        LIMIT,
    )
    .await;
    let tasks = run_client(
        &py,
        &[&script("client_v1.py"), "tasks", "--url", &s.url],
        LIMIT,
    )
    .await;
    step(&basic, "ok");
    assert_eq!(step(&tasks, "created")["status"], "working");
    assert_eq!(step(&tasks, "cancelled")["status"], "cancelled");
    assert_eq!(step(&tasks, "unknown_task")["code"], -32602);
    step(&tasks, "ok");
}

#[tokio::test]
async fn a_task_created_through_instance_a_is_read_and_cancelled_through_instance_b() {
    let Some(py) = tool("venv-mcp1/bin/python") else {
        return;
    };
    let s = stack("mcp-ab").await;
    let (_api_b, base_b) = start_api(s.cfg.clone(), s.catalog.clone()).await;
    let url_b = format!("{base_b}/mcp");

    let created = run_client(
        &py,
        &[&script("client_v1.py"), "task-create", "--url", &s.url],
        LIMIT,
    )
    .await;
    let id = step(&created, "created")["task_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let followed = run_client(
        &py,
        &[
            &script("client_v1.py"),
            "task-follow",
            "--url",
            &url_b,
            "--task-id",
            &id,
        ],
        LIMIT,
    )
    .await;

    assert_eq!(step(&followed, "got")["status"], "working");
    assert_eq!(step(&followed, "final")["status"], "cancelled");
}

#[tokio::test]
async fn a_scan_longer_than_60_s_is_collected_by_a_client_with_a_60_s_timeout() {
    let Some(py) = tool("venv-mcp2/bin/python") else {
        return;
    };
    let s = stack("mcp-long").await;
    let steps = run_client(
        &py,
        &[&script("client_v2.py"), "long", "--url", &s.url],
        Duration::from_secs(240),
    )
    .await;
    let polls = steps.iter().filter(|s| s["step"] == "status").count();
    assert!(polls >= 2, "{steps:?}");
    step(&steps, "ok");
}

#[tokio::test]
async fn the_stdio_bridge_passes_the_same_list_and_call_test() {
    let Some(py) = tool("venv-mcp2/bin/python") else {
        return;
    };
    let s = stack("mcp-stdio").await;
    let api = bin("scanq-api").display().to_string();
    let base = s.url.trim_end_matches("/mcp").to_owned();
    for mode in ["auto", "legacy"] {
        let steps = run_client(
            &py,
            &[
                &script("client_v2.py"),
                "basic",
                "--mode",
                mode,
                "--stdio",
                &api,
                "mcp-stdio",
                "--url",
                &base,
            ],
            LIMIT,
        )
        .await;
        step(&steps, "ok");
    }
}

/// The Inspector prints the JSON-RPC result on stdout.
async fn inspector(program: &Path, url: &str, args: &[&str]) -> Value {
    let mut all = vec!["--cli", url];
    all.extend_from_slice(args);
    let home = tempfile::tempdir().expect("temp home");
    let out = tokio::time::timeout(
        LIMIT,
        tokio::process::Command::new(program)
            .args(&all)
            .env("HOME", home.path())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("inspector finished in time")
    .expect("inspector ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "inspector {args:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("inspector output is JSON ({e}):\n{stdout}"))
}

#[tokio::test]
async fn the_inspector_cli_lists_and_calls_every_tool() {
    let Some(program) = tool("node/node_modules/.bin/mcp-inspector") else {
        return;
    };
    let s = stack("mcp-inspector").await;

    let listed = inspector(&program, &s.url, &["--method", "tools/list"]).await;
    let names: Vec<String> = listed["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    let scan = inspector(
        &program,
        &s.url,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "nmap_scan",
            "--tool-arg",
            "target=127.0.0.1",
            "template=quick",
            "correlation_id=insp-1",
            "wait_sec=30",
        ],
    )
    .await;
    assert_eq!(scan["structuredContent"]["state"], "succeeded", "{scan}");
    // An engagement for engagement_get to read.
    let r = http()
        .put(format!(
            "{}/v1/engagements/insp-e",
            s.url.trim_end_matches("/mcp")
        ))
        .json(&serde_json::json!({"targets": ["127.0.0.0/24"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let calls: Vec<(&str, Vec<&str>)> = vec![
        (
            "slow_scan",
            vec![
                "target=127.0.0.1",
                "args=--sleep-ms 100",
                "correlation_id=insp-2",
            ],
        ),
        (
            "noop_scan",
            vec!["target=10.0.0.5", "correlation_id=insp-3"],
        ),
        (
            "sleep_scan",
            vec![
                "target=10.0.0.5",
                "args=--ms 60000",
                "correlation_id=insp-4",
            ],
        ),
        ("job_status", vec!["correlation_id=insp-1", "wait_sec=1"]),
        (
            "job_result",
            vec!["correlation_id=insp-1", "view=stdout", "page=1"],
        ),
        ("job_list", vec!["limit=10"]),
        ("job_cancel", vec!["correlation_id=insp-4"]),
        (
            "schedule_upsert",
            vec![
                "id=insp-s",
                "tool=noop",
                "target=10.0.0.5",
                "every_sec=3600",
            ],
        ),
        ("schedule_list", vec![]),
        ("schedule_pause", vec!["id=insp-s"]),
        ("schedule_resume", vec!["id=insp-s"]),
        ("job_diff", vec!["correlation_id=insp-1", "against=insp-1"]),
        ("engagement_list", vec![]),
        ("engagement_get", vec!["id=insp-e"]),
    ];
    let mut called = vec!["nmap_scan".to_owned()];
    for (name, args) in calls {
        let mut a = vec!["--method", "tools/call", "--tool-name", name];
        if !args.is_empty() {
            a.push("--tool-arg");
            a.extend(args);
        }
        let r = inspector(&program, &s.url, &a).await;
        assert_ne!(r["isError"], true, "{name}: {r}");
        assert!(r["structuredContent"].is_object(), "{name}: {r}");
        called.push(name.to_owned());
    }

    let mut listed_sorted = names.clone();
    listed_sorted.sort();
    called.sort();
    assert_eq!(listed_sorted, called, "every listed tool was called");
}
