//! Exports of a parsed nmap report for other tools: CSV with one row per listed port
//! (`host,port,protocol,state,service,product,version`, RFC 4180 quoting). The raw XML export
//! needs no code: it is the job's stored stdout, byte for byte.

use super::NmapReport;
use crate::domain::{JobDocument, JobState};

/// Why a job has no report to export or compare.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoReport {
    #[error("job `{id}` is {state}; only succeeded jobs have a result to export or compare")]
    NotSucceeded { id: String, state: JobState },
    #[error("job `{id}` has no parsed nmap report (tool `{tool}`)")]
    NotNmap { id: String, tool: String },
}

/// The parsed nmap report of a succeeded job.
pub fn finished_report(doc: &JobDocument) -> Result<NmapReport, NoReport> {
    if doc.state != JobState::Succeeded {
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

/// A field, quoted when it holds a comma, a quote or a line break (quotes doubled).
fn push_field(out: &mut String, f: &str) {
    if f.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&f.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(f);
    }
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
}
