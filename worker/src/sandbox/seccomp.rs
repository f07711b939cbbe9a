//! The seccomp filter of `exec` tools: system calls a scanner never needs (debugging other
//! processes, mounting, loading kernel code or BPF, keyrings, namespaces, rebooting…) kill the
//! tool (`SECCOMP_RET_KILL_PROCESS`, SIGSYS), which the worker reports as a sandbox violation
//! and never retries. Everything else is allowed: nmap's raw-socket and `-sV` paths use a wide
//! set of calls, and an allow-list that is too tight fails in ways that are hard to diagnose.
//! The filter is compiled here, in the parent; `limits` installs it in the child last, after the
//! uid change, just before `exec`.

use std::collections::BTreeMap;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

use super::SpawnError;

/// The signal a tool killed by the filter dies of.
pub const KILL_SIGNAL: i32 = libc::SIGSYS;

/// `(name, number)` of every denied system call.
pub const DENIED: &[(&str, libc::c_long)] = &[
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("chroot", libc::SYS_chroot),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
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

/// Compiles the filter for this machine's architecture.
pub(crate) fn compile() -> Result<BpfProgram, SpawnError> {
    let invalid = |e: String| SpawnError::Io(std::io::Error::other(format!("seccomp filter: {e}")));
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| invalid(e.to_string()))?;
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> =
        DENIED.iter().map(|(_, nr)| (*nr, vec![])).collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::KillProcess,
        arch,
    )
    .map_err(|e| invalid(e.to_string()))?;
    BpfProgram::try_from(filter).map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_compiles_and_names_each_call_once() {
        assert!(!compile().unwrap().is_empty());
        let mut names: Vec<&str> = DENIED.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DENIED.len());
    }
}
