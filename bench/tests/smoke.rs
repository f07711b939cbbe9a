//! The benchmark tool run end to end with tiny numbers, so it cannot rot: it starts its own
//! redis-server, API and worker processes, prints one JSON line with the headline numbers, and
//! stops everything it started — also when interrupted. Needs the workspace binaries built
//! (`cargo build --workspace`, which `make test` does).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod one_run;
use one_run::*;

const BENCH: &str = env!("CARGO_BIN_EXE_scanq-bench");

/// Polls `f` until true, or panics after `limit`.
fn eventually(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        // The polling interval of this deadline-bounded poll.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The pids of a process's children, from `/proc/<pid>/task/*/children`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return vec![];
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn a_tiny_run_reports_all_headline_numbers_as_one_json_line() {
    let _one = one_at_a_time();
    let out = Command::new(BENCH)
        .args([
            "--jobs",
            "200",
            "--submit-jobs",
            "200",
            "--clients",
            "4",
            "--e2e-jobs",
            "20",
            "--memory-jobs",
            "200",
            "--worker-concurrency",
            "32",
            "--timeout-sec",
            "60",
            "--json",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run scanq-bench");

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "scanq-bench failed: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one JSON line on stdout: {stdout}");
    let doc: Value = serde_json::from_str(lines[0]).expect("valid JSON");
    for key in [
        "drain_jobs_per_sec",
        "submit_jobs_per_sec",
        "e2e_p50_ms",
        "e2e_p99_ms",
        "e2e_two_requests_p50_ms",
        "e2e_two_requests_p99_ms",
        "memory_bytes_per_job",
    ] {
        let v = doc[key].as_f64().unwrap_or(0.0);
        assert!(v > 0.0, "{key} is a positive number: {doc}");
    }
    assert!(doc["e2e_p50_ms"].as_f64() <= doc["e2e_p99_ms"].as_f64());
    assert!(doc["e2e_two_requests_p50_ms"].as_f64() <= doc["e2e_two_requests_p99_ms"].as_f64());
    assert_eq!(doc["e2e"]["jobs"], 20, "{doc}");
    for key in [
        "api_idle",
        "worker_idle",
        "api_peak_submit",
        "worker_peak_drain",
    ] {
        let kib = doc["rss_kib"][key].as_u64().unwrap_or(0);
        assert!(kib > 0, "rss_kib.{key} is a positive number: {doc}");
    }
    let commands = doc["commands_per_job"]["calls"].as_f64().unwrap_or(0.0);
    assert!(commands > 1.0, "Redis commands per job: {doc}");
    assert!(
        stderr.contains("(b) drain, 200 noop jobs"),
        "table on stderr: {stderr}"
    );
    assert!(
        stderr.contains("(d) Redis memory per queued job, 200 jobs"),
        "table on stderr: {stderr}"
    );
}

#[test]
fn the_memory_phase_sizes_the_job_hashes_among_the_key_kinds() {
    let _one = one_at_a_time();
    let out = Command::new(BENCH)
        .args([
            "--only",
            "memory",
            "--memory-jobs",
            "100",
            "--clients",
            "4",
            "--json",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run scanq-bench");

    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert!(doc["drain_jobs_per_sec"].is_null(), "{doc}");
    assert!(doc["memory_bytes_per_job"].as_f64() > Some(0.0), "{doc}");
    let memory = &doc["memory"];
    assert_eq!(memory["jobs"], 100, "{doc}");
    // 4 clients × 4 warm-up jobs, then the 100 measured.
    assert_eq!(memory["jobs_in_redis"], 116, "{doc}");
    let kinds = memory["kinds"].as_array().expect("kinds");
    let job = kinds
        .iter()
        .find(|k| k["label"] == "job hash")
        .unwrap_or_else(|| panic!("a job hash kind: {doc}"));
    assert_eq!(job["keys"], 116, "{doc}");
    assert_eq!(job["type"], "hash", "{doc}");
    assert!(job["bytes_per_job"].as_f64() > Some(0.0), "{doc}");
    assert!(doc["rss_kib"]["worker_idle"].as_u64() > Some(0), "{doc}");
    assert!(doc["rss_kib"]["worker_peak_drain"].is_null(), "{doc}");
}

#[test]
fn one_phase_can_run_alone_and_the_others_are_null() {
    let _one = one_at_a_time();
    let out = Command::new(BENCH)
        .args(["--only", "e2e", "--e2e-jobs", "10", "--json"])
        .stdin(Stdio::null())
        .output()
        .expect("run scanq-bench");

    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert!(doc["e2e_p99_ms"].as_f64().is_some(), "{doc}");
    assert!(doc["drain_jobs_per_sec"].is_null(), "{doc}");
    assert!(doc["submit_jobs_per_sec"].is_null(), "{doc}");
    assert!(doc["memory_bytes_per_job"].is_null(), "{doc}");
}

#[test]
fn an_unreachable_redis_fails_fast_with_a_message() {
    let _one = one_at_a_time();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let started = Instant::now();

    let out = Command::new(BENCH)
        .args([
            "--redis-url",
            &format!("redis://127.0.0.1:{port}/"),
            "--json",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run scanq-bench");

    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot connect to redis"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn interrupting_the_bench_stops_every_process_it_started() {
    let _one = one_at_a_time();
    // A latency run long enough to be still going when the signal comes.
    let mut bench = Command::new(BENCH)
        .args([
            "--only",
            "e2e",
            "--e2e-jobs",
            "100000",
            "--timeout-sec",
            "60",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run scanq-bench");
    let pid = bench.id();
    // redis-server, scanq-api and one scanq-worker.
    let mut started = vec![];
    eventually(Duration::from_secs(20), "three child processes", || {
        started = children(pid);
        started.len() >= 3
    });

    send_signal(pid, "INT");
    let status = bench.wait().expect("wait");

    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut bench.stderr.take().expect("stderr"), &mut stderr)
        .expect("read stderr");
    assert!(stderr.contains("interrupted by SIGINT"), "{stderr}");
    for child in started {
        assert!(
            !alive(child),
            "child {child} still running after the bench exited"
        );
    }
}

/// Sends a signal with the `kill` command (no unsafe, no extra dependency).
fn send_signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

#[tokio::test]
async fn with_an_existing_redis_only_the_runs_own_keys_are_written_and_removed() {
    let _one = one_at_a_time_async().await;
    let redis = scanq_tests::RedisServer::start().await;
    let mut con = redis.con().await;
    let _: () = redis::cmd("SET")
        .arg("someone-elses-key")
        .arg("kept")
        .query_async(&mut con)
        .await
        .expect("set");

    let out = tokio::process::Command::new(BENCH)
        .args([
            "--redis-url",
            &redis.url(),
            "--jobs",
            "100",
            "--submit-jobs",
            "100",
            "--clients",
            "4",
            "--e2e-jobs",
            "5",
            "--memory-jobs",
            "50",
            "--json",
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run scanq-bench");

    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut con)
        .await
        .expect("keys");
    assert_eq!(keys, vec!["someone-elses-key".to_owned()]);
}
