//! Placing a submit in its zone (DESIGN §13).

use super::*;
use serde_json::json;

fn spec_with(zones: &str, body: Value) -> Result<JobSpec, RequestError> {
    let catalog = Catalog::builtin();
    let targets = TargetPolicy::parse("127.0.0.0/8,.b.example", "", 1024)
        .unwrap()
        .with_max_target_hosts(65_536);
    let zones = ZoneMap::parse(zones).unwrap();
    JobSpec::from_json(
        &body,
        &Policy {
            catalog: &catalog,
            targets: &targets,
            zones: &zones,
            allow_intrusive: false,
            default_max_attempts: 3,
            require_engagement: false,
            approval: crate::domain::Approval::Never,
        },
    )
}

const MAP: &str = "a=127.0.1.0/24;b=127.0.2.0/24,.b.example";

fn zone(s: &str) -> Zone {
    Zone::parse(s).unwrap()
}

fn refused_field(r: Result<JobSpec, RequestError>) -> (String, String) {
    match r {
        Err(RequestError::Invalid(e)) => (e.field, e.message),
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn a_job_runs_in_the_zone_its_target_is_in() {
    let s = spec_with(MAP, json!({"tool": "nmap", "target": "127.0.1.7"})).unwrap();
    assert_eq!((s.zone.clone(), s.zone_plan.is_none()), (zone("a"), true));
    assert_eq!(s.chunk_hosts, None);
    let s = spec_with(MAP, json!({"tool": "nmap", "target": "db.b.example"})).unwrap();
    assert_eq!(s.zone, zone("b"));
    let s = spec_with(MAP, json!({"tool": "nmap", "target": "127.0.9.1"})).unwrap();
    assert!(s.zone.is_default());
    // Naming the zone it is in is fine.
    let s = spec_with(
        MAP,
        json!({"tool": "nmap", "target": "127.0.2.0/28", "zone": "b"}),
    )
    .unwrap();
    assert_eq!(s.zone, zone("b"));
}

#[test]
fn the_zone_is_part_of_the_request_identity() {
    let body = json!({"tool": "nmap", "target": "127.0.1.7"});
    let zoned = spec_with(MAP, body.clone()).unwrap();
    let plain = spec_with("", body).unwrap();
    assert_ne!(zoned.request_hash, plain.request_hash);
}

#[test]
fn a_target_spanning_zones_is_a_big_scan_split_by_zone() {
    // 1,024 hosts fit one nmap job, but they lie in three zones.
    let s = spec_with(MAP, json!({"tool": "nmap", "target": "127.0.0.0/22"})).unwrap();
    let plan = s.zone_plan.clone().expect("a zone plan");
    assert_eq!(plan.zones(), [Zone::default(), zone("a"), zone("b")]);
    assert_eq!(
        s.zone,
        Zone::default(),
        "the parent lives in its first piece's zone"
    );
    assert!(s.chunk_hosts.is_some());
    let chunks = plan.chunks(s.chunk_hosts.unwrap());
    assert_eq!(chunks.len(), 3, "{chunks:?}");
    assert_eq!(chunks[1].1.to_string(), "127.0.1.0/24");
    assert_eq!(chunks[2].1.to_string(), "127.0.2.0/24");
    assert_eq!(chunks[0].1.to_string(), "127.0.0.0/24,127.0.3.0/24");
}

#[test]
fn a_mismatched_or_malformed_zone_is_refused_naming_the_field() {
    let (field, msg) = refused_field(spec_with(
        MAP,
        json!({"tool": "nmap", "target": "127.0.1.7", "zone": "b"}),
    ));
    assert_eq!(field, "zone");
    assert!(msg.contains("in zone a") && msg.contains("not b"), "{msg}");
    let (field, msg) = refused_field(spec_with(
        MAP,
        json!({"tool": "nmap", "target": "127.0.0.0/22", "zone": "a"}),
    ));
    assert_eq!(field, "zone");
    assert!(msg.contains("spans zones default, a, b"), "{msg}");
    let (field, msg) = refused_field(spec_with(
        MAP,
        json!({"tool": "nmap", "target": "127.0.1.7", "zone": "Not A Zone"}),
    ));
    assert_eq!(field, "zone");
    assert!(msg.contains("zone must be"), "{msg}");
    let (field, _) = refused_field(spec_with(
        MAP,
        json!({"tool": "nmap", "target": "127.0.1.7", "zone": 7}),
    ));
    assert_eq!(field, "zone");
}
