//! nmap and its seccomp allow-list (`[tools.nmap.seccomp]` in the built-in catalog): the
//! system calls nmap makes over a matrix of scans of 127.0.0.1 listeners, recorded with
//! `strace -f -c`, are all in the list; and the same matrix runs under the filter (allow-list
//! and deny rules, `socket(AF_UNIX)` refused) and finds the listeners' ports.
//!
//! The matrix: `-sT`, `-sV` (a web server), `-sC` (it and a TLS server), and `-sn` with reverse DNS to a resolver on 127.0.0.1 as an
//! unprivileged per-run uid; `-sS`, `-sU`, `-O` and `--traceroute` as root (skipped when the
//! test is not root). `-n` everywhere else, so nothing asks the host's resolver.

mod sandbox_support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sandbox_support::{is_root, spec, within};
use scanq::catalog::{Catalog, ToolSpec};
use scanq::domain::ToolName;
use scanq_worker::sandbox::seccomp::{BASE, Seccomp};
use scanq_worker::sandbox::{RunOutcome, SandboxSpec, run};
use tokio_util::sync::CancellationToken;

const TOOL_UID: u32 = 64_918;

fn nmap() -> ToolSpec {
    Catalog::builtin()
        .get(&ToolName::parse("nmap").unwrap())
        .unwrap()
        .clone()
}

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

/// One scan of the matrix: its name, nmap's arguments (before the output arguments and the
/// target), whether it runs as root, and the port it must find open (`None`: the host up).
struct Scan {
    name: &'static str,
    args: Vec<String>,
    root: bool,
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
    let scans = vec![
        ("-sT", fast(&["-sT"], &tcp), false, Some(("tcp", l.tcp))),
        ("-sV", fast(&["-sV"], &tcp), false, Some(("tcp", l.tcp))),
        ("-sC", fast(&["-sC"], &tls), false, Some(("tcp", l.tls))),
        ("-sn -R", dns.to_vec(), false, None),
        ("-sS", fast(&["-sS"], &tcp), true, Some(("tcp", l.tcp))),
        (
            "-sU",
            fast(&["-sU"], &l.udp.to_string()),
            true,
            Some(("udp", l.udp)),
        ),
        ("-O", fast(&["-sS", "-O"], &tcp), true, Some(("tcp", l.tcp))),
        (
            "--traceroute",
            fast(&["-sS", "--traceroute"], &tcp),
            true,
            Some(("tcp", l.tcp)),
        ),
    ];
    scans
        .into_iter()
        .filter(|s| !s.2 || is_root())
        .map(|(name, args, root, open)| Scan {
            name,
            args,
            root,
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

async fn run_as(mut spec: SandboxSpec, root: bool) -> RunOutcome {
    spec.timeout = Duration::from_secs(120);
    if is_root() && !root {
        spec.run_as_uid = Some(TOOL_UID);
    }
    within(150, run(&spec, CancellationToken::new(), None))
        .await
        .unwrap()
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
        let mut args: Vec<String> = ["-f", "-qq", "-c", "-U", "name", "-o"]
            .map(str::to_owned)
            .to_vec();
        args.push(out.to_str().unwrap().to_owned());
        args.push("nmap".to_owned());
        args.extend(argv(&scan));
        let mut spec = spec("strace", &[]);
        spec.args = args;
        let outcome = run_as(spec, scan.root).await;
        eprintln!("{}: {:?} under strace", scan.name, outcome.duration);
        assert_eq!(
            outcome.exit_code,
            Some(0),
            "{}: {}",
            scan.name,
            said(&outcome)
        );
        let table = std::fs::read_to_string(&out).unwrap();
        let names: Vec<&str> = table
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && *l != "syscall" && *l != "total")
            .filter(|l| !l.starts_with('-'))
            .collect();
        assert!(names.contains(&"openat"), "{}: {table}", scan.name);
        used.extend(names.into_iter().map(str::to_owned));
    }
    let listed: BTreeSet<String> = nmap()
        .seccomp
        .allow
        .expect("nmap has an allow-list")
        .iter()
        .map(|n| n.as_str().to_owned())
        .chain(BASE.iter().map(|(n, _)| (*n).to_owned()))
        .collect();
    let missing: Vec<&String> = used.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "nmap used system calls missing from [tools.nmap.seccomp] allow: {missing:?}\n\
         everything it used: {used:?}"
    );
}

#[tokio::test]
async fn nmap_scans_under_its_allow_list_and_finds_the_ports() {
    let l = listeners();
    let mode = Seccomp::for_tool(&nmap().seccomp);
    assert!(matches!(mode, Seccomp::AllowList(_)));
    for scan in matrix(&l) {
        let mut spec = spec("nmap", &[]);
        spec.args = argv(&scan);
        spec.seccomp = mode.clone();
        let outcome = run_as(spec, scan.root).await;
        eprintln!("{}: {:?}", scan.name, outcome.duration);
        assert_eq!(outcome.signal, None, "{}: {}", scan.name, said(&outcome));
        assert_eq!(
            outcome.exit_code,
            Some(0),
            "{}: {}",
            scan.name,
            said(&outcome)
        );
        let xml = String::from_utf8_lossy(&outcome.stdout);
        let found = match scan.open {
            Some((proto, port)) => xml.contains(&format!(
                "<port protocol=\"{proto}\" portid=\"{port}\"><state state=\"open\""
            )),
            None => xml.contains("<status state=\"up\""),
        };
        assert!(found, "{}: {xml}", scan.name);
    }
}
