//! A cgroup (v2) of its own for every run, so nothing a tool starts outlives it: a double-forked,
//! `setsid` orphan is still in the run's cgroup, and `cgroup.kill` ends every process in it at
//! once (no race with a process that forks while being killed). The child joins the cgroup in
//! its pre-exec hook, before `exec`, so not even the tool's first instruction runs outside it.
//!
//! Runs live under the worker's own cgroup, as `scanq-<owner>-<n>` where `<owner>` names the
//! worker (its pid namespace, pid and start time): a starting worker removes the run cgroups of
//! dead workers of its own pid namespace and never touches another live worker's.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::owner::Owner;

/// Run cgroups made by this process so far (names stay unique across roots).
static NEXT: AtomicU64 = AtomicU64::new(0);

/// How long a killed cgroup may take to empty before the run gives up on removing it.
const EMPTY_WITHIN: Duration = Duration::from_secs(5);

/// The worker's own cgroup, under which each run gets one of its own.
#[derive(Debug)]
pub struct CgroupRoot {
    dir: PathBuf,
    owner: Owner,
}

impl CgroupRoot {
    /// Finds the worker's cgroup v2 directory and checks that a run cgroup can be made and
    /// killed there (`cgroup.kill`, Linux 5.14). The error says what is missing.
    pub fn detect() -> Result<Self, String> {
        let mount = cgroup2_mount().ok_or("no cgroup v2 hierarchy is mounted")?;
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("/proc/self/cgroup: {e}"))?
            .lines()
            .find_map(|l| l.strip_prefix("0::").map(str::to_owned))
            .ok_or("the worker is in no cgroup v2 group")?;
        let dir = mount.join(own.trim_start_matches('/'));
        let root = Self {
            dir,
            owner: Owner::me(),
        };
        // Proves the directory is writable (a read-only cgroupfs in a container is not).
        let mut probe = root
            .create()
            .map_err(|e| format!("cannot create a cgroup under {}: {e}", root.dir.display()))?;
        probe.closed = true;
        // (The root cgroup itself has no cgroup.kill; the ones made under it do.)
        let killable = probe.dir.join("cgroup.kill").exists();
        probe.remove_now();
        if !killable {
            return Err(format!(
                "cgroups under {} have no cgroup.kill (Linux 5.14 or later is needed)",
                root.dir.display()
            ));
        }
        Ok(root)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new, empty cgroup for one run.
    pub fn create(&self) -> io::Result<RunCgroup> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = self.dir.join(format!("scanq-{}-{n}", self.owner.tag()));
        std::fs::create_dir(&dir)?;
        let procs = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("cgroup.procs"));
        match procs {
            Ok(f) => Ok(RunCgroup {
                dir,
                procs: f.into(),
                closed: false,
            }),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                Err(e)
            }
        }
    }

    /// Kills and removes the run cgroups that dead workers of this pid namespace left behind.
    /// Returns how many were removed.
    pub fn clear_stale(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(tag) = name
                .to_str()
                .and_then(|n| n.strip_prefix("scanq-"))
                .and_then(|n| n.rsplit_once('-'))
                .map(|(tag, _)| tag)
            else {
                continue;
            };
            if Owner::parse(tag).is_some_and(|o| o.is_dead()) {
                let cg = RunCgroup::existing(entry.path());
                tracing::warn!(cgroup = %entry.path().display(), "Removing a run cgroup left by a dead worker");
                cg.kill();
                if cg.wait_empty_blocking(EMPTY_WITHIN) {
                    cg.remove_now();
                    removed += 1;
                }
            }
        }
        removed
    }
}

/// One run's cgroup. The pre-exec hook writes `0` to [`RunCgroup::procs_fd`] to join it.
#[derive(Debug)]
pub struct RunCgroup {
    dir: PathBuf,
    procs: OwnedFd,
    closed: bool,
}

impl RunCgroup {
    fn existing(dir: PathBuf) -> Self {
        let procs = std::fs::File::open("/dev/null").expect("/dev/null").into();
        Self {
            dir,
            procs,
            closed: true,
        }
    }

    /// The open `cgroup.procs` of this cgroup, for the child to write itself into.
    pub fn procs_fd(&self) -> RawFd {
        self.procs.as_raw_fd()
    }

    /// SIGKILLs every process in the cgroup (`cgroup.kill`).
    pub fn kill(&self) {
        if let Err(e) = std::fs::write(self.dir.join("cgroup.kill"), "1") {
            tracing::warn!(cgroup = %self.dir.display(), error = %e, "cgroup.kill failed");
        }
    }

    /// Processes still in the cgroup.
    pub fn populated(&self) -> bool {
        std::fs::read_to_string(self.dir.join("cgroup.events"))
            .map(|e| e.lines().any(|l| l == "populated 1"))
            .unwrap_or(false)
    }

    /// Kills what is left, waits until the cgroup is empty and removes it. Returns how many
    /// processes were still there (escapees of the tool's process group).
    pub async fn close(mut self) -> usize {
        self.closed = true;
        let left = std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .map(|p| p.lines().count())
            .unwrap_or(0);
        if left > 0 {
            self.kill();
        }
        let deadline = tokio::time::Instant::now() + EMPTY_WITHIN;
        while self.populated() {
            if tokio::time::Instant::now() >= deadline {
                tracing::error!(cgroup = %self.dir.display(), "A killed run cgroup did not empty; left in place");
                return left;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        self.remove_now();
        left
    }

    fn wait_empty_blocking(&self, within: Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        while self.populated() {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }

    fn remove_now(&self) {
        if let Err(e) = std::fs::remove_dir(&self.dir)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(cgroup = %self.dir.display(), error = %e, "Removing a run cgroup failed");
        }
    }
}

impl Drop for RunCgroup {
    /// An abandoned run (its future dropped): kill everything in the cgroup and remove it once
    /// empty, in the background.
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        self.kill();
        let dir = self.dir.clone();
        let remove = move || {
            let cg = RunCgroup::existing(dir);
            if cg.wait_empty_blocking(EMPTY_WITHIN) {
                cg.remove_now();
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(remove)),
            Err(_) => remove(),
        }
    }
}

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on
/// hybrid systems).
fn cgroup2_mount() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mounts.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(PathBuf::from))
            .flatten()
    })
}
