//! What a job's hash holds from its request ([`job_fields`]).

use crate::domain::Priority;
use crate::request::JobSpec;

/// The hash fields of a job for `spec`: the request, without what the key already says (tool,
/// tenant, ID) and without defaults (read back as their defaults): every byte of a queued job
/// is paid for as long as it waits.
pub(crate) fn job_fields(spec: &JobSpec, max_running: u64) -> Vec<(&'static str, String)> {
    let args = serde_json::to_string(spec.args.as_slice()).expect("serializable");
    let mut fields = vec![("target", spec.target.to_string())];
    // Left out at their defaults (~16 bytes each of a queued job's ~120-byte field list).
    if spec.timeout_sec != crate::domain::STORED_DEFAULT_TIMEOUT_SEC {
        fields.push(("timeout_sec", spec.timeout_sec.to_string()));
    }
    if spec.max_attempts != crate::domain::STORED_DEFAULT_MAX_ATTEMPTS {
        fields.push(("max_attempts", spec.max_attempts.to_string()));
    }
    // Defaults are left out of the hash (read back as their defaults): every byte of a
    // queued job is paid for as long as it waits. Tool, tenant and ID are in the key.
    if !spec.args.as_slice().is_empty() {
        fields.push(("args", args));
    }
    if !spec.raw_args.is_empty() {
        fields.push(("args_raw", spec.raw_args.clone()));
    }
    if spec.priority != Priority::Normal {
        fields.push(("priority", spec.priority.as_str().to_owned()));
    }
    if let Some(t) = spec.template.clone().filter(|t| !t.is_empty()) {
        fields.push(("template", t));
    }
    if spec.intrusive {
        fields.push(("intrusive", "1".to_owned()));
    }
    if spec.needs_raw {
        // The lane: every script that puts the job on a ready stream reads it.
        fields.push(("needs_raw", "1".to_owned()));
    }
    if max_running > 0 {
        fields.push(("max_running", max_running.to_string()));
    }
    if let Some(s) = &spec.schedule_id {
        fields.push(("schedule_id", s.clone()));
    }
    if !spec.zone.is_default() {
        // The key says it too; the hash says it for readers given only the hash.
        fields.push(("zone", spec.zone.to_string()));
    }
    if let Some(e) = &spec.engagement {
        // The worker judges the timing again before the tool runs (DESIGN §14).
        fields.push(("engagement", e.to_string()));
    }
    if spec.needs_approval {
        // Kept for the job's life: a retry of a job not approved goes back to the person.
        fields.push((
            crate::domain::approval::FIELD,
            crate::domain::approval::NEEDED.to_owned(),
        ));
    }
    if let Some(by) = &spec.submitted_by {
        fields.push(("submitted_by", by.clone()));
    }
    if spec.waits_for_window {
        // `waiting_for: "window"` while it is scheduled.
        fields.push(("waiting", "window".to_owned()));
    }
    if let Some(until) = spec.watch_until_ms {
        // Created registered (a submit that waits): no `watch.lua` before its first change.
        fields.push(("watch", until.to_string()));
        // Only its end is published (`watched` in common.lua): the waiter is not woken by
        // `running`. A watcher that registers (SSE, `GET ?wait`) clears it.
        fields.push(("watch_end", "1".to_owned()));
    }
    fields
}
