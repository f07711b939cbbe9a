//! What to run and under which limits: [`SandboxSpec`], [`Limits`], and the resolution of the
//! program name against the sandbox's own `PATH` (never the worker's, never through a shell).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::SpawnError;
use super::seccomp::Seccomp;

/// The `PATH` a tool gets unless its spec says otherwise.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Default time between SIGTERM and SIGKILL when a group is killed.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(2);
/// Default wall-clock limit of one run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Default number of stdout bytes kept.
pub const DEFAULT_STDOUT_CAP: usize = 1024 * 1024;
/// Default number of stderr bytes kept.
pub const DEFAULT_STDERR_CAP: usize = 256 * 1024;
/// Extra CPU seconds over the wall-clock timeout when the spec sets no CPU limit of its own.
pub const CPU_SLACK: Duration = Duration::from_secs(5);

/// One command to run in the sandbox.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    /// A bare name looked up on [`SandboxSpec::path_env`], or an absolute path. Never a shell line.
    pub program: String,
    pub args: Vec<String>,
    /// The `PATH` given to the child and used to resolve `program`.
    pub path_env: String,
    /// Wall-clock limit; when it passes the whole process group is killed.
    pub timeout: Duration,
    /// SIGTERM → this grace → SIGKILL.
    pub kill_grace: Duration,
    pub limits: Limits,
    /// User to run as. Only applied when the worker runs as root; `None` = no switch.
    pub run_as: Option<String>,
    /// A numeric uid (used as gid too) with no passwd entry: the per-run identity of egress
    /// confinement (`crate::confine`). Takes precedence over `run_as`; root only.
    pub run_as_uid: Option<u32>,
    /// The seccomp filter to install (`seccomp::DENIED` kills the tool; an allow-list kills
    /// anything else too). Any filter sets `no_new_privs`, so file capabilities of the program
    /// (setcap) do not apply.
    pub seccomp: Seccomp,
    /// Give every run a cgroup of its own under this root, killed whole when the leader exits
    /// (nothing the tool started outlives the run).
    pub cgroups: Option<std::sync::Arc<super::CgroupRoot>>,
    /// Run in this network namespace (an open fd the caller keeps for the run): the per-run
    /// namespace of raw-socket confinement (`crate::confine`). Root only.
    pub net_ns: Option<std::os::fd::RawFd>,
    /// Keep `CAP_NET_RAW`, and only it, for the tool (ambient, across the uid switch and
    /// `exec`). Only together with `net_ns` and a uid switch; ignored otherwise.
    pub raw_sockets: bool,
    pub stdout_cap: usize,
    pub stderr_cap: usize,
}

impl SandboxSpec {
    /// A spec with the defaults: sandbox `PATH`, 10 min timeout, 2 s grace, 1 MiB / 256 KiB caps,
    /// no user switch and [`Limits::default`].
    pub fn new(
        program: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            path_env: DEFAULT_PATH.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            kill_grace: DEFAULT_KILL_GRACE,
            limits: Limits::default(),
            run_as: None,
            run_as_uid: None,
            seccomp: Seccomp::Off,
            cgroups: None,
            net_ns: None,
            raw_sockets: false,
            stdout_cap: DEFAULT_STDOUT_CAP,
            stderr_cap: DEFAULT_STDERR_CAP,
        }
    }

    /// The CPU-time limit in seconds that applies: the spec's own, or the timeout plus
    /// [`CPU_SLACK`] rounded up, so a tool that burns CPU the whole time is still stopped by the
    /// wall-clock timeout first.
    pub fn effective_cpu_sec(&self) -> u64 {
        self.limits.cpu_sec.unwrap_or_else(|| {
            let total = self.timeout + CPU_SLACK;
            total.as_secs() + u64::from(total.subsec_nanos() > 0)
        })
    }
}

/// Resource limits applied with `setrlimit` in the child before `exec`. `None` leaves the
/// worker's own limit in place. Core dumps are always disabled (`RLIMIT_CORE = 0`).
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// `RLIMIT_CPU`; `None` derives it from the timeout (see [`SandboxSpec::effective_cpu_sec`]).
    pub cpu_sec: Option<u64>,
    /// `RLIMIT_AS`.
    pub address_space_bytes: Option<u64>,
    /// `RLIMIT_NOFILE`.
    pub open_files: Option<u64>,
    /// `RLIMIT_NPROC`: counts every process of the tool's real user, and the kernel does not
    /// enforce it for root, so it only bites together with `run_as`.
    pub processes: Option<u64>,
    /// `RLIMIT_FSIZE`.
    pub file_size_bytes: Option<u64>,
}

/// Finds the executable for `program`: an absolute path is taken as is, a bare name is looked up
/// in each absolute directory of `path_env` in order (empty and relative entries are skipped, so
/// the temporary working directory is never searched). Relative paths with a `/` are refused.
pub(crate) fn resolve_program(program: &str, path_env: &str) -> Result<PathBuf, SpawnError> {
    let not_found = || SpawnError::NotFound {
        program: program.to_owned(),
    };
    if program.is_empty() || program.contains('\0') {
        return Err(not_found());
    }
    if program.contains('/') {
        let path = Path::new(program);
        if !path.is_absolute() {
            return Err(not_found());
        }
        return match executable(path) {
            Candidate::Executable => Ok(path.to_path_buf()),
            Candidate::NotExecutable => Err(SpawnError::PermissionDenied {
                program: program.to_owned(),
            }),
            Candidate::Missing => Err(not_found()),
        };
    }
    let mut saw_non_executable = false;
    for dir in path_env
        .split(':')
        .map(Path::new)
        .filter(|d| d.is_absolute())
    {
        let candidate = dir.join(program);
        match executable(&candidate) {
            Candidate::Executable => return Ok(candidate),
            Candidate::NotExecutable => saw_non_executable = true,
            Candidate::Missing => {}
        }
    }
    if saw_non_executable {
        Err(SpawnError::PermissionDenied {
            program: program.to_owned(),
        })
    } else {
        Err(not_found())
    }
}

enum Candidate {
    Executable,
    NotExecutable,
    Missing,
}

fn executable(path: &Path) -> Candidate {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => {
            Candidate::Executable
        }
        Ok(meta) if meta.is_file() => Candidate::NotExecutable,
        _ => Candidate::Missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_name_is_found_on_the_sandbox_path_only() {
        let found = resolve_program("sh", "/nonexistent:/usr/bin:/bin").unwrap();
        assert!(found.is_absolute());
        assert!(matches!(
            resolve_program("sh", "/nonexistent"),
            Err(SpawnError::NotFound { .. })
        ));
    }

    #[test]
    fn relative_path_entries_and_relative_programs_are_refused() {
        assert!(resolve_program("sh", ".:bin:").is_err());
        assert!(resolve_program("./sh", DEFAULT_PATH).is_err());
        assert!(resolve_program("", DEFAULT_PATH).is_err());
    }

    #[test]
    fn a_file_without_exec_bits_is_permission_denied() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tool");
        std::fs::write(&file, "#!/bin/sh\n").unwrap();
        let path_env = dir.path().to_str().unwrap();
        assert!(matches!(
            resolve_program("tool", path_env),
            Err(SpawnError::PermissionDenied { .. })
        ));
        assert!(matches!(
            resolve_program(file.to_str().unwrap(), DEFAULT_PATH),
            Err(SpawnError::PermissionDenied { .. })
        ));
    }

    #[test]
    fn cpu_limit_defaults_to_the_timeout_plus_slack_rounded_up() {
        let mut spec = SandboxSpec::new("true", Vec::<String>::new());
        spec.timeout = Duration::from_millis(1500);
        assert_eq!(spec.effective_cpu_sec(), 7);
        spec.limits.cpu_sec = Some(1);
        assert_eq!(spec.effective_cpu_sec(), 1);
    }
}
