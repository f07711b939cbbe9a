//! docker-compose.yml and the image, checked offline (issue 20, docs/sandbox.md "Deployment"):
//! every worker service carries what confinement needs — root in its container with exactly the
//! listed capabilities, `SCANQ_EGRESS_CONFINEMENT=required`, its own cgroup namespace, IP
//! forwarding, the default seccomp profile, the init that makes cgroup and /proc/sys/net
//! writable — and denies the compose network as a target; Redis and the API get none of it.
//! `docker compose config` checks the file too where the compose plugin is installed.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use scanq_tests::deploy::{WORKER_CAPS, denied_by, strings};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn compose() -> Value {
    let text = std::fs::read_to_string(repo().join("docker-compose.yml")).unwrap();
    yaml_serde::from_str(&text).expect("docker-compose.yml parses")
}

/// Services whose command starts with one of `programs`.
fn services<'a>(doc: &'a Value, programs: &[&str]) -> Vec<(&'a String, &'a Value)> {
    doc["services"]
        .as_object()
        .expect("services")
        .iter()
        .filter(|(_, s)| {
            let first = s["command"][0].as_str().unwrap_or_default();
            programs.contains(&first)
        })
        .collect()
}

fn env(service: &Value) -> BTreeMap<String, String> {
    service["environment"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The compose network's subnet, and addresses in it: the gateway (the Docker host) and a
/// container's.
fn platform_network(doc: &Value) -> Vec<String> {
    let subnet = doc["networks"]["default"]["ipam"]["config"][0]["subnet"]
        .as_str()
        .expect("the default network has a fixed subnet")
        .to_owned();
    let (base, _) = subnet.split_once('/').unwrap();
    let base: u32 = base.parse::<Ipv4Addr>().unwrap().into();
    let addr = |n: u32| Ipv4Addr::from(base + n).to_string();
    vec![subnet, addr(1), addr(10)]
}

#[test]
fn every_worker_service_carries_what_confinement_needs() {
    let doc = compose();
    assert!(
        services(&doc, &["scanq-worker"]).is_empty(),
        "a worker service starts scanq-worker directly, without scanq-worker-init"
    );
    let workers = services(&doc, &["scanq-worker-init"]);
    assert!(workers.len() >= 2, "worker and worker-cluster: {workers:?}");
    let network = platform_network(&doc);
    for (name, s) in workers {
        assert_eq!(
            s["command"],
            serde_json::json!(["scanq-worker-init"]),
            "{name}"
        );
        assert_eq!(s["user"], "0:0", "{name}: root in its container");
        assert_eq!(strings(&s["cap_drop"]), ["ALL"], "{name}");
        assert_eq!(
            strings(&s["cap_add"]),
            WORKER_CAPS,
            "{name}: these and no others"
        );
        assert_ne!(s["privileged"], true, "{name}: no privileged mode");
        for key in ["network_mode", "pid", "ipc", "userns_mode"] {
            assert!(s[key].is_null(), "{name}: {key} stays the container's own");
        }
        let opts = strings(&s["security_opt"]);
        assert!(opts.contains(&"no-new-privileges:true".into()), "{name}");
        assert!(opts.contains(&"apparmor=unconfined".into()), "{name}");
        assert!(
            !opts.iter().any(|o| o.starts_with("seccomp")),
            "{name}: Docker's default seccomp profile stays: {opts:?}"
        );
        assert_eq!(s["cgroup"], "private", "{name}: its own cgroup namespace");
        assert_eq!(s["sysctls"]["net.ipv4.ip_forward"], "1", "{name}");
        let env = env(s);
        assert_eq!(env["SCANQ_EGRESS_CONFINEMENT"], "required", "{name}");
        assert!(!env.contains_key("SCANQ_ALLOW_UNCONFINED"), "{name}");
        let denied = &env["SCANQ_DENIED_TARGETS"];
        for target in &network {
            assert!(
                denied_by(denied, target),
                "{name}: {target} not denied by {denied}"
            );
        }
    }
}

#[test]
fn redis_and_the_api_run_unprivileged_and_the_api_denies_the_platform_too() {
    let doc = compose();
    let network = platform_network(&doc);
    let mut checked = 0;
    for (name, s) in doc["services"].as_object().unwrap() {
        if s["command"][0] == "scanq-worker-init" {
            continue;
        }
        checked += 1;
        let user = s["user"].as_str().unwrap_or_default();
        let uid = user.split(':').next().unwrap();
        assert!(
            !uid.is_empty() && uid != "0" && uid != "root",
            "{name}: runs as `{user}`"
        );
        assert_eq!(strings(&s["cap_drop"]), ["ALL"], "{name}");
        for key in [
            "cap_add",
            "privileged",
            "cgroup",
            "sysctls",
            "network_mode",
            "pid",
        ] {
            assert!(s[key].is_null(), "{name}: {key} is the worker's, not its");
        }
        let opts = strings(&s["security_opt"]);
        assert_eq!(opts, ["no-new-privileges:true"], "{name}");
        if s["command"][0] == "scanq-api" {
            let env = env(s);
            let denied = &env["SCANQ_DENIED_TARGETS"];
            for target in &network {
                assert!(
                    denied_by(denied, target),
                    "{name}: {target} not denied by {denied}"
                );
            }
        }
    }
    // redis, api, six cluster nodes, cluster-init, api-cluster
    assert!(checked >= 10, "{checked}");
}

#[test]
fn every_variable_is_documented_and_a_configuration_key() {
    let doc = compose();
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let keys = serde_json::to_value(scanq::config::Config::default()).unwrap();
    for (name, s) in doc["services"].as_object().unwrap() {
        for var in env(s).keys() {
            assert!(
                readme.contains(var.as_str()),
                "{name}: {var} not in README.md"
            );
            let key = var.strip_prefix("SCANQ_").unwrap().to_lowercase();
            assert!(
                keys.get(&key).is_some(),
                "{name}: {var} is no configuration key"
            );
        }
    }
}

#[test]
fn the_image_has_nftables_and_starts_the_worker_through_its_init() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let install = dockerfile
        .lines()
        .find(|l| l.contains("apt-get install"))
        .expect("an apt-get install line");
    for package in ["nftables", "iproute2", "nmap", "tini"] {
        assert!(install.contains(package), "{package}: {install}");
    }
    assert!(
        dockerfile.lines().any(|l| l.starts_with("COPY")
            && l.contains("deploy/worker-init.sh")
            && l.ends_with("/usr/local/bin/scanq-worker-init")),
        "the init is in the image under the name compose and k8s run"
    );
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    assert_eq!(user.trim(), "scanq", "the image's default user is not root");

    let init = repo().join("deploy/worker-init.sh");
    let mode = std::fs::metadata(&init).unwrap().permissions().mode();
    assert!(mode & 0o111 != 0, "deploy/worker-init.sh is executable");
    let text = std::fs::read_to_string(&init).unwrap();
    let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap();
    assert_eq!(
        last, "exec scanq-worker \"$@\"",
        "the init becomes the worker"
    );
    let syntax = Command::new("sh").arg("-n").arg(&init).output().unwrap();
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
}

#[test]
fn docker_compose_config_accepts_the_file_where_the_plugin_is_installed() {
    let plugin = Command::new("docker").args(["compose", "version"]).output();
    if !plugin.is_ok_and(|o| o.status.success()) {
        eprintln!("docker compose is not installed here: only the checks above ran");
        return;
    }
    let out = Command::new("docker")
        .args(["compose", "-f"])
        .arg(repo().join("docker-compose.yml"))
        .args(["--profile", "cluster", "config", "--quiet"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
