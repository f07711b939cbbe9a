//! The worker's re-check of a stored target that is a list (a chunk of a big scan).

use super::*;

fn nmap(max_hosts: Option<u32>) -> ToolSpec {
    let catalog = Catalog::builtin();
    let mut spec = catalog.get(&"nmap".parse().unwrap()).unwrap().clone();
    spec.max_hosts = max_hosts;
    spec
}

fn stored(target: &str) -> StoredRequest<'_> {
    StoredRequest {
        target,
        template: Some("quick"),
        raw_args: "",
        intrusive: false,
    }
}

#[test]
fn a_stored_list_comes_back_as_the_list_in_its_canonical_form() {
    let (list, args) = recheck(
        &nmap(None),
        &TargetPolicy::default(),
        false,
        &stored("10.0.0.0/26,10.0.0.64/27,10.0.0.96/30"),
    )
    .unwrap();
    assert_eq!(list.to_string(), "10.0.0.0/26,10.0.0.64/27,10.0.0.96/30");
    assert_eq!(list.hosts(), 100);
    assert!(args.as_slice().contains(&"-sT".to_owned()));
    let (one, _) = recheck(
        &nmap(None),
        &TargetPolicy::default(),
        false,
        &stored("10.0.0.5"),
    )
    .unwrap();
    assert_eq!(
        one.single().map(ToString::to_string).as_deref(),
        Some("10.0.0.5")
    );
}

#[test]
fn a_list_over_the_tools_max_hosts_is_refused_naming_both_numbers() {
    let err = recheck(
        &nmap(Some(64)),
        &TargetPolicy::default(),
        false,
        &stored("10.0.0.0/26,10.0.1.0/30"),
    )
    .unwrap_err();
    assert_eq!(err.field, "target");
    assert!(
        err.message.contains("68") && err.message.contains("64"),
        "{}",
        err.message
    );
    // Without the tool's limit, the server's (1024) applies.
    let err = recheck(
        &nmap(None),
        &TargetPolicy::default(),
        false,
        &stored("10.0.0.0/22,10.0.8.0/29"),
    )
    .unwrap_err();
    assert!(
        err.message.contains("1032") && err.message.contains("1024"),
        "{}",
        err.message
    );
}

#[test]
fn a_list_with_one_entry_out_of_scope_is_refused_naming_the_entry() {
    let err = recheck(
        &nmap(None),
        &TargetPolicy::default(),
        false,
        &stored("10.0.0.5,127.0.0.1"),
    )
    .unwrap_err();
    assert_eq!(err.field, "target");
    assert!(err.message.contains("127.0.0.1"), "{}", err.message);
    let err = recheck(
        &nmap(None),
        &TargetPolicy::default(),
        false,
        &stored("db1.lab.internal,10.0.0.5"),
    )
    .unwrap_err();
    assert!(err.message.contains("mixes"), "{}", err.message);
}

#[test]
fn a_stored_target_not_in_canonical_form_is_refused_not_reinterpreted() {
    for text in [
        "10.0.0.5 ",
        " 10.0.0.5",
        "10.0.0.5\n",
        "10.0.0.5 10.0.0.6",
        "10.0.0.5, 10.0.0.6",
        "DB1.lab.internal",
    ] {
        let err = recheck(&nmap(None), &TargetPolicy::default(), false, &stored(text)).unwrap_err();
        assert_eq!(err.field, "target", "{text:?}");
        // Refused by the parser (white space, a control character) or as not canonical: never
        // re-read as something else.
        assert!(
            ["canonical", "whitespace", "control character"]
                .iter()
                .any(|w| err.message.contains(w)),
            "{text:?}: {}",
            err.message
        );
    }
}
