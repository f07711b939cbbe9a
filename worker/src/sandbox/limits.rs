//! What happens in the child between `fork` and `exec`: resource limits, dropping to the tool
//! user, and the parent-death signal. Everything the child needs is computed here *before* the
//! fork into a plain `Copy` value ([`ChildSetup`]), because the pre-exec hook runs in a forked
//! copy of a multi-threaded process where only async-signal-safe calls are allowed: no
//! allocation, no locks, no user lookup. This file is the only place in the crate with `unsafe`.
#![allow(unsafe_code)]

use std::io;
use std::path::Path;

use nix::sys::prctl;
use nix::sys::resource::{Resource, getrlimit, rlim_t, setrlimit};
use nix::sys::signal::Signal;
use nix::unistd::{Gid, Pid, Uid, User, chown, getpid, getppid, setgid, setgroups, setuid};

use super::{SandboxSpec, SpawnError};

/// The user a tool is switched to; looked up in the parent, never in the child.
#[derive(Debug, Clone)]
pub(crate) struct ToolUser {
    pub(crate) name: String,
    pub(crate) uid: Uid,
    pub(crate) gid: Gid,
}

/// Looks up `run_as` when the worker runs as root. Not root → no switch at all (logged), since an
/// unprivileged worker cannot change user anyway; root with an unknown name → `UnknownUser`.
pub(crate) fn tool_user(run_as: Option<&str>) -> Result<Option<ToolUser>, SpawnError> {
    let Some(name) = run_as else { return Ok(None) };
    if !Uid::effective().is_root() {
        tracing::debug!(
            user = name,
            "Not root, running the tool as the worker's own user"
        );
        return Ok(None);
    }
    let unknown = || SpawnError::UnknownUser {
        user: name.to_owned(),
    };
    let user = User::from_name(name)
        .map_err(|_| unknown())?
        .ok_or_else(unknown)?;
    Ok(Some(ToolUser {
        name: name.to_owned(),
        uid: user.uid,
        gid: user.gid,
    }))
}

/// A numeric identity with no passwd entry (uid = gid), when the worker runs as root.
pub(crate) fn pool_user(uid: u32) -> Option<ToolUser> {
    Uid::effective().is_root().then(|| ToolUser {
        name: uid.to_string(),
        uid: Uid::from_raw(uid),
        gid: Gid::from_raw(uid),
    })
}

/// Gives the tool user the temporary working directory (it stays mode 0700).
pub(crate) fn hand_over_workdir(dir: &Path, user: &ToolUser) -> Result<(), SpawnError> {
    chown(dir, Some(user.uid), Some(user.gid)).map_err(|e| SpawnError::Io(e.into()))
}

#[derive(Debug, Clone, Copy)]
struct Rlimit {
    resource: Resource,
    soft: rlim_t,
    hard: rlim_t,
}

/// Number of limits we may set: CPU, AS, NOFILE, NPROC, FSIZE, CORE.
const MAX_RLIMITS: usize = 6;

/// Everything the child does before `exec`, as plain data (no heap, `Copy`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChildSetup {
    rlimits: [Option<Rlimit>; MAX_RLIMITS],
    user: Option<(Uid, Gid)>,
    parent: Pid,
}

impl ChildSetup {
    /// Computes the limits for `spec`. A non-root worker cannot raise a hard limit, so values
    /// above the current hard limit are lowered to it instead of making every spawn fail.
    pub(crate) fn plan(spec: &SandboxSpec, user: Option<&ToolUser>) -> Self {
        let may_raise = Uid::effective().is_root();
        let limit = |resource: Resource, soft: u64, hard: u64| {
            let current_hard = getrlimit(resource).map(|(_, h)| h).unwrap_or(rlim_t::MAX);
            let cap = |v: u64| if may_raise { v } else { v.min(current_hard) };
            let hard = cap(hard);
            Some(Rlimit {
                resource,
                soft: cap(soft).min(hard),
                hard,
            })
        };
        let same =
            |resource: Resource, value: Option<u64>| value.and_then(|v| limit(resource, v, v));
        let cpu = spec.effective_cpu_sec();
        let l = &spec.limits;
        Self {
            rlimits: [
                // Soft limit sends SIGXCPU (so the outcome can say "cpu"); one second later the
                // hard limit sends SIGKILL to a tool that ignores SIGXCPU.
                limit(Resource::RLIMIT_CPU, cpu, cpu.saturating_add(1)),
                same(Resource::RLIMIT_AS, l.address_space_bytes),
                same(Resource::RLIMIT_NOFILE, l.open_files),
                same(Resource::RLIMIT_NPROC, l.processes),
                same(Resource::RLIMIT_FSIZE, l.file_size_bytes),
                limit(Resource::RLIMIT_CORE, 0, 0),
            ],
            user: user.map(|u| (u.uid, u.gid)),
            parent: getpid(),
        }
    }

    /// Runs in the forked child. Only async-signal-safe system calls through nix's thin wrappers;
    /// errors are raw errno values (`io::Error::from(Errno)` does not allocate).
    fn apply(&self) -> io::Result<()> {
        for rl in self.rlimits.iter().flatten() {
            setrlimit(rl.resource, rl.soft, rl.hard)?;
        }
        if let Some((uid, gid)) = self.user {
            // Order matters: groups and gid while still root, uid last.
            setgroups(&[])?;
            setgid(gid)?;
            setuid(uid)?;
        }
        // Set after the uid change: changing credentials clears the parent-death signal.
        //
        // Caveat: PR_SET_PDEATHSIG fires when the *thread* that forked us exits, not the process.
        // tokio forks on the runtime worker thread that polls `spawn`; those threads live as long
        // as the runtime, so in practice this means "when the worker dies". `run` must not be
        // called from `spawn_blocking` threads, which tokio retires after being idle.
        prctl::set_pdeathsig(Signal::SIGKILL)?;
        if getppid() != self.parent {
            // The worker died between fork and prctl: nobody would ever kill us.
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        Ok(())
    }
}

/// Installs `setup` as the command's pre-exec hook, and then the seccomp `filter` (compiled in
/// the parent), last before `exec`.
pub(crate) fn install(
    cmd: &mut tokio::process::Command,
    setup: ChildSetup,
    filter: Option<seccompiler::BpfProgram>,
) {
    // SAFETY: the closure runs in the child between fork and exec, where only async-signal-safe
    // work is allowed. It captures a `Copy` value and an already-built filter by move (no heap
    // allocation and no shared state with the parent happen in the child) and calls only
    // setrlimit, setgroups, setgid, setuid, prctl, getppid and seccomp, through nix's and
    // seccompiler's thin wrappers, none of which allocate or take locks (`apply_filter` builds
    // its `sock_fprog` on the stack); errors are raw OS errors, which do not allocate either.
    unsafe {
        cmd.pre_exec(move || {
            setup.apply()?;
            if let Some(filter) = &filter {
                seccompiler::apply_filter(filter).map_err(|e| match e {
                    seccompiler::Error::Prctl(io) | seccompiler::Error::Seccomp(io) => io,
                    _ => io::Error::from_raw_os_error(libc::EINVAL),
                })?;
            }
            Ok(())
        });
    }
}
