//! Resource limits and the user switch hold against real misbehaving tools: memory, open files,
//! CPU, file size, a bounded fork bomb, and writes outside the working directory.

mod sandbox_support;

use std::time::Duration;

use sandbox_support::{Tools, eventually, is_root, live_members, spec, within};
use scanq_worker::sandbox::{SpawnError, run};
use tokio_util::sync::CancellationToken;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn a_memory_hog_fails_plainly_under_the_address_space_limit() {
    let mut spec = spec(
        "python3",
        &["-c", "b = bytearray(2 * 1024 ** 3)\nprint('allocated')"],
    );
    spec.limits.address_space_bytes = Some(256 * 1024 * 1024);

    let outcome = within(30, run(&spec, CancellationToken::new(), None))
        .await
        .unwrap();

    assert_ne!(outcome.exit_code, Some(0));
    assert!(!text(&outcome.stdout).contains("allocated"));
    assert!(
        text(&outcome.stderr).contains("MemoryError"),
        "stderr: {}",
        text(&outcome.stderr)
    );
}

#[tokio::test]
async fn an_open_files_hog_hits_the_open_files_limit() {
    let mut spec = spec(
        "python3",
        &["-c", "fs = [open('/dev/null') for _ in range(1000)]"],
    );
    spec.limits.open_files = Some(32);

    let outcome = within(30, run(&spec, CancellationToken::new(), None))
        .await
        .unwrap();

    assert_ne!(outcome.exit_code, Some(0));
    assert!(
        text(&outcome.stderr).contains("Too many open files"),
        "stderr: {}",
        text(&outcome.stderr)
    );
}

#[tokio::test]
async fn a_cpu_burner_is_stopped_and_reported_as_cpu_exhaustion() {
    let mut spec = spec("python3", &["-c", "while True: pass"]);
    spec.limits.cpu_sec = Some(1);
    spec.timeout = Duration::from_secs(60);

    let outcome = within(90, run(&spec, CancellationToken::new(), None))
        .await
        .unwrap();

    assert!(!outcome.timed_out);
    assert_eq!(outcome.resource_exhausted.as_deref(), Some("cpu"));
    assert_eq!(outcome.signal, Some(libc::SIGXCPU));
}

#[tokio::test]
async fn a_cpu_burner_that_ignores_sigxcpu_is_killed_at_the_hard_limit_and_still_reported() {
    let mut spec = spec(
        "python3",
        &[
            "-c",
            "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True: pass",
        ],
    );
    spec.limits.cpu_sec = Some(1);
    spec.timeout = Duration::from_secs(60);

    let outcome = within(90, run(&spec, CancellationToken::new(), None))
        .await
        .unwrap();

    assert!(!outcome.timed_out);
    assert_eq!(outcome.signal, Some(libc::SIGKILL));
    assert_eq!(outcome.resource_exhausted.as_deref(), Some("cpu"));
}

#[tokio::test]
async fn writing_past_the_file_size_limit_is_reported_as_file_size_exhaustion() {
    let mut spec = spec("dd", &["if=/dev/zero", "of=big", "bs=1048576", "count=2"]);
    spec.limits.file_size_bytes = Some(1024 * 1024);

    let outcome = within(30, run(&spec, CancellationToken::new(), None))
        .await
        .unwrap();

    assert_eq!(outcome.signal, Some(libc::SIGXFSZ));
    assert_eq!(outcome.resource_exhausted.as_deref(), Some("file_size"));
}

#[tokio::test]
async fn a_bounded_fork_bomb_is_stopped_by_the_process_limit_and_cleaned_up() {
    if !is_root() {
        eprintln!("skipped: RLIMIT_NPROC needs a user switch, which needs root");
        return;
    }
    let tools = Tools::new();
    // Tries to start 500 sleepers, reports how many it got and why it stopped, then exits and
    // leaves them behind.
    let tool = tools.script(
        "forker",
        "#!/usr/bin/python3\nimport os, time\nn, err = 0, None\nfor _ in range(500):\n    try:\n        pid = os.fork()\n    except OSError as e:\n        err = e.errno\n        break\n    if pid == 0:\n        time.sleep(1000)\n        os._exit(0)\n    n += 1\nprint(n, err, flush=True)\n",
    );
    let mut spec = spec(&tool, &[]);
    spec.limits.processes = Some(32);
    spec.run_as = Some("nobody".to_owned());

    let outcome = within(60, run(&spec, CancellationToken::new(), None))
        .await
        .unwrap();

    let stdout = text(&outcome.stdout);
    let (forked, errno) = stdout.trim().split_once(' ').expect("forker reports");
    let forked: u32 = forked.parse().unwrap();
    eprintln!("forked {forked} sleepers before EAGAIN");
    assert!(forked < 32, "forked {forked} processes under a limit of 32");
    assert_eq!(errno, libc::EAGAIN.to_string());
    let gone = eventually(Duration::from_secs(5), || {
        live_members(outcome.pid).is_empty()
    })
    .await;
    assert!(gone, "left behind: {:?}", live_members(outcome.pid));
}

#[tokio::test]
async fn as_nobody_the_tool_has_nobodys_uid_and_writes_only_in_its_directory() {
    if !is_root() {
        eprintln!("skipped: switching users needs root");
        return;
    }
    let tools = Tools::new();
    let tool = tools.script(
        "whoami",
        "#!/bin/sh\nid -u\nid -G\n\
         touch /root/scanq-sandbox-probe 2>/dev/null && echo wrote-root || echo denied-root\n\
         touch /etc/scanq-sandbox-probe 2>/dev/null && echo wrote-etc || echo denied-etc\n\
         touch ./inside && echo wrote-cwd\n",
    );
    let mut spec = spec(&tool, &[]);
    spec.run_as = Some("nobody".to_owned());

    let outcome = within(30, run(&spec, CancellationToken::new(), None))
        .await
        .unwrap();

    let _ = std::fs::remove_file("/root/scanq-sandbox-probe");
    let _ = std::fs::remove_file("/etc/scanq-sandbox-probe");
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let uid = nobody.uid.to_string();
    let gid = nobody.gid.to_string();
    let stdout = text(&outcome.stdout);
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            uid.as_str(),
            gid.as_str(),
            "denied-root",
            "denied-etc",
            "wrote-cwd"
        ],
        "stderr: {}",
        text(&outcome.stderr)
    );
    assert_eq!(outcome.exit_code, Some(0));
}

#[tokio::test]
async fn an_unknown_tool_user_is_refused_before_anything_starts() {
    if !is_root() {
        eprintln!("skipped: run_as is ignored when not root");
        return;
    }
    let mut spec = spec("true", &[]);
    spec.run_as = Some("scanq-no-such-user".to_owned());

    let err = run(&spec, CancellationToken::new(), None)
        .await
        .unwrap_err();

    assert!(matches!(err, SpawnError::UnknownUser { ref user } if user == "scanq-no-such-user"));
}
