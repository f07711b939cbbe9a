//! Raw-socket confinement with the real kernel (root only): a run in a network namespace of its
//! own, `CAP_NET_RAW` and nothing else, its only way out a veth filtered at the link layer.
//! nmap's SYN, UDP and OS-detection scans of a loopback listener succeed; nothing reaches a
//! listener on another loopback address; the run's namespace, veth, chains and cgroup are gone
//! afterwards.

mod sandbox_support;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use sandbox_support::{is_root, within};
use scanq::config::{Config, EgressConfinement};
use scanq_worker::confine::{self, Egress};
use scanq_worker::sandbox::seccomp::Seccomp;
use scanq_worker::sandbox::{CgroupRoot, SandboxSpec, run};
use tokio_util::sync::CancellationToken;

async fn egress() -> Arc<Egress> {
    let cfg = Config {
        egress_confinement: EgressConfinement::Required,
        ..Config::default()
    };
    confine::host_tables::remove_at_exit();
    let (_, egress) = confine::setup(&cfg).await.expect("confinement");
    let egress = egress.expect("root confines");
    assert!(
        egress.raw_ready(),
        "raw-socket confinement is available as root"
    );
    egress
}

/// Runs `program args… target` confined to `target` (an address, a CIDR, or a comma list of
/// them), raw sockets on.
async fn confined(
    egress: &Arc<Egress>,
    program: &str,
    args: &[&str],
    target: &str,
) -> (
    scanq_worker::sandbox::RunOutcome,
    scanq::domain::Confinement,
) {
    let allowed: Vec<String> = target.split(',').map(str::to_owned).collect();
    let lease = egress.confine(&allowed, true).await.expect("lease");
    let mut spec = SandboxSpec::new(program, args.iter().copied());
    spec.timeout = Duration::from_secs(60);
    spec.run_as_uid = Some(lease.uid());
    spec.net_ns = lease.net_ns();
    spec.raw_sockets = true;
    // nmap under its recorded allow-list, anything else under the deny rules.
    spec.seccomp = if program == "nmap" {
        let catalog = scanq::catalog::Catalog::builtin();
        let nmap = catalog.get(&"nmap".parse().unwrap()).expect("nmap");
        Seccomp::for_tool(&nmap.seccomp)
    } else {
        Seccomp::DenyList
    };
    spec.cgroups = CgroupRoot::detect().ok().map(Arc::new);
    let out = run(&spec, CancellationToken::new(), None)
        .await
        .expect("ran");
    let report = lease.release().await;
    // The rules go with the next claim or shortly after; the test leaves nothing behind.
    egress.flush().await;
    (out, report)
}

fn listener(addr: &str) -> (TcpListener, u16) {
    let l = TcpListener::bind((addr, 0)).expect("bind");
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// The state nmap printed for `port/proto`.
fn state(text: &str, port: &str) -> String {
    text.lines()
        .find(|l| l.starts_with(&format!("{port} ")))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("missing")
        .to_owned()
}

fn veths() -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("sq") && n.ends_with('h'))
        .collect()
}

#[tokio::test]
async fn nmap_syn_udp_and_os_scans_of_loopback_succeed_confined() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let egress = egress().await;
    let (_open, port) = listener("127.0.0.1");
    let ports = format!("{port},1");
    let (out, report) = within(
        90,
        confined(
            &egress,
            "nmap",
            &[
                "--privileged",
                "-sS",
                "-n",
                "-Pn",
                "-p",
                &ports,
                "127.0.0.1",
            ],
            "127.0.0.1",
        ),
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.exit_code,
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(state(&text, &format!("{port}/tcp")), "open", "{text}");
    assert_eq!(state(&text, "1/tcp"), "closed", "{text}");
    assert_eq!(report.mode, "netns");
    assert_eq!(report.refused_attempts, 0, "{report:?}");

    let (out, _) = within(
        90,
        confined(
            &egress,
            "nmap",
            &["--privileged", "-sU", "-n", "-Pn", "-p", "9", "127.0.0.1"],
            "127.0.0.1",
        ),
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(state(&text, "9/udp"), "closed", "{text}");

    let (out, _) = within(
        120,
        confined(
            &egress,
            "nmap",
            &[
                "--privileged",
                "-sS",
                "-O",
                "-n",
                "-Pn",
                "-p",
                &ports,
                "127.0.0.1",
            ],
            "127.0.0.1",
        ),
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    let text = format!("{text}\n{}\n{out:?}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("OS detection performed")
            || text.contains("OS details")
            || text.contains("TCP/IP fingerprint"),
        "{text}"
    );
    // The namespaces go with their last fd; the kernel removes their veths soon after.
    within(10, async {
        while !veths().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_raw_scan_of_another_loopback_address_reaches_nothing() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let egress = egress().await;
    let (other, port) = listener("127.0.0.3");
    other.set_nonblocking(true).unwrap();
    let ports = port.to_string();
    // The job's target is 127.0.0.2; the tool scans 127.0.0.3 as well.
    let (out, report) = within(
        90,
        confined(
            &egress,
            "nmap",
            &[
                "--privileged",
                "-sS",
                "-n",
                "-Pn",
                "--max-retries",
                "0",
                "-p",
                &ports,
                "127.0.0.2",
                "127.0.0.3",
            ],
            "127.0.0.2",
        ),
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    let third = text
        .split("Nmap scan report for 127.0.0.3")
        .nth(1)
        .unwrap_or("");
    assert_eq!(state(third, &format!("{port}/tcp")), "filtered", "{text}");
    assert!(report.refused_attempts > 0, "{report:?}");
    assert!(
        other.accept().is_err(),
        "nothing connected to the non-target"
    );
}

#[tokio::test]
async fn a_raw_run_confined_to_a_list_reaches_each_listed_address_and_nothing_else() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let egress = egress().await;
    let (_one, p1) = listener("127.0.0.1");
    let (_two, p2) = listener("127.0.0.2");
    let (other, p3) = listener("127.0.0.3");
    other.set_nonblocking(true).unwrap();
    let ports = format!("{p1},{p2},{p3}");
    // The job's target is the list 127.0.0.1,127.0.0.2 (one anonymous set in the netdev
    // chain); the tool scans 127.0.0.3 as well.
    let (out, report) = within(
        90,
        confined(
            &egress,
            "nmap",
            &[
                "--privileged",
                "-sS",
                "-n",
                "-Pn",
                "--max-retries",
                "0",
                "-p",
                &ports,
                "127.0.0.1",
                "127.0.0.2",
                "127.0.0.3",
            ],
            "127.0.0.1,127.0.0.2",
        ),
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    let report_of = |host: &str| {
        text.split(&format!("Nmap scan report for {host}\n"))
            .nth(1)
            .and_then(|r| r.split("Nmap scan report for").next())
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(
        state(&report_of("127.0.0.1"), &format!("{p1}/tcp")),
        "open",
        "{text}"
    );
    assert_eq!(
        state(&report_of("127.0.0.2"), &format!("{p2}/tcp")),
        "open",
        "{text}"
    );
    assert_eq!(
        state(&report_of("127.0.0.3"), &format!("{p3}/tcp")),
        "filtered",
        "{text}"
    );
    assert_eq!(report.allowed, ["127.0.0.1", "127.0.0.2"], "{report:?}");
    assert!(report.refused_attempts > 0, "{report:?}");
    assert!(
        other.accept().is_err(),
        "nothing connected to the non-target"
    );
}

/// Two network namespaces made by the test: `w` (where the "worker" runs: no default route, so
/// nothing can leave the machine) and `h` (a test host at 198.18.0.2), joined by a veth.
struct TestNet {
    w: String,
    h: String,
}

impl TestNet {
    fn new() -> Self {
        let id = std::process::id();
        let net = Self {
            w: format!("scanq-test-w-{id}"),
            h: format!("scanq-test-h-{id}"),
        };
        let (w, h) = (&net.w, &net.h);
        let hv = format!("tn{id}");
        for cmd in [
            format!("netns add {w}"),
            format!("netns add {h}"),
            format!("-n {w} link add {hv}w type veth peer name {hv}h netns {h}"),
            format!("-n {w} addr add 198.18.0.1/30 dev {hv}w"),
            format!("-n {w} link set {hv}w up"),
            format!("-n {w} link set lo up"),
            format!("-n {h} addr add 198.18.0.2/30 dev {hv}h"),
            format!("-n {h} link set {hv}h up"),
            format!("-n {h} link set lo up"),
        ] {
            let ok = std::process::Command::new("ip")
                .args(cmd.split_whitespace())
                .status()
                .expect("ip");
            assert!(ok.success(), "ip {cmd}");
        }
        // Forwarding in the test's own worker namespace only, for the run namespace's packets.
        let ok = std::process::Command::new("ip")
            .args(["netns", "exec", w, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
            .status()
            .unwrap();
        assert!(ok.success());
        net
    }

    /// Runs `f` on a thread inside namespace `ns`.
    fn inside<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
        let file = std::fs::File::open(format!("/run/netns/{ns}")).expect("netns");
        std::thread::scope(|s| {
            s.spawn(move || {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            })
            .join()
            .expect("thread")
        })
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for ns in [&self.w, &self.h] {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", ns])
                .status();
        }
    }
}

#[test]
fn raw_scans_of_a_test_host_in_its_own_namespace_succeed_confined() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let net = TestNet::new();
    let (host, port) = TestNet::inside(&net.h, || listener("198.18.0.2"));
    let (_decoy, decoy_port) = TestNet::inside(&net.h, || listener("198.18.0.2"));
    drop(_decoy);
    let outs = TestNet::inside(&net.w, || {
        // A runtime whose threads (and the processes they start) live in the test's worker
        // namespace.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let egress = egress().await;
            let ports = format!("{port},{decoy_port}");
            let mut outs = Vec::new();
            for args in [
                vec![
                    "--privileged",
                    "-sS",
                    "-n",
                    "-Pn",
                    "-p",
                    &ports,
                    "198.18.0.2",
                ],
                vec!["--privileged", "-sU", "-n", "-Pn", "-p", "9", "198.18.0.2"],
                vec![
                    "--privileged",
                    "-sS",
                    "-O",
                    "-n",
                    "-Pn",
                    "-p",
                    &ports,
                    "198.18.0.2",
                ],
            ] {
                let (out, report) =
                    within(120, confined(&egress, "nmap", &args, "198.18.0.2")).await;
                outs.push((String::from_utf8_lossy(&out.stdout).into_owned(), report));
            }
            outs
        })
    });
    drop(host);
    let (syn, report) = &outs[0];
    assert_eq!(state(syn, &format!("{port}/tcp")), "open", "{syn}");
    assert_eq!(state(syn, &format!("{decoy_port}/tcp")), "closed", "{syn}");
    assert_eq!(report.mode, "netns");
    assert_eq!(state(&outs[1].0, "9/udp"), "closed", "{}", outs[1].0);
    assert!(
        outs[2].0.contains("OS detection performed") || outs[2].0.contains("TCP/IP fingerprint"),
        "{}",
        outs[2].0
    );
}

/// `target/<profile>/scanq-hostile` (tests crate), built by `cargo build --workspace --bins`.
fn hostile() -> String {
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("deps dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join("scanq-hostile");
    assert!(
        path.exists(),
        "{} not built (make test builds it)",
        path.display()
    );
    path.to_str().unwrap().to_owned()
}

/// Counts every packet that arrives for `addr` on this host (a table of the test's own).
struct Witness {
    table: String,
}

impl Witness {
    fn watch(addr: &str) -> Self {
        let table = format!("scanq_test_witness_{}", std::process::id());
        let script = format!(
            "table inet {table} {{\n chain input {{\n  type filter hook prerouting priority -400; policy accept;\n  ip daddr {addr} counter\n }}\n}}\n"
        );
        let mut child = std::process::Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
        Self { table }
    }

    fn packets(&self) -> u64 {
        let out = std::process::Command::new("nft")
            .args(["list", "table", "inet", &self.table])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        text.split("counter packets ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(u64::MAX)
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .status();
    }
}

#[tokio::test]
async fn a_hostile_raw_tool_reaches_nothing_but_its_target_and_leaves_nothing_behind() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let egress = egress().await;
    let hostile = hostile();
    // The job's target, and a non-target address of this host with listeners on it.
    let target = "127.0.0.2";
    let other = format!("127.83.{}.{}", std::process::id() % 250 + 1, 7);
    let witness = Witness::watch(&other);
    let (tcp, port) = listener(&other);
    tcp.set_nonblocking(true).unwrap();
    let udp = std::net::UdpSocket::bind((other.as_str(), 0)).unwrap();
    udp.set_nonblocking(true).unwrap();
    let udp_port = udp.local_addr().unwrap().port().to_string();
    let tcp_port = port.to_string();
    let sock_dir = tempfile::tempdir().unwrap();
    let sock = sock_dir.path().join("host.sock");
    let _unix = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::fs::set_permissions(
        sock_dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(&sock, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let me = std::process::id().to_string();

    let attempts: Vec<Vec<&str>> = vec![
        vec!["tcp", &other, &tcp_port],
        vec!["udp", &other, &udp_port],
        vec!["raw-syn", &other, &tcp_port],
        vec!["packet", &other, &udp_port],
        vec!["unix", sock.to_str().unwrap()],
        vec!["environ", &me],
        vec!["unshare-net"],
        vec!["clone-newuser"],
    ];
    for args in &attempts {
        let (out, report) = within(60, confined(&egress, &hostile, args, target)).await;
        let said = String::from_utf8_lossy(&out.stdout);
        let refused = out.exit_code == Some(0) && said.starts_with("refused");
        let killed = out.signal == Some(libc::SIGSYS);
        assert!(
            refused || killed,
            "{args:?} was not stopped: {said} {out:?}"
        );
        if ["tcp", "udp", "raw-syn", "packet"].contains(&args[0]) {
            // The packet really left the tool and the link-layer filter dropped it.
            assert!(report.refused_attempts > 0, "{args:?}: {said} {report:?}");
        }
    }
    // A double-forked, setsid orphan that keeps calling the non-target after its run ended.
    let (out, _) = within(
        60,
        confined(
            &egress,
            &hostile,
            &["orphan", &other, &tcp_port, "5"],
            target,
        ),
    )
    .await;
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    assert!(
        out.escaped >= 1,
        "the orphan was found in the run's cgroup: {out:?}"
    );

    // The orphan is dead with its cgroup; nothing ever arrived for the non-target, by any
    // protocol (a short look at the listeners, then the counter of every packet).
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while std::time::Instant::now() < deadline {
        assert!(tcp.accept().is_err(), "a connection reached the non-target");
        let mut buf = [0u8; 64];
        assert!(
            udp.recv_from(&mut buf).is_err(),
            "a datagram reached the non-target"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(witness.packets(), 0, "packets arrived for {other}");
}
