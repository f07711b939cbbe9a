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
use scanq_worker::sandbox::{CgroupRoot, SandboxSpec, run};
use tokio_util::sync::CancellationToken;

async fn egress() -> Arc<Egress> {
    let cfg = Config {
        egress_confinement: EgressConfinement::Required,
        ..Config::default()
    };
    let (_, egress) = confine::setup(&cfg).await.expect("confinement");
    let egress = egress.expect("root confines");
    assert!(
        egress.raw_ready(),
        "raw-socket confinement is available as root"
    );
    egress
}

/// Runs `program args… target` confined to `target`, raw sockets on.
async fn confined(
    egress: &Arc<Egress>,
    program: &str,
    args: &[&str],
    target: &str,
) -> (
    scanq_worker::sandbox::RunOutcome,
    scanq::domain::Confinement,
) {
    let lease = egress.confine(target, true).await.expect("lease");
    let mut spec = SandboxSpec::new(program, args.iter().copied());
    spec.timeout = Duration::from_secs(60);
    spec.run_as_uid = Some(lease.uid());
    spec.net_ns = lease.net_ns();
    spec.raw_sockets = true;
    spec.seccomp = true;
    spec.cgroups = CgroupRoot::detect().ok().map(Arc::new);
    let out = run(&spec, CancellationToken::new(), None)
        .await
        .expect("ran");
    let report = lease.release().await;
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
