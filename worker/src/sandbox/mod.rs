//! The worker's sandboxed subprocess runner (Linux only). [`run`] starts one tool without a
//! shell, with a cleared environment, in its own process group and a fresh temporary directory,
//! under `setrlimit` limits and optionally as an unprivileged user; it reads stdout and stderr
//! concurrently with caps, and on timeout or cancellation kills the whole group. What is and is
//! not enforced is written down in `docs/sandbox.md`.
//!
//! Submodules: `spec` (what to run), `limits` (the child's pre-exec setup, the only `unsafe`),
//! `output` (capped pipe readers), `kill` (group kills), `seccomp` (the system-call filter).

mod cgroup;
mod kill;
mod limits;
mod output;
mod owner;
pub mod seccomp;
mod spec;

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::process::Command;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::{Instant, sleep, timeout};
use tokio_util::sync::CancellationToken;

pub use cgroup::{CgroupRoot, RunCgroup};
pub use kill::{GroupKill, kill_group};
pub use output::{OutputChunk, Stream};
pub use owner::Owner;
pub use spec::{
    CPU_SLACK, DEFAULT_KILL_GRACE, DEFAULT_PATH, DEFAULT_STDERR_CAP, DEFAULT_STDOUT_CAP,
    DEFAULT_TIMEOUT, Limits, SandboxSpec,
};

/// How long output is still read after the whole group is dead. Only a process that left the
/// group (e.g. with `setsid`) can keep a pipe open past that; we stop waiting for it.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// How one run ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// Exit code when the tool exited normally.
    pub exit_code: Option<i32>,
    /// Signal number when the tool was killed by a signal.
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub truncated_stdout: bool,
    pub truncated_stderr: bool,
    /// The wall-clock timeout fired and the group was killed.
    pub timed_out: bool,
    /// The cancellation token fired and the group was killed.
    pub cancelled: bool,
    /// Which limit stopped the tool, when it can be told: `"cpu"` (SIGXCPU, or SIGKILL at the
    /// hard CPU limit), `"file_size"` (SIGXFSZ).
    pub resource_exhausted: Option<String>,
    /// From spawn to the leader's exit.
    pub duration: Duration,
    /// The leader's pid, which is also the process-group id.
    pub pid: u32,
    /// Processes still in the run's cgroup after the leader and its group were gone (escapees:
    /// `setsid`, double forks), all killed with the cgroup. 0 without a cgroup.
    pub escaped: usize,
}

/// Why a tool could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("program `{program}` not found on the sandbox PATH")]
    NotFound { program: String },
    #[error("program `{program}` is not executable")]
    PermissionDenied { program: String },
    #[error("user `{user}` to run the tool as does not exist")]
    UnknownUser { user: String },
    #[error("could not start the tool: {0}")]
    Io(#[from] std::io::Error),
    /// The kernel refused the fork or exec for lack of a resource (`EAGAIN`: process limit,
    /// `ENOMEM`: memory).
    #[error("could not start the tool: {0} exhausted")]
    ResourceExhausted(String),
}

impl SpawnError {
    fn from_spawn(err: std::io::Error, program: &str) -> Self {
        let program = program.to_owned();
        match err.raw_os_error() {
            Some(libc::ENOENT) => Self::NotFound { program },
            Some(libc::EACCES) => Self::PermissionDenied { program },
            Some(libc::EAGAIN) => Self::ResourceExhausted("processes".to_owned()),
            Some(libc::ENOMEM) => Self::ResourceExhausted("memory".to_owned()),
            _ => Self::Io(err),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Exited,
    TimedOut,
    Cancelled,
}

/// Runs the command. `output`: optional live tap of chunks (used for progress and output
/// events), sent in order per stream, never more than the caps. `cancel`: when fired, the whole
/// process group is killed (SIGTERM, grace, SIGKILL) and the outcome has `cancelled = true`.
///
/// Must be called on a tokio runtime thread, not from `spawn_blocking` (see the parent-death
/// signal caveat in `limits`). If the returned future is dropped early, the group is SIGKILLed.
#[tracing::instrument(skip_all, fields(program = %spec.program))]
pub async fn run(
    spec: &SandboxSpec,
    cancel: CancellationToken,
    output: Option<UnboundedSender<OutputChunk>>,
) -> Result<RunOutcome, SpawnError> {
    let program = spec::resolve_program(&spec.program, &spec.path_env)?;
    let user = match spec.run_as_uid {
        Some(uid) => limits::pool_user(uid),
        None => limits::tool_user(spec.run_as.as_deref())?,
    };
    let workdir = tempfile::Builder::new()
        .prefix("scanq-sandbox-")
        .tempdir()?;
    if let Some(user) = &user {
        limits::hand_over_workdir(workdir.path(), user)?;
    }

    let mut cmd = Command::new(&program);
    cmd.args(&spec.args)
        .env_clear()
        .env("PATH", &spec.path_env)
        .env("LANG", "C")
        .env("LC_ALL", "C")
        .env("HOME", workdir.path())
        .env("TMPDIR", workdir.path())
        .current_dir(workdir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let filter = seccomp::compile(&spec.seccomp)?;
    let cgroup = match &spec.cgroups {
        Some(root) => Some(root.create()?),
        None => None,
    };
    limits::install(
        &mut cmd,
        limits::ChildSetup::plan(spec, user.as_ref())
            .in_cgroup(cgroup.as_ref().map(RunCgroup::procs_fd))
            .in_net_ns(spec.net_ns, spec.raw_sockets),
        filter,
    );

    // Registered before the spawn so the child's SIGCHLD cannot be missed.
    let mut sigchld = signal(SignalKind::child())?;
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|err| SpawnError::from_spawn(err, &spec.program))?;
    let raw_pid = child
        .id()
        .ok_or_else(|| std::io::Error::other("child has no pid"))?;
    let leader = Pid::from_raw(raw_pid as i32);
    let mut guard = kill::GroupGuard::new(leader);
    tracing::debug!(
        pid = raw_pid,
        user = user.as_ref().map(|u| u.name.as_str()),
        "Tool started"
    );

    let stop_reading = CancellationToken::new();
    // Readers of an abandoned run stop too, even if an escaped process still holds a pipe.
    let _stop_reading_on_drop = stop_reading.clone().drop_guard();
    let stdout = tokio::spawn(output::pump(
        child.stdout.take().expect("stdout is piped"),
        Stream::Stdout,
        spec.stdout_cap,
        output.clone(),
        stop_reading.clone(),
    ));
    let stderr = tokio::spawn(output::pump(
        child.stderr.take().expect("stderr is piped"),
        Stream::Stderr,
        spec.stderr_cap,
        output,
        stop_reading.clone(),
    ));

    let ending = tokio::select! {
        () = kill::wait_leader_exit(leader, &mut sigchld) => Ending::Exited,
        () = sleep(spec.timeout) => Ending::TimedOut,
        () = cancel.cancelled() => Ending::Cancelled,
    };
    if ending != Ending::Exited {
        tracing::info!(pid = raw_pid, ending = ?ending, "Killing the tool's process group");
        kill_group(raw_pid, spec.kill_grace).await?;
        kill::wait_leader_exit(leader, &mut sigchld).await;
    }
    let duration = started.elapsed();
    // The leader is a zombie: its accounting is still readable and its pgid cannot be reused.
    let cpu_used = kill::cpu_seconds(leader);
    // Whatever the leader left behind in its group (children holding our pipes) dies now, and
    // with the cgroup whatever left the group too.
    kill::kill_rest(leader);
    let escaped = match cgroup {
        Some(cg) => cg.close().await,
        None => 0,
    };
    if escaped > 0 {
        tracing::warn!(
            pid = raw_pid,
            escaped,
            "Processes that left the tool's group were killed with its cgroup"
        );
    }
    guard.disarm();
    let status = child.wait().await?;

    let drain_deadline = Instant::now() + DRAIN_AFTER_EXIT;
    let stdout = drain(stdout, drain_deadline, &stop_reading).await;
    let stderr = drain(stderr, drain_deadline, &stop_reading).await;
    if stdout.cut_short || stderr.cut_short {
        tracing::warn!(
            pid = raw_pid,
            "A process outside the tool's group kept its output open"
        );
    }
    remove_workdir(workdir).await;

    let signal = status.signal();
    let resource_exhausted = exhausted_limit(signal, ending, cpu_used, spec.effective_cpu_sec());
    Ok(RunOutcome {
        exit_code: status.code(),
        signal,
        stdout: stdout.data,
        stderr: stderr.data,
        truncated_stdout: stdout.truncated,
        truncated_stderr: stderr.truncated,
        timed_out: ending == Ending::TimedOut,
        cancelled: ending == Ending::Cancelled,
        resource_exhausted: resource_exhausted.map(str::to_owned),
        duration,
        pid: raw_pid,
        escaped,
    })
}

/// Waits for a reader until `deadline`, then tells it to stop and takes what it has.
async fn drain(
    reader: tokio::task::JoinHandle<output::Captured>,
    deadline: Instant,
    stop: &CancellationToken,
) -> output::Captured {
    let mut reader = reader;
    match timeout(
        deadline.saturating_duration_since(Instant::now()),
        &mut reader,
    )
    .await
    {
        Ok(joined) => joined.unwrap_or_default(),
        Err(_) => {
            stop.cancel();
            reader.await.unwrap_or_default()
        }
    }
}

async fn remove_workdir(workdir: tempfile::TempDir) {
    let path = workdir.path().to_owned();
    match tokio::task::spawn_blocking(move || workdir.close()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            tracing::warn!(path = %path.display(), error = %err, "Removing the sandbox directory failed");
        }
        Err(err) => tracing::warn!(error = %err, "Removing the sandbox directory panicked"),
    }
}

/// Names the limit that stopped the tool, when the way it died says so. SIGKILL counts as the
/// hard CPU limit only when we did not send it and the leader really used up its CPU time.
fn exhausted_limit(
    signal: Option<i32>,
    ending: Ending,
    cpu_used: Option<f64>,
    cpu_limit: u64,
) -> Option<&'static str> {
    let signal = Signal::try_from(signal?).ok()?;
    match signal {
        Signal::SIGXCPU => Some("cpu"),
        Signal::SIGXFSZ => Some("file_size"),
        Signal::SIGKILL
            if ending == Ending::Exited
                && cpu_used.is_some_and(|c| c + 0.05 >= cpu_limit as f64) =>
        {
            Some("cpu")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signal_names_the_exhausted_limit() {
        let xcpu = Some(libc::SIGXCPU);
        let kill = Some(libc::SIGKILL);
        assert_eq!(exhausted_limit(xcpu, Ending::Exited, None, 5), Some("cpu"));
        assert_eq!(
            exhausted_limit(Some(libc::SIGXFSZ), Ending::Exited, None, 5),
            Some("file_size")
        );
        assert_eq!(
            exhausted_limit(kill, Ending::Exited, Some(6.0), 5),
            Some("cpu")
        );
        assert_eq!(exhausted_limit(kill, Ending::Exited, Some(0.1), 5), None);
        assert_eq!(exhausted_limit(kill, Ending::TimedOut, Some(6.0), 5), None);
        assert_eq!(exhausted_limit(None, Ending::Exited, Some(6.0), 5), None);
    }
}
