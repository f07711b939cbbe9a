//! Progress tracking from recorded nmap stdout fed in arbitrary chunks, from bare
//! `<taskprogress/>` lines, and the parser registry.

mod nmap_support;

use nmap_support::fixture;
use scanq::nmap::{
    NmapProgress, PROGRESS_PARSER_NAMES, Progress, ProgressParser, progress_parser,
    progress_parser_for_hosts,
};

const RECORDED: &[&str] = &[
    "connect-open.xml",
    "service-scripts.xml",
    "slow-progress.xml",
    "two-groups-verbose.xml",
    "no-hosts-up.xml",
    "os-and-scripts.xml",
];

/// Feeds `bytes` in chunks of random sizes (1..=max) and returns every reported progress.
fn feed_in_chunks(
    parser: &mut dyn ProgressParser,
    bytes: &[u8],
    rng: &mut fastrand::Rng,
) -> Vec<Progress> {
    let mut reports = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let max = if rng.bool() { 8 } else { 600 };
        let n = rng.usize(1..=max).min(rest.len());
        reports.extend(parser.feed(&rest[..n]));
        rest = &rest[n..];
    }
    reports
}

fn assert_never_backwards(reports: &[Progress], context: &str) {
    for pair in reports.windows(2) {
        assert!(
            pair[1].percent >= pair[0].percent,
            "{context}: went back from {} to {}",
            pair[0].percent,
            pair[1].percent
        );
    }
}

#[test]
fn recorded_runs_in_random_chunks_never_go_backwards_and_end_at_100() {
    let mut rng = fastrand::Rng::with_seed(0x5ca9);
    for name in RECORDED {
        let bytes = fixture(name);
        for round in 0..50 {
            let expected = if round % 2 == 0 {
                None
            } else {
                Some(1 + round % 3)
            };
            let mut parser = progress_parser_for_hosts("nmap", expected).expect("nmap parser");
            let reports = feed_in_chunks(parser.as_mut(), &bytes, &mut rng);
            let context = format!("{name} round {round}");
            assert_never_backwards(&reports, &context);
            let last = reports
                .last()
                .unwrap_or_else(|| panic!("{context}: no progress"));
            assert_eq!(last.percent, 100.0, "{context}");
            assert!(
                reports[..reports.len() - 1]
                    .iter()
                    .all(|p| p.percent < 100.0),
                "{context}: 100 only at the end"
            );
            assert!(reports.iter().all(|p| (0.0..=100.0).contains(&p.percent)));
        }
    }
}

#[test]
fn a_slow_connect_scan_reports_several_increasing_values_with_an_eta() {
    let mut parser = NmapProgress::new();
    let reports: Vec<_> = fixture("slow-progress.xml")
        .split_inclusive(|&b| b == b'\n')
        .filter_map(|line| parser.feed(line))
        .collect();
    let before_end: Vec<_> = reports.iter().filter(|p| p.percent < 100.0).collect();
    assert!(before_end.len() >= 4, "{reports:?}");
    assert!(
        before_end.windows(2).all(|w| w[1].percent > w[0].percent),
        "{reports:?}"
    );
    assert!(
        before_end
            .iter()
            .all(|p| p.phase.as_deref() == Some("Connect Scan"))
    );
    assert!(
        before_end.iter().all(|p| p.eta_sec.is_some()),
        "{reports:?}"
    );
}

#[test]
fn a_new_host_group_restarting_the_task_percent_does_not_go_backwards() {
    let bytes = fixture("two-groups-verbose.xml");
    for expected in [None, Some(2)] {
        let mut parser = progress_parser_for_hosts("nmap", expected).expect("nmap");
        let mut reports = Vec::new();
        let mut after_first_host = None;
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            reports.extend(parser.feed(line));
            if line.starts_with(b"</host>") && after_first_host.is_none() {
                after_first_host = reports.last().map(|p| p.percent);
            }
        }
        assert_never_backwards(&reports, &format!("{expected:?}"));
        let mid = after_first_host.expect("progress by the first host");
        if expected == Some(2) {
            assert_eq!(mid, 50.0, "one of two hosts done");
        }
        assert!(
            reports.iter().any(|p| p.percent > mid && p.percent < 100.0),
            "the second group still moves the bar: {reports:?}"
        );
    }
}

#[test]
fn pre_scan_scripts_do_not_count_as_progress() {
    let bytes = fixture("service-scripts.xml");
    let mut parser = NmapProgress::new();
    let mut before_port_scan = Vec::new();
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"<taskbegin task=\"Connect Scan\"") {
            break;
        }
        before_port_scan.extend(parser.feed(line));
    }
    assert!(!before_port_scan.is_empty(), "the NSE phase is reported");
    assert!(
        before_port_scan.iter().all(|p| p.percent == 0.0),
        "{before_port_scan:?}"
    );
    assert_eq!(before_port_scan[0].phase.as_deref(), Some("NSE"));
}

#[test]
fn bare_taskprogress_lines_without_a_document_are_understood() {
    let mut parser = progress_parser("nmap").expect("nmap");
    let mut reports = Vec::new();
    for (i, pct) in [12.5, 40.0, 30.0, 75.0, 100.0].iter().enumerate() {
        let line = format!(
            "<taskprogress task=\"Connect Scan\" time=\"{t}\" percent=\"{pct:.2}\" remaining=\"{r}\" etc=\"{e}\"/>\n",
            t = 1000 + i,
            r = 10 - i,
            e = 1010
        );
        // Split each line in two to cross a chunk boundary inside the element.
        let (a, b) = line.as_bytes().split_at(line.len() / 2);
        reports.extend(parser.feed(a));
        reports.extend(parser.feed(b));
    }
    assert_never_backwards(&reports, "bare lines");
    assert_eq!(
        reports.len(),
        4,
        "30% after 40% is not reported: {reports:?}"
    );
    assert_eq!(reports[0].eta_sec, Some(10));
    assert_eq!(reports[0].phase.as_deref(), Some("Connect Scan"));
    let last = reports.last().expect("last");
    assert!(last.percent < 100.0, "no end of run was seen: {last:?}");
    assert!(last.percent > reports[0].percent);
}

#[test]
fn an_eta_comes_from_etc_when_remaining_is_absent() {
    let mut parser = NmapProgress::new();
    let got = parser
        .feed(b"<taskprogress task=\"UDP Scan\" time=\"100\" percent=\"10\" etc=\"160\"/>")
        .expect("progress");
    assert_eq!(got.eta_sec, Some(60));
    assert_eq!(got.phase.as_deref(), Some("UDP Scan"));
}

#[test]
fn output_without_progress_tags_reports_nothing_and_keeps_no_buffer_growth() {
    let mut parser = NmapProgress::new();
    let script_output = format!("<script id=\"x\" output=\"{}\"/>", "y".repeat(2 << 20));
    assert_eq!(parser.feed(script_output.as_bytes()), None);
    assert_eq!(parser.feed(&vec![b'z'; 1 << 20]), None);
    let got = parser.feed(b"<taskprogress task=\"Connect Scan\" percent=\"50\"/>");
    assert!(got.is_some_and(|p| p.percent > 0.0));
}

#[test]
fn the_registry_knows_its_names_and_refuses_others() {
    for name in PROGRESS_PARSER_NAMES {
        assert!(progress_parser(name).is_some(), "{name}");
    }
    assert!(progress_parser("bogus").is_none());
    let mut lines = progress_parser("percent-lines").expect("lines");
    assert_eq!(
        lines.feed(b"progress 42.5\n").map(|p| p.percent),
        Some(42.5)
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use scanq::nmap::{PercentLines, parse_xml_bytes};

    proptest! {
        #[test]
        fn any_chunking_of_a_recorded_run_gives_the_same_final_progress(
            cuts in proptest::collection::vec(0usize..4000, 0..40),
        ) {
            let bytes = fixture("service-scripts.xml");
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % bytes.len()).collect();
            cuts.sort_unstable();
            let mut parser = NmapProgress::new();
            let mut reports = Vec::new();
            let mut start = 0;
            for cut in cuts.into_iter().chain([bytes.len()]) {
                reports.extend(parser.feed(&bytes[start..cut]));
                start = cut;
            }
            prop_assert!(reports.windows(2).all(|w| w[1].percent >= w[0].percent));
            prop_assert_eq!(reports.last().map(|p| p.percent), Some(100.0));
        }

        #[test]
        fn arbitrary_bytes_never_panic_or_move_progress_backwards(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..20),
        ) {
            let mut nmap = NmapProgress::new();
            let mut lines = PercentLines::new();
            let mut last = (0.0, 0.0);
            for chunk in &chunks {
                if let Some(p) = nmap.feed(chunk) {
                    prop_assert!(p.percent >= last.0);
                    last.0 = p.percent;
                }
                if let Some(p) = lines.feed(chunk) {
                    prop_assert!(p.percent >= last.1);
                    last.1 = p.percent;
                }
            }
            let _ = parse_xml_bytes(&chunks.concat());
        }
    }
}
