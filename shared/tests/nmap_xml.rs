//! Parsing nmap XML: real fixtures captured from scans of 127.0.0.1, hand-made fixtures for
//! what a loopback scan cannot show, cut-off documents and garbage.

mod nmap_support;

use nmap_support::fixture;
use scanq::nmap::{NmapReport, ParseError, parse_xml, parse_xml_bytes};

const REAL_FIXTURES: &[&str] = &[
    "connect-open.xml",
    "service-scripts.xml",
    "slow-progress.xml",
    "two-groups-verbose.xml",
];
const HAND_MADE_FIXTURES: &[&str] = &[
    "no-hosts-up.xml",
    "filtered-ports.xml",
    "os-and-scripts.xml",
];

fn parse_fixture(name: &str) -> NmapReport {
    parse_xml_bytes(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_fixture_parses_completely() {
    for name in REAL_FIXTURES.iter().chain(HAND_MADE_FIXTURES) {
        let report = parse_fixture(name);
        assert!(!report.partial, "{name} is complete");
        let stats = report.stats.as_ref().expect("runstats");
        assert_eq!(stats.exit.as_deref(), Some("success"), "{name}");
        assert_eq!(report.version.as_deref(), Some("7.93"), "{name}");
        assert_eq!(
            report.hosts_up().count() as u32,
            stats.hosts_up,
            "{name}: hosts up agrees with runstats"
        );
    }
}

#[test]
fn a_connect_scan_reports_open_and_closed_ports_of_localhost() {
    let report = parse_fixture("connect-open.xml");
    assert_eq!(report.hosts.len(), 1);
    let host = &report.hosts[0];
    assert_eq!(host.ip(), Some("127.0.0.1"));
    assert_eq!(host.addresses[0].addrtype, "ipv4");
    let status = host.status.as_ref().expect("status");
    assert_eq!(
        (status.state.as_str(), status.reason.as_str()),
        ("up", "user-set")
    );
    assert_eq!(host.open_ports().count(), 2);
    let closed: Vec<_> = host.ports.iter().filter(|p| p.state == "closed").collect();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].reason, "conn-refused");
    assert!(host.ports.iter().all(|p| p.protocol == "tcp"));
    let args = report.scanner_args.as_deref().expect("args");
    assert!(
        args.contains("--stats-every 1s"),
        "entities are decoded: {args}"
    );
    let stats = report.stats.expect("stats");
    assert_eq!(
        (stats.hosts_up, stats.hosts_down, stats.hosts_total),
        (1, 0, 1)
    );
    assert!(stats.summary.expect("summary").starts_with("Nmap done"));
    assert!(stats.elapsed_sec.expect("elapsed") >= 0.0);
    assert!(stats.finished_time.expect("time") > 1_600_000_000);
}

#[test]
fn version_detection_and_script_output_are_kept() {
    let report = parse_fixture("service-scripts.xml");
    let host = &report.hosts[0];
    let find = |name: &str| {
        host.ports
            .iter()
            .find(|p| p.service.as_ref().is_some_and(|s| s.name == name))
            .unwrap_or_else(|| panic!("a port with service {name}"))
    };
    let ssh = find("ssh").service.clone().expect("service");
    assert_eq!(ssh.product.as_deref(), Some("OpenSSH"));
    assert_eq!(ssh.version.as_deref(), Some("9.2p1 Debian 2+deb12u3"));
    assert_eq!(ssh.extrainfo.as_deref(), Some("protocol 2.0"));
    assert_eq!(ssh.method.as_deref(), Some("probed"));
    assert_eq!(ssh.conf, Some(10));
    assert_eq!(
        ssh.cpe,
        ["cpe:/a:openbsd:openssh:9.2p1", "cpe:/o:linux:linux_kernel"]
    );
    let http = find("http");
    assert_eq!(
        http.service.as_ref().and_then(|s| s.product.as_deref()),
        Some("SimpleHTTPServer")
    );
    let title = http
        .scripts
        .iter()
        .find(|s| s.id == "http-title")
        .expect("http-title");
    assert_eq!(title.output, "scanq fixture");
    let methods = http
        .scripts
        .iter()
        .find(|s| s.id == "http-methods")
        .expect("methods");
    assert_eq!(methods.output, "\n  Supported Methods: GET HEAD");
    assert!(find("ssh").scripts.is_empty());
}

#[test]
fn folded_ports_are_summarised_and_filtered_states_kept_verbatim() {
    let report = parse_fixture("filtered-ports.xml");
    let host = &report.hosts[0];
    let folded: Vec<_> = host
        .extraports
        .iter()
        .map(|e| (e.state.as_str(), e.count))
        .collect();
    assert_eq!(folded, [("filtered", 995), ("closed", 2)]);
    assert_eq!(host.port("tcp", 80).expect("80").state, "filtered");
    assert_eq!(host.port("udp", 53).expect("53").state, "open|filtered");
    assert!(host.port("tcp", 53).is_none());
    assert_eq!(host.ip(), Some("10.0.0.7"), "the MAC address is not the IP");
    assert_eq!(
        host.addresses[1].vendor.as_deref(),
        Some("QEMU virtual NIC")
    );
    assert_eq!(host.hostnames[0].name, "gw.lab.internal");
    assert_eq!(host.hostnames[0].kind.as_deref(), Some("PTR"));
}

#[test]
fn os_matches_host_scripts_and_tls_services_are_parsed() {
    let report = parse_fixture("os-and-scripts.xml");
    assert_eq!(report.hosts.len(), 1, "the <hosthint> is not a host");
    let host = &report.hosts[0];
    let os: Vec<_> = host
        .os_matches
        .iter()
        .map(|m| (m.name.as_str(), m.accuracy))
        .collect();
    assert_eq!(os, [("Linux 4.15 - 5.8", 100), ("Linux 5.0 - 5.5", 96)]);
    let https = host.port("tcp", 443).expect("443");
    let service = https.service.as_ref().expect("service");
    assert_eq!(service.tunnel.as_deref(), Some("ssl"));
    assert_eq!(service.cpe, ["cpe:/a:igor_sysoev:nginx:1.22.1"]);
    let ids: Vec<_> = https.scripts.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["ssl-cert", "http-title"]);
    assert_eq!(https.scripts[1].output, "Files & <things> \"here\"");
    assert!(https.scripts[0].output.contains("\nNot valid before"));
    let host_scripts: Vec<_> = host.scripts.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(host_scripts, ["smb2-time", "nbstat"]);
    assert_eq!(
        host.scripts[1].output,
        "NetBIOS name: FILES, NetBIOS user: <unknown>"
    );
}

#[test]
fn a_run_with_no_hosts_up_has_no_hosts_and_counts_the_down_ones() {
    let report = parse_fixture("no-hosts-up.xml");
    assert!(report.hosts.is_empty());
    let stats = report.stats.expect("stats");
    assert_eq!(
        (stats.hosts_up, stats.hosts_down, stats.hosts_total),
        (0, 1, 1)
    );
}

#[test]
fn hosts_of_every_host_group_are_collected_in_order() {
    let report = parse_fixture("two-groups-verbose.xml");
    assert_eq!(report.hosts.len(), 2);
    for host in &report.hosts {
        assert_eq!(host.ip(), Some("127.0.0.1"));
        assert_eq!(
            host.status.as_ref().expect("status").reason,
            "localhost-response"
        );
        let folded: u32 = host.extraports.iter().map(|e| e.count).sum();
        assert_eq!(host.ports.len() as u32 + folded, 20, "-p 1-20");
    }
}

fn many_hosts_document(n: u32) -> String {
    let mut xml = String::from(
        "<?xml version=\"1.0\"?>\n<nmaprun scanner=\"nmap\" args=\"nmap -sT 10.0.0.0/16\" version=\"7.93\">\n",
    );
    for i in 0..n {
        let (a, b) = (i / 256, i % 256);
        xml.push_str(&format!(
            "<host><status state=\"up\" reason=\"syn-ack\" reason_ttl=\"0\"/>\n\
             <address addr=\"10.0.{a}.{b}\" addrtype=\"ipv4\"/>\n<hostnames>\n</hostnames>\n\
             <ports><extraports state=\"closed\" count=\"998\"/>\
             <port protocol=\"tcp\" portid=\"22\"><state state=\"open\" reason=\"syn-ack\"/>\
             <service name=\"ssh\" method=\"table\" conf=\"3\"/></port>\
             <port protocol=\"tcp\" portid=\"{}\"><state state=\"open\" reason=\"syn-ack\"/></port>\
             </ports>\n</host>\n",
            1024 + i % 60000
        ));
    }
    xml.push_str(&format!(
        "<runstats><finished time=\"1\" elapsed=\"9.5\" exit=\"success\"/>\
         <hosts up=\"{n}\" down=\"0\" total=\"{n}\"/></runstats>\n</nmaprun>\n"
    ));
    xml
}

#[test]
fn many_hosts_stream_through_a_small_read_buffer() {
    let xml = many_hosts_document(5000);
    let reader = std::io::BufReader::with_capacity(64, xml.as_bytes());
    let report = parse_xml(reader).expect("parse");
    assert_eq!(report.hosts.len(), 5000);
    assert!(!report.partial);
    assert_eq!(report.hosts[4999].ip(), Some("10.0.19.135"));
    assert_eq!(
        report.hosts[4999]
            .port("tcp", 1024 + 4999)
            .expect("port")
            .state,
        "open"
    );
    assert_eq!(report.stats.expect("stats").hosts_total, 5000);
}

/// Number of hosts fully contained in `prefix`.
fn complete_hosts(prefix: &[u8]) -> usize {
    prefix.windows(7).filter(|w| w == b"</host>").count()
}

#[test]
fn a_document_cut_anywhere_returns_the_hosts_completed_before_the_cut() {
    // Every byte of the fixture with the most kinds of markup; a coprime stride through the
    // others keeps the debug-build run short while still landing everywhere in a tag.
    for (name, stride) in [
        ("os-and-scripts.xml", 1),
        ("service-scripts.xml", 3),
        ("two-groups-verbose.xml", 7),
    ] {
        let bytes = fixture(name);
        let root_end = bytes
            .windows(9)
            .position(|w| w == b"<nmaprun ")
            .and_then(|at| {
                bytes[at..]
                    .iter()
                    .position(|&b| b == b'>')
                    .map(|i| at + i + 1)
            })
            .expect("root tag");
        let full = parse_xml_bytes(&bytes).expect("full");
        for cut in (0..bytes.len()).step_by(stride) {
            let prefix = &bytes[..cut];
            match parse_xml_bytes(prefix) {
                Ok(report) => {
                    assert!(
                        cut >= root_end,
                        "{name}@{cut}: parsed before the root tag ended"
                    );
                    let whole = bytes[cut..].iter().all(u8::is_ascii_whitespace);
                    assert_eq!(report.partial, !whole, "{name}@{cut}: partial flag");
                    assert_eq!(report.hosts.len(), complete_hosts(prefix), "{name}@{cut}");
                    assert_eq!(
                        report.hosts[..],
                        full.hosts[..report.hosts.len()],
                        "{name}@{cut}"
                    );
                }
                Err(ParseError::NotNmap(_)) => {
                    assert!(cut < root_end, "{name}@{cut}: refused after the root tag");
                }
                Err(err) => panic!("{name}@{cut}: {err}"),
            }
        }
    }
}

#[test]
fn a_document_cut_mid_attribute_after_a_host_keeps_that_host() {
    let xml = many_hosts_document(3);
    let cut = xml.rfind("addr=\"10.0.0.2").expect("third host") + 9;
    let report = parse_xml_bytes(&xml.as_bytes()[..cut]).expect("partial report");
    assert!(report.partial);
    assert_eq!(report.hosts.len(), 2);
    assert!(report.stats.is_none());
}

#[test]
fn input_that_is_not_nmap_xml_is_refused() {
    let cases: &[&[u8]] = &[
        b"",
        b"   \n",
        b"Starting Nmap 7.93 ( https://nmap.org )\nNmap done\n",
        b"<html><body>nope</body></html>",
        b"\x00\x01\x02garbage\xff",
        b"{\"hosts\": []}",
    ];
    for case in cases {
        let err = parse_xml_bytes(case).expect_err("not nmap");
        assert!(matches!(err, ParseError::NotNmap(_)), "{case:?}: {err}");
    }
}

#[test]
fn malformed_xml_inside_the_document_is_an_error_not_a_partial_report() {
    let cases = [
        "<nmaprun><host><status state=\"up\"/></nmaprun>",
        "<nmaprun><host><port protocol=\"tcp\" portid=\"99999\"></port></host></nmaprun>",
        "<nmaprun><host><port protocol=\"tcp\"></port></host></nmaprun>",
        "<nmaprun><host><address addr=\"1\" addr=\"2\"/></host></nmaprun>",
    ];
    for case in cases {
        let result = parse_xml_bytes(case.as_bytes());
        assert!(result.is_err(), "{case}: {result:?}");
    }
}

#[test]
fn the_report_round_trips_through_json_and_omits_empty_fields() {
    for name in REAL_FIXTURES.iter().chain(HAND_MADE_FIXTURES) {
        let report = parse_fixture(name);
        let json = serde_json::to_string(&report).expect("serialize");
        let back: NmapReport = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, report, "{name}");
    }
    let json = serde_json::to_value(parse_fixture("connect-open.xml")).expect("json");
    let port = &json["hosts"][0]["ports"][1];
    assert_eq!(port["state"], "open");
    assert!(
        port.get("service").is_none() && port.get("scripts").is_none(),
        "{port}"
    );
    assert_eq!(json["partial"], false);
}
