use super::*;
use serde_json::json;

fn with_policy<T>(f: impl FnOnce(&Policy<'_>) -> T) -> T {
    let catalog = Catalog::builtin();
    let targets = TargetPolicy::default();
    let zones = ZoneMap::default();
    f(&Policy {
        catalog: &catalog,
        targets: &targets,
        zones: &zones,
        allow_intrusive: false,
        default_max_attempts: 3,
        require_engagement: false,
        approval: crate::domain::Approval::Never,
    })
}

fn field_of(body: Value) -> String {
    with_policy(|p| match JobSpec::from_json(&body, p).unwrap_err() {
        RequestError::Invalid(e) => e.field,
        RequestError::UnknownTool(t) => format!("unknown tool {t}"),
    })
}

#[test]
fn run_at_in_the_past_is_now_within_the_skew_and_refused_beyond_it() {
    let at = |secs_ago: u64| {
        let t = std::time::SystemTime::now() - std::time::Duration::from_secs(secs_ago);
        humantime::format_rfc3339_seconds(t).to_string()
    };
    let spec = with_policy(|p| {
        JobSpec::from_json(
            &json!({"tool":"nmap","target":"10.0.0.5","run_at": at(60)}),
            p,
        )
    })
    .unwrap();
    assert_eq!(spec.delay_ms, 0);
    let body = json!({"tool":"nmap","target":"10.0.0.5","run_at": at(RUN_AT_SKEW_SEC + 60)});
    assert_eq!(field_of(body), "run_at");
    let body = json!({"tool":"nmap","target":"10.0.0.5","run_at": "2000-01-01T00:00:00Z"});
    assert_eq!(field_of(body), "run_at");
}

#[test]
fn a_minimal_request_gets_the_defaults() {
    let spec = with_policy(|p| {
        JobSpec::from_json(
            &json!({"tool":"nmap","target":"10.0.0.5","template":"quick"}),
            p,
        )
    })
    .unwrap();
    assert_eq!(spec.priority, Priority::Normal);
    assert_eq!(spec.timeout_sec, 600);
    assert_eq!(spec.max_attempts, 3);
    assert!(spec.args.as_slice().contains(&"-sT".to_owned()));
}

#[test]
fn each_bad_field_is_named() {
    assert_eq!(field_of(json!({"target":"10.0.0.5"})), "tool");
    assert_eq!(field_of(json!({"tool":"nmap"})), "target");
    assert_eq!(
        field_of(json!({"tool":"nmap","target":"10.0.0.5","bogus":1})),
        "bogus"
    );
    assert_eq!(
        field_of(json!({"tool":"nmap","target":"10.0.0.5","priority":"urgent"})),
        "priority"
    );
    assert_eq!(
        field_of(json!({"tool":"nmap","target":"10.0.0.5","timeout_sec":0})),
        "timeout_sec"
    );
    assert_eq!(
        field_of(json!({"tool":"nmap","target":"10.0.0.5","template":"nope"})),
        "template"
    );
    assert_eq!(
        field_of(json!({"tool":"nmap","target":"10.0.0.5","correlation_id":"a b"})),
        "correlation_id"
    );
    assert_eq!(
        field_of(json!({"tool":"nmap","target":"10.0.0.5","args":"; rm -rf /"})),
        "args"
    );
    assert_eq!(
        field_of(json!({"tool":"nmap","target":"8.8.8.8"})),
        "target"
    );
    assert_eq!(field_of(json!([1])), "body");
    assert_eq!(
        field_of(json!({"tool":"nmap","target":"10.0.0.5","run_at":"tomorrow"})),
        "run_at"
    );
    assert_eq!(
        field_of(json!({"tool":"nmap","target":"10.0.0.5","run_at":"2099-01-01T00:00:00Z"})),
        "run_at"
    );
    assert_eq!(
        field_of(
            json!({"tool":"nmap","target":"10.0.0.5","delay_sec":5,"run_at":"2026-01-01T00:00:00Z"})
        ),
        "run_at"
    );
    assert_eq!(
        field_of(json!({"tool":"nope","target":"10.0.0.5"})),
        "unknown tool nope"
    );
}

#[test]
fn the_same_request_has_the_same_hash_and_a_different_one_does_not() {
    let a = with_policy(|p| {
        JobSpec::from_json(
            &json!({"tool":"nmap","target":"10.0.0.5","args":"-p 22"}),
            p,
        )
    })
    .unwrap();
    let b = with_policy(|p| {
        JobSpec::from_json(
            &json!({"tool":"nmap","target":"10.0.0.5","args":"-p 22"}),
            p,
        )
    })
    .unwrap();
    let c = with_policy(|p| {
        JobSpec::from_json(
            &json!({"tool":"nmap","target":"10.0.0.5","args":"-p 23"}),
            p,
        )
    })
    .unwrap();
    assert_eq!(a.request_hash, b.request_hash);
    assert_ne!(a.request_hash, c.request_hash);
}

#[test]
fn the_jobs_needs_follow_its_template_and_arguments() {
    let needs = |body: Value| {
        with_policy(|p| JobSpec::from_json(&body, p))
            .unwrap()
            .needs_raw
    };
    assert!(!needs(
        json!({"tool":"nmap","target":"10.0.0.5","args":"-sT -p 22"})
    ));
    assert!(!needs(
        json!({"tool":"nmap","target":"10.0.0.5","template":"quick"})
    ));
    assert!(needs(
        json!({"tool":"nmap","target":"10.0.0.5","args":"-sS -p 22"})
    ));
    for t in ["syn", "udp", "os"] {
        assert!(
            needs(json!({"tool":"nmap","target":"10.0.0.5","template":t})),
            "{t}"
        );
    }
    let os = with_policy(|p| {
        JobSpec::from_json(
            &json!({"tool":"nmap","target":"10.0.0.5","template":"os"}),
            p,
        )
    })
    .unwrap();
    assert_eq!(os.args.to_string(), "-sS -O --top-ports 100");
    // A request that overrides nothing raw keeps the template's need.
    let syn = with_policy(|p| {
        JobSpec::from_json(
            &json!({"tool":"nmap","target":"10.0.0.5","template":"syn","args":"-p 22"}),
            p,
        )
    })
    .unwrap();
    assert_eq!(syn.args.to_string(), "-sS -T 4 --top-ports 1000 -p 22");
    assert!(syn.needs_raw);
}
