//! The attempts on the kernel: namespaces, io_uring, the mount API, other processes' memory,
//! file descriptors and environment, file handles, x32 system calls and host unix sockets.

use std::ffi::CString;

use libc::{c_long, c_ulong};

use crate::{Verdict, errno, errno_name, refused_errno};

/// `unshare(CLONE_NEWNET)`, and when that is refused, with a user namespace too (how an
/// unprivileged process gets a network namespace of its own).
pub fn unshare_net() -> Verdict {
    // SAFETY: unshare takes flags only.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } == 0 {
        return Verdict::Escaped("unshare(CLONE_NEWNET)".into());
    }
    // SAFETY: as above.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) } == 0 {
        return Verdict::Escaped("unshare(CLONE_NEWUSER|CLONE_NEWNET)".into());
    }
    refused_errno()
}

/// Waits for a child the attempt created (it exits at once).
fn reap(pid: c_long) {
    let mut status = 0;
    // SAFETY: waitpid writes one int we own.
    unsafe { libc::waitpid(pid as i32, &mut status, libc::__WALL) };
}

/// The raw `clone` system call with `CLONE_NEWUSER|CLONE_NEWNET` (fork-like: no new stack).
pub fn clone_newuser() -> Verdict {
    let flags = (libc::CLONE_NEWUSER | libc::CLONE_NEWNET | libc::SIGCHLD) as c_ulong;
    // SAFETY: clone without a stack behaves as fork; this process has one thread, and the child
    // only calls _exit.
    let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    match pid {
        // SAFETY: the child leaves at once, running nothing of the parent's.
        0 => unsafe { libc::_exit(0) },
        p if p > 0 => {
            reap(p);
            Verdict::Escaped(format!("clone(CLONE_NEWUSER|CLONE_NEWNET) made child {p}"))
        }
        _ => refused_errno(),
    }
}

/// `clone3` with `CLONE_NEWNS|CLONE_NEWUSER` (the filter cannot read its flags: they are in
/// memory, so it must fail with ENOSYS).
pub fn clone3_newns() -> Verdict {
    // struct clone_args, CLONE_ARGS_SIZE_VER2: flags, pidfd, child_tid, parent_tid,
    // exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup.
    let mut args = [0u64; 11];
    args[0] = (libc::CLONE_NEWNS | libc::CLONE_NEWUSER) as u64;
    args[4] = libc::SIGCHLD as u64;
    // SAFETY: the kernel reads `size_of_val(&args)` bytes from our array; the child only exits.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args.as_mut_ptr(),
            std::mem::size_of_val(&args),
        )
    };
    match pid {
        // SAFETY: the child leaves at once, running nothing of the parent's.
        0 => unsafe { libc::_exit(0) },
        p if p > 0 => {
            reap(p);
            Verdict::Escaped(format!("clone3(CLONE_NEWNS|CLONE_NEWUSER) made child {p}"))
        }
        _ => refused_errno(),
    }
}

/// Closes a descriptor an attempt obtained.
fn close(fd: c_long) {
    // SAFETY: closing a descriptor we own.
    unsafe { libc::close(fd as i32) };
}

/// `io_uring_setup` with 4 entries.
pub fn io_uring() -> Verdict {
    let mut params = [0u64; 15]; // struct io_uring_params: 120 bytes
    // SAFETY: the kernel reads and writes 120 bytes of `params`.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
    if fd < 0 {
        return refused_errno();
    }
    close(fd);
    Verdict::Escaped("io_uring_setup gave a ring".into())
}

/// `fsopen("tmpfs")`, the first step of the new mount API.
pub fn fsopen() -> Verdict {
    // SAFETY: a NUL-terminated literal and flags.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), 0u32) };
    if fd < 0 {
        return refused_errno();
    }
    close(fd);
    Verdict::Escaped("fsopen(tmpfs) gave a filesystem context".into())
}

/// `open_tree("/", OPEN_TREE_CLONE)`: a detached copy of the root mount.
pub fn open_tree() -> Verdict {
    const OPEN_TREE_CLONE: u32 = 1;
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as u32;
    // SAFETY: a NUL-terminated literal and flags.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c"/".as_ptr(), flags) };
    if fd < 0 {
        return refused_errno();
    }
    close(fd);
    Verdict::Escaped("open_tree(/, OPEN_TREE_CLONE) cloned the root mount".into())
}

/// `pidfd_getfd` of each of the first 64 descriptors of `pid`.
pub fn pidfd_getfd(pid: i32) -> Verdict {
    // SAFETY: integers only.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0u32) };
    if pidfd < 0 {
        return refused_errno();
    }
    let mut last = String::from("EBADF");
    for target in 0..64 {
        // SAFETY: integers only.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd as i32, target, 0u32) };
        if fd >= 0 {
            close(fd);
            return Verdict::Escaped(format!("took descriptor {target} of pid {pid}"));
        }
        last = errno();
        if last != "EBADF" {
            break;
        }
    }
    Verdict::Refused(last)
}

/// `kcmp(self, pid, KCMP_VM)`: whether two processes share memory, an ordering oracle on
/// kernel pointers.
pub fn kcmp(pid: i32) -> Verdict {
    const KCMP_VM: i32 = 1;
    let me = std::process::id() as i32;
    // SAFETY: integers only.
    let r = unsafe { libc::syscall(libc::SYS_kcmp, me, pid, KCMP_VM, 0usize, 0usize) };
    if r < 0 {
        return refused_errno();
    }
    Verdict::Escaped(format!("kcmp with pid {pid} answered {r}"))
}

/// struct file_handle with MAX_HANDLE_SZ bytes of handle.
#[repr(C)]
struct FileHandle {
    handle_bytes: u32,
    handle_type: i32,
    f_handle: [u8; 128],
}

/// `name_to_handle_at(path)`, then `open_by_handle_at` with that handle.
pub fn name_to_handle(path: &str) -> Result<Verdict, String> {
    let cpath = CString::new(path).map_err(|_| "bad path".to_owned())?;
    let mut handle = FileHandle {
        handle_bytes: 128,
        handle_type: 0,
        f_handle: [0; 128],
    };
    let mut mount_id = 0i32;
    // SAFETY: the kernel writes at most `handle_bytes` bytes of handle and one int.
    let r = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            libc::AT_FDCWD,
            cpath.as_ptr(),
            &mut handle as *mut FileHandle,
            &mut mount_id as *mut i32,
            0,
        )
    };
    if r < 0 {
        return Ok(refused_errno());
    }
    // SAFETY: a NUL-terminated path and flags.
    let mount_fd = unsafe { libc::open(cpath.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    // SAFETY: the kernel reads the handle we filled in.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            mount_fd,
            &mut handle as *mut FileHandle,
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd >= 0 {
        close(fd);
        return Ok(Verdict::Escaped(format!("opened {path} by handle")));
    }
    Ok(Verdict::Escaped(format!(
        "name_to_handle_at gave a handle for {path} (open_by_handle_at: {})",
        errno()
    )))
}

/// `getpid` through its x32 number (`__X32_SYSCALL_BIT | 39`).
pub fn x32() -> Verdict {
    const X32_SYSCALL_BIT: c_long = 0x4000_0000;
    // SAFETY: getpid takes no argument.
    let r = unsafe { libc::syscall(X32_SYSCALL_BIT | libc::SYS_getpid) };
    if r < 0 {
        return refused_errno();
    }
    Verdict::Escaped(format!("the x32 getpid ran and answered {r}"))
}

/// `PTRACE_ATTACH` to `pid`, detaching at once when it worked.
pub fn ptrace(pid: i32) -> Verdict {
    // SAFETY: integers only; null addr and data.
    let r = unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0usize, 0usize) };
    if r < 0 {
        return refused_errno();
    }
    reap(pid as c_long);
    // SAFETY: as above.
    unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0usize, 0usize) };
    Verdict::Escaped(format!("attached to pid {pid}"))
}

/// Reads `/proc/<pid>/environ`.
pub fn environ(pid: i32) -> Verdict {
    match std::fs::read(format!("/proc/{pid}/environ")) {
        Ok(bytes) if bytes.is_empty() => Verdict::Refused("empty environment".into()),
        Ok(bytes) => Verdict::Escaped(format!(
            "read {} bytes of the environment of pid {pid}",
            bytes.len()
        )),
        Err(err) => Verdict::Refused(errno_name(err)),
    }
}

/// `socket(AF_UNIX)` + `connect(path)`.
pub fn unix(path: &str) -> Verdict {
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Verdict::Escaped(format!("connected to {path}")),
        Err(err) => Verdict::Refused(errno_name(err)),
    }
}
