//! Placeholder (replaced by the merge of chunk results): the parent's result from its chunks.

use crate::domain::{JobResult, JobState};

/// One chunk's outcome, in chunk order.
#[derive(Debug, Clone, Copy)]
pub struct ChunkOutcome<'a> {
    pub index: u32,
    pub target: &'a str,
    pub state: JobState,
    pub result: Option<&'a JobResult>,
}

/// The chunks' parsed hosts, concatenated in chunk order.
pub fn merge_chunks(chunks: &[ChunkOutcome<'_>], _max_stdout: usize) -> JobResult {
    let mut parsed: Option<serde_json::Value> = None;
    let mut hosts = Vec::new();
    for c in chunks {
        if let Some(p) = c.result.and_then(|r| r.parsed.as_ref()) {
            if let Some(h) = p.get("hosts").and_then(|h| h.as_array()) {
                hosts.extend(h.iter().cloned());
            }
            parsed.get_or_insert_with(|| p.clone());
        }
    }
    if let Some(p) = parsed.as_mut() {
        p["hosts"] = serde_json::Value::Array(hosts);
    }
    JobResult {
        exit_code: Some(0),
        parsed,
        ..JobResult::default()
    }
}
