use super::*;

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

fn arr(items: Vec<Value>) -> Value {
    Value::Array(items)
}

#[test]
fn an_unknown_renew_status_is_an_error_not_a_lost_job() {
    assert_eq!(
        renewed(
            &[
                "ok".into(),
                "cancel".into(),
                "lost".into(),
                "window_closed".into()
            ],
            4
        )
        .unwrap(),
        vec![
            RenewStatus::Ok,
            RenewStatus::Cancel,
            RenewStatus::Lost,
            RenewStatus::WindowClosed
        ]
    );
    assert!(renewed(&["gone".into()], 1).is_err());
    assert!(renewed(&["ok".into()], 2).is_err(), "one status per job");
}

#[test]
fn completion_statuses_and_verdicts_are_decoded_strictly() {
    let ok = arr(vec![
        arr(vec![bulk("succeeded"), bulk("stale"), bulk("scheduled")]),
        arr(vec![bulk("success"), bulk(""), bulk("failure")]),
        arr(vec![]),
    ]);
    let done = completed(ok, 3).unwrap();
    assert_eq!(
        done.states,
        vec![
            CompleteStatus::Moved(JobState::Succeeded),
            CompleteStatus::Stale,
            CompleteStatus::Moved(JobState::Scheduled)
        ]
    );
    assert_eq!(
        done.breaker,
        vec![Some(Verdict::Success), None, Some(Verdict::Failure)]
    );
    let bad_state = arr(vec![
        arr(vec![bulk("exploded")]),
        arr(vec![bulk("")]),
        arr(vec![]),
    ]);
    assert!(completed(bad_state, 1).is_err());
    let bad_verdict = arr(vec![
        arr(vec![bulk("failed")]),
        arr(vec![bulk("maybe")]),
        arr(vec![]),
    ]);
    assert!(completed(bad_verdict, 1).is_err());
    let short = arr(vec![
        arr(vec![bulk("failed")]),
        arr(vec![bulk("")]),
        arr(vec![]),
        Value::Int(0),
    ]);
    assert!(completed(short, 2).is_err(), "one status per job");
}

#[test]
fn a_claimed_job_has_exactly_the_fields_the_worker_needs() {
    let job = |fields: &[&str]| arr(fields.iter().map(|f| bulk(f)).collect());
    let reply = arr(vec![
        arr(vec![job(&[
            "t/c",
            "3",
            "1",
            "12",
            "127.0.0.1",
            "",
            "-p 80",
            "1",
            "",
            "1",
            "",
            "acme-2026",
        ])]),
        Value::Int(0),
        arr(vec![]),
        Value::Int(2),
        Value::Int(1),
    ]);
    let c = claimed(reply).unwrap();
    assert_eq!(c.parked, 2);
    assert!(c.drained);
    assert_eq!(
        c.jobs,
        vec![ClaimedJob {
            job_ref: "t/c".into(),
            fence: 3,
            attempt: 1,
            queue_wait_ms: 12,
            target: "127.0.0.1".into(),
            template: String::new(),
            args_raw: "-p 80".into(),
            intrusive: true,
            timeout_sec: None,
            needs_raw: true,
            parent: String::new(),
            engagement: "acme-2026".into(),
        }]
    );
    let short = arr(vec![
        arr(vec![job(&["t/c", "3"])]),
        Value::Int(0),
        arr(vec![]),
        Value::Int(0),
        Value::Int(0),
    ]);
    assert!(claimed(short).is_err());
    // A job with none of the last seven gets the first five (`start_job` in common.lua).
    let plain = arr(vec![
        arr(vec![job(&["t/d", "1", "1", "0", "127.0.0.2"])]),
        Value::Int(0),
        arr(vec![]),
        Value::Int(0),
        Value::Int(0),
    ]);
    assert_eq!(
        claimed(plain).unwrap().jobs,
        vec![ClaimedJob {
            job_ref: "t/d".into(),
            fence: 1,
            attempt: 1,
            queue_wait_ms: 0,
            target: "127.0.0.2".into(),
            template: String::new(),
            args_raw: String::new(),
            intrusive: false,
            timeout_sec: Some(crate::domain::STORED_DEFAULT_TIMEOUT_SEC),
            needs_raw: false,
            parent: String::new(),
            engagement: String::new(),
        }]
    );
    assert_eq!(
        inbox_job(r#"["t/d",1,1,0,"127.0.0.2"]"#).unwrap().target,
        "127.0.0.2"
    );
    let bad_fence = arr(vec![
        arr(vec![job(&["t/c", "x", "1", "0", "", "", "", "0", "", "0"])]),
        Value::Int(0),
        arr(vec![]),
        Value::Int(0),
        Value::Int(0),
    ]);
    assert!(claimed(bad_fence).is_err());
    let no_parked = arr(vec![arr(vec![]), Value::Int(0), arr(vec![])]);
    assert!(
        claimed(no_parked).is_err(),
        "the parked count is part of the reply"
    );
}
