//! The filter's decisions, evaluated on the compiled program for one system call at a time.

use super::bpf::{CLONE_NAMESPACES, RET_ALLOW, RET_KILL_PROCESS, X32_SYSCALL_BIT, evaluate};
use super::*;

const ENOSYS: u32 = 0x0005_0000 | libc::ENOSYS as u32;
const EACCES: u32 = 0x0005_0000 | libc::EACCES as u32;

fn decide(mode: &Seccomp, nr: c_long, arg0: u64) -> u32 {
    let prog = compile(mode).unwrap().unwrap();
    evaluate(&prog, arch(), nr as u32, arg0)
}

fn arch() -> u32 {
    ARCH.expect("a known architecture").0
}

fn allow_list(names: &[c_long]) -> Seccomp {
    Seccomp::AllowList(names.iter().map(|nr| *nr as u32).collect())
}

#[test]
fn each_call_is_named_once_and_off_compiles_to_nothing() {
    let mut names: Vec<&str> = DENIED.iter().chain(BASE).map(|(n, _)| *n).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), DENIED.len() + BASE.len());
    assert!(compile(&Seccomp::Off).unwrap().is_none());
}

#[test]
fn the_deny_list_kills_denied_calls_and_allows_the_rest() {
    let deny = Seccomp::DenyList;
    for (name, nr) in DENIED {
        assert_eq!(decide(&deny, *nr, 0), RET_KILL_PROCESS, "{name}");
    }
    for nr in [libc::SYS_read, libc::SYS_sendto, libc::SYS_socketpair] {
        assert_eq!(decide(&deny, nr, 0), RET_ALLOW, "{nr}");
    }
}

#[test]
fn clone_is_killed_with_any_namespace_flag_and_allowed_without() {
    let deny = Seccomp::DenyList;
    let fork = (libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID | libc::SIGCHLD) as u64;
    let thread = (libc::CLONE_VM | libc::CLONE_FS | libc::CLONE_FILES | libc::CLONE_SIGHAND) as u64
        | (libc::CLONE_THREAD | libc::CLONE_SYSVSEM | libc::CLONE_SETTLS) as u64;
    assert_eq!(decide(&deny, libc::SYS_clone, fork), RET_ALLOW);
    assert_eq!(decide(&deny, libc::SYS_clone, thread), RET_ALLOW);
    for bit in 0..32 {
        let flag = 1u32 << bit;
        if CLONE_NAMESPACES & flag != 0 {
            let flags = fork | u64::from(flag);
            assert_eq!(
                decide(&deny, libc::SYS_clone, flags),
                RET_KILL_PROCESS,
                "{flag:#x}"
            );
        }
    }
    assert_eq!(CLONE_NAMESPACES.count_ones(), 7);
}

#[test]
fn clone3_fails_with_enosys_and_unix_sockets_with_eacces() {
    for mode in [Seccomp::DenyList, allow_list(&[libc::SYS_socket])] {
        assert_eq!(decide(&mode, libc::SYS_clone3, 0), ENOSYS);
        let unix = libc::AF_UNIX as u64;
        assert_eq!(decide(&mode, libc::SYS_socket, unix), EACCES);
        // The kernel reads an int: high bits do not make AF_UNIX something else.
        assert_eq!(decide(&mode, libc::SYS_socket, unix | 1 << 40), EACCES);
        for domain in [
            libc::AF_INET,
            libc::AF_INET6,
            libc::AF_PACKET,
            libc::AF_NETLINK,
        ] {
            assert_eq!(decide(&mode, libc::SYS_socket, domain as u64), RET_ALLOW);
        }
    }
}

#[test]
fn x32_numbers_and_foreign_architectures_are_killed() {
    let prog = compile(&Seccomp::DenyList).unwrap().unwrap();
    let getpid = libc::SYS_getpid as u32;
    if ARCH.unwrap().1 {
        let x32 = X32_SYSCALL_BIT | getpid;
        assert_eq!(evaluate(&prog, arch(), x32, 0), RET_KILL_PROCESS);
    }
    const AUDIT_ARCH_I386: u32 = 0x4000_0003;
    assert_eq!(
        evaluate(&prog, AUDIT_ARCH_I386, getpid, 0),
        RET_KILL_PROCESS
    );
    assert_eq!(evaluate(&prog, arch(), getpid, 0), RET_ALLOW);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn an_allow_list_kills_what_it_does_not_name_but_never_unlocks_a_denied_call() {
    let mode = allow_list(&[libc::SYS_read, libc::SYS_clone, libc::SYS_ptrace]);
    assert_eq!(decide(&mode, libc::SYS_read, 0), RET_ALLOW);
    assert_eq!(decide(&mode, libc::SYS_write, 0), RET_KILL_PROCESS);
    assert_eq!(decide(&mode, libc::SYS_ptrace, 0), RET_KILL_PROCESS);
    for (name, nr) in BASE {
        assert_eq!(decide(&mode, *nr, 0), RET_ALLOW, "{name}");
    }
    let newnet = (libc::CLONE_NEWNET | libc::SIGCHLD) as u64;
    assert_eq!(decide(&mode, libc::SYS_clone, newnet), RET_KILL_PROCESS);
    assert_eq!(
        decide(&mode, libc::SYS_clone, libc::SIGCHLD as u64),
        RET_ALLOW
    );
}

#[cfg(target_arch = "x86_64")]
#[test]
fn the_catalog_policy_picks_the_mode() {
    let none = scanq::catalog::SeccompPolicy::default();
    assert_eq!(Seccomp::for_tool(&none), Seccomp::DenyList);
    let nmap = scanq::catalog::Catalog::builtin();
    let nmap = nmap
        .get(&scanq::domain::ToolName::parse("nmap").unwrap())
        .unwrap();
    let Seccomp::AllowList(list) = Seccomp::for_tool(&nmap.seccomp) else {
        panic!("nmap has an allow-list");
    };
    assert!(list.contains(&(libc::SYS_sendto as u32)));
    let prog = compile(&Seccomp::AllowList(list)).unwrap().unwrap();
    assert!(prog.len() < 4096, "BPF_MAXINSNS");
}
