//! Partial, cut and non-nmap results: what a parent keeps when chunks fail, outputs are cut or
//! the tool writes no nmap run.

use super::*;

#[test]
fn a_failed_chunk_makes_a_partial_result_that_still_exports() {
    // Arrange: chunk 1 failed with no result; chunk 2 failed with nmap's exit code 2.
    let listener = TcpListener::bind(("127.1.0.2", 0)).unwrap();
    let p = listener.local_addr().unwrap().port().to_string();
    let ok0 = ran(nmap(&["-sT", "-Pn", "-p", &p, "127.1.0.0/30"]));
    let ok3 = ran(nmap(&["-sT", "-Pn", "-p", &p, "127.1.0.12/30"]));
    let bad = JobResult {
        exit_code: Some(2),
        stderr: "Failed to resolve something\nQUITTING!\n".into(),
        ..JobResult::default()
    };
    let chunks = [
        chunk(0, "127.1.0.0/30", Some(&ok0)),
        chunk(1, "127.1.0.4/30", None),
        ChunkOutcome {
            state: JobState::Failed,
            ..chunk(2, "127.1.0.8/30", Some(&bad))
        },
        chunk(3, "127.1.0.12/30", Some(&ok3)),
    ];

    // Act
    let merged = merge_chunks(&chunks, usize::MAX);

    // Assert: the others' hosts are kept and the run says it ended in error.
    assert!(merged.partial);
    assert_eq!(
        merged.exit_code,
        Some(1),
        "the first failing chunk had no result"
    );
    let parsed = report(&merged);
    assert_eq!(parse_xml_bytes(merged.stdout.as_bytes()).unwrap(), parsed);
    let mut expected = range(0..4);
    expected.extend(range(12..16));
    assert_eq!(addrs(&parsed), expected);
    let stats = parsed.stats.unwrap();
    assert_eq!(stats.exit.as_deref(), Some("error"));
    assert_eq!(
        stats.error_message.as_deref(),
        Some(
            "2 of 4 chunks did not succeed; their hosts are missing (first: chunk 1, 127.1.0.4/30)"
        )
    );
    assert_eq!(stats.hosts_total, 8);
    assert!(
        merged
            .stdout
            .contains(r#"exit="error" errormsg="2 of 4 chunks"#)
    );
    for line in [
        "[merge] chunk 1 (127.1.0.4/30) is failed: its hosts are missing",
        "[merge] chunk 2 (127.1.0.8/30) is failed: its hosts are missing",
        "[chunk 2] QUITTING!",
    ] {
        assert!(
            merged.stderr.lines().any(|l| l == line),
            "{line}\n{}",
            merged.stderr
        );
    }
    let json = serde_json::to_value(&merged).unwrap();
    assert_eq!(json["partial"], true);
    assert!(serde_json::to_value(&ok0).unwrap().get("partial").is_none());

    // The failed parent's hosts are exportable; other failed or unfinished jobs are not.
    let mut parent = job_document(JobState::Failed, Some(merged.clone()));
    let exported = finished_report(&parent).unwrap();
    let csv = to_csv(&exported);
    assert!(csv.contains(&format!("127.1.0.2,{p},tcp,open,")), "{csv}");
    assert!(
        csv.contains(&format!("127.1.0.13,{p},tcp,closed,")),
        "{csv}"
    );
    assert!(!csv.contains("127.1.0.5,"), "{csv}");
    parent.state = JobState::Cancelled;
    assert!(finished_report(&parent).is_err());
    let plain_failure = job_document(JobState::Failed, Some(ok0.clone()));
    let err = finished_report(&plain_failure).unwrap_err().to_string();
    assert!(err.contains("is failed; only succeeded jobs"), "{err}");
    assert!(finished_report(&job_document(JobState::Running, None)).is_err());

    // The first failing chunk's own exit code when it has one.
    let chunks = [chunks[0], chunks[2], chunks[3]];
    assert_eq!(merge_chunks(&chunks, usize::MAX).exit_code, Some(2));
    drop(listener);
}

fn job_document(state: JobState, result: Option<JobResult>) -> JobDocument {
    let h: std::collections::HashMap<String, String> = [
        ("cid", "big-1"),
        ("tool", "nmap"),
        ("target", "127.1.0.0/28"),
        ("state", state.as_str()),
        ("created_ms", "1000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let mut doc = JobDocument::from_hash(&h).unwrap();
    doc.result = result;
    doc
}

#[test]
fn no_chunk_that_succeeded_leaves_no_document_and_no_report() {
    let chunks = [
        chunk(0, "127.1.0.0/30", None),
        chunk(1, "127.1.0.4/30", None),
    ];
    let merged = merge_chunks(&chunks, usize::MAX);
    assert!(merged.partial && merged.stdout.is_empty() && merged.parsed.is_none());
    assert_eq!(merged.exit_code, Some(1));
    let parent = job_document(JobState::Failed, Some(merged));
    assert!(matches!(
        finished_report(&parent),
        Err(crate::nmap::NoReport::NotNmap { .. })
    ));
}

#[test]
fn a_small_max_stdout_keeps_the_hosts_that_fit_and_parsed_keeps_all() {
    // Arrange
    let runs = sweeps();
    let chunks: Vec<ChunkOutcome<'_>> = (0..3)
        .map(|i| chunk(i, SWEEP_TARGETS[i as usize], Some(&runs[i as usize])))
        .collect();
    let full = merge_chunks(&chunks, usize::MAX);
    let max = full.stdout.len() - 1500;

    // Act
    let merged = merge_chunks(&chunks, max);

    // Assert: a complete, smaller document with the first hosts; parsed untouched.
    assert!(merged.truncated_stdout && !merged.partial);
    assert!(merged.stdout.len() <= max);
    let reread = parse_xml_bytes(merged.stdout.as_bytes()).unwrap();
    assert!(!reread.partial);
    let kept = addrs(&reread);
    assert!(!kept.is_empty() && kept.len() < 40, "{}", kept.len());
    assert_eq!(kept, range(0..kept.len() as u8));
    assert_eq!(merged.parsed, full.parsed);
    let note = format!(
        "[merge] result.xml holds the first {} of 40 hosts",
        kept.len()
    );
    assert!(merged.stderr.starts_with(&note), "{}", merged.stderr);

    // Not even the envelope fits: no document rather than a broken one.
    let tiny = merge_chunks(&chunks, 64);
    assert!(tiny.stdout.is_empty() && tiny.truncated_stdout);
    assert_eq!(tiny.parsed, full.parsed);
    assert!(
        tiny.stderr.contains("result.xml is empty"),
        "{}",
        tiny.stderr
    );
}

#[test]
fn a_chunk_cut_by_its_stdout_cap_gives_the_hosts_before_the_cut() {
    // Arrange: chunk 1's stdout stops inside its third host, as the worker's cap leaves it.
    let whole = nmap(&["-sn", "127.1.0.16/29"]);
    let third = whole.match_indices("<host>").nth(2).unwrap().0;
    let mut cut = ran(whole[..third + 40].to_owned());
    cut.truncated_stdout = true;
    let ok = ran(nmap(&["-sn", "127.1.0.0/29"]));
    let chunks = [
        chunk(0, "127.1.0.0/29", Some(&ok)),
        chunk(1, "127.1.0.16/29", Some(&cut)),
    ];

    // Act
    let merged = merge_chunks(&chunks, usize::MAX);

    // Assert
    let parsed = report(&merged);
    assert_eq!(parse_xml_bytes(merged.stdout.as_bytes()).unwrap(), parsed);
    let mut expected = range(0..8);
    expected.extend(range(16..18));
    assert_eq!(addrs(&parsed), expected);
    assert!(merged.truncated_stdout && !merged.partial);
    assert!(
        merged
            .stderr
            .contains("chunk 1 (127.1.0.16/29): its output was cut")
    );
}

#[test]
fn hosthints_and_task_events_are_dropped_and_hosts_kept() {
    // nmap writes <hosthint> only for raw discovery (root, not loopback): one is added by hand,
    // in nmap's shape, before the first host of a real run.
    let mut xml = nmap(&["-sT", "-Pn", "-p", "1", "127.1.0.0/30"]);
    let first = xml.find("<host ").unwrap();
    xml.insert_str(
        first,
        "<hosthint><status state=\"up\" reason=\"arp-response\" reason_ttl=\"0\"/>\n\
         <address addr=\"127.1.0.0\" addrtype=\"ipv4\"/>\n<hostnames>\n</hostnames>\n</hosthint>\n",
    );
    assert!(xml.contains("<taskbegin"));
    let run = ran(xml);
    let merged = merge_chunks(&[chunk(0, "127.1.0.0/30", Some(&run))], usize::MAX);
    for dropped in ["<hosthint", "<taskbegin", "<taskend"] {
        assert!(!merged.stdout.contains(dropped), "{dropped}");
    }
    assert!(merged.stdout.contains("<scaninfo "));
    assert_eq!(addrs(&report(&merged)), range(0..4));
    assert_eq!(
        parse_xml_bytes(merged.stdout.as_bytes()).unwrap(),
        report(&merged)
    );
}

#[test]
fn chunk_stderr_is_prefixed_and_bounded() {
    let noisy = JobResult {
        stderr: "warning: something\n".repeat(10_000),
        ..ran(nmap(&["-sn", "127.1.0.0/30"]))
    };
    let merged = merge_chunks(&[chunk(7, "127.1.0.0/30", Some(&noisy))], usize::MAX);
    assert!(merged.stderr.len() <= MERGED_STDERR_MAX);
    assert!(merged.truncated_stderr);
    assert!(merged.stderr.starts_with("[chunk 7] warning: something\n"));
    assert!(
        merged
            .stderr
            .ends_with("[merge] stderr cut: the merged result keeps at most 64 KiB\n")
    );
}

#[test]
fn a_slash_16_in_256_chunks_merges_into_one_document_of_65536_hosts() {
    // The same real /24 sweep stands for each of the 256 chunks (duplicate addresses do not
    // matter to the merge; speed and memory are measured by the benchmark tool, not here).
    let run = ran(nmap(&["-sn", "127.1.0.0/24"]));
    let chunks: Vec<ChunkOutcome<'_>> = (0..256)
        .map(|i| chunk(i, "127.1.0.0/24", Some(&run)))
        .collect();
    let merged = merge_chunks(&chunks, 64 << 20);
    let reread = parse_xml_bytes(merged.stdout.as_bytes()).unwrap();
    assert_eq!(reread.hosts.len(), 65_536);
    assert_eq!(reread.stats.as_ref().unwrap().hosts_total, 65_536);
    assert_eq!(reread, report(&merged));
    assert!(!merged.truncated_stdout);
}

#[test]
fn a_tool_without_nmap_output_joins_its_chunks_outputs_and_is_complete_when_all_succeeded() {
    let out = |s: &str| JobResult {
        exit_code: Some(0),
        stdout: s.to_owned(),
        ..JobResult::default()
    };
    let (a, b) = (out("scanned 127.1.0.0/30\n"), out("scanned 127.1.0.4/30\n"));
    let chunks = [
        chunk(0, "127.1.0.0/30", Some(&a)),
        chunk(1, "127.1.0.4/30", Some(&b)),
    ];
    let merged = merge_chunks(&chunks, usize::MAX);
    assert!(!merged.partial, "{}", merged.stderr);
    assert_eq!(merged.exit_code, Some(0));
    assert_eq!(
        merged.stdout,
        "scanned 127.1.0.0/30\nscanned 127.1.0.4/30\n"
    );
    assert!(merged.parsed.is_none());
    // One that failed is missing, and says so.
    let failed = ChunkOutcome {
        state: JobState::Failed,
        ..chunk(1, "127.1.0.4/30", None)
    };
    let merged = merge_chunks(&[chunk(0, "127.1.0.0/30", Some(&a)), failed], usize::MAX);
    assert!(merged.partial);
    assert_eq!(merged.stdout, "scanned 127.1.0.0/30\n");
}
