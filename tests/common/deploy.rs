//! What a confined worker's deployment carries (docker-compose.yml, deploy/k8s/; docs/sandbox.md
//! "Deployment"), for the offline manifest checks (tests/compose.rs, tests/k8s.rs).

use scanq::validate::{Target, TargetPolicy};

/// The capabilities the worker's container gets, and no others (sorted).
pub const WORKER_CAPS: [&str; 9] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "KILL",
    "NET_ADMIN",
    "NET_RAW",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_ADMIN",
];

/// Whether `target` (an address or CIDR of the platform's own network) is refused as a scan
/// target under the default allow list and `denied` — and was allowed without it, so the entry
/// is what refuses it.
pub fn denied_by(denied: &str, target: &str) -> bool {
    let t: Target = target.parse().expect("a target");
    let without = TargetPolicy::parse("", "", 1 << 24).unwrap();
    let with = TargetPolicy::parse("", denied, 1 << 24).expect("SCANQ_DENIED_TARGETS parses");
    without.check(&t, None).is_ok() && with.check(&t, None).is_err()
}

/// A YAML list of strings (capabilities, options), sorted.
pub fn strings(v: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}
