//! The hostile corpus for engagement bodies: every body is refused naming the right field (its
//! JSON path), and none panics.

use serde_json::{Value, json};

use super::*;

const NOW: u64 = 1_800_000_000_000; // 2027-01-15

fn scope() -> TargetPolicy {
    TargetPolicy::parse(
        "127.0.0.0/8,10.0.0.0/8,.lab.internal,x.corp.example",
        "10.9.0.0/16",
        1024,
    )
    .unwrap()
}

fn judge(body: &Value) -> Result<Engagement, ValidationError> {
    let id = EngagementId::parse("q4").unwrap();
    EngagementBody::from_json(body)?.into_engagement(&id, &scope(), &Catalog::builtin(), NOW)
}

/// The base body with `extra`'s keys put over it.
fn with(extra: Value) -> Value {
    let mut b = json!({"targets": ["127.0.1.0/24"]});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

fn field(body: Value) -> String {
    judge(&body)
        .map(|e| panic!("accepted {body}: {e:?}"))
        .unwrap_err()
        .field
}

#[test]
fn a_full_body_becomes_the_engagement_in_canonical_form() {
    let e = judge(&json!({
        "description": "Q4 pentest — Ünïcode is fine",
        "targets": ["127.0.1.0/24", ".Web.Lab.Internal", "db.lab.internal"],
        "denied_targets": ["127.0.1.128/25"],
        "tools": ["nmap"],
        "templates": ["quick"],
        "timezone": "Europe/Berlin",
        "windows": [{"days": ["mon", "tue"], "start": "22:00", "end": "06:00"}],
        "blackouts": [{"start": "2027-02-01T00:00:00Z", "end": "2027-02-02T00:00:00+01:00", "reason": "freeze"}],
        "starts_at": "2027-01-01T00:00:00Z",
        "expires_at": "2027-12-31T23:59:59Z",
        "approval": "intrusive",
        "stop_at_window_end": true,
    }))
    .unwrap();
    assert_eq!(
        e.targets,
        ["127.0.1.0/24", ".web.lab.internal", "db.lab.internal"]
    );
    assert_eq!(e.tools[0].as_str(), "nmap");
    assert_eq!(e.calendar.blackouts[0].end_ms, 1_801_522_800_000);
    assert_eq!(e.approval, Approval::Intrusive);
    assert!(e.stop_at_window_end);
    let minimal = judge(&with(json!({}))).unwrap();
    assert_eq!(minimal.approval, Approval::Never);
    assert!(!minimal.stop_at_window_end && minimal.tools.is_empty());
}

#[test]
fn targets_wider_than_the_server_scope_are_refused_naming_the_entry() {
    let t = |list: Value| field(json!({ "targets": list }));
    assert_eq!(t(json!(["127.0.0.0/8", "0.0.0.0/0"])), "targets[1]");
    assert_eq!(t(json!(["192.168.1.1"])), "targets[0]");
    assert_eq!(t(json!(["127.0.1.1", "10.9.0.0/24"])), "targets[1]");
    assert_eq!(t(json!([".internal"])), "targets[0]");
    // An allowed exact name does not make the suffix above it allowed.
    assert_eq!(t(json!([".corp.example"])), "targets[0]");
    assert!(judge(&json!({"targets": ["x.corp.example"]})).is_ok());
    assert_eq!(t(json!(["example.com"])), "targets[0]");
    assert_eq!(t(json!(["169.254.0.1"])), "targets[0]");
    // A /8 the server allows is fine: an engagement is a rule, not a scan.
    assert!(judge(&json!({"targets": ["127.0.0.0/8"]})).is_ok());
}

#[test]
fn malformed_entries_are_refused_naming_their_path() {
    let t = |list: Value| field(json!({ "targets": list }));
    for bad in [
        json!([""]),
        json!(["127.0.1.1,127.0.1.2"]),
        json!(["127.0.1.1 "]),
        json!(["127.0.1.5/24"]),
        json!(["127.1"]),
        json!(["::1"]),
        json!(["http://127.0.0.1/"]),
        json!(["127.0.0.1:80"]),
        json!(["ｌａｂ.lab.internal"]),
        json!(["db\u{202e}.lab.internal"]),
        json!(["."]),
        json!([".."]),
        json!([".lab..internal"]),
        json!(["x".repeat(300)]),
        json!([format!(".{}", "a".repeat(63) + ".lab.internal").repeat(4)]),
    ] {
        assert_eq!(t(bad.clone()), "targets[0]", "{bad}");
    }
    assert_eq!(
        field(with(json!({"denied_targets": ["127.0.1.0/24x"]}))),
        "denied_targets[0]"
    );
}

#[test]
fn duplicates_and_overlaps_are_refused_naming_the_later_entry() {
    let t = |list: Value| field(json!({ "targets": list }));
    assert_eq!(t(json!(["127.0.1.1", "127.0.1.1"])), "targets[1]");
    assert_eq!(t(json!(["127.0.1.0/24", "127.0.1.0/25"])), "targets[1]");
    assert_eq!(t(json!(["127.0.1.0/25", "127.0.1.0/24"])), "targets[1]");
    assert_eq!(t(json!([".lab.internal", "db.lab.internal"])), "targets[1]");
    assert_eq!(t(json!(["a.lab.internal", "A.LAB.INTERNAL"])), "targets[1]");
    assert_eq!(
        field(with(
            json!({"denied_targets": ["127.0.1.2", "127.0.1.0/30"]})
        )),
        "denied_targets[1]"
    );
    // A denied entry that swallows a target leaves it nothing: the target is named.
    assert_eq!(
        field(
            json!({"targets": ["127.0.2.0/24", "127.0.1.0/24"], "denied_targets": ["127.0.0.0/16"]})
        ),
        "targets[0]"
    );
    // Overlapping (not covering) allow and deny is the point of a deny list.
    assert!(judge(&with(json!({"denied_targets": ["127.0.1.128/25"]}))).is_ok());
}

#[test]
fn huge_lists_are_refused_by_their_length() {
    let many: Vec<String> = (0..=MAX_TARGETS)
        .map(|i| format!("127.1.{}.{}", i / 256, i % 256))
        .collect();
    assert_eq!(field(json!({ "targets": many })), "targets");
    assert_eq!(
        field(with(json!({ "denied_targets": many }))),
        "denied_targets"
    );
    let tools = vec!["nmap"; MAX_TOOLS + 1];
    assert_eq!(field(with(json!({ "tools": tools }))), "tools");
    let templates = vec!["quick"; MAX_TOOLS + 1];
    assert_eq!(field(with(json!({ "templates": templates }))), "templates");
    let ok: Vec<String> = (0..MAX_TARGETS)
        .map(|i| format!("127.1.{}.{}", i / 256, i % 256))
        .collect();
    assert!(judge(&json!({ "targets": ok })).is_ok());
}

#[test]
fn tools_and_templates_must_exist_and_belong_together() {
    assert_eq!(field(with(json!({"tools": ["nmap", "nope"]}))), "tools[1]");
    assert_eq!(field(with(json!({"tools": ["nmap", "nmap"]}))), "tools[1]");
    assert_eq!(field(with(json!({"tools": ["NMAP/../x"]}))), "tools[0]");
    assert_eq!(field(with(json!({"templates": ["nope"]}))), "templates[0]");
    assert_eq!(
        field(with(json!({"templates": ["quick", "quick"]}))),
        "templates[1]"
    );
    assert!(judge(&with(json!({"templates": ["quick"]}))).is_ok());
}

#[test]
fn times_are_rfc3339_in_range_and_in_order() {
    assert_eq!(field(with(json!({"expires_at": "tomorrow"}))), "expires_at");
    assert_eq!(
        field(with(json!({"expires_at": "2026-01-01T00:00:00Z"}))),
        "expires_at"
    );
    assert_eq!(
        field(with(json!({"starts_at": "1970-01-01T00:00:00Z"}))),
        "starts_at"
    );
    assert_eq!(
        field(with(json!({"starts_at": "9999-12-31T23:59:59Z"}))),
        "starts_at"
    );
    assert_eq!(
        field(with(
            json!({"starts_at": "2028-01-01T00:00:00Z", "expires_at": "2027-06-01T00:00:00Z"})
        )),
        "expires_at"
    );
    assert_eq!(
        field(with(
            json!({"starts_at": "2028-01-01T00:00:00Z", "expires_at": "2028-01-01T00:00:00Z"})
        )),
        "expires_at"
    );
    assert_eq!(
        field(with(
            json!({"blackouts": [{"start": "2027-01-01T00:00:00Z", "end": "soon"}]})
        )),
        "blackouts[0].end"
    );
    assert_eq!(
        field(with(
            json!({"blackouts": [{"start": "2027-01-01T00:00:00Z", "end": "2027-01-02T00:00:00Z", "reason": "a\u{0}b"}]})
        )),
        "blackouts[0].reason"
    );
    assert_eq!(
        field(with(
            json!({"blackouts": [{"start": "2027-01-01T00:00:00Z"}]})
        )),
        "blackouts[0]"
    );
}

#[test]
fn wrong_types_nulls_and_unknown_fields_name_their_path() {
    assert_eq!(field(json!({})), "targets");
    assert_eq!(field(json!({"targets": []})), "targets");
    assert_eq!(field(json!({"targets": null})), "targets");
    assert_eq!(field(json!({"targets": "127.0.0.1"})), "targets");
    assert_eq!(field(json!({"targets": [1]})), "targets[0]");
    assert_eq!(field(json!({"targets": [null]})), "targets[0]");
    assert_eq!(field(json!([1])), "body");
    assert_eq!(field(json!("x")), "body");
    assert_eq!(field(with(json!({"colour": 1}))), "colour");
    assert_eq!(field(with(json!({"approval": "sometimes"}))), "approval");
    assert_eq!(field(with(json!({"approval": 1}))), "approval");
    assert_eq!(
        field(with(json!({"stop_at_window_end": "yes"}))),
        "stop_at_window_end"
    );
    assert_eq!(field(with(json!({"tools": [true]}))), "tools[0]");
    assert_eq!(field(with(json!({"windows": {}}))), "windows");
    assert_eq!(
        field(with(
            json!({"windows": [{"days": ["mon"], "start": "22:00"}]})
        )),
        "windows[0]"
    );
    assert_eq!(
        field(with(
            json!({"windows": [{"days": ["mon", "funday"], "start": "22:00", "end": "06:00"}]})
        )),
        "windows[0].days[1]"
    );
    assert_eq!(
        field(with(
            json!({"windows": [{"days": ["mon"], "start": 22, "end": "06:00"}]})
        )),
        "windows[0].start"
    );
    assert_eq!(
        field(with(
            json!({"windows": [{"days": ["mon"], "start": "22:00", "end": "06:00", "x": 1}]})
        )),
        "windows[0].x"
    );
    assert_eq!(field(with(json!({"timezone": 5}))), "timezone");
    assert_eq!(
        field(with(json!({"description": "x".repeat(513)}))),
        "description"
    );
    assert_eq!(
        field(with(json!({"description": "a\u{202e}b"}))),
        "description"
    );
    assert_eq!(field(with(json!({"description": ["a"]}))), "description");
    // Absent and null optional fields are their defaults.
    let e = judge(&with(
        json!({"description": null, "approval": null, "timezone": null}),
    ))
    .unwrap();
    assert_eq!(e.approval, Approval::Never);
}

/// Windows and time zones are judged by `Calendar::check` (docs/engagements.md, "Windows"):
/// whatever it decides, a hostile calendar never panics and a refusal names a calendar field.
#[test]
fn hostile_calendars_are_each_refused_naming_a_calendar_field() {
    let days = vec!["mon"; 10_000];
    for extra in [
        json!({"timezone": "Mars/Olympus"}),
        json!({"timezone": "x".repeat(10_000)}),
        json!({"timezone": "../../etc/passwd"}),
        json!({"windows": [{"days": [], "start": "22:00", "end": "06:00"}]}),
        json!({"windows": [{"days": ["mon"], "start": "25:00", "end": "06:00"}]}),
        json!({"windows": [{"days": ["mon"], "start": "22:00", "end": "22:00"}]}),
        json!({"windows": [{"days": ["mon"], "start": "-1:00", "end": "２２:００"}]}),
        json!({"windows": [{"days": days, "start": "00:00", "end": "23:59"}]}),
        json!({"windows": vec![json!({"days": ["sun"], "start": "23:00", "end": "01:00"}); 5_000]}),
        json!({"blackouts": [{"start": "2027-01-02T00:00:00Z", "end": "2027-01-01T00:00:00Z"}]}),
        json!({"blackouts": vec![json!({"start": "2027-01-01T00:00:00Z", "end": "2027-01-02T00:00:00Z"}); 5_000]}),
    ] {
        let e = judge(&with(extra.clone())).expect_err(&extra.to_string());
        assert!(
            ["timezone", "windows", "blackouts"]
                .iter()
                .any(|f| e.field.starts_with(f)),
            "{extra}: {e}"
        );
    }
}
