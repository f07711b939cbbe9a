//! `scanq-bench --fanout` end to end with tiny sizes, so the phase cannot rot: its own
//! redis-server, API and worker processes, one JSON line with every figure of the phase, and the
//! read of a parent costing the same Redis commands whatever its chunk count. Needs the
//! workspace binaries built (`cargo build --workspace`, which `make test` does).

use std::process::{Command, Stdio};

use serde_json::Value;

mod one_run;
use one_run::*;

const BENCH: &str = env!("CARGO_BIN_EXE_scanq-bench");

#[test]
fn a_tiny_fanout_run_reports_submit_reads_memory_and_both_drains() {
    let _one = one_at_a_time();
    let out = Command::new(BENCH)
        .args([
            "--fanout",
            "--fanout-submits",
            "3",
            "--fanout-gets",
            "10",
            // Big enough that the memory deltas stand above Redis's own noise (~10 KB).
            "--fanout-jobs",
            "2000",
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
    assert!(
        out.status.success(),
        "scanq-bench --fanout failed: {stderr}"
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    let f = &doc["fanout"];
    for key in [
        "submit_256_p50_ms",
        "submit_256_commands",
        "plain_bytes_per_job",
        "chunk_bytes_per_chunk",
        "plain_drain_jobs_per_sec",
        "chunk_drain_jobs_per_sec",
        "parent_done_secs",
        "big_submit_ms",
        "plain_drain_redis_usec_per_job",
        "chunk_drain_redis_usec_per_chunk",
    ] {
        assert!(
            f[key].as_f64() > Some(0.0),
            "{key} is a positive number: {doc}"
        );
    }
    assert_eq!(f["jobs"], 2000, "{doc}");
    let reads = f["reads"].as_array().expect("reads");
    let chunks: Vec<u64> = reads.iter().filter_map(|r| r["chunks"].as_u64()).collect();
    assert_eq!(chunks, [0, 4, 64, 256], "a plain job, then parents: {doc}");
    // The API's own background reads (its periodic checks) land in the same counters, so a
    // fraction of a command per GET is noise; what a GET itself costs is one HGETALL.
    for r in reads {
        assert_eq!(
            r["by_command"]["hgetall"], 1.0,
            "one HGETALL per GET: {doc}"
        );
        let per_get = r["commands_per_get"].as_f64().unwrap_or(f64::MAX);
        assert!(
            per_get < 2.0,
            "a GET costs the same whatever the chunk count: {doc}"
        );
    }
    assert!(
        stderr.contains("GET /v1/jobs/{id}, 10 each"),
        "table on stderr: {stderr}"
    );
}

#[test]
fn a_fanout_bigger_than_a_slash_16_is_refused_naming_the_flag() {
    let _one = one_at_a_time();
    let out = Command::new(BENCH)
        .args(["--fanout", "--fanout-jobs", "65537"])
        .stdin(Stdio::null())
        .output()
        .expect("run scanq-bench");

    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--fanout-jobs"), "{stderr}");
    assert!(
        stderr.contains("1..=65536") || stderr.contains("65536"),
        "{stderr}"
    );
}
