//! What happens in the child between `fork` and `exec`: resource limits, dropping to the tool
//! user, and the parent-death signal. Everything the child needs is computed here *before* the
//! fork into a plain `Copy` value ([`ChildSetup`]), because the pre-exec hook runs in a forked
//! copy of a multi-threaded process where only async-signal-safe calls are allowed: no
//! allocation, no locks, no user lookup. This file is the only place in the crate with `unsafe`.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;
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
    /// `cgroup.procs` of the run's cgroup, to join before anything else.
    cgroup_procs: Option<RawFd>,
    /// The run's network namespace, entered while still root.
    net_ns: Option<RawFd>,
    /// Keep `CAP_NET_RAW` (and only it) across the uid switch and `exec`.
    raw_sockets: bool,
}

/// `CAP_NET_RAW`, the one capability a raw-socket run keeps.
const CAP_NET_RAW: u32 = 13;
/// `_LINUX_CAPABILITY_VERSION_3`.
const CAP_VERSION_3: u32 = 0x2008_0522;

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
            cgroup_procs: None,
            net_ns: None,
            raw_sockets: false,
        }
    }

    /// Joins the cgroup whose `cgroup.procs` is open as `fd` first thing in the child.
    pub(crate) fn in_cgroup(mut self, fd: Option<RawFd>) -> Self {
        self.cgroup_procs = fd;
        self
    }

    /// Enters the network namespace open as `fd` and keeps `CAP_NET_RAW` for the tool (only
    /// with a uid switch: root keeps every capability anyway, which raw runs never get).
    pub(crate) fn in_net_ns(mut self, fd: Option<RawFd>, raw_sockets: bool) -> Self {
        self.net_ns = fd;
        self.raw_sockets = raw_sockets && fd.is_some() && self.user.is_some();
        self
    }

    /// Runs in the forked child. Only async-signal-safe system calls through nix's thin wrappers;
    /// errors are raw errno values (`io::Error::from(Errno)` does not allocate).
    fn apply(&self) -> io::Result<()> {
        if let Some(fd) = self.cgroup_procs {
            // "0" is the writing process itself.
            // SAFETY: a plain write of a static byte to an fd the parent keeps open.
            if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } != 1 {
                return Err(io::Error::last_os_error());
            }
        }
        if let Some(fd) = self.net_ns {
            // SAFETY: setns on an fd the parent keeps open for the run.
            if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        for rl in self.rlimits.iter().flatten() {
            setrlimit(rl.resource, rl.soft, rl.hard)?;
        }
        if self.raw_sockets {
            keep_only_net_raw_bounding()?;
            prctl::set_keepcaps(true)?;
        }
        if let Some((uid, gid)) = self.user {
            // Order matters: groups and gid while still root, uid last.
            setgroups(&[])?;
            setgid(gid)?;
            setuid(uid)?;
        }
        if self.raw_sockets {
            raise_net_raw()?;
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

/// Drops every capability but `CAP_NET_RAW` from the bounding set (while still root), so nothing
/// the tool executes can ever get another one.
fn keep_only_net_raw_bounding() -> io::Result<()> {
    for cap in 0..64u32 {
        if cap == CAP_NET_RAW {
            continue;
        }
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
            let err = io::Error::last_os_error();
            // Past the kernel's last capability.
            if err.raw_os_error() == Some(libc::EINVAL) {
                break;
            }
            return Err(err);
        }
    }
    Ok(())
}

/// After the uid switch (with keep-caps): `CAP_NET_RAW` alone in the permitted, effective and
/// inheritable sets, and raised as ambient so it survives `exec` of an ordinary binary.
fn raise_net_raw() -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let bit = 1u32 << CAP_NET_RAW;
    let header = Header {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let data = [
        Data {
            effective: bit,
            permitted: bit,
            inheritable: bit,
        },
        Data {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        },
    ];
    // SAFETY: capset with pointers to stack values of the kernel's v3 layout.
    if unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: prctl with integer arguments only.
    let raised = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
            CAP_NET_RAW as libc::c_ulong,
            0,
            0,
        )
    };
    if raised != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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
    // write (joining the run's cgroup), setns, setrlimit, setgroups, setgid, setuid, prctl,
    // capset, getppid and seccomp, through libc, nix's and
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
