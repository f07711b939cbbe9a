//! A table of hostile requests that every entry point must refuse: this module's parsers, the
//! REST API and MCP all run it. Each case attacks exactly one field (the other holds a valid
//! value: target `10.0.0.5`, empty args) and is refusable by parsing alone under the default
//! target policy, the default nmap argument policy and a server with intrusive scans off, so
//! intrusive cases expect the field `args` whatever the request's `intrusive` says.

/// One hostile request and the field its refusal must name.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct AdversarialCase {
    pub name: &'static str,
    pub target: &'static str,
    pub args: &'static str,
    pub intrusive: bool,
    pub expect_field: &'static str,
}

/// The valid target that args attacks ride with.
pub const VALID_TARGET: &str = "10.0.0.5";

const fn t(name: &'static str, target: &'static str) -> AdversarialCase {
    AdversarialCase {
        name,
        target,
        args: "",
        intrusive: false,
        expect_field: "target",
    }
}

const fn a(name: &'static str, args: &'static str) -> AdversarialCase {
    AdversarialCase {
        name,
        target: VALID_TARGET,
        args,
        intrusive: false,
        expect_field: "args",
    }
}

/// An args attack sent with `"intrusive": true` (the server still has intrusive scans off).
const fn ai(name: &'static str, args: &'static str) -> AdversarialCase {
    AdversarialCase {
        intrusive: true,
        ..a(name, args)
    }
}

macro_rules! x4 {
    ($s:expr) => {
        concat!($s, $s, $s, $s)
    };
}

#[doc(hidden)]
pub const CASES: &[AdversarialCase] = &[
    // --- Target: other IPv4 spellings and encodings ---------------------------------------
    t("octal_ipv4", "010.0.0.1"),
    t("octal_padded_ipv4", "012.000.000.001"),
    t("hex_octet_ipv4", "0x0a.0.0.1"),
    t("hex_integer_ipv4", "0x0a000001"),
    t("decimal_integer_ipv4", "167772161"),
    t("short_two_part_ipv4", "10.1"),
    t("short_three_part_ipv4", "10.0.1"),
    t("octet_above_255", "10.0.0.256"),
    t("five_octets", "10.0.0.1.5"),
    t("leading_zero_last_octet", "10.0.0.01"),
    t("percent_encoded_digits", "%31%30.0.0.1"),
    t("percent_encoded_dot", "10%2e0.0.1"),
    t("fullwidth_digits", "１０.0.0.1"),
    t("fullwidth_dot", "10．0.0.1"),
    t("ideographic_full_stop", "10。0.0.1"),
    t("arabic_indic_digits", "١٠.0.0.1"),
    t("mathematical_digit", "\u{1d7cf}0.0.0.1"),
    t("cyrillic_a_in_suffix", "db1.lаb.internal"),
    t("greek_alpha_in_suffix", "db1.lab.intern\u{3b1}l"),
    t("zero_width_space", "10.0.0.5\u{200b}"),
    t("zero_width_joiner_in_name", "db\u{200d}1.lab.internal"),
    t("byte_order_mark", "\u{feff}10.0.0.5"),
    t("right_to_left_override", "10.0.0.5\u{202e}"),
    t("idn_unicode_name", "bücher.lab.internal"),
    t("punycode_outside_suffix", "xn--bcher-kva.example"),
    t("punycode_lookalike_tld", "db1.xn--lab-internal"),
    // --- Target: whitespace, control characters, several targets ---------------------------
    t("trailing_space", "10.0.0.5 "),
    t("leading_space", " 10.0.0.5"),
    t("tab", "10.0.0.5\t"),
    t("newline", "10.0.0.5\n"),
    t("crlf", "10.0.0.5\r\n"),
    t("nul_terminated", "10.0.0.5\0"),
    t("nul_then_more", "10.0.0.5\08.8.8.8"),
    t("escape_sequence", "\u{1b}[2J10.0.0.5"),
    t("two_targets_space", "10.0.0.5 10.0.0.6"),
    t("two_targets_comma", "10.0.0.5,8.8.8.8"),
    t("nmap_octet_range", "10.0.0.1-254"),
    t("nmap_middle_range", "10.0.0-255.1"),
    t("nmap_wildcard", "10.0.0.*"),
    // --- Target: injection ---------------------------------------------------------------
    t("semicolon", "10.0.0.5;id"),
    t("command_substitution", "$(id).lab.internal"),
    t("backticks", "`id`.lab.internal"),
    t("and_and", "10.0.0.5&&id"),
    t("pipe", "10.0.0.5|nc"),
    t("single_quotes", "'10.0.0.5'"),
    t("double_quotes", "\"10.0.0.5\""),
    t("redirect", "10.0.0.5>/tmp/x"),
    t("glob_question_mark", "10.0.0.?"),
    t("flag_as_target", "-iL"),
    t("flag_with_path_as_target", "-oN/tmp/x"),
    t("target_with_args", "10.0.0.5 -p 80"),
    t("end_of_options", "--"),
    t("backslash", "10.0.0.5\\x"),
    // --- Target: IPv6 ----------------------------------------------------------------------
    t("ipv6_loopback", "::1"),
    t("ipv6_long_loopback", "0:0:0:0:0:0:0:1"),
    t("ipv6_bracketed", "[::1]"),
    t("ipv6_ula", "fd00::1"),
    t("ipv4_mapped_ipv6", "::ffff:10.0.0.5"),
    t("ipv4_mapped_ipv6_hex", "::ffff:a00:5"),
    t("ipv4_compatible_ipv6", "::10.0.0.5"),
    t("ipv6_zone_id", "fe80::1%eth0"),
    t("ipv6_zone_id_encoded", "fe80::1%25eth0"),
    t("ipv6_cidr", "fd00::/8"),
    t("nat64_ipv6", "64:ff9b::10.0.0.5"),
    // --- Target: URLs, ports, paths, userinfo ------------------------------------------------
    t("address_with_port", "10.0.0.5:22"),
    t("name_with_port", "db1.lab.internal:22"),
    t("http_url", "http://10.0.0.5"),
    t("https_url_with_path", "https://db1.lab.internal/"),
    t("file_url", "file:///etc/passwd"),
    t("address_with_path", "10.0.0.5/admin"),
    t("name_with_path", "db1.lab.internal/x"),
    t("userinfo_name", "a@b.lab.internal"),
    t("userinfo_address", "user@10.0.0.5"),
    t("userinfo_password", "u:p@10.0.0.5"),
    t("query_string", "10.0.0.5?x"),
    t("fragment", "10.0.0.5#x"),
    // --- Target: scope edges under the default policy ------------------------------------------
    t("below_172_16", "172.15.255.255"),
    t("above_172_31", "172.32.0.0"),
    t("above_192_168", "192.169.0.1"),
    t("below_192_168", "192.167.255.255"),
    t("below_10", "9.255.255.255"),
    t("above_10", "11.0.0.1"),
    t("cidr_wider_than_10_8", "10.0.0.0/7"),
    t("cidr_wider_than_172_16_12", "172.0.0.0/11"),
    t("cidr_misaligned_wide", "172.16.0.0/11"),
    t("cidr_wider_than_192_168_16", "192.168.0.0/15"),
    t("public_dns", "8.8.8.8"),
    t("public_dns_2", "1.1.1.1"),
    t("loopback", "127.0.0.1"),
    t("loopback_other", "127.1.2.3"),
    t("loopback_cidr", "127.0.0.0/8"),
    t("link_local", "169.254.1.1"),
    t("cloud_metadata", "169.254.169.254"),
    t("multicast", "224.0.0.1"),
    t("multicast_ssdp", "239.255.255.250"),
    t("limited_broadcast", "255.255.255.255"),
    t("unspecified", "0.0.0.0"),
    t("everything", "0.0.0.0/0"),
    t("this_network", "0.1.2.3"),
    t("carrier_grade_nat", "100.64.0.1"),
    t("reserved_class_e", "240.0.0.1"),
    t("benchmarking_range", "198.18.0.1"),
    // --- Target: CIDR size and form ----------------------------------------------------------
    // (Over `SCANQ_MAX_TARGET_HOSTS`, 65,536: a /16 itself is a big scan, split into chunks.)
    t("oversize_slash_15", "10.0.0.0/15"),
    t("oversize_slash_8", "10.0.0.0/8"),
    t("oversize_192_168", "192.168.0.0/15"),
    t("oversize_172_16", "172.16.0.0/12"),
    t("oversize_slash_14", "10.0.0.0/14"),
    t("oversize_list", "10.0.0.0/16,10.1.0.0/24"),
    t("cidr_host_bits_set", "10.0.0.5/24"),
    t("cidr_prefix_33", "10.0.0.0/33"),
    t("cidr_negative_prefix", "10.0.0.0/-1"),
    t("cidr_padded_prefix", "10.0.0.0/08"),
    t("cidr_empty_prefix", "10.0.0.0/"),
    t("cidr_netmask", "10.0.0.0/255.255.255.0"),
    // --- Target: hostname tricks -------------------------------------------------------------
    t("trailing_dot_dodges_suffix", "x.lab.internal."),
    t("suffix_apex", "lab.internal"),
    t("suffix_then_evil_domain", "lab.internal.evil.com"),
    t("hyphen_joined_suffix", "evil-lab.internal"),
    t("glued_suffix", "evillab.internal"),
    t("uppercase_glued_suffix", "EVIL-LAB.INTERNAL"),
    t("double_dot", "x..lab.internal"),
    t("leading_dot", ".lab.internal"),
    t("underscore_label", "x_y.lab.internal"),
    t("hyphen_first_label", "-x.lab.internal"),
    t(
        "label_longer_than_63",
        concat!(x4!(x4!("abcd")), ".lab.internal"),
    ),
    t(
        "name_longer_than_253",
        concat!(x4!(x4!(x4!("abcd."))), "lab.internal"),
    ),
    t("localhost", "localhost"),
    t("single_label", "internal"),
    t("cloud_metadata_name", "metadata.google.internal"),
    t("empty", ""),
    t("only_dot", "."),
    t("only_space", " "),
    // --- Args: shell injection -----------------------------------------------------------------
    a("semicolon", "-sV; cat /etc/passwd"),
    a("semicolon_glued", "-sV;id"),
    a("command_substitution", "$(id)"),
    a("command_substitution_value", "-p $(id)"),
    a("backticks", "`id`"),
    a("and_and", "-sV && id"),
    a("or_or", "-sV || id"),
    a("pipe", "-sV | nc 10.0.0.6 4444"),
    a("background", "-sV & id"),
    a("newline", "-sV\nid"),
    a("carriage_return", "-sV\rid"),
    a("nul_byte", "-sV\0-iL /etc/passwd"),
    a("single_quotes", "'-sV'"),
    a("double_quotes", "\"-sV\""),
    a("quoted_second_target", "-p \"80 10.0.0.6\""),
    a("redirect_out", "-sV > /tmp/x"),
    a("redirect_in", "-sV < /etc/passwd"),
    a("variable", "-p $PORT"),
    a("brace_expansion", "-p {80,443}"),
    a("glob_star", "-p 8*"),
    a("glob_question_mark", "-p 8?"),
    a("tilde", "--host-timeout ~"),
    a("comment", "-sV #x"),
    a("backslash_escape", "-sV \\; id"),
    a("history_bang", "-sV !1"),
    a("parentheses", "--script (safe)"),
    a("tab_separator", "-sV\t-Pn"),
    a("escape_sequence", "\u{1b}[31m"),
    a("vertical_tab", "-sV\u{b}-Pn"),
    a("em_dash_flag", "\u{2014}sV"),
    a("fullwidth_flag", "－sV"),
    a("zero_width_in_flag", "-s\u{200b}V"),
    a("non_breaking_space", "-sV\u{a0}-Pn"),
    // --- Args: smuggling a target, files, spoofing --------------------------------------------
    a("second_target", "10.0.0.6"),
    a("second_target_after_flag", "-sV 10.0.0.6"),
    a("second_cidr", "-sV 8.8.8.0/24"),
    a("second_hostname", "-sV db2.lab.internal"),
    a("public_target", "8.8.8.8"),
    a("end_of_options_then_target", "-- 8.8.8.8"),
    a("end_of_options", "--"),
    a("lone_dash", "-"),
    a("target_after_equals_value", "--top-ports=10 10.0.0.6"),
    a("input_list", "-iL /etc/passwd"),
    a("input_list_attached", "-iL/etc/passwd"),
    a("random_targets", "-iR 100"),
    a("output_normal", "-oN /tmp/x"),
    a("output_xml", "-oX /tmp/x.xml"),
    a("output_grepable_stdout", "-oG -"),
    a("output_all", "-oA /tmp/x"),
    a("output_script_kiddie", "-oS x"),
    a("output_machine", "-oM x"),
    a("output_attached", "-oN/tmp/x"),
    a("resume", "--resume /tmp/x"),
    a("datadir", "--datadir /tmp"),
    a("datadir_single_dash", "-datadir /tmp"),
    a("datadir_equals", "--datadir=/tmp"),
    a("servicedb", "--servicedb /tmp/s"),
    a("versiondb", "--versiondb /tmp/v"),
    a("script_args_file", "--script-args-file /tmp/a"),
    a("script_args_newtargets", "--script-args newtargets"),
    a("excludefile", "--excludefile /tmp/x"),
    a("excludefile_abbreviated", "-excludef /tmp/x"),
    a("stylesheet", "--stylesheet /tmp/x.xsl"),
    a("webxml", "--webxml"),
    a("append_output", "--append-output"),
    a("spoof_source", "-S 10.0.0.9"),
    a("spoof_source_attached", "-S10.0.0.9"),
    a("decoys", "-D 10.0.0.7,ME"),
    a("random_decoys", "-D RND:10"),
    a("spoof_mac", "--spoof-mac 0"),
    a("proxies", "--proxies http://10.0.0.6:8080"),
    a("interface", "-e lo"),
    a("interface_attached", "-elo"),
    a("ftp_bounce_userinfo", "-b anonymous@10.0.0.6"),
    a("ftp_bounce", "-b 10.0.0.6"),
    a("idle_scan_zombie", "-sI 10.0.0.6"),
    a("dns_servers", "--dns-servers 8.8.8.8"),
    a("source_routing", "--ip-options L"),
    a("ipv6_mode", "-6"),
    a("exclude_list", "--exclude 10.0.0.5"),
    a("script_path", "--script /tmp/evil.nse"),
    a("script_name", "--script http-title"),
    a("script_glob", "--script http-"),
    a("script_all", "--script all"),
    a("script_broadcast", "--script broadcast"),
    a("script_then_target", "--script safe 10.0.0.6"),
    a("script_and_target", "--script safe and 10.0.0.6"),
    a("top_ports_target", "--top-ports 10.0.0.6"),
    a("ports_target", "-p 10.0.0.6"),
    // --- Args: raw-packet scans not in the default policy, and root claims -------------------
    // (-sS, -sU, -sA, -sW, -sN, -sF, -sX, -O and --traceroute are listed, marked raw: those
    // jobs wait for a raw-capable worker instead.)
    a("ip_protocol_scan", "-sO"),
    a("maimon_scan", "-sM"),
    a("privileged", "--privileged"),
    a("privileged_single_dash", "-privileged"),
    a("send_eth", "--send-eth"),
    a("send_ip", "--send-ip"),
    a("scanflags", "--scanflags SYN"),
    // --- Args: unknown and abbreviated flags --------------------------------------------------
    a("abbreviated_script", "--scr safe"),
    a("abbreviated_top_ports", "--top 10"),
    a("double_verbose", "-vv"),
    a("debug", "-d"),
    a("packet_trace", "--packet-trace"),
    a("help", "-h"),
    a("interface_list", "--iflist"),
    a("list_scan", "-sL"),
    // --- Args: values out of range or of the wrong type -----------------------------------------
    a("timing_5", "-T5"),
    a("timing_insane", "-T insane"),
    a("timing_9", "-T9"),
    a("port_above_65535", "-p 0-70000"),
    a("port_service_name", "-p http"),
    a("port_range_backwards", "-p 80-22"),
    a("top_ports_zero", "--top-ports 0"),
    a("top_ports_negative", "--top-ports -1"),
    a("version_intensity_10", "--version-intensity 10"),
    a("max_retries_1000", "--max-retries 1000"),
    a("host_timeout_zero", "--host-timeout 0"),
    a("host_timeout_days", "--host-timeout 1d"),
    a("min_rate_flood", "--min-rate 1000000"),
    a("rtt_timeout_hour", "--max-rtt-timeout 1h"),
    a("ports_missing_value", "-p"),
    a("flag_without_value_given_one", "--open=1"),
    // --- Args: intrusive without the server's permission ----------------------------------------
    a("aggressive", "-A"),
    a("default_scripts", "-sC"),
    a("script_vuln", "--script vuln"),
    a("script_intrusive", "--script intrusive"),
    a("script_exploit", "--script exploit"),
    a("script_brute", "--script brute"),
    a("script_dos", "--script dos"),
    a("script_malware", "--script malware"),
    a("script_fuzzer", "--script fuzzer"),
    a("script_external", "--script external"),
    a("script_discovery_not_all_safe", "--script discovery"),
    a("script_default_not_all_safe", "--script default"),
    a("script_safe_and_vuln", "--script safe and vuln"),
    a("script_equals_vuln", "--script=vuln"),
    a("script_or_vuln", "--script safe,vuln"),
    ai("aggressive_request_intrusive", "-A"),
    ai("default_scripts_request_intrusive", "-sC"),
    ai("script_vuln_request_intrusive", "--script vuln"),
    ai("script_brute_request_intrusive", "--script brute"),
    // --- Args: size --------------------------------------------------------------------------
    a(
        "args_longer_than_2048_bytes",
        x4!(x4!(x4!(x4!("-sV -Pn -n ")))),
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::nmap_policy;
    use crate::validate::{ArgContext, Target, TargetPolicy, ValidationError};

    fn first_refusal(case: &AdversarialCase) -> Option<ValidationError> {
        let policy = TargetPolicy::default();
        let target = case
            .target
            .parse::<Target>()
            .and_then(|t| policy.check(&t, None));
        let ctx = ArgContext {
            server_allows_intrusive: false,
            request_intrusive: case.intrusive,
        };
        let args = nmap_policy().parse_args(case.args, &ctx).map(|_| ());
        target.and(args).err()
    }

    #[test]
    fn the_table_is_large_and_names_are_unique() {
        assert!(CASES.len() >= 150, "{} cases", CASES.len());
        let mut names: Vec<(&str, &str)> = CASES.iter().map(|c| (c.expect_field, c.name)).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CASES.len(), "duplicate case names");
    }

    #[test]
    fn every_case_attacks_one_field_and_leaves_the_other_valid() {
        for case in CASES {
            match case.expect_field {
                "target" => assert_eq!(case.args, "", "{}", case.name),
                "args" => assert_eq!(case.target, VALID_TARGET, "{}", case.name),
                other => panic!("{}: unexpected field {other}", case.name),
            }
        }
    }

    #[test]
    fn every_adversarial_case_is_refused_with_the_expected_field() {
        let mut failures = Vec::new();
        for case in CASES {
            match first_refusal(case) {
                Some(err) if err.field == case.expect_field => {
                    assert!(
                        !err.message.is_empty() && !err.hint.is_empty(),
                        "{}",
                        case.name
                    );
                }
                Some(err) => {
                    failures.push(format!("{}: refused on {} ({err})", case.name, err.field))
                }
                None => failures.push(format!("{}: accepted", case.name)),
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn the_valid_baseline_is_accepted() {
        let baseline = AdversarialCase {
            name: "baseline",
            target: VALID_TARGET,
            args: "-sT -p 22,80 -sV --script safe",
            intrusive: false,
            expect_field: "",
        };
        assert!(first_refusal(&baseline).is_none());
    }
}
