//! Unit and property tests of argument parsing, normalization and merging.

use proptest::prelude::*;

use super::*;
use crate::catalog::nmap_policy;

const PLAIN: ArgContext = ArgContext {
    server_allows_intrusive: false,
    request_intrusive: false,
};
const GATED: ArgContext = ArgContext {
    server_allows_intrusive: true,
    request_intrusive: true,
};

fn ok(raw: &str) -> Vec<String> {
    nmap_policy()
        .parse_args(raw, &PLAIN)
        .unwrap_or_else(|e| panic!("{raw:?}: {e} ({})", e.hint))
        .as_slice()
        .to_vec()
}

fn refused(raw: &str) -> ValidationError {
    let err = nmap_policy()
        .parse_args(raw, &PLAIN)
        .expect_err(&format!("{raw:?} should be refused"));
    assert_eq!(err.field, "args", "{raw:?}");
    err
}

#[test]
fn the_nmap_policy_loads_and_passes_its_own_checks() {
    let policy = nmap_policy();
    policy.validate_policy().unwrap();
    assert!(policy.flags.len() > 20);
    assert_eq!(policy.max_bytes, 2048);
}

#[test]
fn empty_args_are_empty_tool_args() {
    assert!(ok("").is_empty());
    assert!(ok("   ").is_empty());
}

#[test]
fn value_forms_are_normalized_to_separate_tokens() {
    assert_eq!(ok("-p 80"), ["-p", "80"]);
    assert_eq!(ok("-p80"), ["-p", "80"]);
    assert_eq!(ok("-p-"), ["-p", "1-65535"]);
    assert_eq!(ok("-p -"), ["-p", "1-65535"]);
    assert_eq!(ok("--top-ports=100"), ["--top-ports", "100"]);
    assert_eq!(ok("--top-ports 100"), ["--top-ports", "100"]);
    assert_eq!(ok("-T4"), ["-T", "4"]);
    assert_eq!(ok("-T aggressive"), ["-T", "4"]);
    assert_eq!(ok("--host-timeout 30s"), ["--host-timeout", "30000ms"]);
    assert_eq!(ok("--host-timeout=5m"), ["--host-timeout", "300000ms"]);
}

#[test]
fn aliases_are_normalized_to_the_canonical_name() {
    assert_eq!(ok("-sP -PN"), ["-sn", "-Pn"]);
}

#[test]
fn a_typical_request_passes() {
    assert_eq!(
        ok("-p 22,80 -sV -sT -Pn -n --open --reason -v --version-intensity 5 --max-retries 2"),
        [
            "-p",
            "22,80",
            "-sV",
            "-sT",
            "-Pn",
            "-n",
            "--open",
            "--reason",
            "-v",
            "--version-intensity",
            "5",
            "--max-retries",
            "2"
        ]
    );
}

#[test]
fn out_of_range_values_are_refused_with_the_flag_named() {
    for raw in [
        "-T5",
        "-T insane",
        "--version-intensity 10",
        "--top-ports 0",
        "--max-retries 11",
        "--host-timeout 500ms",
        "--min-rate 100000",
        "-p 0-70000",
        "-p http",
    ] {
        let err = refused(raw);
        let flag = raw.split([' ', '=']).next().unwrap();
        let flag = if flag.starts_with("-T") { "-T" } else { flag };
        assert!(err.message.contains(flag), "{raw}: {}", err.message);
    }
}

#[test]
fn a_flag_missing_its_value_is_refused() {
    assert!(refused("-p").message.contains("needs a value"));
    assert!(refused("-sV --top-ports").message.contains("needs a value"));
}

#[test]
fn no_value_flags_refuse_attached_values() {
    assert!(refused("--open=yes").message.contains("takes no value"));
    refused("-sVx");
}

#[test]
fn positional_tokens_are_refused() {
    for raw in [
        "10.0.0.6",
        "-sV 10.0.0.6",
        "-p 80 db2.lab.internal",
        "-- 10.0.0.6",
        "-",
        "x",
    ] {
        let err = refused(raw);
        assert!(
            err.message.contains("positional") || err.message.contains("end of options"),
            "{raw}: {}",
            err.message
        );
    }
}

#[test]
fn never_allowed_flags_give_their_reason() {
    for raw in [
        "-iL x",
        "-oN x",
        "--datadir x",
        "-datadir x",
        "--script-args-file x",
        "-S 10.0.0.1",
        "-e lo",
    ] {
        assert!(refused(raw).message.contains("never allowed"), "{raw}");
    }
    assert!(refused("-iL /etc/passwd").message.contains("never allowed"));
}

#[test]
fn raw_scans_are_refused_unless_listed() {
    assert!(refused("-sO").message.contains("root"));
    let mut policy = nmap_policy();
    policy.flags.push(FlagSpec {
        name: "-sO".into(),
        aliases: vec![],
        value: ValueType::None,
        intrusive: false,
        raw: true,
        description: String::new(),
    });
    policy.validate_policy().unwrap();
    let args = policy.parse_args("-sO", &PLAIN).unwrap();
    assert_eq!(args.as_slice(), ["-sO"]);
    assert!(policy.needs_raw(&args));
}

#[test]
fn the_raw_socket_scans_are_accepted_and_mark_the_job_as_needing_raw_sockets() {
    let policy = nmap_policy();
    let raw_flags = "-sS -sU -sA -sW -sN -sF -sX -O --traceroute";
    for flag in raw_flags.split(' ') {
        let args = policy.parse_args(&format!("{flag} -p 22"), &PLAIN).unwrap();
        assert_eq!(args.as_slice(), [flag, "-p", "22"], "{flag}");
        assert!(policy.needs_raw(&args), "{flag}");
    }
    for plain in ["-sT -p 22", "-sV", "-sn", ""] {
        let args = policy.parse_args(plain, &PLAIN).unwrap();
        assert!(!policy.needs_raw(&args), "{plain:?}");
    }
    // Root privileges and raw sends of the engine's own choosing stay the worker's business.
    for raw in "--privileged -privileged --send-eth --send-ip --priv".split(' ') {
        assert!(refused(raw).message.contains("never allowed"), "{raw}");
    }
    // Listing them is refused at catalog load too.
    assert!(ArgPolicy::forbidden_reason("--privileged").is_some());
}

#[test]
fn abbreviated_and_unknown_flags_are_refused() {
    for raw in ["--top", "--scr default", "-vv", "--version", "-h", "-6"] {
        refused(raw);
    }
}

#[test]
fn metacharacters_control_characters_and_non_ascii_are_refused_before_parsing() {
    for raw in [
        "-sV; id",
        "-sV | nc",
        "-sV && x",
        "$(id)",
        "`id`",
        "-p 80\n-iL x",
        "-sV\0",
        "\"-sV\"",
        "'-sV'",
        "-p 8*",
        "-sV \\",
        "-sV ~",
        "-sV #",
        "-p 80\t-sV",
        "-ｓV",
        "-sV\u{200b}",
    ] {
        refused(raw);
    }
}

#[test]
fn args_longer_than_max_bytes_are_refused() {
    let raw = "-sV ".repeat(600);
    assert!(refused(&raw).message.contains("at most 2048"));
}

#[test]
fn intrusive_flags_name_the_missing_switch() {
    let policy = nmap_policy();
    let server_off = ArgContext {
        server_allows_intrusive: false,
        request_intrusive: true,
    };
    let request_off = ArgContext {
        server_allows_intrusive: true,
        request_intrusive: false,
    };
    let err = policy.parse_args("-A", &server_off).unwrap_err();
    assert!(
        err.message.contains("SCANQ_ALLOW_INTRUSIVE"),
        "{}",
        err.message
    );
    let err = policy.parse_args("-sC", &request_off).unwrap_err();
    assert!(
        err.message.contains("\"intrusive\": true"),
        "{}",
        err.message
    );
    assert!(
        !err.message.contains("SCANQ_ALLOW_INTRUSIVE"),
        "{}",
        err.message
    );
    // OS detection is not intrusive in nmap's sense (it needs raw sockets instead).
    assert_eq!(policy.parse_args("-O", &PLAIN).unwrap().as_slice(), ["-O"]);
    assert_eq!(
        policy.parse_args("-A -sC", &GATED).unwrap().as_slice(),
        ["-A", "-sC"]
    );
}

#[test]
fn script_expressions_may_span_tokens_but_never_swallow_a_target() {
    let args = nmap_policy()
        .parse_args("--script discovery and safe -sV", &PLAIN)
        .unwrap();
    assert_eq!(args.as_slice()[0], "--script");
    assert!(
        args.as_slice()[1].starts_with("(discovery and safe) and not"),
        "{args}"
    );
    assert_eq!(args.as_slice()[2], "-sV");
    refused("--script safe 10.0.0.6");
    refused("--script safe and 10.0.0.6");
}

#[test]
fn policies_listing_forbidden_or_broken_flags_are_refused() {
    let spec = |name: &str, value: ValueType| FlagSpec {
        name: name.into(),
        aliases: vec![],
        value,
        intrusive: false,
        raw: false,
        description: String::new(),
    };
    for bad in [
        spec("-iL", ValueType::None),
        spec("-datadir", ValueType::None),
        spec("--proxies", ValueType::None),
        spec("p", ValueType::None),
        spec("-x;", ValueType::None),
        spec("-x", ValueType::Int { min: 5, max: 1 }),
        spec("-x", ValueType::Timing { min: 0, max: 9 }),
        spec(
            "-x",
            ValueType::OneOf {
                values: vec!["a b".into()],
            },
        ),
    ] {
        let mut policy = nmap_policy();
        policy.flags.push(bad.clone());
        assert!(policy.validate_policy().is_err(), "{bad:?}");
    }
    let mut twice = nmap_policy();
    twice.flags.push(spec("-sV", ValueType::None));
    assert!(twice.validate_policy().unwrap_err().contains("twice"));
    assert!(ArgPolicy::forbidden_reason("-oX").is_some());
    assert!(ArgPolicy::forbidden_reason("-sV").is_none());
}

#[test]
fn merge_lets_request_flags_replace_template_flags() {
    let policy = nmap_policy();
    let template = policy.parse_args("-sT -p 1-1024 -T3 -Pn", &PLAIN).unwrap();
    let request = policy.parse_args("-p80 -PN -sV", &PLAIN).unwrap();
    let merged = ToolArgs::merge(&template, &request, &policy);
    assert_eq!(
        merged.as_slice(),
        ["-sT", "-T", "3", "-p", "80", "-Pn", "-sV"]
    );
    let empty = ToolArgs::default();
    assert_eq!(ToolArgs::merge(&template, &empty, &policy), template);
    assert_eq!(ToolArgs::merge(&empty, &request, &policy), request);
}

#[test]
fn tool_args_serialize_as_an_array_of_strings() {
    let args = nmap_policy().parse_args("-p 22,80 -sV", &PLAIN).unwrap();
    let json = serde_json::to_string(&args).unwrap();
    assert_eq!(json, r#"["-p","22,80","-sV"]"#);
    assert_eq!(serde_json::from_str::<ToolArgs>(&json).unwrap(), args);
    assert!(serde_json::from_str::<ToolArgs>(r#"["-sV\n"]"#).is_err());
    assert!(serde_json::from_str::<ToolArgs>(r#"[""]"#).is_err());
}

#[test]
fn arg_policy_serializes_for_the_tools_listing() {
    let json = serde_json::to_value(nmap_policy()).unwrap();
    assert_eq!(json["max_bytes"], 2048);
    let p = json["flags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "-p")
        .unwrap();
    assert_eq!(p["value"]["type"], "ports");
}

/// Tokens a hostile or careless client might put in `args`.
fn vocabulary() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "-p",
        "80",
        "-p80",
        "-p-",
        "-",
        "22,80",
        "T:80,U:53",
        "--top-ports",
        "--top-ports=10",
        "100",
        "-T4",
        "-T",
        "5",
        "-sV",
        "-sT",
        "-sS",
        "-Pn",
        "-PN",
        "-n",
        "--open",
        "-v",
        "-vv",
        "-A",
        "-sC",
        "-O",
        "--script",
        "safe",
        "default",
        "discovery",
        "and",
        "or",
        "not",
        "vuln",
        ",",
        "broadcast",
        "--script=safe",
        "10.0.0.6",
        "db2.lab.internal",
        "--",
        "-iL",
        "/etc/passwd",
        "-oN",
        "-oN/tmp/x",
        "--datadir",
        "-S",
        "-D",
        "-e",
        "--proxies",
        "--host-timeout",
        "30s",
        "--max-retries",
        "3",
        "--script-args",
        "x=1",
        "-datadir",
    ])
    .prop_map(str::to_owned)
}

fn is_target_like(token: &str) -> bool {
    token.parse::<crate::validate::Target>().is_ok()
        && !token
            .chars()
            .all(|c| c.is_ascii_digit() || ",-".contains(c))
}

proptest! {
    #[test]
    fn accepted_args_hold_only_policy_flags_and_their_values(
        words in prop::collection::vec(vocabulary(), 0..8),
        server in any::<bool>(), request in any::<bool>(),
    ) {
        let policy = nmap_policy();
        let ctx = ArgContext { server_allows_intrusive: server, request_intrusive: request };
        let raw = words.join(" ");
        if let Ok(args) = policy.parse_args(&raw, &ctx) {
            let mut tokens = args.as_slice().iter();
            while let Some(flag) = tokens.next() {
                let spec = policy.spec(flag);
                prop_assert!(spec.is_some_and(|s| s.name == *flag), "{raw:?} -> {flag}");
                let spec = spec.unwrap();
                prop_assert!(ArgPolicy::forbidden_reason(flag).is_none(), "{raw:?}");
                prop_assert!(!spec.intrusive || ctx.intrusive_allowed(), "{raw:?}");
                if spec.value.takes_value() {
                    let value = tokens.next();
                    prop_assert!(value.is_some(), "{raw:?}");
                    prop_assert!(!is_target_like(value.unwrap()), "{raw:?} -> {value:?}");
                }
            }
            // Normalized output parses to itself.
            let again = policy.parse_args(&args.to_string(), &ctx);
            if !args.as_slice().iter().any(|t| t.contains('(')) {
                prop_assert_eq!(again.unwrap(), args);
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics_the_parser(raw in "\\PC{0,80}") {
        let _ = nmap_policy().parse_args(&raw, &GATED);
    }
}

#[test]
fn an_arg_policy_table_without_max_bytes_gets_the_default_and_typos_are_refused() {
    let policy: ArgPolicy = toml::from_str("[[flags]]\nname = \"-sV\"\n").unwrap();
    assert_eq!(policy.max_bytes, 2048);
    assert_eq!(policy.script_categories, ScriptPolicy::default());
    assert!(toml::from_str::<ArgPolicy>("max_byte = 10").is_err());
}

#[test]
fn with_both_switches_on_intrusive_scripts_pass_and_broadcast_stays_out() {
    let args = nmap_policy()
        .parse_args("-sV --script=vuln", &GATED)
        .unwrap();
    assert_eq!(
        args.as_slice(),
        ["-sV", "--script", "vuln and not broadcast"]
    );
    assert!(
        nmap_policy()
            .parse_args("--script broadcast", &GATED)
            .is_err()
    );
}
