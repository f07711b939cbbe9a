//! The seccomp filter of `exec` tools (docs/sandbox.md "Seccomp"). Always, whatever the tool:
//! system calls a scanner never needs (debugging other processes, mounting and the new mount
//! API, loading kernel code or BPF, keyrings, namespaces, io_uring, file handles, reading other
//! processes' descriptors…), `clone` with a namespace flag, x32 numbers and foreign ABIs kill the
//! tool (`SECCOMP_RET_KILL_PROCESS`, SIGSYS), which the worker reports as a sandbox violation and
//! never retries; `clone3` fails with `ENOSYS` (glibc then falls back to `clone`, whose flags the
//! filter can read) and `socket(AF_UNIX, …)` with `EACCES` (no host unix socket: resolver,
//! D-Bus, nscd; `socketpair` still works). A tool whose catalog entry has an allow-list
//! (`[tools.<name>.seccomp] allow`) is also killed by any call outside it.
//!
//! The filter is compiled here, in the parent; `limits` installs it in the child last, after the
//! uid change, just before `exec`.

mod bpf;

use std::sync::Arc;

use libc::c_long;
use seccompiler::BpfProgram;

use super::SpawnError;

/// The signal a tool killed by the filter dies of.
pub const KILL_SIGNAL: i32 = libc::SIGSYS;

/// `open_tree_attr` (Linux 6.15; the same number on every architecture, not in `libc` yet).
const SYS_OPEN_TREE_ATTR: c_long = 467;

/// `(name, number)` of every system call that kills the tool, allow-list or not.
pub const DENIED: &[(&str, c_long)] = &[
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("pidfd_getfd", libc::SYS_pidfd_getfd),
    ("kcmp", libc::SYS_kcmp),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("chroot", libc::SYS_chroot),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
    ("open_tree_attr", SYS_OPEN_TREE_ATTR),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("reboot", libc::SYS_reboot),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("acct", libc::SYS_acct),
    ("settimeofday", libc::SYS_settimeofday),
    ("clock_settime", libc::SYS_clock_settime),
    ("adjtimex", libc::SYS_adjtimex),
    ("quotactl", libc::SYS_quotactl),
];

/// What every process needs whatever its allow-list says: the `execve` of the tool itself (the
/// filter is installed before it), leaving, and returning from a signal handler or a stop.
pub const BASE: &[(&str, c_long)] = &[
    ("execve", libc::SYS_execve),
    ("exit", libc::SYS_exit),
    ("exit_group", libc::SYS_exit_group),
    ("rt_sigreturn", libc::SYS_rt_sigreturn),
    ("restart_syscall", libc::SYS_restart_syscall),
];

/// Which filter a tool gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Seccomp {
    /// No filter.
    #[default]
    Off,
    /// The deny rules; every other call is allowed.
    DenyList,
    /// The deny rules, and any call outside these x86_64 numbers (and [`BASE`]) kills the tool.
    AllowList(Arc<[u32]>),
}

impl Seccomp {
    /// The filter of a catalog tool: its allow-list when it has one, else the deny rules.
    pub fn for_tool(policy: &scanq::catalog::SeccompPolicy) -> Self {
        match &policy.allow {
            Some(names) => Self::AllowList(names.iter().map(|n| n.x86_64_number()).collect()),
            None => Self::DenyList,
        }
    }
}

/// The `AUDIT_ARCH_*` of this build and whether its numbers have an x32 twin to kill (none:
/// an architecture the filter does not know, where every spawn with a filter fails).
#[cfg(target_arch = "x86_64")]
const ARCH: Option<(u32, bool)> = Some((0xc000_003e, true));
#[cfg(target_arch = "aarch64")]
const ARCH: Option<(u32, bool)> = Some((0xc000_00b7, false));
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ARCH: Option<(u32, bool)> = None;

/// Compiles the filter for this machine's architecture (`None` for [`Seccomp::Off`]).
pub(crate) fn compile(mode: &Seccomp) -> Result<Option<BpfProgram>, SpawnError> {
    let allow: Option<Vec<u32>> = match mode {
        Seccomp::Off => return Ok(None),
        Seccomp::DenyList => None,
        // Allow-lists are x86_64 numbers; elsewhere the deny rules alone apply.
        Seccomp::AllowList(_) if !cfg!(target_arch = "x86_64") => {
            tracing::warn!("seccomp allow-lists are x86_64 only; using the deny rules");
            None
        }
        Seccomp::AllowList(list) => Some(
            BASE.iter()
                .map(|(_, nr)| *nr as u32)
                .chain(list.iter().copied())
                .collect(),
        ),
    };
    let (audit_arch, kill_x32) = ARCH.ok_or_else(|| {
        SpawnError::Io(std::io::Error::other(format!(
            "seccomp filter: unsupported architecture {}",
            std::env::consts::ARCH
        )))
    })?;
    let denied: Vec<u32> = DENIED.iter().map(|(_, nr)| *nr as u32).collect();
    Ok(Some(bpf::build(&bpf::Rules {
        audit_arch,
        kill_x32,
        denied: &denied,
        clone: libc::SYS_clone as u32,
        clone3: libc::SYS_clone3 as u32,
        socket: libc::SYS_socket as u32,
        allow: allow.as_deref(),
    })))
}

#[cfg(test)]
mod tests;
