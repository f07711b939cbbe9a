//! The merge on real nmap runs of loopback ranges (127.1.0.0/27, never anything else), read
//! back by scanq's parser and by nmap's own `ndiff`.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

use super::*;
use crate::domain::JobDocument;
use crate::nmap::{diff_reports, finished_report, to_csv};

mod partial;

/// nmap's XML for `args` as the worker runs it (`-oX -`, verbose task events).
fn nmap(args: &[&str]) -> String {
    let out = Command::new("nmap")
        .args(["-n", "-v", "--stats-every", "1s", "-oX", "-"])
        .args(args)
        .output()
        .expect("nmap is installed (scripts/install-deps.sh)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A succeeded chunk's result as the worker stores it: stdout and the report parsed from it.
fn ran(xml: String) -> JobResult {
    let report = parse_xml_bytes(xml.as_bytes()).unwrap();
    JobResult {
        exit_code: Some(0),
        parsed: Some(serde_json::to_value(report).unwrap()),
        command: vec!["nmap".into(), "-oX".into(), "-".into()],
        stdout: xml,
        ..JobResult::default()
    }
}

fn chunk<'a>(index: u32, target: &'a str, result: Option<&'a JobResult>) -> ChunkOutcome<'a> {
    let state = if result.is_some() {
        JobState::Succeeded
    } else {
        JobState::Failed
    };
    ChunkOutcome {
        index,
        target,
        state,
        result,
    }
}

fn report(result: &JobResult) -> NmapReport {
    serde_json::from_value(result.parsed.clone().unwrap()).unwrap()
}

fn addrs(report: &NmapReport) -> Vec<String> {
    report
        .hosts
        .iter()
        .map(|h| h.ip().unwrap().to_owned())
        .collect()
}

fn range(last_octets: std::ops::Range<u8>) -> Vec<String> {
    last_octets.map(|i| format!("127.1.0.{i}")).collect()
}

/// Ping sweeps of 127.1.0.0/28, 127.1.0.16/28 and 127.1.0.32/29, in chunk order.
fn sweeps() -> Vec<JobResult> {
    ["127.1.0.0/28", "127.1.0.16/28", "127.1.0.32/29"]
        .iter()
        .map(|t| ran(nmap(&["-sn", t])))
        .collect()
}

const SWEEP_TARGETS: [&str; 3] = ["127.1.0.0/28", "127.1.0.16/28", "127.1.0.32/29"];

#[test]
fn chunk_runs_merge_into_one_nmap_run_with_every_host_in_chunk_order() {
    // Arrange: the chunks arrive out of order.
    let runs = sweeps();
    let chunks: Vec<ChunkOutcome<'_>> = (0..3)
        .rev()
        .map(|i| chunk(i, SWEEP_TARGETS[i as usize], Some(&runs[i as usize])))
        .collect();

    // Act
    let merged = merge_chunks(&chunks, usize::MAX);

    // Assert: one document, read back exactly as `parsed` says.
    let xml = &merged.stdout;
    for once in [
        "<?xml ",
        "<!DOCTYPE nmaprun>",
        "<nmaprun ",
        "</nmaprun>",
        "<runstats>",
    ] {
        assert_eq!(xml.matches(once).count(), 1, "{once}:\n{xml}");
    }
    assert!(
        !xml.contains("<taskbegin") && !xml.contains("<!--"),
        "{xml}"
    );
    let reread = parse_xml_bytes(xml.as_bytes()).unwrap();
    assert_eq!(reread, report(&merged));
    assert!(!reread.partial);
    assert_eq!(addrs(&reread), range(0..40));
    let stats = reread.stats.unwrap();
    assert_eq!(
        (stats.hosts_up, stats.hosts_down, stats.hosts_total),
        (40, 0, 40)
    );
    assert_eq!(stats.exit.as_deref(), Some("success"));
    let starts: Vec<u64> = runs
        .iter()
        .map(|r| stream::read_header(&r.stdout).unwrap().start.unwrap())
        .collect();
    let header = stream::read_header(xml).unwrap();
    assert_eq!(header.start, starts.iter().min().copied());
    let finish = runs
        .iter()
        .filter_map(|r| report(r).stats?.finished_time)
        .max();
    assert_eq!(stats.finished_time, finish);
    assert!(
        stats
            .summary
            .unwrap()
            .contains("40 IP addresses (40 hosts up)")
    );
    // Each host element is the chunk's own, byte for byte.
    let first_host = &runs[1].stdout[runs[1].stdout.find("<host").unwrap()..];
    let first_host = &first_host[..first_host.find("</host>").unwrap() + 7];
    assert!(xml.contains(first_host));
    assert_eq!(
        (merged.exit_code, merged.partial, merged.truncated_stdout),
        (Some(0), false, false)
    );
    assert_eq!(merged.command, runs[0].command);
    assert!(merged.stderr.is_empty(), "{}", merged.stderr);
}

/// `xml` with the attribute value that follows the first `before` (e.g. `<finished time="`)
/// replaced.
fn set_value(xml: &str, before: &str, value: &str) -> String {
    let at = xml.find(before).unwrap() + before.len();
    let end = at + xml[at..].find('"').unwrap();
    format!("{}{value}{}", &xml[..at], &xml[end..])
}

#[test]
fn the_run_spans_the_earliest_start_to_the_latest_finish() {
    // Arrange: chunk 1 started 100 s before chunk 0; chunk 0 finished 50 s after its own run.
    let a = nmap(&["-sn", "127.1.0.0/30"]);
    let b = nmap(&["-sn", "127.1.0.4/30"]);
    let start_b: u64 = stream::read_header(&b).unwrap().start.unwrap() - 100;
    let b = set_value(&b, " start=\"", &start_b.to_string());
    let b = set_value(&b, " startstr=\"", "early &amp; first");
    let finished_a = report(&ran(a.clone()))
        .stats
        .unwrap()
        .finished_time
        .unwrap()
        + 50;
    let a = set_value(&a, "<finished time=\"", &finished_a.to_string());
    let (a, b) = (ran(a), ran(b));

    // Act
    let merged = merge_chunks(
        &[
            chunk(0, "127.1.0.0/30", Some(&a)),
            chunk(1, "127.1.0.4/30", Some(&b)),
        ],
        usize::MAX,
    );

    // Assert: chunk 0's header, chunk 1's start, chunk 0's finish.
    let header = stream::read_header(&merged.stdout).unwrap();
    assert_eq!(header.start, Some(start_b));
    assert_eq!(header.attr("startstr"), Some("early &amp; first"));
    assert!(header.attr("args").unwrap().ends_with("127.1.0.0/30"));
    let stats = report(&merged).stats.unwrap();
    assert_eq!(stats.finished_time, Some(finished_a));
    assert_eq!(stats.elapsed_sec, Some((finished_a - start_b) as f64));
    assert_eq!(
        parse_xml_bytes(merged.stdout.as_bytes()).unwrap(),
        report(&merged)
    );
}

/// Hosts and `port/protocol` specs that ndiff's text output marks with `-` or `+`
/// (as in `tests/diff.rs`).
fn ndiff_changes(out: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut hosts = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for line in out.lines() {
        let body = line.get(1..).unwrap_or("");
        if let Some(host) = body.strip_suffix(':')
            && !body.contains(' ')
        {
            hosts.insert(host.to_owned());
        }
        if line.starts_with(['-', '+'])
            && let Some(spec) = body.split_whitespace().next()
            && spec.contains('/')
            && spec.split('/').next().unwrap().parse::<u16>().is_ok()
        {
            ports.insert(spec.to_owned());
        }
    }
    (hosts, ports)
}

/// A file in the temp dir, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> Self {
        let path = std::env::temp_dir().join(format!("scanq-merge-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn ndiff(a: &TempFile, b: &TempFile) -> (Option<i32>, String) {
    let out = Command::new("ndiff")
        .arg(&a.0)
        .arg(&b.0)
        .output()
        .expect("ndiff is installed (scripts/install-deps.sh)");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into(),
    )
}

/// Connect scans of port `port` on 127.1.0.0/29 and 127.1.0.8/29, merged.
fn connect_scan(port: u16) -> JobResult {
    let p = port.to_string();
    let runs: Vec<JobResult> = ["127.1.0.0/29", "127.1.0.8/29"]
        .iter()
        .map(|t| ran(nmap(&["-sT", "-Pn", "-p", &p, t])))
        .collect();
    let chunks = [
        chunk(0, "127.1.0.0/29", Some(&runs[0])),
        chunk(1, "127.1.0.8/29", Some(&runs[1])),
    ];
    merge_chunks(&chunks, usize::MAX)
}

#[test]
fn ndiff_reads_merged_runs_and_sees_what_scanq_diff_sees() {
    // Arrange: 127.1.0.3 listens in both scans; 127.1.0.10 (second chunk) only in the later one.
    let first = TcpListener::bind(("127.1.0.3", 0)).unwrap();
    let port = first.local_addr().unwrap().port();
    let a = connect_scan(port);
    let second = TcpListener::bind(("127.1.0.10", port)).unwrap();
    let b = connect_scan(port);
    drop((first, second));
    let (fa, fb) = (
        TempFile::new("a.xml", &a.stdout),
        TempFile::new("b.xml", &b.stdout),
    );

    // Act
    let (same_code, same_text) = ndiff(&fa, &fa);
    let (code, text) = ndiff(&fa, &fb);
    let diff = diff_reports(&report(&a), &report(&b));

    // Assert
    assert_eq!(same_code, Some(0), "ndiff a a:\n{same_text}");
    assert_eq!(ndiff_changes(&same_text), Default::default(), "{same_text}");
    assert!(diff_reports(&report(&a), &report(&a)).is_empty());
    assert_eq!(code, Some(1), "ndiff saw no change:\n{text}");
    let (nd_hosts, nd_ports) = ndiff_changes(&text);
    let hosts: BTreeSet<String> = diff.hosts.iter().map(|h| h.host.clone()).collect();
    let ports: BTreeSet<String> = diff
        .hosts
        .iter()
        .flat_map(|h| &h.ports)
        .map(|p| format!("{}/{}", p.port, p.protocol))
        .collect();
    assert_eq!(hosts, nd_hosts, "ndiff:\n{text}\nscanq: {diff:?}");
    assert_eq!(ports, nd_ports, "ndiff:\n{text}\nscanq: {diff:?}");
    assert_eq!(hosts, BTreeSet::from(["127.1.0.10".to_owned()]));
    assert_eq!(ports, BTreeSet::from([format!("{port}/tcp")]));
    assert_eq!(diff.summary.ports_opened, 1);
    assert_eq!(addrs(&report(&b)), range(0..16));
}
