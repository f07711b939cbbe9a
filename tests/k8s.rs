//! `deploy/k8s/` (issue 14): every manifest parses; every environment variable it sets is a
//! variable the README documents and a key the configuration reads; the probes point at the
//! health endpoints on the port the process listens on; KEDA scales the worker Deployment on the
//! queue-depth metric the docs recommend.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Every document of every manifest, as JSON values.
fn manifests() -> Vec<Value> {
    let dir = repo().join("deploy/k8s");
    let mut docs = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in yaml_serde::Deserializer::from_str(&text) {
            let v: Value = serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert!(
                v["apiVersion"].is_string(),
                "{}: no apiVersion",
                file.display()
            );
            assert!(v["kind"].is_string(), "{}: no kind", file.display());
            docs.push(v);
        }
    }
    docs
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// `SCANQ_*` names written in a document.
fn documented(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("SCANQ_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        out.insert(name);
    }
    out
}

#[test]
fn manifests_use_only_documented_variables_and_the_health_endpoints() {
    let docs = manifests();
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let known = documented(&readme);
    let keys = serde_json::to_value(scanq::config::Config::default()).unwrap();
    let kustomization =
        std::fs::read_to_string(repo().join("deploy/k8s/kustomization.yaml")).unwrap();
    for name in ["scanq-api", "scanq-worker"] {
        let deploy = find(&docs, "Deployment", name);
        let container = &deploy["spec"]["template"]["spec"]["containers"][0];
        let env = container["env"].as_array().expect("env");
        for var in env {
            let var = var["name"].as_str().unwrap();
            assert!(
                known.contains(var),
                "{name}: {var} is not documented in README.md"
            );
            let key = var.strip_prefix("SCANQ_").unwrap().to_lowercase();
            assert!(
                keys.get(&key).is_some(),
                "{name}: {var} is no configuration key"
            );
        }
        let value = |n: &str| {
            env.iter()
                .find(|v| v["name"] == n)
                .and_then(|v| v["value"].as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let (addr, probes): (String, &[(&str, &str)]) = if name == "scanq-api" {
            (
                value("SCANQ_API_ADDR"),
                &[("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")],
            )
        } else {
            (
                value("SCANQ_WORKER_METRICS_ADDR"),
                &[
                    ("readinessProbe", "/healthz"),
                    ("livenessProbe", "/healthz"),
                ],
            )
        };
        let port: u64 = addr.rsplit(':').next().unwrap().parse().unwrap();
        let port_name = container["ports"][0]["name"].as_str().unwrap();
        assert_eq!(container["ports"][0]["containerPort"], port, "{name}");
        for (probe, path) in probes {
            let get = &container[*probe]["httpGet"];
            assert_eq!(get["path"], *path, "{name} {probe}");
            assert_eq!(get["port"], port_name, "{name} {probe}");
        }
        assert!(
            addr.starts_with("0.0.0.0:"),
            "{name} must listen beyond loopback"
        );
    }
    // Off loopback the API needs a tokens file: it is mounted where the variable says.
    let api = &find(&docs, "Deployment", "scanq-api")["spec"]["template"]["spec"];
    let mount = api["containers"][0]["volumeMounts"][0]["mountPath"]
        .as_str()
        .unwrap();
    let tokens = api["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "SCANQ_API_TOKENS_FILE")
        .expect("a tokens file")["value"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(tokens.starts_with(mount), "{tokens} not under {mount}");
    // The Service's in-cluster names pass the API's Host check (DNS-rebinding guard).
    let hosts = api["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "SCANQ_API_ALLOWED_HOSTS")
        .expect("the Service names listed as allowed hosts")["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let service = find(&docs, "Service", "scanq-api")["metadata"]["name"]
        .as_str()
        .unwrap();
    for name in [
        service.to_owned(),
        format!("{service}.scanq.svc"),
        format!("{service}.scanq.svc.cluster.local"),
    ] {
        assert!(hosts.split(',').any(|h| h == name), "{name} not in {hosts}");
    }
    // The worker's pod grace outlasts its drain.
    let worker = &find(&docs, "Deployment", "scanq-worker")["spec"]["template"]["spec"];
    let grace: u64 = worker["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "SCANQ_WORKER_GRACE_SEC")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(worker["terminationGracePeriodSeconds"].as_u64().unwrap() > grace);
    for file in [
        "namespace.yaml",
        "redis.yaml",
        "api.yaml",
        "worker.yaml",
        "worker-scaledobject.yaml",
    ] {
        assert!(kustomization.contains(file), "kustomization lacks {file}");
    }
}

#[test]
fn keda_scales_the_workers_on_the_documented_queue_depth_metric() {
    let docs = manifests();
    let scaled = find(&docs, "ScaledObject", "scanq-worker");
    assert_eq!(scaled["apiVersion"], "keda.sh/v1alpha1");
    assert_eq!(scaled["spec"]["scaleTargetRef"]["name"], "scanq-worker");
    find(&docs, "Deployment", "scanq-worker");
    let trigger = &scaled["spec"]["triggers"][0];
    assert_eq!(trigger["type"], "prometheus");
    let query = trigger["metadata"]["query"].as_str().unwrap();
    let observability = std::fs::read_to_string(repo().join("docs/observability.md")).unwrap();
    assert!(query.contains("scanq_queue_depth"), "{query}");
    assert!(
        observability.contains("max by (tool) (scanq_queue_depth)")
            && query.contains("max by (tool) (scanq_queue_depth)"),
        "the query is the one docs/observability.md recommends: {query}"
    );
    let threshold: u64 = trigger["metadata"]["threshold"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(threshold >= 1);
}
