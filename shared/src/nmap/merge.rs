//! One nmap result from the chunks of a big scan (DESIGN §12): [`merge_chunks`] turns the
//! finished chunks of a parent job into the parent's `result`, so that `result.xml`, CSV and
//! `diff` work on the parent as on any job.
//!
//! - `stdout` is one nmap XML document: the first contributing chunk's prolog, its `<nmaprun>`
//!   attributes with the earliest chunk's `start`/`startstr`, its `scaninfo`/`verbose`/
//!   `debugging`; then every chunk's `<host>` elements in chunk order, byte for byte; then one
//!   `<runstats>` summed over the chunks. The text is streamed chunk by chunk into one output
//!   buffer ([`stream`]); nothing is parsed into a tree or built twice.
//! - `parsed` is built from the chunks' parsed reports (hosts concatenated in chunk order) and
//!   equals `parse_xml_bytes(stdout)` whenever `stdout` was not cut by `max_stdout`.
//! - Only chunks that succeeded and have an nmap report contribute hosts. Any other chunk makes
//!   the result `partial`, its exit code the result's, and `<finished exit="error">` say so.
//!
//! The rules are written down for operators in `docs/merged-results.md`.

mod stream;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt::Write as _;

use quick_xml::escape::escape;
use serde_json::Value;

use super::{NmapReport, RunStats, parse_xml_bytes};
use crate::domain::{JobResult, JobState};
use stream::{Copied, Header};

/// One chunk of a big scan as the merge sees it.
#[derive(Debug, Clone, Copy)]
pub struct ChunkOutcome<'a> {
    /// The chunk's position in the parent (hosts are merged in this order).
    pub index: u32,
    /// The addresses the chunk scanned, e.g. `10.1.4.0/24` (named in notes).
    pub target: &'a str,
    pub state: JobState,
    /// The chunk's result; `None` when it never produced one.
    pub result: Option<&'a JobResult>,
}

/// The most bytes of `stderr` a merged result keeps (notes first, then the chunks' lines).
pub const MERGED_STDERR_MAX: usize = 64 * 1024;

/// A chunk whose hosts are in the merge.
struct Part<'a> {
    result: &'a JobResult,
    header: Option<Header<'a>>,
    report: Cow<'a, Value>,
}

impl Part<'_> {
    fn hosts(&self) -> &[Value] {
        self.report
            .get("hosts")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }
}

/// The parent's result from its finished chunks; `max_stdout` bounds the merged XML (hosts
/// that do not fit are left out of `stdout`, never out of `parsed`).
pub fn merge_chunks(chunks: &[ChunkOutcome<'_>], max_stdout: usize) -> JobResult {
    let mut order: Vec<&ChunkOutcome<'_>> = chunks.iter().collect();
    order.sort_by_key(|c| c.index);
    let mut notes = Vec::new();
    let mut parts = Vec::new();
    let mut missing = Vec::new();
    // A tool whose output is no nmap run (no chunk has a report): the chunks' outputs are
    // joined instead, and a chunk is missing only when it did not succeed.
    let any_report = order
        .iter()
        .any(|c| c.state == JobState::Succeeded && c.result.and_then(report_of).is_some());
    let mut plain = Vec::new();
    for &chunk in &order {
        let succeeded = chunk.state == JobState::Succeeded;
        if succeeded && !any_report {
            if let Some(r) = chunk.result {
                plain.push(r);
            }
            continue;
        }
        match chunk
            .result
            .filter(|_| succeeded)
            .and_then(|r| Some((r, report_of(r)?)))
        {
            Some((result, report)) => {
                if result.truncated_stdout {
                    notes.push(format!(
                        "[merge] chunk {} ({}): its output was cut by the stdout cap; hosts after the cut are missing",
                        chunk.index, chunk.target
                    ));
                }
                parts.push(Part {
                    result,
                    header: stream::read_header(&result.stdout),
                    report,
                });
            }
            None => {
                let why = if succeeded {
                    "has no nmap report".to_owned()
                } else {
                    format!("is {}", chunk.state)
                };
                notes.push(format!(
                    "[merge] chunk {} ({}) {why}: its hosts are missing",
                    chunk.index, chunk.target
                ));
                missing.push(chunk);
            }
        }
    }
    let error = missing.first().map(|first| {
        format!(
            "{} of {} chunks did not succeed; their hosts are missing (first: chunk {}, {})",
            missing.len(),
            order.len(),
            first.index,
            first.target
        )
    });
    let stats = merged_stats(&parts, error);
    let mut truncated_stdout = parts.iter().any(|p| p.result.truncated_stdout);
    let stdout = match parts.iter().find_map(|p| p.header.as_ref()) {
        Some(first) => {
            let (xml, cut) = write_xml(first, &parts, &stats, max_stdout, &mut notes);
            truncated_stdout |= cut;
            xml
        }
        None => {
            let mut out = String::new();
            for r in &plain {
                if out.len() + r.stdout.len() > max_stdout {
                    truncated_stdout = true;
                    break;
                }
                out.push_str(&r.stdout);
            }
            out
        }
    };
    let parsed = merged_report(&parts, stats);
    let (stderr, truncated_stderr) = merged_stderr(&notes, &order);
    let failed_code = missing.first().map(|c| {
        c.result
            .and_then(|r| r.exit_code)
            .filter(|&c| c != 0)
            .unwrap_or(1)
    });
    JobResult {
        exit_code: Some(failed_code.unwrap_or(0)),
        stdout,
        stderr,
        truncated_stdout,
        truncated_stderr,
        timed_out: order.iter().any(|c| c.result.is_some_and(|r| r.timed_out)),
        parsed,
        command: order
            .iter()
            .filter_map(|c| c.result)
            .find(|r| !r.command.is_empty())
            .map(|r| r.command.clone())
            .unwrap_or_default(),
        confinement: None,
        partial: !missing.is_empty(),
    }
}

/// A succeeded chunk's report: its stored `parsed`, else its stdout parsed again.
fn report_of(result: &JobResult) -> Option<Cow<'_, Value>> {
    if let Some(v) = result.parsed.as_ref().filter(|v| v["hosts"].is_array()) {
        return Some(Cow::Borrowed(v));
    }
    let report = parse_xml_bytes(result.stdout.as_bytes()).ok()?;
    serde_json::to_value(report).ok().map(Cow::Owned)
}

/// A chunk's run stats, or counts of its hosts when its run was cut before `<runstats>`.
fn stats_of(part: &Part<'_>) -> RunStats {
    if let Some(stats) = part
        .report
        .get("stats")
        .and_then(|s| serde_json::from_value::<RunStats>(s.clone()).ok())
    {
        return stats;
    }
    let total = part.hosts().len();
    let up = part
        .hosts()
        .iter()
        .filter(|h| h["status"]["state"] == "up")
        .count();
    RunStats {
        hosts_up: u32::try_from(up).unwrap_or(u32::MAX),
        hosts_down: u32::try_from(total - up).unwrap_or(u32::MAX),
        hosts_total: u32::try_from(total).unwrap_or(u32::MAX),
        ..RunStats::default()
    }
}

/// The earliest `<nmaprun start>` of the contributing chunks, with the header that has it.
fn earliest<'h>(parts: &'h [Part<'_>]) -> Option<(u64, &'h Header<'h>)> {
    parts
        .iter()
        .filter_map(|p| p.header.as_ref())
        .filter_map(|h| Some((h.start?, h)))
        .min_by_key(|(start, _)| *start)
}

/// One `<runstats>`: the latest finish, elapsed from the earliest start (at least the longest
/// chunk's own elapsed), host counts summed; `exit="error"` with `error` when partial.
fn merged_stats(parts: &[Part<'_>], error: Option<String>) -> RunStats {
    let each: Vec<RunStats> = parts.iter().map(stats_of).collect();
    let start = earliest(parts).map(|(s, _)| s);
    let finished = each.iter().filter_map(|s| s.finished_time).max().or(start);
    let longest = each
        .iter()
        .filter_map(|s| s.elapsed_sec)
        .fold(0.0, f64::max);
    let span = match (finished, start) {
        (Some(f), Some(s)) => f.saturating_sub(s) as f64,
        _ => 0.0,
    };
    // As nmap prints it (two decimals), so the XML and `parsed` hold the same number.
    let elapsed = format!("{:.2}", span.max(longest)).parse().unwrap_or(0.0);
    let sum = |f: fn(&RunStats) -> u32| each.iter().map(f).fold(0u32, u32::saturating_add);
    let (up, down, total) = (
        sum(|s| s.hosts_up),
        sum(|s| s.hosts_down),
        sum(|s| s.hosts_total),
    );
    RunStats {
        finished_time: finished,
        elapsed_sec: Some(elapsed),
        summary: finished.map(|t| summary(t, total, up, elapsed)),
        exit: Some(if error.is_some() { "error" } else { "success" }.to_owned()),
        error_message: error,
        hosts_up: up,
        hosts_down: down,
        hosts_total: total,
    }
}

/// nmap's own summary line, e.g. `Nmap done at Sat Dec  5 01:57:15 2026; 32 IP addresses
/// (32 hosts up) scanned in 0.05 seconds` (UTC).
fn summary(finished: u64, total: u32, up: u32, elapsed: f64) -> String {
    let plural = |n: u32, one: &'static str, many: &'static str| if n == 1 { one } else { many };
    format!(
        "Nmap done at {}; {total} IP {} ({up} {} up) scanned in {elapsed:.2} seconds",
        timestr(finished),
        plural(total, "address", "addresses"),
        plural(up, "host", "hosts"),
    )
}

/// A Unix time as nmap's `timestr` (`ctime` form), in UTC.
fn timestr(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map(|t| t.format("%a %b %e %H:%M:%S %Y").to_string())
        .unwrap_or_default()
}

/// The merged document, within `max_stdout` bytes; true when hosts were left out.
fn write_xml(
    first: &Header<'_>,
    parts: &[Part<'_>],
    stats: &RunStats,
    max_stdout: usize,
    notes: &mut Vec<String>,
) -> (String, bool) {
    let head = head(first, earliest(parts).map(|(_, h)| h));
    let tail = tail(stats);
    let total: usize = parts.iter().map(|p| p.hosts().len()).sum();
    if head.len() + tail.len() > max_stdout {
        notes.push(format!(
            "[merge] result.xml is empty: even a document without hosts would pass max_stdout ({max_stdout} bytes); result.parsed holds all {total} hosts"
        ));
        return (String::new(), true);
    }
    let xml_bytes: usize = parts.iter().map(|p| p.result.stdout.len()).sum();
    let mut out = String::with_capacity(max_stdout.min(head.len() + xml_bytes + tail.len()));
    out.push_str(&head);
    let limit = max_stdout - tail.len();
    let mut kept = 0;
    let mut full = false;
    for part in parts {
        if stream::copy_hosts(&part.result.stdout, &mut out, limit, &mut kept) == Copied::Full {
            full = true;
            break;
        }
    }
    out.push_str(&tail);
    if full {
        notes.push(format!(
            "[merge] result.xml holds the first {kept} of {total} hosts: the rest would pass max_stdout ({max_stdout} bytes); result.parsed holds them all"
        ));
    }
    (out, full)
}

/// Prolog, `<nmaprun …>` (the earliest chunk's `start`/`startstr`) and preamble.
fn head(first: &Header<'_>, earliest: Option<&Header<'_>>) -> String {
    let mut out = String::new();
    for item in &first.prolog {
        out.push_str(item);
        out.push('\n');
    }
    out.push_str("<nmaprun");
    for (key, value) in &first.attrs {
        let value = match (key.as_str(), earliest) {
            ("start" | "startstr", Some(e)) => e.attr(key).unwrap_or(value),
            _ => value,
        };
        let quote = if value.contains('"') { '\'' } else { '"' };
        let _ = write!(out, " {key}={quote}{value}{quote}");
    }
    out.push_str(">\n");
    for item in &first.preamble {
        out.push_str(item);
        out.push('\n');
    }
    out
}

/// `<runstats>` and the end of the document.
fn tail(stats: &RunStats) -> String {
    let mut finished = String::from("<finished");
    if let Some(t) = stats.finished_time {
        let summary = stats.summary.as_deref().unwrap_or_default();
        let _ = write!(
            finished,
            " time=\"{t}\" timestr=\"{}\" summary=\"{}\"",
            timestr(t),
            escape(summary)
        );
    }
    let _ = write!(
        finished,
        " elapsed=\"{:.2}\" exit=\"{}\"",
        stats.elapsed_sec.unwrap_or(0.0),
        stats.exit.as_deref().unwrap_or("success")
    );
    if let Some(msg) = &stats.error_message {
        let _ = write!(finished, " errormsg=\"{}\"", escape(msg.as_str()));
    }
    format!(
        "<runstats>{finished}/><hosts up=\"{}\" down=\"{}\" total=\"{}\"/>\n</runstats>\n</nmaprun>\n",
        stats.hosts_up, stats.hosts_down, stats.hosts_total
    )
}

/// The merged report: every contributing chunk's hosts in chunk order, the merged stats, and
/// the first contributing chunk's `scanner_args`/`version`; `None` when no chunk contributes.
fn merged_report(parts: &[Part<'_>], stats: RunStats) -> Option<Value> {
    let first = parts
        .iter()
        .find(|p| p.header.is_some())
        .or(parts.first())?;
    let text = |key: &str| {
        first
            .report
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let meta = NmapReport {
        hosts: Vec::new(),
        stats: Some(stats),
        partial: false,
        scanner_args: text("scanner_args"),
        version: text("version"),
    };
    let mut report = serde_json::to_value(meta).ok()?;
    let hosts: Vec<Value> = parts
        .iter()
        .flat_map(|p| p.hosts().iter().cloned())
        .collect();
    report["hosts"] = Value::Array(hosts);
    Some(report)
}

/// The notes, then every chunk's stderr lines prefixed `[chunk N] `, within
/// [`MERGED_STDERR_MAX`]; true when something was cut (here or in a chunk).
fn merged_stderr(notes: &[String], order: &[&ChunkOutcome<'_>]) -> (String, bool) {
    let cut_line = format!(
        "[merge] stderr cut: the merged result keeps at most {} KiB",
        MERGED_STDERR_MAX / 1024
    );
    let budget = MERGED_STDERR_MAX - cut_line.len() - 1;
    let chunk_lines = order
        .iter()
        .filter_map(|c| Some((c.index, c.result?)))
        .flat_map(|(i, r)| {
            r.stderr
                .lines()
                .map(move |line| format!("[chunk {i}] {line}"))
        });
    let mut out = String::new();
    for line in notes.iter().cloned().chain(chunk_lines) {
        if out.len() + line.len() + 1 > budget {
            out.push_str(&cut_line);
            out.push('\n');
            return (out, true);
        }
        out.push_str(&line);
        out.push('\n');
    }
    let cut = order
        .iter()
        .any(|c| c.result.is_some_and(|r| r.truncated_stderr));
    (out, cut)
}
