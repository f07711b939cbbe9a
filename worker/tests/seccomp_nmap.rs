//! nmap and its seccomp allow-list (`[tools.nmap.seccomp]` in the built-in catalog): the
//! system calls nmap makes over a matrix of scans of 127.0.0.1 listeners, recorded with
//! `strace -f -c`, are all in the list; and the same matrix runs under the filter (allow-list
//! and deny rules, `socket(AF_UNIX)` refused) and finds the listeners' ports.
//!
//! The matrix: `-sT`, `-sV` (a web server), `-sC` (it and a TLS server), and `-sn` with reverse DNS to a resolver on 127.0.0.1 as an
//! unprivileged per-run uid; `-sS`, `-sU`, `-O` and `--traceroute` as root, and `-sS`, `-sU`
//! and `--traceroute` with `--privileged` as a uid with `CAP_NET_RAW` (recorded only; skipped
//! when the test is not root). `-n` everywhere else, so nothing asks the host's resolver.

mod sandbox_support;
mod seccomp_support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sandbox_support::{is_root, spec, within};
use scanq_worker::sandbox::seccomp::Seccomp;
use scanq_worker::sandbox::{RunOutcome, SandboxSpec, run};
use seccomp_support::{assert_listed, names, nmap, open_in, strace_args};
use tokio_util::sync::CancellationToken;

const TOOL_UID: u32 = 64_918;

/// A TCP listener answering like a web server and a UDP echo on 127.0.0.1 (threads that live
/// as long as the test binary), and a TLS web server (`openssl s_server`, killed on drop).
struct Listeners {
    tcp: u16,
    udp: u16,
    closed: u16,
    tls: u16,
    _tls_server: Tls,
}

struct Tls {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Tls {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `openssl s_server -www` with a fresh self-signed certificate, once it accepts connections.
fn tls_server() -> (u16, Tls) {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=scanq-test", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl is installed (make deps)");
    assert!(made.success());
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-key")
        .arg(&key)
        .arg("-cert")
        .arg(&cert)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let tls = Tls { child, _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "openssl s_server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (port, tls)
}

fn listeners() -> Listeners {
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let (tls, tls_server) = tls_server();
    let ports = Listeners {
        tcp: tcp.local_addr().unwrap().port(),
        udp: udp.local_addr().unwrap().port(),
        closed: closed.local_addr().unwrap().port(),
        tls,
        _tls_server: tls_server,
    };
    drop(closed);
    std::thread::spawn(move || {
        for conn in tcp.incoming().flatten() {
            std::thread::spawn(move || {
                let mut conn = conn;
                let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
                let mut buf = [0u8; 2048];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(
                    b"HTTP/1.0 200 OK\r\nServer: scanq-test\r\nContent-Type: text/html\r\n\
                      Content-Length: 36\r\n\r\n<html><title>scanq</title></html>\r\n",
                );
            });
        }
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(&buf[..n], from);
        }
    });
    ports
}

/// Who runs a scan.
#[derive(Clone, Copy, PartialEq, Eq)]
enum As {
    /// An unprivileged per-run uid.
    Uid,
    Root,
    /// A per-run uid with `CAP_NET_RAW` (ambient, through `setpriv`) and `--privileged`: how
    /// raw-socket confinement runs nmap. Recorded only: `setpriv` itself could not run under
    /// nmap's filter.
    RawUid,
}

/// One scan of the matrix: its name, nmap's arguments (before the output arguments and the
/// target), who runs it, and the port it must find open (`None`: the host up).
struct Scan {
    name: &'static str,
    args: Vec<String>,
    who: As,
    open: Option<(&'static str, u16)>,
}

fn matrix(l: &Listeners) -> Vec<Scan> {
    let tcp = format!("{},{}", l.tcp, l.closed);
    let tls = format!("{},{},{}", l.tcp, l.tls, l.closed);
    let fast = |flags: &[&str], ports: &str| -> Vec<String> {
        let mut v: Vec<String> = flags.iter().map(|s| (*s).to_owned()).collect();
        v.extend(["-Pn", "-n", "-T4", "-p", ports].map(str::to_owned));
        v
    };
    let dns = ["-sn", "-R", "--dns-servers", "127.0.0.1", "-T4"].map(str::to_owned);
    let udp = l.udp.to_string();
    let (t, u) = (Some(("tcp", l.tcp)), Some(("udp", l.udp)));
    let scans = vec![
        ("-sT", fast(&["-sT"], &tcp), As::Uid, t),
        ("-sV", fast(&["-sV"], &tcp), As::Uid, t),
        ("-sC", fast(&["-sC"], &tls), As::Uid, Some(("tcp", l.tls))),
        ("-sn -R", dns.to_vec(), As::Uid, None),
        ("-sS", fast(&["-sS"], &tcp), As::Root, t),
        ("-sU", fast(&["-sU"], &udp), As::Root, u),
        ("-O", fast(&["-sS", "-O"], &tcp), As::Root, t),
        (
            "--traceroute",
            fast(&["-sS", "--traceroute"], &tcp),
            As::Root,
            t,
        ),
        (
            "raw -sS",
            fast(&["--privileged", "-sS"], &tcp),
            As::RawUid,
            t,
        ),
        (
            "raw -sU",
            fast(&["--privileged", "-sU"], &udp),
            As::RawUid,
            u,
        ),
        (
            "raw -sS --traceroute",
            fast(&["--privileged", "-sS", "--traceroute"], &tcp),
            As::RawUid,
            t,
        ),
    ];
    scans
        .into_iter()
        .filter(|s| s.2 == As::Uid || is_root())
        .map(|(name, args, who, open)| Scan {
            name,
            args,
            who,
            open,
        })
        .collect()
}

/// The worker's argv for `scan`: its arguments, the catalog's output arguments, the target.
fn argv(scan: &Scan) -> Vec<String> {
    let mut v = scan.args.clone();
    v.extend(nmap().output_args);
    v.push("127.0.0.1".to_owned());
    v
}

async fn run_as(mut spec: SandboxSpec, who: As) -> RunOutcome {
    spec.timeout = Duration::from_secs(120);
    if is_root() && who == As::Uid {
        spec.run_as_uid = Some(TOOL_UID);
    }
    within(150, run(&spec, CancellationToken::new(), None))
        .await
        .unwrap()
}

/// The scan's XML on stdout shows the port open (or the host up).
fn assert_found(scan: &Scan, outcome: &RunOutcome) {
    let xml = &outcome.stdout;
    let found = match scan.open {
        Some((proto, port)) => open_in(xml, proto, port),
        None => String::from_utf8_lossy(xml).contains("<status state=\"up\""),
    };
    assert!(found, "{}: {}", scan.name, String::from_utf8_lossy(xml));
}

fn said(o: &RunOutcome) -> String {
    format!(
        "exit {:?}, signal {:?}, stderr {:?}",
        o.exit_code,
        o.signal,
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn the_catalog_allow_list_covers_every_system_call_nmap_makes() {
    let l = listeners();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut used: BTreeSet<String> = BTreeSet::new();
    for scan in matrix(&l) {
        let out = dir.path().join(scan.name.replace(' ', "_"));
        let mut args: Vec<String> = Vec::new();
        if scan.who == As::RawUid {
            let id = TOOL_UID.to_string();
            args.extend([format!("--reuid={id}"), format!("--regid={id}")]);
            args.extend(
                [
                    "--clear-groups",
                    "--inh-caps",
                    "+net_raw",
                    "--ambient-caps",
                    "+net_raw",
                ]
                .map(str::to_owned),
            );
            args.push("strace".to_owned());
        }
        args.extend(strace_args(&out));
        args.push("nmap".to_owned());
        args.extend(argv(&scan));
        let program = if scan.who == As::RawUid {
            "setpriv"
        } else {
            "strace"
        };
        let mut spec = spec(program, &[]);
        spec.args = args;
        let outcome = run_as(spec, scan.who).await;
        eprintln!("{}: {:?} under strace", scan.name, outcome.duration);
        assert_eq!(
            outcome.exit_code,
            Some(0),
            "{}: {}",
            scan.name,
            said(&outcome)
        );
        used.extend(names(&std::fs::read_to_string(&out).unwrap()));
    }
    assert_listed(&used);
}

#[tokio::test]
async fn nmap_scans_under_its_allow_list_and_finds_the_ports() {
    let l = listeners();
    let mode = Seccomp::for_tool(&nmap().seccomp);
    assert!(matches!(mode, Seccomp::AllowList(_)));
    for scan in matrix(&l).into_iter().filter(|s| s.who != As::RawUid) {
        let mut spec = spec("nmap", &[]);
        spec.args = argv(&scan);
        spec.seccomp = mode.clone();
        let outcome = run_as(spec, scan.who).await;
        eprintln!("{}: {:?}", scan.name, outcome.duration);
        assert_eq!(outcome.signal, None, "{}: {}", scan.name, said(&outcome));
        assert_eq!(
            outcome.exit_code,
            Some(0),
            "{}: {}",
            scan.name,
            said(&outcome)
        );
        assert_found(&scan, &outcome);
    }
}
