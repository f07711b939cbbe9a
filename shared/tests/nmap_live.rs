//! Runs the real nmap (unprivileged connect scans, 127.0.0.1 only) and checks what scanq
//! makes of its output. Skipped with a message when nmap is not installed.

mod nmap_support;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nmap_support::{closed_port, nmap_or_skip, run_nmap, run_nmap_streaming};
use scanq::nmap::{NmapProgress, Progress, ProgressParser, parse_xml_bytes};

#[test]
fn real_nmap_finds_the_ports_this_test_opened_on_localhost() {
    let Some(nmap) = nmap_or_skip("real_nmap_finds_the_ports_this_test_opened_on_localhost") else {
        return;
    };
    let first = TcpListener::bind("127.0.0.1:0").expect("bind");
    let second = TcpListener::bind("127.0.0.1:0").expect("bind");
    let open = [
        first.local_addr().unwrap().port(),
        second.local_addr().unwrap().port(),
    ];
    let closed = closed_port();
    let ports = format!("{},{},{closed}", open[0], open[1]);

    let run = run_nmap(
        &nmap,
        &["-sT", "-Pn", "-n", "-p", &ports, "--stats-every", "1s"],
        Duration::from_secs(60),
    );

    assert!(run.success, "nmap failed: {}", run.stderr);
    let report = parse_xml_bytes(&run.stdout).expect("parse nmap output");
    assert!(!report.partial);
    assert_eq!(report.hosts.len(), 1);
    let host = &report.hosts[0];
    assert_eq!(host.ip(), Some("127.0.0.1"));
    for port in open {
        assert_eq!(
            host.port("tcp", port).map(|p| p.state.as_str()),
            Some("open"),
            "{port}"
        );
    }
    assert_eq!(
        host.port("tcp", closed).map(|p| p.state.as_str()),
        Some("closed")
    );
    drop((first, second));
}

/// About 6 s: 30 closed ports at `--max-rate 5`, with a progress element every second.
#[test]
fn a_slow_real_scan_reports_increasing_progress_while_it_runs() {
    let Some(nmap) = nmap_or_skip("a_slow_real_scan_reports_increasing_progress_while_it_runs")
    else {
        return;
    };
    let reports: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let sink = Arc::clone(&reports);
    let mut parser = NmapProgress::with_expected_hosts(1);

    let run = run_nmap_streaming(
        &nmap,
        &[
            "-sT",
            "-Pn",
            "-n",
            "-p",
            "1-30",
            "--max-rate",
            "5",
            "--stats-every",
            "1s",
        ],
        &["127.0.0.1"],
        Duration::from_secs(60),
        move |chunk| sink.lock().unwrap().extend(parser.feed(chunk)),
    );

    assert!(run.success, "nmap failed: {}", run.stderr);
    let reports = reports.lock().unwrap().clone();
    let running: Vec<f64> = reports
        .iter()
        .map(|p| p.percent)
        .filter(|p| *p < 100.0)
        .collect();
    assert!(
        running.len() >= 2,
        "at least two values before the end: {reports:?}"
    );
    assert!(running.windows(2).all(|w| w[1] > w[0]), "{reports:?}");
    assert_eq!(reports.last().map(|p| p.percent), Some(100.0));
    let report = parse_xml_bytes(&run.stdout).expect("parse");
    let host = &report.hosts[0];
    let folded: u32 = host.extraports.iter().map(|e| e.count).sum();
    assert_eq!(host.ports.len() as u32 + folded, 30, "-p 1-30");
}
