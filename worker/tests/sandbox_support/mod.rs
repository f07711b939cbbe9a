//! Helpers for the sandbox tests: fake tools written as scripts into a world-readable temporary
//! directory, /proc inspection of process groups, and polling with a deadline.
#![allow(dead_code)]

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use scanq_worker::sandbox::SandboxSpec;

/// A directory of fake tools. Mode 0755 so a tool user like `nobody` can run them.
pub struct Tools {
    dir: tempfile::TempDir,
}

impl Tools {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Self { dir }
    }

    /// Writes an executable script and returns its absolute path.
    pub fn script(&self, name: &str, body: &str) -> String {
        let path: PathBuf = self.dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.to_str().unwrap().to_owned()
    }
}

/// A spec with a short timeout and a short grace, fit for tests.
pub fn spec(program: &str, args: &[&str]) -> SandboxSpec {
    let mut spec = SandboxSpec::new(program, args.iter().copied());
    spec.timeout = Duration::from_secs(20);
    spec.kill_grace = Duration::from_millis(500);
    spec
}

pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// Runs `fut` under a hard time limit so a broken kill path fails the test instead of hanging.
pub async fn within<T>(secs: u64, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {secs} s"))
}

/// Polls `cond` every 20 ms until it holds or `limit` passes; returns whether it held.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// (state, pgrp) of a process from /proc, `None` when it is gone.
fn state_and_group(pid: i32) -> Option<(String, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.to_owned();
    let pgrp = fields.nth(1)?.parse().ok()?;
    Some((state, pgrp))
}

/// Whether `pid` is a running (not zombie) process.
pub fn alive(pid: i32) -> bool {
    matches!(state_and_group(pid), Some((state, _)) if state != "Z" && state != "X")
}

/// The process group of a running process.
pub fn group_of(pid: i32) -> Option<u32> {
    state_and_group(pid).map(|(_, group)| group as u32)
}

/// Pids of live (not zombie) processes whose process group is `pgid`.
pub fn live_members(pgid: u32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            matches!(state_and_group(pid), Some((state, group))
                if group == pgid as i32 && state != "Z" && state != "X")
        })
        .collect()
}

/// Pids printed one per line by a fake tool (lines that are not numbers are skipped).
pub fn pids_in(stdout: &[u8]) -> Vec<i32> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}
