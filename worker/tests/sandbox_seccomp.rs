//! The seccomp filter against a compromised tool: each attempt of `scanq-hostile` (tests crate,
//! `cargo build --workspace --bins` first) runs in its own sandboxed process, as an unprivileged
//! per-run uid when the test runs as root, and is killed (SIGSYS) or refused. Without the
//! filter the same binary escapes, so the corpus tests the filter and not the environment.
//! No network confinement is involved.

mod sandbox_support;

use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use sandbox_support::{is_root, spec, within};
use scanq_worker::sandbox::seccomp::{KILL_SIGNAL, Seccomp};
use scanq_worker::sandbox::{RunOutcome, run};
use tokio_util::sync::CancellationToken;

/// A uid with no passwd entry, like the worker's per-run identities.
const TOOL_UID: u32 = 64_917;

/// `target/<profile>/scanq-hostile`, built by `cargo build --workspace --bins`.
fn hostile() -> String {
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("deps dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path: PathBuf = dir.join("scanq-hostile");
    assert!(
        path.exists(),
        "{} not built: run `cargo build --workspace --bins` first (make test does)",
        path.display()
    );
    path.to_str().unwrap().to_owned()
}

async fn attempt(mode: &Seccomp, args: &[&str]) -> RunOutcome {
    let mut spec = spec(&hostile(), args);
    spec.seccomp = mode.clone();
    if is_root() {
        spec.run_as_uid = Some(TOOL_UID);
    }
    within(30, run(&spec, CancellationToken::new(), None))
        .await
        .unwrap()
}

/// What the attempt printed, for the messages.
fn said(o: &RunOutcome) -> String {
    format!(
        "exit {:?}, signal {:?}, stdout {:?}, stderr {:?}",
        o.exit_code,
        o.signal,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn assert_killed(o: &RunOutcome, what: &str) {
    assert_eq!(o.signal, Some(KILL_SIGNAL), "{what}: {}", said(o));
    assert!(o.stdout.is_empty(), "{what}: {}", said(o));
}

fn assert_refused(o: &RunOutcome, what: &str, errno: &str) {
    assert_eq!(o.exit_code, Some(0), "{what}: {}", said(o));
    let line = String::from_utf8_lossy(&o.stdout);
    assert_eq!(line.trim_end(), format!("refused: {errno}"), "{what}");
}

#[tokio::test]
async fn namespaces_io_uring_the_mount_api_handles_and_other_processes_kill_the_tool() {
    let me = std::process::id().to_string();
    let deny = Seccomp::DenyList;
    let attempts: &[&[&str]] = &[
        &["unshare-net"],
        &["clone-newuser"],
        &["io-uring"],
        &["fsopen"],
        &["open-tree"],
        &["pidfd-getfd", &me],
        &["kcmp", &me],
        &["name-to-handle", "/etc/passwd"],
        &["ptrace", &me],
        &["x32"],
    ];
    for args in attempts {
        let outcome = attempt(&deny, args).await;
        assert_killed(&outcome, &args.join(" "));
    }
}

#[tokio::test]
async fn clone3_fails_with_enosys() {
    let outcome = attempt(&Seccomp::DenyList, &["clone3-newns"]).await;
    assert_refused(&outcome, "clone3-newns", "ENOSYS");
}

#[tokio::test]
async fn a_host_unix_socket_cannot_be_reached() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("host.sock");
    let listener = UnixListener::bind(&path).unwrap();
    listener.set_nonblocking(true).unwrap();
    // Anyone may connect as far as file modes go: only the filter stands in the way.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();

    let outcome = attempt(&Seccomp::DenyList, &["unix", path.to_str().unwrap()]).await;

    assert_refused(&outcome, "unix", "EACCES");
    assert!(listener.accept().is_err(), "the listener got a connection");
    // The control: the same attempt without the filter reaches it.
    let outcome = attempt(&Seccomp::Off, &["unix", path.to_str().unwrap()]).await;
    assert_eq!(outcome.exit_code, Some(3), "{}", said(&outcome));
}

#[tokio::test]
async fn the_workers_environment_is_out_of_reach_of_the_tool_uid() {
    if !is_root() {
        eprintln!("skipped: the tool runs as its own uid only when the worker is root");
        return;
    }
    let me = std::process::id().to_string();
    let outcome = attempt(&Seccomp::DenyList, &["environ", &me]).await;
    assert_refused(&outcome, "environ", "EACCES");
}

#[tokio::test]
async fn without_the_filter_the_same_attempts_escape() {
    let userns = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .is_ok_and(|n| n.trim() != "0");
    let uring = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map_or(true, |n| n.trim() == "0");
    let mut escapes: Vec<&[&str]> = vec![&["name-to-handle", "/etc/passwd"]];
    if userns {
        escapes.extend([&["clone-newuser"][..], &["unshare-net"], &["clone3-newns"]]);
    }
    if uring {
        escapes.push(&["io-uring"]);
    }
    for args in escapes {
        let outcome = attempt(&Seccomp::Off, args).await;
        assert_eq!(outcome.exit_code, Some(3), "{args:?}: {}", said(&outcome));
    }
}

#[tokio::test]
async fn a_tool_without_an_allow_list_still_forks_runs_threads_and_uses_socketpairs() {
    // sh forks (clone without namespace flags); python starts a thread (pthread_create tries
    // clone3, gets ENOSYS, falls back to clone) and uses a socketpair (AF_UNIX, no connect).
    let script = "echo forked | cat && python3 -c 'import socket, threading\n\
t = threading.Thread(target=print, args=(\"thread\",)); t.start(); t.join()\n\
a, b = socket.socketpair(); a.send(b\"x\"); print(b.recv(1))'";
    let mut spec = spec("sh", &["-c", script]);
    spec.seccomp = Seccomp::DenyList;
    let outcome = within(30, run(&spec, CancellationToken::new(), None))
        .await
        .unwrap();
    assert_eq!(outcome.exit_code, Some(0), "{}", said(&outcome));
    assert_eq!(
        String::from_utf8_lossy(&outcome.stdout),
        "forked\nthread\nb'x'\n"
    );
}
