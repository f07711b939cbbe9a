//! The classic-BPF program of the filter, written out by hand so that every rule is visible and
//! each can have its own action (seccompiler gives one action to all matching rules and cannot
//! test the x32 bit). Layout, every jump forward and short:
//!
//! ```text
//! arch != this arch            → kill           (i386 `int 0x80`, any foreign ABI)
//! nr & 0x40000000 (x86_64)     → kill           (x32 numbers)
//! nr in denied                 → kill
//! nr == clone3                 → errno ENOSYS   (its flags are in memory, out of BPF's reach)
//! nr == clone, flags & CLONE_NEW* → kill
//! nr == socket, domain == AF_UNIX → errno EACCES
//! allow-list: nr in list → allow, else kill  |  no list: allow
//! ```

use seccompiler::{BpfProgram, sock_filter};

const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K

pub(super) const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub(super) const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;

/// Offsets in `struct seccomp_data`: nr, arch, then args[0] (its low 32 bits, little-endian).
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARG0_LO: u32 = 16;

pub(super) const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Every namespace flag `clone` takes (all in the low 32 bits, the only ones legacy `clone`
/// reads). `CLONE_NEWTIME` is missing on purpose: only `clone3` and `unshare` take it, and its
/// bit (0x80) is part of `clone`'s exit-signal byte.
pub(super) const CLONE_NAMESPACES: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u32;

/// What the program is built from (numbers of this architecture).
pub(super) struct Rules<'a> {
    pub audit_arch: u32,
    pub kill_x32: bool,
    pub denied: &'a [u32],
    pub clone: u32,
    pub clone3: u32,
    pub socket: u32,
    /// `None`: allow what the rules above let through.
    pub allow: Option<&'a [u32]>,
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// `if nr == k { return action }`.
fn on_nr(prog: &mut BpfProgram, nr: u32, action: u32) {
    prog.push(jump(JEQ_K, nr, 0, 1));
    prog.push(stmt(RET_K, action));
}

pub(super) fn build(r: &Rules<'_>) -> BpfProgram {
    let mut p = vec![
        stmt(LD_W_ABS, OFF_ARCH),
        jump(JEQ_K, r.audit_arch, 1, 0),
        stmt(RET_K, RET_KILL_PROCESS),
        stmt(LD_W_ABS, OFF_NR),
    ];
    if r.kill_x32 {
        p.push(jump(JSET_K, X32_SYSCALL_BIT, 0, 1));
        p.push(stmt(RET_K, RET_KILL_PROCESS));
    }
    for &nr in r.denied {
        on_nr(&mut p, nr, RET_KILL_PROCESS);
    }
    on_nr(&mut p, r.clone3, RET_ERRNO | libc::ENOSYS as u32);
    // clone: kill on any namespace flag, then go on with nr reloaded.
    p.push(jump(JEQ_K, r.clone, 0, 4));
    p.push(stmt(LD_W_ABS, OFF_ARG0_LO));
    p.push(jump(JSET_K, CLONE_NAMESPACES, 0, 1));
    p.push(stmt(RET_K, RET_KILL_PROCESS));
    p.push(stmt(LD_W_ABS, OFF_NR));
    // socket(AF_UNIX, …): EACCES, then go on with nr reloaded.
    p.push(jump(JEQ_K, r.socket, 0, 4));
    p.push(stmt(LD_W_ABS, OFF_ARG0_LO));
    p.push(jump(JEQ_K, libc::AF_UNIX as u32, 0, 1));
    p.push(stmt(RET_K, RET_ERRNO | libc::EACCES as u32));
    p.push(stmt(LD_W_ABS, OFF_NR));
    match r.allow {
        None => p.push(stmt(RET_K, RET_ALLOW)),
        Some(list) => {
            for &nr in list {
                on_nr(&mut p, nr, RET_ALLOW);
            }
            p.push(stmt(RET_K, RET_KILL_PROCESS));
        }
    }
    p
}

/// Runs `prog` on one system call the way the kernel does (the subset of classic BPF that
/// [`build`] emits); for the unit tests.
#[cfg(test)]
pub(super) fn evaluate(prog: &BpfProgram, arch: u32, nr: u32, arg0: u64) -> u32 {
    let mut acc = 0u32;
    let mut pc = 0usize;
    loop {
        let ins = &prog[pc];
        pc += 1;
        match ins.code {
            LD_W_ABS => {
                acc = match ins.k {
                    OFF_NR => nr,
                    OFF_ARCH => arch,
                    OFF_ARG0_LO => arg0 as u32,
                    other => panic!("load of offset {other}"),
                }
            }
            JEQ_K | JSET_K => {
                let hit = if ins.code == JEQ_K {
                    acc == ins.k
                } else {
                    acc & ins.k != 0
                };
                pc += usize::from(if hit { ins.jt } else { ins.jf });
            }
            RET_K => return ins.k,
            other => panic!("opcode {other:#x}"),
        }
    }
}
