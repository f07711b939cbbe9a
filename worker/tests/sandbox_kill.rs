//! Timeouts and cancellation kill the tool's whole process group, children that ignore SIGTERM
//! included.

mod sandbox_support;

use std::time::Duration;

use sandbox_support::{Tools, alive, eventually, group_of, live_members, pids_in, spec, within};
use scanq_worker::sandbox::{GroupKill, OutputChunk, kill_group, run};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Ignores SIGTERM (and so do its children, which inherit the ignored disposition), starts two
/// sleepers, prints their pids and "ready", and waits for them.
const STUBBORN: &str =
    "#!/bin/sh\ntrap '' TERM\nsleep 1000 &\necho $!\nsleep 1000 &\necho $!\necho ready\nwait\n";

async fn assert_group_is_gone(pgid: u32, children: &[i32]) {
    let gone = eventually(Duration::from_secs(5), || {
        live_members(pgid).is_empty() && children.iter().all(|&pid| !alive(pid))
    })
    .await;
    assert!(
        gone,
        "still alive in group {pgid}: {:?}",
        live_members(pgid)
    );
}

#[tokio::test]
async fn a_tool_that_ignores_sigterm_is_killed_with_all_its_children_on_timeout() {
    let tools = Tools::new();
    let tool = tools.script("stubborn", STUBBORN);
    let mut spec = spec(&tool, &[]);
    spec.timeout = Duration::from_secs(1);
    spec.kill_grace = Duration::from_millis(300);

    let outcome = within(20, run(&spec, CancellationToken::new(), None))
        .await
        .unwrap();

    assert!(outcome.timed_out);
    assert!(!outcome.cancelled);
    assert_eq!(outcome.signal, Some(libc::SIGKILL));
    assert_eq!(outcome.resource_exhausted, None);
    let children = pids_in(&outcome.stdout);
    assert_eq!(
        children.len(),
        2,
        "stdout: {:?}",
        String::from_utf8_lossy(&outcome.stdout)
    );
    assert_group_is_gone(outcome.pid, &children).await;
}

#[tokio::test]
async fn cancelling_kills_a_running_tool_and_its_children_within_the_grace() {
    let tools = Tools::new();
    let tool = tools.script("stubborn", STUBBORN);
    let mut spec = spec(&tool, &[]);
    spec.timeout = Duration::from_secs(300);
    spec.kill_grace = Duration::from_millis(500);
    let cancel = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<OutputChunk>();
    let running = tokio::spawn({
        let cancel = cancel.clone();
        async move { run(&spec, cancel, Some(tx)).await }
    });

    // Wait until the tool says it has started its children, then cancel.
    let mut seen = Vec::new();
    within(20, async {
        while !String::from_utf8_lossy(&seen).contains("ready") {
            seen.extend_from_slice(&rx.recv().await.expect("tool ended early").data);
        }
    })
    .await;
    let cancelled_at = Instant::now();
    cancel.cancel();
    let outcome = within(20, running).await.unwrap().unwrap();

    assert!(outcome.cancelled);
    assert!(!outcome.timed_out);
    assert!(
        cancelled_at.elapsed() < Duration::from_millis(500) + Duration::from_secs(2),
        "cancel took {:?}",
        cancelled_at.elapsed()
    );
    assert_group_is_gone(outcome.pid, &pids_in(&seen)).await;
}

#[tokio::test]
async fn kill_group_lets_a_leader_that_honours_sigterm_exit_then_kills_the_rest() {
    // A group we own directly: a leader that exits on SIGTERM with a child that ignores it.
    let mut child = tokio::process::Command::new("/bin/sh")
        .args([
            "-c",
            "(trap '' TERM; exec sleep 1000) & echo $!; exec sleep 1000",
        ])
        .stdout(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pgid = child.id().unwrap();
    let mut line = String::new();
    tokio::io::AsyncBufReadExt::read_line(
        &mut tokio::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .await
    .unwrap();
    let straggler: i32 = line.trim().parse().unwrap();

    let result = within(10, kill_group(pgid, Duration::from_secs(5)))
        .await
        .unwrap();
    child.wait().await.unwrap();

    assert_eq!(result, GroupKill::LeaderExitedOnTerm);
    assert_group_is_gone(pgid, &[straggler]).await;
}

#[tokio::test]
async fn dropping_a_run_midway_kills_its_whole_group() {
    let tools = Tools::new();
    let tool = tools.script("stubborn", STUBBORN);
    let spec = spec(&tool, &[]);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<OutputChunk>();
    let running = tokio::spawn(async move { run(&spec, CancellationToken::new(), Some(tx)).await });
    let mut seen = Vec::new();
    within(20, async {
        while !String::from_utf8_lossy(&seen).contains("ready") {
            seen.extend_from_slice(&rx.recv().await.expect("tool ended early").data);
        }
    })
    .await;
    let children = pids_in(&seen);
    let pgid = group_of(children[0]).expect("child is running");

    running.abort();
    assert!(running.await.unwrap_err().is_cancelled());

    assert_group_is_gone(pgid, &children).await;
}
