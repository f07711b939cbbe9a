//! Re-captures the real-nmap fixtures in tests/fixtures/nmap from scans of 127.0.0.1:
//! `cargo test --test capture_nmap_fixtures -- --ignored`. Hand-made fixtures are not touched.

mod nmap_support;

use std::time::Duration;

use nmap_support::{Services, closed_port, fixtures_dir, nmap_or_skip, run_nmap, run_nmap_targets};

#[test]
#[ignore = "rewrites fixtures; run by hand after an nmap upgrade"]
fn capture_real_nmap_fixtures_from_loopback_scans() {
    let Some(nmap) = nmap_or_skip("capture_real_nmap_fixtures_from_loopback_scans") else {
        return;
    };
    let services = Services::start();
    let closed = closed_port();
    let limit = Duration::from_secs(120);
    let ports = format!("{},{},{}", services.http, services.ssh, closed);
    let stats = ["--stats-every", "1s"];

    let mut captures = vec![(
        "connect-open.xml",
        run_nmap(
            &nmap,
            &[&["-sT", "-Pn", "-n", "-p", &ports][..], &stats].concat(),
            limit,
        ),
    )];
    captures.push((
        "service-scripts.xml",
        run_nmap(
            &nmap,
            &[
                &["-v", "-sT", "-sV", "-sC", "-Pn", "-n", "-p", &ports][..],
                &stats,
            ]
            .concat(),
            limit,
        ),
    ));
    captures.push((
        "slow-progress.xml",
        run_nmap(
            &nmap,
            &[
                &["-sT", "-Pn", "-n", "-p", "1-30", "--max-rate", "5"][..],
                &stats,
            ]
            .concat(),
            limit,
        ),
    ));
    captures.push((
        "two-groups-verbose.xml",
        run_nmap_targets(
            &nmap,
            &[
                &["-v", "-sT", "-n", "-p", "1-20", "--max-rate", "10"][..],
                &stats,
            ]
            .concat(),
            &["127.0.0.1", "127.0.0.1"],
            limit,
        ),
    ));
    for (name, run) in captures {
        assert!(run.success, "{name}: nmap failed: {}", run.stderr);
        std::fs::write(fixtures_dir().join(name), &run.stdout).expect("write fixture");
    }
}
