//! Exports of a parsed nmap report for other tools: CSV with one row per listed port
//! (`host,port,protocol,state,service,product,version`, RFC 4180 quoting). The raw XML export
//! needs no code: it is the job's stored stdout, byte for byte.
//!
//! Every CSV cell, here and in the CLI's `result --format csv`, goes through [`csv_field`]: the
//! scanned hosts write banners and versions, and a cell that starts a formula would be evaluated
//! by the spreadsheet that opens the file (CSV injection).

use super::NmapReport;
use crate::domain::{JobDocument, JobState};

/// Why a job has no report to export or compare.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoReport {
    #[error(
        "job `{id}` is {state}; only succeeded jobs, failed big scans whose merged result is \
         partial, and jobs stopped at their engagement's window end have a result to export or \
         compare"
    )]
    NotSucceeded { id: String, state: JobState },
    #[error("job `{id}` has no parsed nmap report (tool `{tool}`)")]
    NotNmap { id: String, tool: String },
}

/// The parsed nmap report of a succeeded job, of a failed big-scan parent whose merged
/// result is `partial` (what the chunks that succeeded found; `merge_chunks`), or of a job the
/// fleet stopped at its engagement's window end (`stop_reason`: what it found before the cut).
pub fn finished_report(doc: &JobDocument) -> Result<NmapReport, NoReport> {
    let partial = doc.result.as_ref().is_some_and(|r| r.partial);
    let exportable = match doc.state {
        JobState::Succeeded => true,
        JobState::Failed => partial,
        JobState::Cancelled => doc.stop_reason.is_some(),
        _ => false,
    };
    if !exportable {
        return Err(NoReport::NotSucceeded {
            id: doc.correlation_id.clone(),
            state: doc.state,
        });
    }
    doc.result
        .as_ref()
        .and_then(|r| r.parsed.clone())
        .and_then(|v| serde_json::from_value(v).ok())
        .ok_or_else(|| NoReport::NotNmap {
            id: doc.correlation_id.clone(),
            tool: doc.tool.clone(),
        })
}

/// The CSV header row, without its line break.
pub const CSV_HEADER: &str = "host,port,protocol,state,service,product,version";

/// One row per listed port of every host, after the header; lines end with `\r\n` (RFC 4180).
pub fn to_csv(report: &NmapReport) -> String {
    let mut out = String::with_capacity(64 * (1 + report.hosts.len()));
    out.push_str(CSV_HEADER);
    out.push_str("\r\n");
    for host in &report.hosts {
        let addr = host.ip().unwrap_or_default();
        for p in &host.ports {
            let svc = p.service.as_ref();
            let fields = [
                addr,
                &p.port.to_string(),
                &p.protocol,
                &p.state,
                svc.map_or("", |s| s.name.as_str()),
                svc.and_then(|s| s.product.as_deref()).unwrap_or(""),
                svc.and_then(|s| s.version.as_deref()).unwrap_or(""),
            ];
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_field(&mut out, f);
            }
            out.push_str("\r\n");
        }
    }
    out
}

/// What a spreadsheet takes as the start of a formula (OWASP's CSV injection list: `=`, `+`,
/// `-`, `@`, tab, carriage return; also a line feed and the full-width forms of the four signs,
/// which some spreadsheets fold to ASCII).
const FORMULA_STARTS: &[char] = &[
    '=', '+', '-', '@', '\t', '\r', '\n', '\u{ff1d}', '\u{ff0b}', '\u{ff0d}', '\u{ff20}',
];

/// One CSV cell: a field that would start a formula is prefixed with `'` (OWASP), so the
/// spreadsheet shows it as text; then it is quoted when it holds a comma, a quote or a line
/// break (quotes doubled, RFC 4180).
pub fn csv_field(f: &str) -> String {
    let text = if f.starts_with(FORMULA_STARTS) {
        format!("'{f}")
    } else {
        f.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn push_field(out: &mut String, f: &str) {
    out.push_str(&csv_field(f));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nmap::{Address, Host, Port, Service};

    #[test]
    fn one_row_per_port_with_quoted_fields() {
        let report = NmapReport {
            hosts: vec![Host {
                addresses: vec![Address {
                    addr: "127.0.0.1".into(),
                    addrtype: "ipv4".into(),
                    vendor: None,
                }],
                ports: vec![Port {
                    protocol: "tcp".into(),
                    port: 22,
                    state: "open".into(),
                    reason: "syn-ack".into(),
                    service: Some(Service {
                        name: "ssh".into(),
                        product: Some("OpenSSH, \"patched\"".into()),
                        version: Some("9.2p1".into()),
                        ..Service::default()
                    }),
                    scripts: vec![],
                }],
                ..Host::default()
            }],
            ..NmapReport::default()
        };
        assert_eq!(
            to_csv(&report),
            "host,port,protocol,state,service,product,version\r\n\
             127.0.0.1,22,tcp,open,ssh,\"OpenSSH, \"\"patched\"\"\",9.2p1\r\n"
        );
    }

    #[test]
    fn a_cell_that_would_start_a_formula_is_text() {
        for (raw, cell) in [
            (
                r#"=HYPERLINK("http://x.invalid","x")"#,
                r#""'=HYPERLINK(""http://x.invalid"",""x"")""#,
            ),
            ("=1+1", "'=1+1"),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "\"'\r=1\""),
            ("\u{ff1d}1+1", "'\u{ff1d}1+1"),
            ("vsFTPd 3.0.3 =1", "vsFTPd 3.0.3 =1"),
            ("", ""),
            ("9.2p1", "9.2p1"),
        ] {
            assert_eq!(csv_field(raw), cell, "{raw:?}");
        }
    }

    #[test]
    fn a_job_stopped_at_its_windows_end_is_exportable_and_a_cancelled_one_is_not() {
        let result = crate::domain::JobResult {
            stdout: "<nmaprun>".into(),
            parsed: Some(serde_json::to_value(NmapReport::default()).unwrap()),
            ..Default::default()
        };
        let result = serde_json::to_string(&result).unwrap();
        let h: std::collections::HashMap<String, String> = [
            ("cid", "w-1"),
            ("tool", "nmap"),
            ("state", "cancelled"),
            ("created_ms", "1000"),
            ("result", result.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let cancelled = JobDocument::from_hash(&h).unwrap();
        assert!(matches!(
            finished_report(&cancelled),
            Err(NoReport::NotSucceeded { .. })
        ));
        let mut stopped = h.clone();
        stopped.insert("stop_reason".into(), "window_closed".into());
        let stopped = JobDocument::from_hash(&stopped).unwrap();
        assert!(finished_report(&stopped).is_ok());
    }
}
