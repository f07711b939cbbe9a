//! nmap's seccomp allow-list over Ethernet. Raw-socket confinement runs nmap in a network
//! namespace whose traffic leaves through a veth, which takes nmap through link-layer paths that
//! loopback never does: ARP ping, frames sent through AF_PACKET, libpcap on an Ethernet device.
//! The test makes two network namespaces of its own joined by a veth (169.254.77.1/30 ↔ .2,
//! link-local, no route out: no packet leaves them), a web server and a UDP echo in one, and
//! records with strace the system calls of nmap scanning it from the other (`-sn` by ARP, `-sS`,
//! `-sU`, `-O`, `--traceroute`, `-sT`), which must all be on the list. Root only.

mod sandbox_support;
mod seccomp_support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sandbox_support::{is_root, spec, within};
use scanq_worker::sandbox::run;
use seccomp_support::{assert_listed, names, nmap, open_in, strace_args};
use tokio_util::sync::CancellationToken;

const ROOT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const SCANNER: &str = "169.254.77.1";
const TARGET: &str = "169.254.77.2";
const TCP: u16 = 8080;
const CLOSED: u16 = 8081;
const UDP: u16 = 9999;

/// The server in the target namespace: HTTP answers on TCP, an echo on UDP, "ready" once bound.
const SERVER: &str = r#"
import socket, sys, threading
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind((sys.argv[1], int(sys.argv[2]))); t.listen()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind((sys.argv[1], int(sys.argv[3])))
def echo():
    while True:
        d, a = u.recvfrom(2048); u.sendto(d, a)
def serve(c):
    c.settimeout(1)
    try: c.recv(2048)
    except OSError: pass
    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"); c.close()
threading.Thread(target=echo, daemon=True).start()
print("ready", flush=True)
while True:
    c, _ = t.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// The port a scan must find open (protocol, port), or `None`: the host up by ARP.
type Open = Option<(&'static str, u16)>;

fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .env("PATH", ROOT_PATH)
        .status()
        .expect("ip (iproute2) is installed");
    assert!(status.success(), "ip {args:?}");
}

/// Two namespaces joined by a veth and the server, all removed on drop.
struct Namespaces {
    scanner: String,
    target: String,
    server: Option<Child>,
}

impl Namespaces {
    fn new() -> Self {
        let id = std::process::id() % 100_000;
        let mut ns = Self {
            scanner: format!("scanq-seccomp-{id}-a"),
            target: format!("scanq-seccomp-{id}-b"),
            server: None,
        };
        let (va, vb) = (format!("sqs{id}a"), format!("sqs{id}b"));
        ip(&["netns", "add", &ns.scanner]);
        ip(&["netns", "add", &ns.target]);
        ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb]);
        ip(&["link", "set", &va, "netns", &ns.scanner]);
        ip(&["link", "set", &vb, "netns", &ns.target]);
        let a = format!("{SCANNER}/30");
        let b = format!("{TARGET}/30");
        ip(&["-n", &ns.scanner, "addr", "add", &a, "dev", &va]);
        ip(&["-n", &ns.target, "addr", "add", &b, "dev", &vb]);
        for (n, v) in [(&ns.scanner, &va), (&ns.target, &vb)] {
            ip(&["-n", n, "link", "set", v, "up"]);
            ip(&["-n", n, "link", "set", "lo", "up"]);
        }
        let mut server = Command::new("ip")
            .args(["netns", "exec", &ns.target, "python3", "-c", SERVER, TARGET])
            .args([TCP.to_string(), UDP.to_string()])
            .env("PATH", ROOT_PATH)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(server.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        ns.server = Some(server);
        assert_eq!(line.trim(), "ready", "the server in the target namespace");
        ns
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
        for n in [&self.scanner, &self.target] {
            let _ = Command::new("ip")
                .args(["netns", "del", n])
                .env("PATH", ROOT_PATH)
                .status();
        }
    }
}

#[tokio::test]
async fn nmap_over_ethernet_uses_only_listed_system_calls() {
    if !is_root() {
        eprintln!("skipped: network namespaces and raw scans need root");
        return;
    }
    let ns = Namespaces::new();
    let dir = tempfile::tempdir().unwrap();
    let ports = format!("{TCP},{CLOSED}");
    let fast = |flags: &[&str], ports: &str| -> Vec<String> {
        let mut v: Vec<String> = flags.iter().map(|s| (*s).to_owned()).collect();
        v.extend(["-Pn", "-n", "-T4", "-p", ports].map(str::to_owned));
        v
    };
    let u = UDP.to_string();
    let scans: Vec<(&str, Vec<String>, Open)> = vec![
        ("-sn (ARP)", vec!["-sn".into(), "-n".into()], None),
        ("-sS", fast(&["-sS"], &ports), Some(("tcp", TCP))),
        ("-sU", fast(&["-sU"], &u), Some(("udp", UDP))),
        ("-O", fast(&["-sS", "-O"], &ports), Some(("tcp", TCP))),
        (
            "--traceroute",
            fast(&["-sS", "--traceroute"], &ports),
            Some(("tcp", TCP)),
        ),
        ("-sT", fast(&["-sT"], &ports), Some(("tcp", TCP))),
    ];
    let mut used = BTreeSet::new();
    for (name, args, open) in scans {
        let out = dir.path().join(name.replace(' ', "_"));
        let mut spec = spec("ip", &["netns", "exec", &ns.scanner, "strace"]);
        spec.path_env = ROOT_PATH.to_owned();
        spec.timeout = Duration::from_secs(120);
        spec.args.extend(strace_args(&out));
        spec.args.push("nmap".to_owned());
        spec.args.extend(args);
        spec.args.extend(nmap().output_args);
        spec.args.push(TARGET.to_owned());
        let outcome = within(150, run(&spec, CancellationToken::new(), None))
            .await
            .unwrap();
        let xml = String::from_utf8_lossy(&outcome.stdout);
        assert_eq!(outcome.exit_code, Some(0), "{name}: {xml}");
        let found = match open {
            Some((proto, port)) => open_in(&outcome.stdout, proto, port),
            None => xml.contains("<status state=\"up\" reason=\"arp-response\""),
        };
        assert!(found, "{name}: {xml}");
        used.extend(names(&std::fs::read_to_string(&out).unwrap()));
    }
    assert_listed(&used);
}
