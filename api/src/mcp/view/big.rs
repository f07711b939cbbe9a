//! A big scan in the MCP views (DESIGN §12): a parent's chunk tally and hosts, a chunk's parent,
//! a merged result that misses hosts (`partial`), and the one line that says how far the
//! parent got, shared by the job text, the task's `statusMessage` and progress notifications.

use scanq::domain::{ChunkTally, JobDocument};
use serde_json::{Value, json};

/// "5 of 16 chunks done (2 running, 9 waiting), 1280 of 4096 hosts" for a big scan's parent;
/// `None` for any other job.
pub fn chunk_summary(doc: &JobDocument) -> Option<String> {
    let t: &ChunkTally = doc.chunks.as_ref()?;
    let done = t.succeeded + t.failed + t.cancelled;
    let mut line = format!("{done} of {} chunks done", t.total);
    let waiting = t.total.saturating_sub(done + t.running);
    if done < t.total {
        line.push_str(&format!(" ({} running, {waiting} waiting)", t.running));
    }
    if t.failed + t.cancelled > 0 {
        line.push_str(&format!(", {} failed, {} cancelled", t.failed, t.cancelled));
    }
    let p = doc.progress.as_ref();
    match (p.and_then(|p| p.hosts_done), p.and_then(|p| p.hosts_total)) {
        (Some(d), Some(all)) => line.push_str(&format!(", {d} of {all} hosts")),
        (None, Some(all)) => line.push_str(&format!(", {all} hosts")),
        _ => {}
    }
    Some(line)
}

/// Adds the big-scan fields to a job view: `chunks` (a parent's tally), `progress.hosts_done`
/// and `hosts_total`, `parent` (a chunk's parent) and `partial` (a merged result misses hosts).
pub fn extend_view(view: &mut Value, doc: &JobDocument) {
    if let Some(t) = &doc.chunks {
        view["chunks"] = json!(t);
    }
    if let (Some(p), Some(v)) = (&doc.progress, view["progress"].as_object_mut()) {
        if let Some(n) = p.hosts_done {
            v.insert("hosts_done".into(), json!(n));
        }
        if let Some(n) = p.hosts_total {
            v.insert("hosts_total".into(), json!(n));
        }
    }
    if let Some(parent) = &doc.parent {
        view["parent"] = json!(parent);
    }
    if doc.result.as_ref().is_some_and(|r| r.partial) {
        view["partial"] = json!(true);
    }
}

/// The schema of the fields [`extend_view`] adds (`progress`'s are added to its own schema).
pub fn schema_properties() -> Value {
    let count = json!({"type": "integer", "minimum": 0});
    json!({
        "chunks": {"type": "object", "description":
            "a big scan's parent: its chunks by state (the scan was split; the parent ends when every chunk has)",
            "properties": {
                "total": count, "queued": count, "scheduled": count, "running": count,
                "succeeded": count, "failed": count, "cancelled": count,
            }},
        "parent": {"type": "string", "description":
            "a chunk of a big scan: the correlation_id of its parent, which holds the merged result"},
        "partial": {"type": "boolean", "description":
            "the merged result of a big scan misses the hosts of chunks that did not succeed"},
    })
}

/// The schema of `progress.hosts_done` and `progress.hosts_total`.
pub fn progress_properties() -> Value {
    json!({
        "hosts_done": {"type": "integer", "description": "a big scan's parent: hosts in finished chunks"},
        "hosts_total": {"type": "integer", "description": "a big scan's parent: hosts in all chunks"},
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn parent(tally: &str, progress: &str) -> JobDocument {
        let h: HashMap<String, String> = [
            ("cid", "big"),
            ("tool", "nmap"),
            ("target", "127.1.0.0/20"),
            ("state", "running"),
            ("created_ms", "1"),
            ("chunks", "16"),
            ("tally", tally),
            ("progress", progress),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        JobDocument::from_hash(&h).unwrap()
    }

    #[test]
    fn a_parent_says_how_many_chunks_and_hosts_are_done() {
        let d = parent(
            r#"{"total":16,"queued":9,"scheduled":0,"running":2,"succeeded":4,"failed":1,"cancelled":0}"#,
            r#"{"percent":31.0,"eta_sec":null,"phase":"chunks","hosts_done":1280,"hosts_total":4096}"#,
        );
        assert_eq!(
            chunk_summary(&d).as_deref(),
            Some(
                "5 of 16 chunks done (2 running, 9 waiting), 1 failed, 0 cancelled, 1280 of 4096 hosts"
            )
        );
        let mut view = json!({"progress": {"percent": 31.0}});
        extend_view(&mut view, &d);
        assert_eq!(view["chunks"]["total"], 16);
        assert_eq!(view["progress"]["hosts_done"], 1280);
        assert_eq!(view["progress"]["hosts_total"], 4096);
        assert!(view.get("parent").is_none());
    }
}
