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

fn hash(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn a_result_is_stored_without_its_defaults_and_read_back_whole() {
    let quick = JobResult {
        exit_code: Some(0),
        ..JobResult::default()
    };
    let stored = quick.stored();
    assert_eq!(stored, r#"{"exit_code":0}"#);
    assert!(stored.len() <= 64, "fits Redis' compact hash encoding");
    let back: JobResult = serde_json::from_str(&stored).unwrap();
    assert_eq!(back, quick);
    // The answer still shows every field.
    let shown = serde_json::to_value(&back).unwrap();
    assert_eq!(shown["stdout"], "");
    assert_eq!(shown["timed_out"], false);
    let full = JobResult {
        exit_code: None,
        stdout: "out".into(),
        stderr: "err".into(),
        truncated_stdout: true,
        truncated_stderr: true,
        timed_out: true,
        ..JobResult::default()
    };
    let back: JobResult = serde_json::from_str(&full.stored()).unwrap();
    assert_eq!(back, full, "what differs from the defaults is kept");
    // A result written by an earlier release (every field) reads the same.
    let old = serde_json::to_string(&quick).unwrap();
    assert_eq!(serde_json::from_str::<JobResult>(&old).unwrap(), quick);
}

#[test]
fn queue_wait_and_run_time_are_derived_from_the_hash_times() {
    let base = [
        ("cid", "scan-1"),
        ("tool", "sleep"),
        ("created_ms", "1000"),
        ("started_ms", "1250"),
    ];
    let mut h = hash(&base);
    h.insert("state".into(), "running".into());
    let doc = JobDocument::from_hash(&h).unwrap();
    assert_eq!(doc.queue_wait_ms, Some(250), "from its creation");
    assert_eq!(doc.duration_ms, None, "still running");
    h.insert("ready_ms".into(), "1200".into());
    let doc = JobDocument::from_hash(&h).unwrap();
    assert_eq!(doc.queue_wait_ms, Some(50), "from when it was ready again");
    h.insert("state".into(), "succeeded".into());
    h.insert("finished_ms".into(), "1900".into());
    let doc = JobDocument::from_hash(&h).unwrap();
    assert_eq!(doc.duration_ms, Some(650));
    // An end that did not come from a run stores '' (finish in common.lua): no run time.
    h.insert("duration_ms".into(), String::new());
    assert_eq!(JobDocument::from_hash(&h).unwrap().duration_ms, None);
    // Queued again after an attempt: this attempt has not started, so no wait yet.
    let mut again = hash(&base);
    again.insert("state".into(), "queued".into());
    again.insert("ready_ms".into(), "5000".into());
    assert_eq!(JobDocument::from_hash(&again).unwrap().queue_wait_ms, None);
    // Hashes written by earlier releases keep their stored values.
    let mut old = hash(&[("cid", "scan-1"), ("tool", "sleep"), ("state", "succeeded")]);
    old.insert("queue_wait_ms".into(), "7".into());
    old.insert("duration_ms".into(), "9".into());
    let doc = JobDocument::from_hash(&old).unwrap();
    assert_eq!((doc.queue_wait_ms, doc.duration_ms), (Some(7), Some(9)));
}
