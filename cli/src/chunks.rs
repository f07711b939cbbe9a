//! Big scans (DESIGN §12) for people: `scanq chunks ID` lists a parent's chunks a page at a time,
//! `scanq get` of a parent adds its chunk tally, and `--watch` shows the parent's one progress
//! bar with its hosts and chunks (the chunks have no bar of their own).

use serde_json::Value;

use crate::client::{Api, Failure, urlencode};
use crate::render::{cell, table};

/// `scanq chunks ID`: one page of a parent's chunks (state, target, zone, worker, attempt), and the
/// command for the next page.
pub async fn list(
    api: &Api,
    json: bool,
    id: &str,
    cursor: Option<u64>,
    limit: u64,
) -> Result<(), Failure> {
    let mut path = format!("/v1/jobs/{}/chunks?limit={limit}", urlencode(id));
    if let Some(c) = cursor {
        path.push_str(&format!("&cursor={c}"));
    }
    let page = api.get(&path).await?;
    if json {
        println!("{page}");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = page["chunks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            vec![
                cell(&c["correlation_id"]),
                cell(&c["state"]),
                cell(&c["target"]),
                c["zone"].as_str().unwrap_or("default").to_owned(),
                cell(&c["worker"]),
                format!("{}/{}", cell(&c["attempt"]), cell(&c["max_attempts"])),
                cell(&c["error"]["message"]),
            ]
        })
        .collect();
    let header = [
        "CHUNK", "STATE", "TARGET", "ZONE", "WORKER", "ATTEMPT", "ERROR",
    ];
    println!("{}", table(&header, &rows));
    let shown = rows.len() as u64;
    let from = cursor.unwrap_or(0);
    let total = cell(&page["total"]);
    match page["next_cursor"].as_u64() {
        Some(next) => println!(
            "chunks {from}-{} of {total}; next page: scanq chunks {id} --cursor {next} --limit {limit}",
            from + shown.saturating_sub(1)
        ),
        None => println!("{shown} shown of {total} chunks"),
    }
    Ok(())
}

/// The progress bar's message for a big scan's parent: hosts done of all, and the chunks by
/// state; `None` for a progress event of any other job.
pub fn progress_message(id: &str, progress: &Value) -> Option<String> {
    let total = progress["hosts_total"].as_u64()?;
    let done = progress["hosts_done"].as_u64().unwrap_or(0);
    Some(format!(
        "{id} {done}/{total} hosts; chunks: {}",
        tally_text(&progress["chunks"])
    ))
}

/// The progress message of a big scan's parent from its document (its `progress` and
/// `chunks`), before any progress event; `None` for any other job.
pub fn doc_progress(id: &str, doc: &Value) -> Option<String> {
    let mut p = doc["progress"].clone();
    p.as_object_mut()?
        .insert("chunks".into(), doc["chunks"].clone());
    doc["chunks"].is_object().then_some(())?;
    progress_message(id, &p)
}

/// A chunk tally as "16 total: 5 succeeded, 2 running, 9 queued" (states with none left out).
pub fn tally_text(tally: &Value) -> String {
    let states = [
        "succeeded",
        "running",
        "queued",
        "scheduled",
        "failed",
        "cancelled",
    ];
    let parts: Vec<String> = states
        .iter()
        .filter_map(|s| {
            tally[*s]
                .as_u64()
                .filter(|n| *n > 0)
                .map(|n| format!("{n} {s}"))
        })
        .collect();
    let mut out = format!("{} total", cell(&tally["total"]));
    if !parts.is_empty() {
        out.push_str(&format!(": {}", parts.join(", ")));
    }
    out
}

/// The rows `scanq get` adds for a big scan: a parent's hosts, chunk tally and partial
/// result, or a chunk's parent.
pub fn doc_rows(doc: &Value) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    if doc["chunks"].is_object() {
        let p = &doc["progress"];
        rows.push(vec![
            "hosts:".into(),
            format!(
                "{} of {} done",
                cell(&p["hosts_done"]),
                cell(&p["hosts_total"])
            ),
        ]);
        rows.push(vec!["chunks:".into(), tally_text(&doc["chunks"])]);
        if doc["result"]["partial"] == true {
            rows.push(vec![
                "partial:".into(),
                "yes: the merged result misses the hosts of chunks that did not succeed".into(),
            ]);
        }
    }
    if let Some(parent) = doc["parent"].as_str() {
        rows.push(vec!["parent:".into(), parent.to_owned()]);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_parents_progress_names_hosts_and_chunks_by_state() {
        let p = json!({"percent": 31.2, "hosts_done": 1280, "hosts_total": 4096,
            "chunks": {"total": 16, "queued": 9, "scheduled": 0, "running": 2, "succeeded": 5,
                "failed": 0, "cancelled": 0}});
        assert_eq!(
            progress_message("big", &p).as_deref(),
            Some("big 1280/4096 hosts; chunks: 16 total: 5 succeeded, 2 running, 9 queued")
        );
        assert_eq!(progress_message("one", &json!({"percent": 40.0})), None);
        let doc = json!({"progress": {"percent": 0.0, "hosts_done": 0, "hosts_total": 8},
            "chunks": {"total": 4, "queued": 4}});
        assert_eq!(
            doc_progress("big", &doc).as_deref(),
            Some("big 0/8 hosts; chunks: 4 total: 4 queued")
        );
        assert_eq!(
            doc_progress("one", &json!({"progress": {"percent": 3.0}})),
            None
        );
    }

    #[test]
    fn get_of_a_parent_adds_hosts_and_tally_and_of_a_chunk_its_parent() {
        let parent = json!({"chunks": {"total": 4, "succeeded": 3, "failed": 1},
            "progress": {"hosts_done": 1024, "hosts_total": 1024}, "result": {"partial": true}});
        let rows = doc_rows(&parent);
        assert_eq!(rows[0], vec!["hosts:", "1024 of 1024 done"]);
        assert_eq!(rows[1], vec!["chunks:", "4 total: 3 succeeded, 1 failed"]);
        assert_eq!(rows[2][0], "partial:");
        assert_eq!(
            doc_rows(&json!({"parent": "big"})),
            vec![vec!["parent:".to_owned(), "big".to_owned()]]
        );
    }
}
