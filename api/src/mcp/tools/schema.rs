//! The tool definitions of `tools/list`, generated from the catalog on every call: each scan
//! tool's `inputSchema` names the server's target scope, the tool's allowed flags, templates
//! and limits; every tool has an `outputSchema` (`view`) and annotations.

use scanq::catalog::ToolSpec;
use scanq::domain::JobState;
use scanq::validate::ValueType;
use serde_json::{Value, json};

use crate::mcp::MAX_WAIT_SEC;
use crate::mcp::view::{self, View};
use crate::state::AppState;

/// The name suffix of the scan tools (`nmap_scan`).
pub(super) const SCAN_SUFFIX: &str = "_scan";

/// Whether a tool takes a port list (then the submit tool offers `ports`).
pub(super) fn port_flag(spec: &ToolSpec) -> Option<&str> {
    spec.args
        .flags
        .iter()
        .find(|f| matches!(f.value, ValueType::Ports { .. }))
        .map(|f| f.name.as_str())
}

fn value_hint(v: &ValueType) -> String {
    match v {
        ValueType::None => String::new(),
        ValueType::Ports { .. } => " <ports>".into(),
        ValueType::Int { min, max } => format!(" <{min}-{max}>"),
        ValueType::Duration { .. } => " <time>".into(),
        ValueType::Timing { min, max } => format!(" <{min}-{max}>"),
        ValueType::ScriptExpr => " <script categories>".into(),
        ValueType::OneOf { values } => format!(" <{}>", values.join("|")),
    }
}

fn scan_input_schema(state: &AppState, spec: &ToolSpec) -> Value {
    let flags: Vec<String> = spec
        .args
        .flags
        .iter()
        .map(|f| format!("{}{}", f.name, value_hint(&f.value)))
        .collect();
    // The fields a scan shares with a submit take their types and bounds from the submit body's
    // own type (`scanq::request::SubmitBody`), then the live catalog's words and limits.
    let mut props = json!({});
    let live = state.live();
    let per_job = spec.max_hosts.unwrap_or(live.targets.max_hosts());
    let most = live.targets.max_target_hosts();
    let shared = [
        (
            "target",
            json!({"description": format!(
            "What to scan: an IPv4 address, an IPv4 CIDR or a hostname, or a list of one kind \
             separated by commas (no spaces). A target over {per_job} hosts (up to {most}) is a \
             big scan: one parent job split into chunks, answered and followed as one job. \
             Server scope: {}",
            state.live().targets.describe())}),
        ),
        (
            "args",
            json!({"maxLength": spec.args.max_bytes, "description": format!(
            "Extra flags, space-separated, no shell syntax and no targets. Allowed: {}",
            flags.join(", "))}),
        ),
        (
            "timeout_sec",
            json!({"minimum": 1, "maximum": spec.max_timeout_sec,
            "description": format!("Kill the tool after this long (default {}).", spec.default_timeout_sec)}),
        ),
        (
            "correlation_id",
            json!({"description":
            "Your handle for the job ([A-Za-z0-9._:-], 1-64 characters); sending the same request \
             with the same id again returns the existing job. Made by the server when left out."}),
        ),
        (
            "intrusive",
            json!({"description":
            "Confirm intrusive flags or scripts (the server must allow them too)."}),
        ),
    ];
    // A big scan's chunk size: bounded by what one job of this tool may scan.
    let chunk_hosts = (
        "chunk_hosts",
        json!({"maximum": per_job, "description": format!(
            "For a big scan: the most hosts one chunk scans (1-{per_job}, default {per_job}). \
             A target over this size is split into chunks even when the tool could take it.")}),
    );
    // The zones the map names (DESIGN §13): the server places a target in its zone by itself.
    let zones: Vec<String> = std::iter::once("default".to_owned())
        .chain(live.zones.zones().iter().map(|z| z.to_string()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let zone = (
        "zone",
        json!({"enum": zones, "description": format!(
            "The zone (network) the target must be in; the server places every target in its \
             zone by itself, so leave it out unless you want a target outside that zone refused. \
             Zones: {}. Which have live workers: resource scanq://zones (a scan waits while its \
             zone has none).", zones.join(", "))}),
    );
    // The engagement the scan runs under (DESIGN §14): required when the server or token says so.
    let engagement = (
        "engagement",
        json!({"description": format!(
            "The engagement (your written permission to test) the scan runs under: its targets, \
             tools, templates, windows and approval rule apply. engagement_list shows yours.{}",
            if live.cfg.require_engagement { " Required on this server." } else { "" })}),
    );
    for (name, overlay) in shared.into_iter().chain([chunk_hosts, zone, engagement]) {
        props[name] = submit_property(name, overlay);
    }
    props["wait_sec"] = json!({"type": "integer", "minimum": 0, "maximum": MAX_WAIT_SEC, "description":
        "Wait up to this long (0-50 s) for the job to finish before answering; progress is \
         streamed meanwhile. 0 (default) answers at once."});
    if !spec.templates.is_empty() {
        let names: Vec<&String> = spec.templates.keys().collect();
        let presets: Vec<String> = spec
            .templates
            .iter()
            .map(|(k, v)| {
                let all = scanq::validate::ArgContext {
                    server_allows_intrusive: true,
                    request_intrusive: true,
                };
                let raw = spec
                    .template_args(k, &all)
                    .is_ok_and(|a| spec.args.needs_raw(&a));
                let note = if raw {
                    " (raw sockets: waits for a raw-capable worker)"
                } else {
                    ""
                };
                format!("{k} = `{v}`{note}")
            })
            .collect();
        props["template"] = json!({"type": "string", "enum": names,
            "description": format!("Argument preset: {}", presets.join("; "))});
    }
    if let Some(flag) = port_flag(spec) {
        props["ports"] = json!({"type": "string", "description": format!(
            "Ports to scan (passed as {flag}): e.g. 22, 1-1024, 22,80,443")});
    }
    json!({"type": "object", "properties": props, "required": ["target"], "additionalProperties": false})
}

/// The JSON schema of a submit body's field, as `/openapi.json` has it (an optional field as
/// its plain type), with `overlay`'s keys put over it.
fn submit_property(name: &str, overlay: Value) -> Value {
    let body =
        serde_json::to_value(<scanq::request::SubmitBody as utoipa::PartialSchema>::schema())
            .expect("a schema is JSON");
    let mut prop = body["properties"][name].clone();
    if let Some(types) = prop["type"].as_array()
        && let Some(t) = types.iter().find(|t| *t != "null")
    {
        prop["type"] = t.clone();
    }
    if let (Some(p), Some(o)) = (prop.as_object_mut(), overlay.as_object()) {
        for (k, v) in o {
            p.insert(k.clone(), v.clone());
        }
    }
    prop
}

fn annotations(title: &str, read_only: bool, open_world: bool) -> Value {
    json!({
        "title": title,
        "readOnlyHint": read_only,
        "destructiveHint": false,
        "idempotentHint": read_only,
        "openWorldHint": open_world,
    })
}

/// Every tool definition (`tools/list`).
pub fn list(state: &AppState) -> Vec<Value> {
    let mut tools = vec![];
    let live = state.live();
    for (name, spec) in live.catalog.tools().filter(|(_, s)| s.enabled) {
        let description = format!(
            "{} Starts a {name} job and returns its correlation_id at once (the scan runs in the \
             background and may take minutes). Follow it with job_status (wait_sec up to 50) and \
             read it with job_result. The job runs on a worker of its target's zone (see zone).",
            spec.description.trim()
        );
        tools.push(json!({
            "name": format!("{name}{SCAN_SUFFIX}"),
            "title": format!("Run {name}"),
            "description": description.trim(),
            "inputSchema": scan_input_schema(state, spec),
            "outputSchema": view::job_schema(json!({
                "result": {"type": ["object", "null"], "description": "first result page (job_result's shape) once finished"},
            })),
            "annotations": annotations(&format!("Run {name}"), false, true),
            "execution": {"taskSupport": "optional"},
        }));
    }
    let id_prop =
        json!({"type": "string", "description": "the correlation_id a scan tool returned"});
    tools.push(json!({
        "name": "job_status",
        "title": "Job status",
        "description": "State, progress and timing of a job. With wait_sec (0-50) it waits that long for the job to finish, streaming progress.",
        "inputSchema": {"type": "object", "properties": {
            "correlation_id": id_prop,
            "wait_sec": {"type": "integer", "minimum": 0, "maximum": MAX_WAIT_SEC},
        }, "required": ["correlation_id"], "additionalProperties": false},
        "outputSchema": view::job_schema(json!({})),
        "annotations": annotations("Job status", true, false),
    }));
    tools.push(json!({
        "name": "job_result",
        "title": "Job result",
        "description": "A finished job's result, one page (under ~20 KB) at a time: parsed items (hosts) when the tool's output was parsed, or the raw stdout/stderr.",
        "inputSchema": {"type": "object", "properties": {
            "correlation_id": id_prop,
            "view": {"type": "string", "enum": View::NAMES, "description": "parsed (default when available), stdout or stderr"},
            "page": {"type": "integer", "minimum": 1, "description": "1-based page (default 1)"},
        }, "required": ["correlation_id"], "additionalProperties": false},
        "outputSchema": view::result_schema(),
        "annotations": annotations("Job result", true, false),
    }));
    tools.push(json!({
        "name": "job_cancel",
        "title": "Cancel job",
        "description": "Cancels a queued, scheduled or running job (a running tool is killed). Finished jobs are left as they are.",
        "inputSchema": {"type": "object", "properties": {"correlation_id": id_prop},
            "required": ["correlation_id"], "additionalProperties": false},
        "outputSchema": view::job_schema(json!({"outcome": {"type": "string", "enum": ["cancelled", "cancel_requested"]}})),
        "annotations": annotations("Cancel job", false, false),
    }));
    tools.push(json!({
        "name": "job_list",
        "title": "List jobs",
        "description": "Your jobs, newest first, optionally filtered by state or tool; pass next_cursor back as cursor for the next page.",
        "inputSchema": {"type": "object", "properties": {
            "state": {"type": "string", "enum": JobState::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()},
            "tool": {"type": "string", "enum": state.live().catalog.names()},
            "limit": {"type": "integer", "minimum": 1, "maximum": 100, "description": "default 20"},
            "cursor": {"type": "string"},
        }, "additionalProperties": false},
        "outputSchema": {"type": "object", "properties": {
            "jobs": {"type": "array", "items": view::job_schema(json!({}))},
            "next_cursor": {"type": ["string", "null"]},
        }, "required": ["jobs", "next_cursor"]},
        "annotations": annotations("List jobs", true, false),
    }));
    tools.extend(super::programs::definitions(
        &state.live().catalog.names(),
        |title, read_only| annotations(title, read_only, false),
    ));
    tools.extend(super::engagements::definitions(|title, read_only| {
        annotations(title, read_only, false)
    }));
    tools
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_fields_take_their_type_and_bounds_from_the_submit_body() {
        let target = submit_property("target", json!({"description": "d"}));
        assert_eq!(target["type"], "string");
        // A target may be a list (a big scan), so it is as long as the submit body allows.
        assert_eq!(
            target["maxLength"],
            scanq::validate::targets::MAX_LIST_TEXT as u64
        );
        let chunk = submit_property("chunk_hosts", json!({"maximum": 1024}));
        assert_eq!(chunk["type"], "integer");
        assert_eq!(
            (chunk["minimum"].as_u64(), chunk["maximum"].as_u64()),
            (Some(1), Some(1024))
        );
        assert_eq!(target["description"], "d");
        let intrusive = submit_property("intrusive", json!({}));
        assert_eq!(intrusive["type"], "boolean");
        let cid = submit_property("correlation_id", json!({}));
        assert_eq!(cid["pattern"], "^[A-Za-z0-9._:-]{1,64}$");
    }
}
