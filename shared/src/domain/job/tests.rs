use super::*;

#[test]
fn every_state_round_trips_through_its_string() {
    for s in JobState::ALL {
        assert_eq!(s.as_str().parse::<JobState>().unwrap(), *s);
        assert_eq!(
            serde_json::to_string(s).unwrap(),
            format!("\"{}\"", s.as_str())
        );
    }
    for p in Priority::ALL {
        assert_eq!(p.as_str().parse::<Priority>().unwrap(), *p);
    }
    for e in ErrorType::ALL {
        assert_eq!(e.as_str().parse::<ErrorType>().unwrap(), *e);
        assert!(!e.recovery_suggestion().is_empty());
    }
}

#[test]
fn unknown_strings_list_what_is_accepted() {
    let err = "urgent".parse::<Priority>().unwrap_err();
    assert_eq!(err.accepted, "high normal low");
}

#[test]
fn timestamps_render_as_rfc3339() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339(1_795_000_000_123), "2026-11-18T11:06:40.123Z");
}

#[test]
fn a_job_hash_becomes_a_document() {
    let h: HashMap<String, String> = [
        ("cid", "scan-1"),
        ("tool", "nmap"),
        ("target", "10.0.0.5"),
        ("args", "[\"-p\",\"22\"]"),
        ("state", "queued"),
        ("attempt", "0"),
        ("max_attempts", "3"),
        ("priority", "high"),
        ("created_ms", "1000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let doc = JobDocument::from_hash(&h).unwrap();
    assert_eq!(doc.args, vec!["-p", "22"]);
    assert_eq!(doc.priority, Priority::High);
    assert_eq!(doc.state, JobState::Queued);
    assert!(doc.needs.is_empty());
    let json = serde_json::to_value(&doc).unwrap();
    assert!(json.get("needs").is_none() && json.get("waiting_for").is_none());
    let mut raw = h.clone();
    raw.insert("needs_raw".into(), "1".into());
    let doc = JobDocument::from_hash(&raw).unwrap();
    assert_eq!(doc.needs, vec![super::super::Need::RawSockets]);
    assert_eq!(
        serde_json::to_value(&doc).unwrap()["needs"],
        serde_json::json!(["raw_sockets"])
    );
    assert!(JobDocument::from_hash(&HashMap::new()).is_none());
}

#[test]
fn a_job_parked_for_its_group_says_so_while_queued() {
    let mut h: HashMap<String, String> = [
        ("cid", "scan-1"),
        ("tool", "sleep"),
        ("state", "queued"),
        ("created_ms", "1000"),
        ("tgroup", "127.2.0.0/24"),
        ("waiting", "target_group"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let doc = JobDocument::from_hash(&h).unwrap();
    assert_eq!(doc.waiting_for, Some(super::super::WaitingFor::TargetGroup));
    let json = serde_json::to_value(&doc).unwrap();
    assert_eq!(json["waiting_for"], "target_group");
    assert_eq!(json["target_group"], "127.2.0.0/24");
    h.insert("state".into(), "cancelled".into());
    let doc = JobDocument::from_hash(&h).unwrap();
    assert_eq!(doc.waiting_for, None, "only a queued job waits");
    assert_eq!(doc.target_group.as_deref(), Some("127.2.0.0/24"));
}

#[test]
fn a_job_waiting_for_its_window_says_so_while_scheduled_only() {
    let mut h: HashMap<String, String> = [
        ("cid", "scan-1"),
        ("tool", "sleep"),
        ("state", "scheduled"),
        ("created_ms", "1000"),
        ("retry_at_ms", "5000"),
        ("waiting", "window"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let doc = JobDocument::from_hash(&h).unwrap();
    assert_eq!(doc.waiting_for, Some(super::super::WaitingFor::Window));
    let json = serde_json::to_value(&doc).unwrap();
    assert_eq!(json["waiting_for"], "window");
    assert_eq!(json["retry_at"], "1970-01-01T00:00:05.000Z");
    assert!(json.get("stop_reason").is_none());
    h.insert("state".into(), "queued".into());
    let doc = JobDocument::from_hash(&h).unwrap();
    assert_eq!(
        doc.waiting_for, None,
        "once queued it no longer waits for it"
    );
}

#[test]
fn a_job_stopped_at_its_windows_end_says_why() {
    let mut h: HashMap<String, String> = [
        ("cid", "scan-1"),
        ("tool", "sleep"),
        ("state", "cancelled"),
        ("created_ms", "1000"),
        ("stop_reason", "window_closed"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let doc = JobDocument::from_hash(&h).unwrap();
    assert_eq!(
        doc.stop_reason.as_deref(),
        Some(super::super::StopReason::WindowClosed.as_str())
    );
    h.remove("stop_reason");
    let e = ErrorInfo::new(ErrorType::WindowClosed, "window closed");
    h.insert("error".into(), serde_json::to_string(&e).unwrap());
    let doc = JobDocument::from_hash(&h).unwrap();
    assert_eq!(
        doc.stop_reason.as_deref(),
        Some(super::super::StopReason::WindowClosed.as_str()),
        "the error alone says it when the worker's own timer stopped it"
    );
}
