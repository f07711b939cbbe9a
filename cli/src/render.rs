//! What the CLI prints: aligned tables for people, the parsed scan result as a host/port table
//! or CSV, and a refusal as the server's `detail` and `hint`.

use serde_json::Value;

/// An aligned text table; columns are as wide as their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// A JSON value as a short cell (`-` for null).
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One row per port of every host in a parsed nmap result: host, protocol, port, state,
/// service, product and version.
pub fn port_rows(parsed: &Value) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for host in parsed["hosts"].as_array().into_iter().flatten() {
        let addr = host["addresses"]
            .as_array()
            .and_then(|a| a.first())
            .map_or("-".to_owned(), |a| cell(&a["addr"]));
        let ports = host["ports"].as_array().cloned().unwrap_or_default();
        if ports.is_empty() {
            let status = cell(&host["status"]["state"]);
            rows.push(vec![
                addr.clone(),
                "-".into(),
                "-".into(),
                status,
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
        }
        for p in ports {
            let svc = &p["service"];
            rows.push(vec![
                addr.clone(),
                cell(&p["protocol"]),
                cell(&p["port"]),
                cell(&p["state"]),
                cell(&svc["name"]),
                cell(&svc["product"]),
                cell(&svc["version"]),
            ]);
        }
    }
    rows
}

pub const PORT_HEADER: [&str; 7] = [
    "HOST", "PROTO", "PORT", "STATE", "SERVICE", "PRODUCT", "VERSION",
];

/// The parsed result as a table, or a line saying there is none.
pub fn result_table(doc: &Value) -> String {
    let parsed = &doc["result"]["parsed"];
    if parsed.is_null() {
        return "(no parsed result)".into();
    }
    let rows = port_rows(parsed);
    if rows.is_empty() {
        return "(no hosts up)".into();
    }
    table(&PORT_HEADER, &rows)
}

/// The parsed result as CSV: RFC 4180 quoting, and no cell starts a formula (the scanned hosts
/// write banners; `scanq::nmap::csv_field`, as the API's `result.csv`).
pub fn result_csv(doc: &Value) -> String {
    let mut out = "host,protocol,port,state,service,product,version\n".to_owned();
    for row in port_rows(&doc["result"]["parsed"]) {
        let cells: Vec<String> = row
            .iter()
            .map(|c| {
                if c == "-" {
                    String::new()
                } else {
                    scanq::nmap::csv_field(c)
                }
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// A job's zone (DESIGN §13): `zone`, and for a big scan spanning zones the zones of its chunks
/// (`dmz (big scan over default, dmz)`).
pub fn zone(doc: &Value) -> String {
    let zone = doc["zone"].as_str().unwrap_or("default");
    let zones: Vec<&str> = doc["zones"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    match zones.is_empty() {
        true => zone.to_owned(),
        false => format!("{zone} (big scan over {})", zones.join(", ")),
    }
}

/// Why a queued job is not claimed (`waiting_for`), in words, with the server's value.
pub fn waiting(w: &str) -> String {
    let words = match w {
        "raw_capable_worker" => "no live raw-capable worker serves its tool in its zone".to_owned(),
        "target_group" => {
            "its target group runs as many jobs as the per-group cap allows".to_owned()
        }
        _ => match w.strip_prefix("zone:") {
            Some(z) => {
                format!("no live worker of zone {z} serves its tool; it starts when one does")
            }
            None => return w.to_owned(),
        },
    };
    format!("{words} ({w})")
}

/// `waiting_for` in a table cell: `waiting for a worker of zone dmz`.
pub fn waiting_short(w: &str) -> String {
    match (w, w.strip_prefix("zone:")) {
        (_, Some(z)) => format!("waiting for a worker of zone {z}"),
        ("raw_capable_worker", _) => "waiting for a raw-capable worker".into(),
        ("target_group", _) => "waiting for its target group".into(),
        _ => format!("waiting: {w}"),
    }
}

/// A refusal for people: the problem's `detail`, then its `hint`.
pub fn problem(status: u16, problem: &Value) -> String {
    let detail = problem["detail"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| cell(problem));
    let mut out = format!("error ({status}): {detail}");
    if let Some(hint) = problem["hint"].as_str() {
        out.push_str(&format!("\nhint: {hint}"));
    }
    out
}

/// A finished job that did not succeed, for people.
pub fn job_failure(doc: &Value) -> String {
    let id = cell(&doc["correlation_id"]);
    let state = cell(&doc["state"]);
    let mut out = format!("job {id} {state}");
    if let Some(msg) = doc["error"]["message"].as_str() {
        out.push_str(&format!(": {msg}"));
    }
    if let Some(s) = doc["error"]["recovery_suggestion"].as_str() {
        out.push_str(&format!("\nhint: {s}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_parsed_result_becomes_one_row_per_port() {
        let doc = json!({"result": {"parsed": {"hosts": [{"addresses": [{"addr": "127.0.0.1"}],
            "ports": [{"protocol": "tcp", "port": 22, "state": "open", "service": {"name": "ssh"}}]}]}}});
        let t = result_table(&doc);
        assert!(
            t.lines()
                .nth(1)
                .unwrap()
                .starts_with("127.0.0.1  tcp    22    open   ssh"),
            "{t}"
        );
        assert_eq!(
            result_csv(&doc).lines().nth(1),
            Some("127.0.0.1,tcp,22,open,ssh,,")
        );
    }

    #[test]
    fn a_banner_that_starts_a_formula_is_written_as_text() {
        let doc = json!({"result": {"parsed": {"hosts": [{"addresses": [{"addr": "127.0.0.1"}],
            "ports": [{"protocol": "tcp", "port": 21, "state": "open", "service": {"name": "ftp",
            "product": "=HYPERLINK(\"http://x.invalid\",\"x\")", "version": "@1"}}]}]}}});
        assert_eq!(
            result_csv(&doc).lines().nth(1),
            Some(r#"127.0.0.1,tcp,21,open,ftp,"'=HYPERLINK(""http://x.invalid"",""x"")",'@1"#)
        );
    }

    #[test]
    fn a_zone_and_a_wait_for_one_read_as_words() {
        assert_eq!(zone(&json!({"zone": "dmz"})), "dmz");
        assert_eq!(zone(&json!({})), "default");
        assert_eq!(
            zone(&json!({"zone": "default", "zones": ["default", "dmz"]})),
            "default (big scan over default, dmz)"
        );
        assert_eq!(
            waiting("zone:dmz"),
            "no live worker of zone dmz serves its tool; it starts when one does (zone:dmz)"
        );
        assert_eq!(waiting("something_new"), "something_new");
        assert_eq!(waiting_short("zone:b"), "waiting for a worker of zone b");
    }

    #[test]
    fn a_problem_shows_detail_and_hint() {
        let p = json!({"detail": "limit: 0 is out of range", "hint": "1..=500"});
        assert_eq!(
            problem(422, &p),
            "error (422): limit: 0 is out of range\nhint: 1..=500"
        );
    }
}
