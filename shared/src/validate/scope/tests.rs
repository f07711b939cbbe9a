//! Unit and property tests of the target scope policy.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use proptest::prelude::*;

use super::*;

fn target(s: &str) -> Target {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn refused(policy: &TargetPolicy, s: &str) -> ValidationError {
    policy
        .check(&target(s), None)
        .expect_err(&format!("{s} should be refused"))
}

#[test]
fn default_policy_allows_rfc1918_and_lab_names() {
    let policy = TargetPolicy::default();
    for s in [
        "10.0.0.5",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "10.0.0.0/22",
        "db1.lab.internal",
        "a.b.lab.internal",
    ] {
        policy
            .check(&target(s), None)
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
}

#[test]
fn default_policy_refuses_scope_edges_and_special_ranges() {
    let policy = TargetPolicy::default();
    for s in [
        "172.15.255.255",
        "172.32.0.0",
        "192.169.0.1",
        "11.0.0.1",
        "8.8.8.8",
        "10.0.0.0/7",
        "127.0.0.1",
        "169.254.1.1",
        "224.0.0.1",
        "255.255.255.255",
        "0.0.0.0",
        "0.0.0.0/0",
        "lab.internal",
        "evil-lab.internal",
        "lab.internal.evil.com",
        "localhost",
    ] {
        assert_eq!(refused(&policy, s).field, "target", "{s}");
    }
}

#[test]
fn special_ranges_name_their_kind() {
    let policy = TargetPolicy::default();
    assert!(refused(&policy, "127.0.0.1").message.contains("loopback"));
    assert!(
        refused(&policy, "169.254.1.1")
            .message
            .contains("link-local")
    );
    assert!(refused(&policy, "224.0.0.1").message.contains("multicast"));
    assert!(refused(&policy, "0.0.0.0").message.contains("this-network"));
}

#[test]
fn a_wide_allow_rule_does_not_open_special_ranges() {
    let policy = TargetPolicy::parse("0.0.0.0/0", "", 1024).unwrap();
    policy.check(&target("8.8.8.8"), None).unwrap();
    assert!(refused(&policy, "127.0.0.1").message.contains("explicitly"));
    assert!(refused(&policy, "224.0.0.1").message.contains("multicast"));
}

#[test]
fn loopback_is_allowed_when_listed() {
    let policy = TargetPolicy::parse("10.0.0.0/8,127.0.0.0/8,.lab.internal", "", 1024).unwrap();
    policy.check(&target("127.0.0.1"), None).unwrap();
    let single = TargetPolicy::parse("127.0.0.1", "", 1024).unwrap();
    single.check(&target("127.0.0.1"), None).unwrap();
    assert_eq!(refused(&single, "127.0.0.2").field, "target");
}

#[test]
fn deny_wins_over_allow_for_addresses_cidrs_and_names() {
    let policy = TargetPolicy::parse(
        "10.0.0.0/8,.lab.internal",
        "10.0.5.0/24,.prod.lab.internal",
        1024,
    )
    .unwrap();
    assert!(refused(&policy, "10.0.5.7").message.contains("denied"));
    assert!(refused(&policy, "10.0.4.0/22").message.contains("denied"));
    assert!(
        refused(&policy, "db.prod.lab.internal")
            .message
            .contains("denied")
    );
    policy.check(&target("10.0.6.7"), None).unwrap();
    policy.check(&target("db.dev.lab.internal"), None).unwrap();
}

#[test]
fn a_cidr_must_lie_inside_one_allowed_range() {
    let policy = TargetPolicy::parse("10.0.0.0/9,10.128.0.0/9", "", u32::MAX).unwrap();
    policy.check(&target("10.0.0.0/9"), None).unwrap();
    assert_eq!(refused(&policy, "10.0.0.0/8").field, "target");
}

#[test]
fn cidr_size_cap_names_the_limit_and_honours_the_override() {
    let policy = TargetPolicy::default();
    let err = refused(&policy, "10.0.0.0/16");
    assert!(
        err.message.contains("65536") && err.message.contains("1024"),
        "{}",
        err.message
    );
    policy.check(&target("10.0.0.0/22"), None).unwrap();
    assert!(policy.check(&target("10.0.0.0/21"), None).is_err());
    policy.check(&target("10.0.0.0/16"), Some(65536)).unwrap();
    let err = policy.check(&target("10.0.0.0/24"), Some(16)).unwrap_err();
    assert!(err.message.contains("limit is 16"), "{}", err.message);
}

#[test]
fn a_list_is_checked_entry_by_entry_and_its_total_against_the_cap() {
    let policy = TargetPolicy::default();
    let list = |s: &str| s.parse::<TargetList>().unwrap();
    policy
        .check_list(&list("10.0.0.0/23,10.0.4.0/23"), None)
        .unwrap();
    // Two /22s: each within the cap, together twice it.
    let err = policy
        .check_list(&list("10.0.0.0/22,10.0.4.0/22"), None)
        .unwrap_err();
    assert_eq!(err.field, "target");
    assert!(
        err.message.contains("2048") && err.message.contains("1024"),
        "{}",
        err.message
    );
    policy
        .check_list(&list("10.0.0.0/22,10.0.4.0/22"), Some(2048))
        .unwrap();
    // One entry out of scope refuses the list, naming it.
    let err = policy
        .check_list(&list("10.0.0.1,8.8.8.8"), None)
        .unwrap_err();
    assert!(err.message.contains("8.8.8.8"), "{}", err.message);
    let err = policy
        .check_list(&list("db1.lab.internal,example.com"), None)
        .unwrap_err();
    assert!(err.message.contains("example.com"), "{}", err.message);
}

#[test]
fn a_bare_name_in_the_list_allows_exactly_that_name() {
    let policy = TargetPolicy::parse("10.0.0.0/8,scanner.lab.internal", "", 1024).unwrap();
    policy.check(&target("scanner.lab.internal"), None).unwrap();
    assert!(
        policy
            .check(&target("x.scanner.lab.internal"), None)
            .is_err()
    );
    assert!(policy.check(&target("other.lab.internal"), None).is_err());
}

#[test]
fn policy_parse_refuses_bad_entries() {
    for (allow, deny) in [
        ("10.0.0.5/8", ""),
        ("010.0.0.0/8", ""),
        (".lab..internal", ""),
        ("::1", ""),
        ("", "not an entry!"),
    ] {
        assert!(
            TargetPolicy::parse(allow, deny, 1024).is_err(),
            "{allow:?} {deny:?}"
        );
    }
    assert!(TargetPolicy::parse("", "", 0).is_err());
}

#[test]
fn policy_parse_tolerates_spaces_and_empty_entries() {
    let policy = TargetPolicy::parse(" 10.0.0.0/8 , ,.Lab.Internal,", "", 1024).unwrap();
    policy.check(&target("x.lab.internal"), None).unwrap();
    assert_eq!(
        policy.describe(),
        "allowed: 10.0.0.0/8, *.lab.internal; CIDRs up to 1024 addresses"
    );
}

#[test]
fn resolved_addresses_must_all_be_allowed() {
    let policy = TargetPolicy::default();
    let host: Hostname = "db1.lab.internal".parse().unwrap();
    let ok = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5));
    let bad = IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8));
    assert_eq!(
        policy.check_resolved(&host, &[ok]).unwrap(),
        Ipv4Addr::new(10, 0, 0, 5)
    );
    let err = policy.check_resolved(&host, &[ok, bad]).unwrap_err();
    assert!(err.message.contains("8.8.8.8"), "{}", err.message);
    assert!(policy.check_resolved(&host, &[]).is_err());
    let v6: IpAddr = "fd00::1".parse().unwrap();
    assert!(
        policy
            .check_resolved(&host, &[ok, v6])
            .unwrap_err()
            .message
            .contains("IPv6")
    );
}

#[test]
fn resolved_addresses_do_not_rescue_a_name_outside_the_suffixes() {
    let policy = TargetPolicy::default();
    let host: Hostname = "db1.example.com".parse().unwrap();
    let ok = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5));
    assert!(policy.check_resolved(&host, &[ok]).is_err());
}

fn policy_under_test() -> TargetPolicy {
    TargetPolicy::parse(
        "10.0.0.0/8,192.168.0.0/16,127.0.0.0/8,.lab.internal",
        "10.1.0.0/16,192.168.5.5,.prod.lab.internal",
        4096,
    )
    .unwrap()
}

fn allow_nets() -> Vec<Ipv4Net> {
    ["10.0.0.0/8", "192.168.0.0/16", "127.0.0.0/8"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect()
}

fn deny_nets() -> Vec<Ipv4Net> {
    ["10.1.0.0/16", "192.168.5.5/32"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect()
}

proptest! {
    #[test]
    fn any_accepted_address_or_cidr_lies_inside_the_allow_list_and_outside_the_deny_list(
        a in prop_oneof![Just(10u8), Just(192), Just(127), any::<u8>()],
        b in prop_oneof![Just(168u8), Just(1), Just(5), any::<u8>()],
        c in any::<u8>(), d in any::<u8>(), prefix in 0u8..=32,
    ) {
        let net = Ipv4Net::new(Ipv4Addr::new(a, b, c, d), prefix).unwrap().trunc();
        let policy = policy_under_test();
        for t in [Target::Cidr(net), Target::Ip(net.network())] {
            if policy.check(&t, None).is_ok() {
                let checked = match t { Target::Cidr(n) => n, Target::Ip(ip) => Ipv4Net::from(ip), Target::Host(_) => unreachable!() };
                prop_assert!(allow_nets().iter().any(|n| n.contains(&checked)), "{t}");
                prop_assert!(!deny_nets().iter().any(|n| n.contains(&checked) || checked.contains(n)), "{t}");
            }
        }
    }

    #[test]
    fn any_accepted_hostname_is_under_an_allowed_suffix_and_no_denied_one(
        name in "[a-z0-9.-]{1,40}(\\.lab\\.internal|\\.prod\\.lab\\.internal|lab\\.internal|\\.com)?",
    ) {
        if let Ok(t @ Target::Host(_)) = name.parse::<Target>()
            && policy_under_test().check(&t, None).is_ok()
        {
            let s = t.to_string();
            prop_assert!(s.ends_with(".lab.internal"), "{s}");
            prop_assert!(!s.ends_with(".prod.lab.internal"), "{s}");
        }
    }

    #[test]
    fn target_parsing_never_panics_and_accepted_targets_round_trip(s in "\\PC{0,40}") {
        if let Ok(t) = s.parse::<Target>() {
            prop_assert_eq!(t.to_string().parse::<Target>().unwrap(), t);
        }
    }
}
