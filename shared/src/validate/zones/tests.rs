use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::*;

fn map(s: &str) -> ZoneMap {
    ZoneMap::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn z(s: &str) -> Zone {
    Zone::parse(s).unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn host(s: &str) -> Hostname {
    s.parse().unwrap()
}

fn list(s: &str) -> TargetList {
    s.parse().unwrap()
}

fn texts(parts: &[(Zone, TargetList)]) -> Vec<(String, String)> {
    parts
        .iter()
        .map(|(z, l)| (z.to_string(), l.to_string()))
        .collect()
}

#[test]
fn the_text_form_parses_with_white_space_and_a_trailing_semicolon() {
    let m = map(" dmz = 192.0.2.0/24 , .dmz.example ; lab=198.51.100.0/24;");
    assert_eq!(m.zones(), vec![z("dmz"), z("lab")]);
    assert!(m.knows(&z("dmz")) && m.knows(&z("default")) && !m.knows(&z("other")));
    assert_eq!(m.zone_of_addr(ip("192.0.2.7")), z("dmz"));
    assert_eq!(m.zone_of_addr(ip("198.51.100.255")), z("lab"));
    assert_eq!(m.zone_of_addr(ip("127.0.0.1")), z("default"));
    assert_eq!(m.zone_of_name(&host("db.dmz.example")), z("dmz"));
    // An address entry is its /32.
    assert_eq!(map("a=127.0.0.5").zone_of_addr(ip("127.0.0.5")), z("a"));
    assert_eq!(
        map("a=127.0.0.5").zone_of_addr(ip("127.0.0.6")),
        z("default")
    );
}

#[test]
fn an_empty_map_puts_everything_in_default() {
    for m in [map(""), map("  "), ZoneMap::default()] {
        assert!(m.zones().is_empty());
        assert_eq!(m.zone_of_addr(ip("127.0.0.1")), z("default"));
        assert_eq!(m.zone_of_name(&host("a.lab")), z("default"));
        let l = list("127.0.0.0/8");
        assert_eq!(m.split(&l), vec![(z("default"), l.clone())]);
        assert!(
            m.check_addresses(&z("default"), &["127.0.0.0/8".into()])
                .is_ok()
        );
    }
}

#[test]
fn the_table_form_is_the_same_map() {
    let mut t = BTreeMap::new();
    t.insert(
        "dmz".to_owned(),
        vec!["192.0.2.0/24".to_owned(), ".dmz.example".to_owned()],
    );
    t.insert("lab".to_owned(), vec!["198.51.100.0/24".to_owned()]);
    assert_eq!(
        ZoneMap::from_table(&t).unwrap(),
        map("dmz=192.0.2.0/24,.dmz.example;lab=198.51.100.0/24")
    );
    t.insert("Bad".to_owned(), vec!["127.0.0.0/8".to_owned()]);
    let e = ZoneMap::from_table(&t).unwrap_err();
    assert!(e.contains("`Bad`") && e.contains("zone must be"), "{e}");
}

#[test]
fn bad_maps_are_refused_naming_the_zone_and_entry() {
    let cases = [
        ("DMZ=127.0.1.0/24", "zone `DMZ`: zone must be"),
        ("a 127.0.1.0/24", "item `a 127.0.1.0/24` has no `=`"),
        ("a=", "zone a has no entries"),
        ("a=127.0.1.0/24,", "zone a: entry ``: empty entry"),
        (
            "a=127.0.1.5/24",
            "zone a: entry `127.0.1.5/24`: `127.0.1.5/24` has host bits set",
        ),
        ("a=127.0.1.0/33", "invalid prefix length"),
        ("a=db.lab", "write `.db.lab`"),
        ("a=.bad_name", "zone a: entry `.bad_name`"),
        ("a=.10.0.0.1", "not an address"),
        ("a=::1", "zone a: entry `::1`"),
        (
            "a=127.0.1.0/24;b=127.0.1.0/24",
            "ambiguous: 127.0.1.0/24 is in zone a and zone b",
        ),
        (
            "a=.x.lab;b=.X.lab",
            "ambiguous: .x.lab is in zone a and zone b",
        ),
        (
            "a=127.0.1.0/24,127.0.1.0/24",
            "zone a lists 127.0.1.0/24 twice",
        ),
        (
            "a=127.0.0.5,127.0.0.5/32",
            "zone a lists 127.0.0.5/32 twice",
        ),
        ("a=.x.lab,.x.lab", "zone a lists .x.lab twice"),
        ("a=127.0.1.0/24;a=127.0.2.0/24", "zone a is given twice"),
        ("a=127.0.1.0/24;;b=127.0.2.0/24", "item `` has no `=`"),
    ];
    for (text, words) in cases {
        let e = ZoneMap::parse(text).unwrap_err();
        assert!(e.contains(words), "{text:?}: {e}");
    }
    let many: Vec<String> = (0..=MAX_ZONE_ENTRIES)
        .map(|i| format!("127.{}.{}.0/24", i / 256, i % 256))
        .collect();
    let e = ZoneMap::parse(&format!("a={}", many.join(","))).unwrap_err();
    assert!(
        e.contains("1025 entries") && e.contains("at most 1024"),
        "{e}"
    );
    assert!(ZoneMap::parse(&format!("a={}", many[..1024].join(","))).is_ok());
}

#[test]
fn the_most_specific_cidr_wins_and_default_may_carve_exceptions() {
    let m = map("a=127.0.0.0/16;b=127.0.1.0/24,127.0.1.7;default=127.0.1.128/25");
    assert_eq!(m.zone_of_addr(ip("127.0.0.1")), z("a"));
    assert_eq!(m.zone_of_addr(ip("127.0.1.1")), z("b"));
    assert_eq!(m.zone_of_addr(ip("127.0.1.7")), z("b"));
    assert_eq!(m.zone_of_addr(ip("127.0.1.200")), z("default"));
    assert_eq!(m.zone_of_addr(ip("127.0.2.0")), z("a"));
    assert_eq!(m.zone_of_addr(ip("127.1.0.0")), z("default"));
    assert_eq!(m.zones(), vec![z("a"), z("b"), z("default")]);
    // The edges of the address space.
    let m = map("a=0.0.0.0/0;b=255.255.255.255;c=0.0.0.0/32");
    assert_eq!(m.zone_of_addr(ip("255.255.255.255")), z("b"));
    assert_eq!(m.zone_of_addr(ip("0.0.0.0")), z("c"));
    assert_eq!(m.zone_of_addr(ip("8.8.8.8")), z("a"));
}

#[test]
fn the_longest_suffix_wins_and_a_suffix_holds_its_own_name() {
    let m = map("a=.lab;b=.db.lab");
    assert_eq!(m.zone_of_name(&host("x.lab")), z("a"));
    assert_eq!(m.zone_of_name(&host("lab")), z("a"));
    assert_eq!(m.zone_of_name(&host("db.lab")), z("b"));
    assert_eq!(m.zone_of_name(&host("one.db.lab")), z("b"));
    assert_eq!(
        m.zone_of_name(&host("xdb.lab")),
        z("a"),
        "labels, not characters"
    );
    assert_eq!(m.zone_of_name(&host("lab.example")), z("default"));
    assert_eq!(
        m.zone_of_name(&host("DB.Lab")),
        z("b"),
        "names are lower-cased"
    );
}

#[test]
fn a_range_across_nested_zones_is_cut_into_aligned_blocks_per_zone() {
    let m = map("a=127.0.1.0/24;b=127.0.1.128/25");
    let parts = m.split(&list("127.0.0.0/22"));
    assert_eq!(
        texts(&parts),
        [
            ("default", "127.0.0.0/24,127.0.2.0/23"),
            ("a", "127.0.1.0/25"),
            ("b", "127.0.1.128/25"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    // Each zone's piece in list order; zones in order of first appearance.
    let parts = m.split(&list("127.0.1.200,127.0.9.0/24,127.0.1.0/26,127.0.1.129"));
    assert_eq!(
        texts(&parts),
        [
            ("b", "127.0.1.200,127.0.1.129"),
            ("default", "127.0.9.0/24"),
            ("a", "127.0.1.0/26"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    // A list in one zone comes back exactly.
    let l = list("127.0.1.0/26,127.0.1.64/27");
    assert_eq!(m.split(&l), vec![(z("a"), l.clone())]);
    // Every address once, across the pieces.
    let hosts: u64 = m
        .split(&list("127.0.0.0/16"))
        .iter()
        .map(|p| p.1.hosts())
        .sum();
    assert_eq!(hosts, 65_536);
}

#[test]
fn a_slash_16_of_single_addresses_splits_fast() {
    let entries: Vec<String> = (0..1024)
        .map(|i| format!("127.{}.{}.0/26", 1 + i / 256, i % 256))
        .collect();
    let m = map(&format!("a={}", entries.join(",")));
    let chunks = list("127.1.0.0/16").chunks(1);
    let big: Vec<Target> = chunks.iter().map(|c| c.first().clone()).collect();
    let l = TargetList::from_entries(big);
    let start = std::time::Instant::now();
    let parts = m.split(&l);
    assert!(start.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].1.entries().len(), 256 * 64);
    assert_eq!(parts[1].1.entries().len(), 65_536 - 256 * 64);
}

#[test]
fn names_split_by_suffix_in_list_order() {
    let m = map("a=.a.lab;b=.b.lab");
    let parts = m.split(&list("x.b.lab,y.a.lab,z.other,w.b.lab"));
    assert_eq!(
        texts(&parts),
        [
            ("b", "x.b.lab,w.b.lab"),
            ("a", "y.a.lab"),
            ("default", "z.other")
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let l = list("x.a.lab,y.a.lab");
    assert_eq!(m.split(&l), vec![(z("a"), l.clone())]);
}

#[test]
fn the_re_check_names_the_first_address_outside_and_its_zone() {
    let m = map("a=127.0.1.0/24;b=127.0.1.128/25;names=.n.lab");
    let addrs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(
        m.check_addresses(&z("default"), &addrs(&["127.0.9.9", "127.0.0.0/24"]))
            .is_ok()
    );
    assert!(
        m.check_addresses(&z("a"), &addrs(&["127.0.1.5", "127.0.1.0/25"]))
            .is_ok()
    );
    assert!(m.check_addresses(&z("b"), &addrs(&["127.0.1.130"])).is_ok());
    let e = m
        .check_addresses(&z("default"), &addrs(&["127.0.9.9", "127.0.1.5"]))
        .unwrap_err();
    assert_eq!(e, "127.0.1.5 is in zone a, outside zone default");
    let e = m
        .check_addresses(&z("a"), &addrs(&["127.0.1.0/24"]))
        .unwrap_err();
    assert_eq!(
        e,
        "127.0.1.0/24 is partly in zone b (127.0.1.128/25), outside zone a"
    );
    let e = m
        .check_addresses(&z("a"), &addrs(&["127.0.9.9"]))
        .unwrap_err();
    assert_eq!(e, "127.0.9.9 is in zone default, outside zone a");
    // A zone of names only also takes what no CIDR entry places, never another zone's.
    assert!(
        m.check_addresses(&z("names"), &addrs(&["127.0.9.9"]))
            .is_ok()
    );
    let e = m
        .check_addresses(&z("names"), &addrs(&["127.0.1.200"]))
        .unwrap_err();
    assert!(e.contains("in zone b"), "{e}");
    let e = m.check_addresses(&z("a"), &addrs(&["db.lab"])).unwrap_err();
    assert!(e.contains("not an IPv4 address or CIDR"), "{e}");
    // An explicit `default` entry is default's, not the names-only zone's.
    let m = map("default=127.0.0.0/8;names=.n.lab");
    assert!(
        m.check_addresses(&z("names"), &addrs(&["127.0.0.1"]))
            .is_err()
    );
    assert!(
        m.check_addresses(&z("default"), &addrs(&["127.0.0.1"]))
            .is_ok()
    );
}

#[test]
fn each_zone_lists_its_entries_in_canonical_form() {
    let m = map("a=127.0.1.0/24, 127.0.3.7 ,.lab.example;b=127.0.2.0/24;default=127.0.1.9");
    assert_eq!(
        m.entries(&z("a")),
        ["127.0.1.0/24", "127.0.3.7/32", ".lab.example"]
    );
    assert_eq!(m.entries(&z("b")), ["127.0.2.0/24"]);
    assert_eq!(m.entries(&z("default")), ["127.0.1.9/32"]);
    assert!(m.entries(&z("c")).is_empty());
    assert!(ZoneMap::default().entries(&Zone::default()).is_empty());
}
