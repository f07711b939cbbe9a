//! Unit tests of the configuration.
use super::*;

#[test]
fn defaults_are_valid() {
    Config::default().validate().unwrap();
}

#[test]
fn out_of_range_values_name_the_key() {
    let cfg = Config {
        lease_sec: 0,
        ..Config::default()
    };
    let err = cfg.validate().unwrap_err().to_string();
    assert!(
        err.contains("lease_sec") && err.contains("1..=3600"),
        "{err}"
    );
}

#[test]
fn passwords_are_redacted() {
    assert_eq!(redact_url("redis://u:pw@h:1/0"), "redis://u:***@h:1/0");
    assert_eq!(redact_url("redis://:pw@h"), "redis://:***@h");
    assert_eq!(redact_url("redis://h:1"), "redis://h:1");
    let cfg = Config {
        redis_url: "redis://scanq:hunter2@127.0.0.1:6379".into(),
        ..Config::default()
    };
    assert!(!cfg.redacted_toml().contains("hunter2"));
    assert_eq!(
        cfg.redact_secrets("auth failed for hunter2 at host"),
        "auth failed for *** at host"
    );
}

#[test]
fn the_sandbox_uid_range_is_checked() {
    assert_eq!(Config::default().sandbox_uids().unwrap(), (61000, 61127));
    for bad in ["61000", "0-10", "61127-61000", "a-b", "1000-900000"] {
        let cfg = Config {
            sandbox_uid_range: bad.into(),
            ..Config::default()
        };
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("sandbox_uid_range"), "{bad}: {err}");
    }
}

#[test]
fn tls_client_cert_and_key_go_together() {
    let cfg = Config {
        redis_tls_cert_file: Some("client.pem".into()),
        ..Config::default()
    };
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("redis_tls_cert_file"), "{err}");
}

#[test]
fn cors_origins_must_be_origins() {
    let ok = Config {
        cors_origins: " https://dash.example , http://127.0.0.1:3000".into(),
        ..Config::default()
    };
    ok.validate().unwrap();
    assert_eq!(
        ok.cors_origin_list(),
        ["https://dash.example", "http://127.0.0.1:3000"]
    );
    let bad = Config {
        cors_origins: "*".into(),
        ..Config::default()
    };
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("cors_origins")
    );
}

#[test]
fn api_allowed_origins_must_be_origins() {
    for ok in ["", "*", "https://console.lab.internal, http://x.test:3000"] {
        Config {
            api_allowed_origins: ok.into(),
            ..Config::default()
        }
        .validate()
        .unwrap();
    }
    let err = Config {
        api_allowed_origins: "console.lab.internal".into(),
        ..Config::default()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(err.contains("api_allowed_origins"), "{err}");
}

#[test]
fn target_groups_are_range_checked_naming_the_variable() {
    let d = Config::default();
    assert_eq!((d.target_group_prefix, d.target_group_max_running), (24, 0));
    for prefix in [7, 33, 40] {
        let cfg = Config {
            target_group_prefix: prefix,
            ..Config::default()
        };
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.contains("target_group_prefix")
                && err.contains("8..=32")
                && err.contains("SCANQ_TARGET_GROUP_PREFIX"),
            "{err}"
        );
    }
    let cfg = Config {
        target_group_max_running: 2_000_000,
        ..Config::default()
    };
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("SCANQ_TARGET_GROUP_MAX_RUNNING"), "{err}");
    for (prefix, cap) in [(8, 0), (32, 1), (24, 1_000_000)] {
        let cfg = Config {
            target_group_prefix: prefix,
            target_group_max_running: cap,
            ..Config::default()
        };
        cfg.validate().unwrap();
    }
}

#[test]
fn the_zone_map_is_checked_naming_zones_and_worker_zone() {
    let with = |zones: &str, worker: &str| Config {
        zones: ZonesSetting::Text(zones.into()),
        worker_zone: crate::domain::Zone::parse(worker).unwrap(),
        ..Config::default()
    };
    with("a=127.0.1.0/24;b=.b.lab;", "b").validate().unwrap();
    with("", "default").validate().unwrap();
    for (zones, words) in [
        ("a=127.0.1.0/24;b=127.0.1.0/24", "ambiguous"),
        ("A=127.0.1.0/24", "zone must be"),
        ("a=db.lab", "`.db.lab`"),
    ] {
        let err = with(zones, "default").validate().unwrap_err().to_string();
        assert!(
            err.contains("`zones`") && err.contains(words),
            "{zones}: {err}"
        );
        assert!(err.contains("SCANQ_ZONES"), "{err}");
    }
    let err = with("a=127.0.1.0/24", "lab")
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`worker_zone`") && err.contains("accepted: default, a"),
        "{err}"
    );
}

#[test]
fn the_zone_map_reads_as_a_string_or_a_section() {
    let load = |toml: &str| -> Config {
        Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(toml))
            .extract()
            .unwrap()
    };
    let text = "a=127.0.1.0/24,.a.lab;b=127.0.2.0/24";
    let cfg = load(&format!("zones = \"{text}\"\nworker_zone = \"b\"\n"));
    assert_eq!(cfg.zones, ZonesSetting::Text(text.into()));
    let table = load(
        "worker_zone = \"b\"\n[zones]\na = [\"127.0.1.0/24\", \".a.lab\"]\nb = [\"127.0.2.0/24\"]\n",
    );
    assert_eq!(table.zone_map().unwrap(), cfg.zone_map().unwrap());
    assert_eq!(table.worker_zone.as_str(), "b");
    // The redacted dump still writes a section.
    assert!(
        table.redacted_toml().contains("[zones]"),
        "{}",
        table.redacted_toml()
    );
    // The environment provider leaves `a=..;b=..` text (commas included) as one string.
    for env in [text, "a=127.0.1.0/24", "true=.x.lab"] {
        let v: figment::value::Value = env.parse().unwrap();
        assert_eq!(v.as_str(), Some(env), "{env}");
    }
}

#[test]
fn the_approval_rule_is_read_checked_and_reloadable() {
    use crate::domain::Approval;
    let file = std::env::temp_dir().join(format!("scanq-approval-{}.toml", std::process::id()));
    std::fs::write(&file, "approval = \"intrusive\"\n").unwrap();
    let cfg = Config::load(Some(&file)).unwrap();
    assert_eq!(cfg.approval, Approval::Intrusive);
    assert!(cfg.approval.requires(true) && !cfg.approval.requires(false));
    std::fs::write(&file, "approval = \"sometimes\"\n").unwrap();
    let err = Config::load(Some(&file)).unwrap_err().to_string();
    std::fs::remove_file(&file).ok();
    assert!(
        err.contains("approval") && err.contains("sometimes") && err.contains("always"),
        "{err}"
    );
    assert!(crate::reload::HOT_KEYS.contains(&"approval"));
}
