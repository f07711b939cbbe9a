//! Ending a tool: watching the group leader exit *without reaping it*, killing whole process
//! groups (SIGTERM, grace, SIGKILL), and a guard that kills the group if a run is dropped.
//!
//! Why not reap at once: while the leader is an unreaped zombie its pid stays allocated, so its
//! process-group id cannot be reused by an unrelated process and `killpg` on it is race-free.
//! `run` therefore waits for the exit with `waitid(WNOWAIT)`, kills what is left of the group,
//! and only then reaps.

use std::io;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::{Pid, getpgrp};
use tokio::signal::unix::Signal as SignalStream;
use tokio::time::{Instant, sleep};

/// How often `kill_group` looks at the leader during the grace period.
const GRACE_POLL: Duration = Duration::from_millis(20);
/// Safety net for the SIGCHLD-driven wait in case a notification is ever lost.
const EXIT_FALLBACK_POLL: Duration = Duration::from_secs(1);

/// How a group kill ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKill {
    /// The group was already gone before SIGTERM.
    AlreadyGone,
    /// The leader exited within the grace period; the rest of the group got SIGKILL.
    LeaderExitedOnTerm,
    /// The grace period ran out; the whole group got SIGKILL.
    Killed,
}

/// Kills the process group `pgid`: SIGTERM to the group, wait up to `grace` for the leader
/// (pid = `pgid`) to exit, then SIGKILL to the group whatever happened, so members that ignore
/// SIGTERM or outlive the leader die too. Does not reap the leader; its parent does.
///
/// Refuses pgid 0 and 1 and the caller's own group, which `killpg` would read as "us" or "init".
pub async fn kill_group(pgid: u32, grace: Duration) -> io::Result<GroupKill> {
    let group = checked_group(pgid)?;
    match killpg(group, Signal::SIGTERM) {
        Err(Errno::ESRCH) => return Ok(GroupKill::AlreadyGone),
        Err(err) => return Err(err.into()),
        Ok(()) => {}
    }
    let deadline = Instant::now() + grace;
    let mut exited = leader_exited(group);
    while !exited && Instant::now() < deadline {
        sleep(GRACE_POLL.min(deadline - Instant::now())).await;
        exited = leader_exited(group);
    }
    kill_rest(group);
    Ok(if exited {
        GroupKill::LeaderExitedOnTerm
    } else {
        GroupKill::Killed
    })
}

fn checked_group(pgid: u32) -> io::Result<Pid> {
    let raw = i32::try_from(pgid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    if raw <= 1 || Pid::from_raw(raw) == getpgrp() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to kill process group 0, 1 or our own",
        ));
    }
    Ok(Pid::from_raw(raw))
}

/// SIGKILL to every member of the group; a group that is already empty is fine.
pub(crate) fn kill_rest(group: Pid) {
    match killpg(group, Signal::SIGKILL) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(err) => {
            tracing::warn!(pgid = group.as_raw(), error = %err, "Killing process group failed")
        }
    }
}

/// Whether `pid` has terminated, without reaping it. Works for our own children (waitid with
/// WNOWAIT) and, as a fallback, for any process by reading its state in /proc.
pub(crate) fn leader_exited(pid: Pid) -> bool {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    match waitid(Id::Pid(pid), flags) {
        Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => false,
        Ok(_) => true,
        Err(_) => dead_in_proc(pid),
    }
}

fn dead_in_proc(pid: Pid) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state == "Z" || state == "X"),
        Err(_) => true,
    }
}

/// Waits until our child `pid` has terminated, without reaping it. `sigchld` must have been
/// registered before the child was spawned so no notification is missed.
pub(crate) async fn wait_leader_exit(pid: Pid, sigchld: &mut SignalStream) {
    while !leader_exited(pid) {
        tokio::select! {
            _ = sigchld.recv() => {}
            () = sleep(EXIT_FALLBACK_POLL) => {}
        }
    }
}

/// CPU seconds (user + system) used by `pid`, read from /proc; meant for an exited but not yet
/// reaped leader, whose accounting is still there.
pub(crate) fn cpu_seconds(pid: Pid) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // After the name: field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)?;
    Some((utime + stime) as f64 / ticks as f64)
}

/// Kills the whole group with SIGKILL if a run is abandoned (its future dropped) before it
/// finished; `disarm` once the run has ended the group itself.
pub(crate) struct GroupGuard {
    group: Option<Pid>,
}

impl GroupGuard {
    pub(crate) fn new(group: Pid) -> Self {
        Self { group: Some(group) }
    }

    pub(crate) fn disarm(&mut self) {
        self.group = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(group) = self.group {
            tracing::warn!(
                pgid = group.as_raw(),
                "Run abandoned, killing its process group"
            );
            kill_rest(group);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn killing_group_zero_one_or_our_own_is_refused() {
        for pgid in [0, 1, getpgrp().as_raw() as u32] {
            let err = kill_group(pgid, Duration::ZERO).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
    }
}
