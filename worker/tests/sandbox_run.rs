//! The sandbox runs real subprocesses: exit codes, captured output, cleared environment, fresh
//! working directory, output caps and spawn errors.

mod sandbox_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use sandbox_support::{Tools, alive, eventually, pids_in, spec, within};
use scanq_worker::sandbox::{OutputChunk, SpawnError, Stream, run};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn a_tool_runs_with_its_exit_code_and_both_streams_in_a_fresh_directory_removed_afterwards() {
    let tools = Tools::new();
    let tool = tools.script("hello", "#!/bin/sh\necho out\necho err >&2\npwd\nexit 3\n");

    let outcome = within(30, run(&spec(&tool, &[]), CancellationToken::new(), None))
        .await
        .unwrap();

    assert_eq!(outcome.exit_code, Some(3));
    assert_eq!(outcome.signal, None);
    assert_eq!(outcome.stderr, b"err\n");
    let stdout = String::from_utf8(outcome.stdout).unwrap();
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("out"));
    let cwd = lines.next().unwrap();
    assert!(cwd.contains("scanq-sandbox-"), "cwd was {cwd}");
    assert!(
        !Path::new(cwd).exists(),
        "working directory {cwd} was left behind"
    );
    assert!(!outcome.timed_out && !outcome.cancelled);
    assert!(!outcome.truncated_stdout && !outcome.truncated_stderr);
    assert_eq!(outcome.resource_exhausted, None);
    assert!(outcome.pid > 1);
}

#[tokio::test]
async fn the_environment_holds_only_path_lang_lc_all_home_and_tmpdir() {
    let outcome = within(30, run(&spec("env", &[]), CancellationToken::new(), None))
        .await
        .unwrap();

    let stdout = String::from_utf8(outcome.stdout).unwrap();
    let env: BTreeMap<&str, &str> = stdout.lines().filter_map(|l| l.split_once('=')).collect();
    assert_eq!(
        env.keys().copied().collect::<Vec<_>>(),
        ["HOME", "LANG", "LC_ALL", "PATH", "TMPDIR"]
    );
    assert_eq!(env["PATH"], "/usr/local/bin:/usr/bin:/bin");
    assert_eq!(env["LANG"], "C");
    assert_eq!(env["LC_ALL"], "C");
    assert_eq!(env["HOME"], env["TMPDIR"]);
    assert!(env["HOME"].contains("scanq-sandbox-"));
}

#[tokio::test]
async fn output_over_the_cap_is_truncated_and_the_tool_is_not_blocked() {
    let tools = Tools::new();
    // 5 MiB to stdout, 1 MiB to stderr: far over the 1 MiB / 256 KiB default caps and far over
    // what a pipe buffers, so the tool would block forever if the excess were not drained.
    let tool = tools.script(
        "chatty",
        "#!/bin/sh\nhead -c 5242880 /dev/zero\nhead -c 1048576 /dev/zero >&2\necho done >&2\n",
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<OutputChunk>();

    let outcome = within(
        30,
        run(&spec(&tool, &[]), CancellationToken::new(), Some(tx)),
    )
    .await
    .unwrap();

    assert_eq!(outcome.exit_code, Some(0));
    assert!(!outcome.timed_out);
    assert_eq!(outcome.stdout.len(), 1024 * 1024);
    assert_eq!(outcome.stderr.len(), 256 * 1024);
    assert!(outcome.truncated_stdout && outcome.truncated_stderr);
    let (mut tapped_out, mut tapped_err) = (0, 0);
    while let Some(chunk) = rx.recv().await {
        match chunk.stream {
            Stream::Stdout => tapped_out += chunk.data.len(),
            Stream::Stderr => tapped_err += chunk.data.len(),
        }
    }
    assert_eq!((tapped_out, tapped_err), (1024 * 1024, 256 * 1024));
}

#[tokio::test]
async fn the_live_tap_sees_output_in_order_while_the_tool_runs() {
    let tools = Tools::new();
    let tool = tools.script(
        "counter",
        "#!/bin/sh\nfor i in 1 2 3 4 5; do echo $i; done\n",
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<OutputChunk>();

    let outcome = within(
        30,
        run(&spec(&tool, &[]), CancellationToken::new(), Some(tx)),
    )
    .await
    .unwrap();

    let mut seen = Vec::new();
    while let Some(chunk) = rx.recv().await {
        assert_eq!(chunk.stream, Stream::Stdout);
        seen.extend_from_slice(&chunk.data);
    }
    assert_eq!(seen, b"1\n2\n3\n4\n5\n");
    assert_eq!(outcome.stdout, seen);
}

#[tokio::test]
async fn a_missing_program_is_not_found_before_anything_starts() {
    let err = run(
        &spec("scanq-no-such-tool", &[]),
        CancellationToken::new(),
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SpawnError::NotFound { ref program } if program == "scanq-no-such-tool"));

    let err = run(
        &spec("/nonexistent/tool", &[]),
        CancellationToken::new(),
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SpawnError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn a_program_outside_the_sandbox_path_is_not_found_even_if_the_worker_has_it() {
    let mut spec = spec("sh", &[]);
    spec.path_env = "/nonexistent".to_owned();
    let err = run(&spec, CancellationToken::new(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, SpawnError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn children_left_behind_when_the_tool_exits_are_killed_and_do_not_hold_the_run() {
    let tools = Tools::new();
    // The sleeper inherits stdout: without the group kill the run would wait for its EOF.
    let tool = tools.script("leaver", "#!/bin/sh\nsleep 1000 &\necho $!\nexit 0\n");

    let outcome = within(10, run(&spec(&tool, &[]), CancellationToken::new(), None))
        .await
        .unwrap();

    assert_eq!(outcome.exit_code, Some(0));
    let pids = pids_in(&outcome.stdout);
    assert_eq!(pids.len(), 1);
    assert!(eventually(Duration::from_secs(5), || !alive(pids[0])).await);
}

#[tokio::test]
async fn a_grandchild_that_left_the_group_does_not_hang_the_run() {
    let tools = Tools::new();
    // The grandchild starts its own session (out of reach of the group kill) and keeps stdout.
    let tool = tools.script(
        "escaper",
        "#!/usr/bin/python3\nimport os, time\npid = os.fork()\nif pid == 0:\n    os.setsid()\n    time.sleep(1000)\n    os._exit(0)\nprint(pid, flush=True)\n",
    );

    let outcome = within(15, run(&spec(&tool, &[]), CancellationToken::new(), None))
        .await
        .unwrap();

    assert_eq!(outcome.exit_code, Some(0));
    let pids = pids_in(&outcome.stdout);
    assert_eq!(
        pids.len(),
        1,
        "stdout: {:?}",
        String::from_utf8_lossy(&outcome.stdout)
    );
    // Clean up the escapee we provoked (it is documented as out of the sandbox's reach).
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pids[0]),
        nix::sys::signal::Signal::SIGKILL,
    );
}
