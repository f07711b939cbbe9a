//! Tests of `--script` expression parsing, gating and narrowing.

use super::*;

const PLAIN: ArgContext = ArgContext {
    server_allows_intrusive: false,
    request_intrusive: false,
};
const GATED: ArgContext = ArgContext {
    server_allows_intrusive: true,
    request_intrusive: true,
};

const NARROWED: &str = " and not broadcast and not vuln and not intrusive and not exploit and not \
                        brute and not dos and not malware and not fuzzer and not external";

fn check(raw: &str, ctx: &ArgContext) -> Result<String, ValidationError> {
    ScriptPolicy::default().check_expression(raw, ctx)
}

#[test]
fn safe_only_expressions_pass_without_the_gate_and_are_narrowed() {
    assert_eq!(check("safe", &PLAIN).unwrap(), format!("safe{NARROWED}"));
    assert_eq!(
        check("default and safe", &PLAIN).unwrap(),
        format!("(default and safe){NARROWED}")
    );
    assert_eq!(
        check("discovery and safe", &PLAIN).unwrap(),
        format!("(discovery and safe){NARROWED}")
    );
}

#[test]
fn negated_categories_are_not_narrowed_twice() {
    let got = check("safe and not vuln and not external", &PLAIN).unwrap();
    assert!(!got.contains("not vuln and not vuln"), "{got}");
    assert_eq!(got.matches("not vuln").count(), 1, "{got}");
    assert_eq!(got.matches("not external").count(), 1, "{got}");
}

#[test]
fn narrowed_output_of_a_single_rule_is_a_fixed_point() {
    let once = check("safe", &PLAIN).unwrap();
    assert_eq!(check(&once, &PLAIN).unwrap(), once);
}

#[test]
fn expressions_that_may_select_unsafe_scripts_need_the_gate() {
    for raw in [
        "discovery",
        "default",
        "version",
        "discovery and not intrusive",
        "safe or auth",
        "not vuln",
    ] {
        let err = check(raw, &PLAIN).expect_err(raw);
        assert!(
            err.message.contains("not marked safe"),
            "{raw}: {}",
            err.message
        );
        assert!(err.hint.contains("and safe"), "{raw}: {}", err.hint);
    }
}

#[test]
fn naming_an_intrusive_category_needs_the_gate_even_with_safe() {
    for raw in [
        "vuln",
        "safe and vuln",
        "safe and external",
        "intrusive",
        "brute or safe",
        "not not exploit",
    ] {
        let err = check(raw, &PLAIN).expect_err(raw);
        assert!(
            err.message.contains("is intrusive"),
            "{raw}: {}",
            err.message
        );
    }
}

#[test]
fn with_the_gate_intrusive_categories_pass_and_only_excluded_ones_are_narrowed() {
    assert_eq!(check("vuln", &GATED).unwrap(), "vuln and not broadcast");
    assert_eq!(
        check("discovery,default", &GATED).unwrap(),
        "discovery and not broadcast,default and not broadcast"
    );
    assert_eq!(
        check("safe and not broadcast", &GATED).unwrap(),
        "safe and not broadcast"
    );
}

#[test]
fn rules_nest_to_the_right_as_in_nmap() {
    // nmap reads `safe and default or vuln` as `safe and (default or vuln)`, which implies safe;
    // but it names vuln, so it still needs the gate.
    assert!(check("safe and default or vuln", &PLAIN).is_err());
    // `default or vuln and safe` is `default or (vuln and safe)`: may select unsafe default scripts.
    assert!(check("default or vuln and safe", &GATED).is_ok());
    assert_eq!(
        check("safe and default or discovery", &PLAIN).unwrap(),
        format!("(safe and default or discovery){NARROWED}")
    );
}

#[test]
fn excluded_unknown_and_malformed_expressions_are_refused() {
    for raw in [
        "broadcast",
        "safe or broadcast",
        "all",
        "http-title",
        "http-*",
        "/tmp/x.nse",
        "safe and",
        "and safe",
        "safe safe",
        "",
        "safe,,default",
        "safe,",
        "true",
    ] {
        assert!(check(raw, &GATED).is_err(), "{raw:?}");
    }
    assert!(
        check("broadcast", &GATED)
            .unwrap_err()
            .message
            .contains("never run")
    );
}

#[test]
fn keywords_and_categories_are_case_insensitive() {
    assert_eq!(
        check("SAFE AND Default", &GATED).unwrap(),
        "(safe and default) and not broadcast"
    );
}

#[test]
fn script_policies_with_bad_category_lists_are_refused() {
    let mut policy = ScriptPolicy::default();
    policy.excluded.push("safe".into());
    assert!(policy.validate().is_err());
    let mut policy = ScriptPolicy::default();
    policy.allowed.push("all".into());
    assert!(policy.validate().is_err());
    ScriptPolicy::default().validate().unwrap();
}
