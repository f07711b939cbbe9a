//! `scanq-hostile`: a compromised tool, for the sandbox tests. One attempt per invocation, chosen
//! by the first argument; it prints one line and exits:
//!
//! - `refused: <errno or reason>` and exit 0: the attempt failed (or, for the network attempts
//!   that cannot observe delivery, was sent and got no answer; the test's listener is the judge);
//! - `escaped: <what>` and exit 3: the attempt worked;
//! - killed by a signal (SIGSYS from the seccomp filter): no line at all;
//! - `usage: …` and exit 2: bad arguments.
//!
//! Arguments past the ones an attempt takes are ignored, and a pid that is not a number means
//! the parent, so a catalog entry can fix the attempt in `output_args` and the worker's appended
//! target address changes nothing.
//!
//! `orphan` is the exception: its leader prints `orphan: …` and exits 0 at once, and a
//! double-forked, `setsid` grandchild keeps trying to connect for the given number of seconds.
//!
//! `packet` puts real frames on every non-loopback interface that is up: run it only inside a
//! network namespace the test created (the per-run namespace of raw confinement), never on a
//! host's own interfaces.
//!
//! No shell, no helpers: each attempt is the raw system call (`libc`), so what the kernel or the
//! seccomp filter does to it is exactly what a compromised nmap would meet.
// Raw system calls (clone, io_uring_setup, the mount API, AF_PACKET…) have no safe wrapper; each
// `unsafe` block passes only stack buffers it owns, sized as the kernel ABI says.
#![allow(unsafe_code)]

#[path = "hostile/kernel.rs"]
mod kernel;
#[path = "hostile/net.rs"]
mod net;

use std::process::ExitCode;

/// What one attempt came to.
pub enum Verdict {
    Refused(String),
    Escaped(String),
}

/// The name of the last OS error (`EPERM`, `ENOSYS`…).
pub fn errno() -> String {
    errno_name(std::io::Error::last_os_error())
}

/// The errno name of an I/O error, or its text when it has none (a timeout).
pub fn errno_name(err: std::io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => format!("{:?}", nix::errno::Errno::from_raw(code)),
        None => err.to_string(),
    }
}

/// `Refused(errno)` when a raw call returned a negative value.
pub fn refused_errno() -> Verdict {
    Verdict::Refused(errno())
}

const USAGE: &str = "usage: scanq-hostile <attempt> [args]; attempts: unshare-net, clone-newuser, \
clone3-newns, io-uring, fsopen, open-tree, pidfd-getfd [pid], kcmp [pid], name-to-handle <path>, \
x32, ptrace [pid], environ [pid], unix <path>, tcp <ip> <port>, udp <ip> <port>, \
raw-syn <ip> <port>, packet <ip> <port>, orphan <ip> <port> <seconds> (pid: the parent when missing or not a number)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let verdict = match attempt(&args) {
        Ok(Some(v)) => v,
        Ok(None) => return ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("{msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match verdict {
        Verdict::Refused(why) => {
            println!("refused: {why}");
            ExitCode::SUCCESS
        }
        Verdict::Escaped(what) => {
            println!("escaped: {what}");
            ExitCode::from(3)
        }
    }
}

/// Runs the attempt the arguments name; `Ok(None)` when it printed its own line (`orphan`).
fn attempt(args: &[String]) -> Result<Option<Verdict>, String> {
    let name = args.first().ok_or("no attempt given")?;
    let arg = |i: usize| -> Result<&str, String> {
        args.get(i)
            .map(String::as_str)
            .ok_or_else(|| format!("`{name}` needs argument {i}"))
    };
    // A pid, or the parent when the argument is missing or not a number (the worker appends
    // the job's target address to a catalog tool's argv).
    let pid = || -> Result<i32, String> {
        Ok(args
            .get(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| nix::unistd::getppid().as_raw()))
    };
    let target = || -> Result<std::net::SocketAddr, String> {
        let ip: std::net::IpAddr = arg(1)?.parse().map_err(|_| "bad ip".to_owned())?;
        let port: u16 = arg(2)?.parse().map_err(|_| "bad port".to_owned())?;
        Ok((ip, port).into())
    };
    let verdict = match name.as_str() {
        "unshare-net" => kernel::unshare_net(),
        "clone-newuser" => kernel::clone_newuser(),
        "clone3-newns" => kernel::clone3_newns(),
        "io-uring" => kernel::io_uring(),
        "fsopen" => kernel::fsopen(),
        "open-tree" => kernel::open_tree(),
        "pidfd-getfd" => kernel::pidfd_getfd(pid()?),
        "kcmp" => kernel::kcmp(pid()?),
        "name-to-handle" => kernel::name_to_handle(arg(1)?)?,
        "x32" => kernel::x32(),
        "ptrace" => kernel::ptrace(pid()?),
        "environ" => kernel::environ(pid()?),
        "unix" => kernel::unix(arg(1)?),
        "tcp" => net::tcp(target()?),
        "udp" => net::udp(target()?),
        "raw-syn" => net::raw_syn(target()?)?,
        "packet" => net::packet(target()?)?,
        "orphan" => {
            let secs: u64 = arg(3)?.parse().map_err(|_| "bad seconds".to_owned())?;
            net::orphan(target()?, secs);
            return Ok(None);
        }
        other => return Err(format!("unknown attempt `{other}`")),
    };
    Ok(Some(verdict))
}
