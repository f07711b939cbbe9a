//! Seccomp through a real worker (docs/sandbox.md "Seccomp"): catalog tools, jobs and their
//! outcomes. `scanq-hostile` as a catalog tool (the attempt fixed in `output_args`) is killed
//! for `clone(CLONE_NEWUSER|CLONE_NEWNET)` and the job says `sandbox violation`; its unix socket
//! attempt is refused with `EACCES`; a tool whose allow-list is too short is killed, and the same
//! tool with nmap's list runs. No network: the targets are only appended to argv.

use std::os::unix::net::UnixListener;
use std::time::Duration;

use scanq::catalog::Catalog;
use scanq_tests::*;
use serde_json::{Value, json};

/// `[tools.<name>]` running `command` with fixed `output_args` and an optional seccomp section.
fn tool(name: &str, command: &str, output_args: &[&str], seccomp: &str) -> String {
    format!(
        "[tools.{name}]\nexecutor = \"exec\"\ncommand = \"{command}\"\noutput_args = {}\n\
         default_timeout_sec = 30\n{seccomp}\n",
        serde_json::to_string(output_args).unwrap()
    )
}

async fn run_job(base: &str, tool: &str) -> Value {
    let body =
        json!({"tool": tool, "target": "127.0.0.1", "correlation_id": tool, "max_attempts": 3});
    let r = post_json(base, "/v1/jobs", &body).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    wait_done(base, tool, Duration::from_secs(30)).await
}

fn assert_violation(done: &Value) {
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(
        done["attempt"], 1,
        "a sandbox violation is not retried: {done}"
    );
    let message = done["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("sandbox violation"), "{done}");
}

#[tokio::test]
async fn catalog_tools_get_the_deny_rules_or_their_allow_list() {
    let redis = RedisServer::start().await;
    let fixture = Fixture::new();
    let sock = fixture.path("host.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    listener.set_nonblocking(true).unwrap();
    let hostile = bin("scanq-hostile");
    let hostile = hostile.to_str().unwrap();
    let nmap_list = {
        let builtin = Catalog::builtin();
        let nmap = builtin
            .get(&scanq::domain::ToolName::parse("nmap").unwrap())
            .unwrap();
        serde_json::to_string(nmap.seccomp.allow.as_ref().unwrap()).unwrap()
    };
    let catalog = [
        tool("ns", hostile, &["clone-newuser"], ""),
        tool("unix", hostile, &["unix", sock.to_str().unwrap()], ""),
        tool(
            "narrow",
            "/bin/true",
            &[],
            "[tools.narrow.seccomp]\nallow = [\"read\"]",
        ),
        tool(
            "listed",
            "/bin/true",
            &[],
            &format!("[tools.listed.seccomp]\nallow = {nmap_list}"),
        ),
    ]
    .concat();
    let catalog = Catalog::load(Some(&fixture.catalog(&catalog))).expect("catalog");
    let cfg = test_config(&redis, "seccomp-jobs");
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let (_worker, _metrics) = start_worker_with_metrics(cfg, catalog).await;

    let done = run_job(&base, "ns").await;
    assert_violation(&done);
    assert_eq!(done["result"]["stdout"], "", "killed before a line: {done}");

    let done = run_job(&base, "unix").await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["result"]["stdout"], "refused: EACCES\n", "{done}");
    assert!(
        listener.accept().is_err(),
        "the unix listener got a connection"
    );

    assert_violation(&run_job(&base, "narrow").await);
    let done = run_job(&base, "listed").await;
    assert_eq!(done["state"], "succeeded", "{done}");
}
