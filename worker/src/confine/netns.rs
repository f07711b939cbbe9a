//! The network of one raw-socket run: a network namespace of its own whose only way out is a
//! veth pair to the worker's namespace. Everything the tool sends — TCP, UDP, ICMP, raw IP and
//! link-layer frames from AF_PACKET sockets alike — leaves its namespace through that veth and
//! arrives on the worker's end, where an nftables `netdev` ingress chain (see `nft`) lets through
//! only IPv4 from the run's own address to the job's targets. Nothing can route around it: the
//! namespace has no other device (its loopback stays down), and the tool holds no capability but
//! `CAP_NET_RAW` inside it.
//!
//! Addressing (no DHCP, no ARP): the tool's end gets `169.254.64.0/18 + index` as a /32 and a
//! default route (and `127.0.0.0/8`, so loopback targets reach the worker's host) via
//! [`GATEWAY`], with permanent neighbour entries on both ends; the worker's end has no address,
//! only a /32 route back. `route_localnet` on both ends lets loopback targets through the veth;
//! IPv6 is off in the run's namespace.
//!
//! The namespace is made by a short-lived thread (`unshare(CLONE_NEWNET)` changes only the
//! calling thread) and held by an open fd; the tool's pre-exec hook enters it with `setns`. When
//! the run is over and its cgroup is empty, dropping the fd lets the kernel destroy the namespace
//! and with it the veth pair.
//!
//! Besides `sandbox/limits.rs`, the one other file with `unsafe`: the pre-exec hook that puts
//! `ip` into the worker's namespace.
#![allow(unsafe_code)]

use std::fs::File;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sched::CloneFlags;

use super::ConfineError;

/// The address the tool's namespace routes everything through (the worker's end of the veth,
/// which answers for it with a permanent neighbour entry; it is never configured anywhere).
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 0, 1);
/// Tool addresses: one /32 per run from this /18 (16384 runs).
pub const POOL: (Ipv4Addr, u8) = (Ipv4Addr::new(169, 254, 64, 0), 18);
/// How many runs [`POOL`] can address at once.
pub const MAX_RUNS: u32 = 1 << (32 - POOL.1);

/// One run's network namespace and veth pair.
#[derive(Debug)]
pub struct RunNet {
    ns: OwnedFd,
}

impl RunNet {
    /// The tool's address for pool slot `index` (< [`MAX_RUNS`]).
    pub fn address(index: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(POOL.0) + index)
    }

    /// The worker-side interface name of `uid`'s run (unique: the uid is claimed host-wide).
    pub fn host_if(uid: u32) -> String {
        format!("sq{uid}h")
    }

    /// Makes the namespace and the veth pair for `uid`'s run, with the tool at pool slot `index`,
    /// and installs `filter` (an `nft -j -f -` input: the run's ingress chain, which needs the
    /// worker's end of the veth) while the run's end is being configured.
    pub async fn create(
        tools: Tools,
        uid: u32,
        index: u32,
        filter: String,
    ) -> Result<Self, ConfineError> {
        tokio::task::spawn_blocking(move || {
            // A thread of its own: it ends in the run's namespace and must not serve anyone else.
            std::thread::spawn(move || make(&tools, uid, index, &filter))
                .join()
                .unwrap_or_else(|_| Err(ConfineError::Net("the namespace thread panicked".into())))
        })
        .await
        .map_err(|e| ConfineError::Net(e.to_string()))?
    }

    pub fn fd(&self) -> RawFd {
        self.ns.as_raw_fd()
    }
}

/// Where `ip` and `nft` are.
#[derive(Debug, Clone)]
pub struct Tools {
    pub ip: PathBuf,
    pub nft: PathBuf,
}

/// Runs in its own thread, which it moves into the new namespace.
fn make(tools: &Tools, uid: u32, index: u32, filter: &str) -> Result<RunNet, ConfineError> {
    let net = |what: &str, e: std::io::Error| ConfineError::Net(format!("{what}: {e}"));
    let home = File::open("/proc/thread-self/ns/net").map_err(|e| net("own namespace", e))?;
    let host_if = RunNet::host_if(uid);
    // Left by a run of this uid whose namespace the kernel has not destroyed yet? (Read in the
    // worker's namespace, before leaving it.)
    let leftover = std::fs::read_to_string("/proc/thread-self/net/dev").is_ok_and(|devs| {
        devs.lines()
            .any(|l| l.trim_start().starts_with(&format!("{host_if}:")))
    });
    // Affects this thread only.
    nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(|e| net("unshare", e.into()))?;
    let ns: OwnedFd = File::open("/proc/thread-self/ns/net")
        .map_err(|e| net("run namespace", e))?
        .into();
    // IPv6 off for every device of the run's namespace, before the veth end moves in.
    for conf in ["all", "default"] {
        let _ = sysctl(&format!("ipv6/conf/{conf}/disable_ipv6"), "1");
    }
    let tool_if = format!("sq{uid}t");
    let addr = RunNet::address(index);
    let (host_mac, tool_mac) = (mac(uid, 1), mac(uid, 2));
    let tid = nix::unistd::gettid();
    let mut host = String::new();
    if leftover {
        host.push_str(&format!("link del {host_if}\n"));
    }
    host.push_str(&format!(
        "link add {host_if} address {host_mac} type veth peer name {tool_if} address {tool_mac} netns {tid}\n\
         link set {host_if} up\n\
         route add {addr}/32 dev {host_if}\n\
         neigh replace {addr} lladdr {tool_mac} dev {host_if} nud permanent\n"
    ));
    finish(spawn(
        &tools.ip,
        &["-batch", "-"],
        &host,
        Some(home.as_raw_fd()),
    )?)?;
    // The filter goes on while the run's end is configured (nothing runs there yet).
    let nft = spawn(
        &tools.nft,
        &["-j", "-f", "-"],
        filter,
        Some(home.as_raw_fd()),
    )?;
    // In the worker's namespace (opened there): loopback targets may cross the veth.
    sysctl_in(&home, &format!("ipv4/conf/{host_if}/route_localnet"), "1")?;
    sysctl_in(&home, &format!("ipv4/conf/{host_if}/forwarding"), "1")?;
    sysctl(&format!("ipv4/conf/{tool_if}/route_localnet"), "1")
        .map_err(|e| net("route_localnet", e))?;
    let inside = format!(
        "addr add {addr}/32 dev {tool_if}\n\
         link set {tool_if} up\n\
         neigh replace {GATEWAY} lladdr {host_mac} dev {tool_if} nud permanent\n\
         route add default via {GATEWAY} dev {tool_if} onlink\n\
         route add 127.0.0.0/8 via {GATEWAY} dev {tool_if} onlink\n"
    );
    let inside = finish(spawn(&tools.ip, &["-batch", "-"], &inside, None)?);
    let filtered = finish(nft);
    inside?;
    filtered?;
    Ok(RunNet { ns })
}

/// A locally administered MAC for one end of `uid`'s veth.
fn mac(uid: u32, end: u8) -> String {
    let b = uid.to_be_bytes();
    format!("02:73:{:02x}:{:02x}:{:02x}:{end:02x}", b[1], b[2], b[3])
}

/// Writes `/proc/sys/net/<key>` in the calling thread's network namespace.
fn sysctl(key: &str, value: &str) -> std::io::Result<()> {
    std::fs::write(format!("/proc/sys/net/{key}"), value)
}

/// Writes a sysctl of the namespace `ns` from a thread of its own (sysctls of the network
/// belong to the namespace of the thread that opens them).
fn sysctl_in(ns: &File, key: &str, value: &str) -> Result<(), ConfineError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(ns, CloneFlags::CLONE_NEWNET)?;
            sysctl(key, value)
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("panicked")))
    })
    .map_err(|e| ConfineError::Net(format!("sysctl net.{key}: {e}")))
}

/// Starts `bin args` with `input` on its stdin, in namespace `ns` when given (else the calling
/// thread's).
fn spawn(bin: &Path, args: &[&str], input: &str, ns: Option<RawFd>) -> Result<Child, ConfineError> {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(fd) = ns {
        // SAFETY: only setns, async-signal-safe, on an fd the parent keeps open.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let name = bin
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("?")
        .to_owned();
    let err = |e: std::io::Error| ConfineError::Net(format!("{name}: {e}"));
    let mut child = cmd.spawn().map_err(err)?;
    // Small inputs: the pipe takes them whole, so writing before the child reads cannot block.
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes())
        .map_err(err)?;
    Ok(Child { child, name })
}

/// A started `ip` or `nft`.
struct Child {
    child: std::process::Child,
    name: String,
}

/// Waits for `c`; its stderr is the error when it failed.
fn finish(c: Child) -> Result<(), ConfineError> {
    let out = c
        .child
        .wait_with_output()
        .map_err(|e| ConfineError::Net(format!("{}: {e}", c.name)))?;
    if !out.status.success() {
        return Err(ConfineError::Net(format!(
            "{}: {}",
            c.name,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Checks that this worker can make run namespaces (a probe namespace, dropped at once).
pub fn probe() -> Result<(), String> {
    std::thread::spawn(|| {
        // In a thread that ends right after.
        nix::sched::unshare(CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("cannot create a network namespace: {e}"))
    })
    .join()
    .unwrap_or_else(|_| Err("the probe thread panicked".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_names_are_per_run() {
        assert_eq!(RunNet::address(0), Ipv4Addr::new(169, 254, 64, 0));
        assert_eq!(
            RunNet::address(MAX_RUNS - 1),
            Ipv4Addr::new(169, 254, 127, 255)
        );
        assert_eq!(RunNet::host_if(61003), "sq61003h");
        assert!(RunNet::host_if(4_294_967_294).len() <= 15, "IFNAMSIZ");
        assert_eq!(mac(61003, 2), "02:73:00:ee:4b:02");
    }
}
