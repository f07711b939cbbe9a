//! `deploy/k8s/` (issue 14): every manifest parses; every environment variable it sets is a
//! variable the README documents and a key the configuration reads; the probes point at the
//! health endpoints on the port the process listens on; KEDA scales the worker Deployment on the
//! queue-depth metric the docs recommend. And (issue 20, docs/sandbox.md "Deployment") the worker
//! is confined by default — root in its container with exactly the listed capabilities,
//! `SCANQ_EGRESS_CONFINEMENT=required`, the runtime's seccomp profile, started by the init that
//! makes cgroup and /proc/sys/net writable — and denies the cluster's networks as targets, while
//! Redis and the API run as non-root users with no capabilities, and only they reach Redis.
//! Zones (issue 22): the API and every worker read one zone map from the `scanq-zones`
//! ConfigMap; a zone's workers (`worker-zone-dmz.yaml`) serve that zone, run only on its nodes,
//! are confined like the others, and KEDA scales them, and the default workers, each on their own
//! zone's depth.
//! Where `kubectl` is installed, `kubectl kustomize deploy/k8s` renders the whole set offline.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use scanq_tests::deploy::{WORKER_CAPS, denied_by, strings};
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
    for name in SCANQ_DEPLOYMENTS {
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
    for name in WORKERS {
        let worker = &find(&docs, "Deployment", name)["spec"]["template"]["spec"];
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
        assert!(
            worker["terminationGracePeriodSeconds"].as_u64().unwrap() > grace,
            "{name}"
        );
    }
    for file in [
        "namespace.yaml",
        "redis.yaml",
        "networkpolicy.yaml",
        "api.yaml",
        "zones.yaml",
        "worker.yaml",
        "worker-scaledobject.yaml",
        "worker-zone-dmz.yaml",
    ] {
        assert!(kustomization.contains(file), "kustomization lacks {file}");
    }
}

/// The Deployments of scanq processes: the API and the workers of each zone.
const SCANQ_DEPLOYMENTS: [&str; 3] = ["scanq-api", "scanq-worker", "scanq-worker-dmz"];
/// The worker Deployments and the zone each serves.
const WORKERS: [&str; 2] = ["scanq-worker", "scanq-worker-dmz"];

#[test]
fn keda_scales_the_workers_of_each_zone_on_that_zones_queue_depth() {
    let docs = manifests();
    let observability = std::fs::read_to_string(repo().join("docs/observability.md")).unwrap();
    for (name, zone) in [("scanq-worker", "default"), ("scanq-worker-dmz", "dmz")] {
        let scaled = find(&docs, "ScaledObject", name);
        assert_eq!(scaled["apiVersion"], "keda.sh/v1alpha1");
        assert_eq!(scaled["spec"]["scaleTargetRef"]["name"], name);
        find(&docs, "Deployment", name);
        let trigger = &scaled["spec"]["triggers"][0];
        assert_eq!(trigger["type"], "prometheus");
        let query = trigger["metadata"]["query"].as_str().unwrap();
        // The backlog the docs recommend, of this zone only (a zone's jobs are claimed by its
        // own workers: the others must not scale on them).
        let backlog = format!("max by (tool) (scanq_queue_depth{{zone=\"{zone}\"}})");
        assert!(
            query.contains(&backlog),
            "{name}: scales on {backlog}: {query}"
        );
        assert!(
            observability.contains("max by (tool) (scanq_queue_depth{zone=\""),
            "docs/observability.md recommends the per-zone backlog"
        );
        let threshold: u64 = trigger["metadata"]["threshold"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(threshold >= 1);
    }
}

#[test]
fn every_process_reads_one_zone_map_and_a_zones_workers_run_in_it() {
    let docs = manifests();
    let map = find(&docs, "ConfigMap", "scanq-zones")["data"]["zones"]
        .as_str()
        .expect("the zone map")
        .to_owned();
    let zones = scanq::validate::ZoneMap::parse(&map).expect("the ConfigMap's map parses");
    for name in SCANQ_DEPLOYMENTS {
        let c = &find(&docs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0];
        let var = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "SCANQ_ZONES")
            .unwrap_or_else(|| panic!("{name} reads no zone map"));
        assert_eq!(
            var["valueFrom"]["configMapKeyRef"],
            serde_json::json!({"name": "scanq-zones", "key": "zones"}),
            "{name}: the map comes from the one ConfigMap"
        );
    }
    for (name, zone) in [("scanq-worker", "default"), ("scanq-worker-dmz", "dmz")] {
        let pod = &find(&docs, "Deployment", name)["spec"]["template"]["spec"];
        let set = env_value(&pod["containers"][0], "SCANQ_WORKER_ZONE");
        assert_eq!(set.as_deref().unwrap_or("default"), zone, "{name}");
        let zone = scanq::domain::Zone::parse(zone).unwrap();
        assert!(
            zone.is_default() || zones.knows(&zone),
            "{name}: {zone} not in {map}"
        );
        if zone.is_default() {
            continue;
        }
        // Only on the zone's nodes (required affinity), which carry its taint.
        let terms = &pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"];
        assert_eq!(
            terms[0]["matchExpressions"],
            serde_json::json!([{"key": "scanq.io/zone", "operator": "In", "values": [zone.to_string()]}]),
            "{name}"
        );
        assert_eq!(pod["tolerations"][0]["key"], "scanq.io/zone", "{name}");
        assert_eq!(pod["tolerations"][0]["value"], zone.to_string(), "{name}");
    }
    // The map's placeholders are documentation ranges (TEST-NET-1), no private network.
    assert!(
        zones.zone_of(&"192.0.2.7".parse::<scanq::validate::Target>().unwrap())
            == scanq::domain::Zone::parse("dmz").unwrap(),
        "{map}"
    );
}

fn env_value(container: &Value, name: &str) -> Option<String> {
    container["env"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == name)
        .and_then(|v| v["value"].as_str())
        .map(str::to_owned)
}

#[test]
fn the_worker_is_confined_by_default_and_denies_the_cluster_networks() {
    for name in WORKERS {
        worker_is_confined(name);
    }
}

fn worker_is_confined(name: &str) {
    let docs = manifests();
    let pod = &find(&docs, "Deployment", name)["spec"]["template"]["spec"];
    assert_eq!(
        pod["automountServiceAccountToken"], false,
        "no API token for tools"
    );
    for key in ["hostNetwork", "hostPID", "hostIPC"] {
        assert_ne!(pod[key], true, "{key}");
    }
    assert_ne!(
        pod["securityContext"]["runAsNonRoot"], true,
        "the pod lets its worker be root"
    );
    let c = &pod["containers"][0];
    assert_eq!(c["args"], serde_json::json!(["scanq-worker-init"]));
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsUser"], 0);
    assert_eq!(sc["runAsNonRoot"], false);
    assert_ne!(sc["privileged"], true, "no privileged mode");
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(strings(&sc["capabilities"]["add"]), WORKER_CAPS);
    assert!(
        WORKER_CAPS.iter().all(|c| !c.starts_with("CAP_")),
        "Kubernetes spells capabilities without CAP_"
    );
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(sc["appArmorProfile"]["type"], "Unconfined");
    assert_eq!(
        env_value(c, "SCANQ_EGRESS_CONFINEMENT").as_deref(),
        Some("required")
    );
    assert_eq!(env_value(c, "SCANQ_ALLOW_UNCONFINED"), None);

    // The placeholders for the service and pod CIDRs, documented where operators read them.
    let sandbox = std::fs::read_to_string(repo().join("docs/sandbox.md")).unwrap();
    let denied = env_value(c, "SCANQ_DENIED_TARGETS").expect("SCANQ_DENIED_TARGETS");
    for net in denied.split(',') {
        assert!(
            sandbox.contains(net),
            "{net} is not explained in docs/sandbox.md"
        );
    }
    // A Service address (kubeadm's default range) and a pod address are refused. Checked with
    // the target policy only: no job is made and no packet is sent.
    for target in ["10.96.0.1", "10.96.0.0/24", "10.244.3.7"] {
        assert!(
            denied_by(&denied, target),
            "{target} not denied by {denied}"
        );
    }
    let api = &find(&docs, "Deployment", "scanq-api")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        env_value(api, "SCANQ_DENIED_TARGETS").as_deref(),
        Some(denied.as_str()),
        "the API refuses the same targets at submit"
    );
}

#[test]
fn redis_and_the_api_run_as_non_root_without_capabilities() {
    let docs = manifests();
    for name in ["scanq-api", "redis"] {
        let pod = &find(&docs, "Deployment", name)["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        let uid = pod["securityContext"]["runAsUser"].as_u64().unwrap_or(0);
        assert!(uid > 0, "{name}: runAsUser {uid}");
        assert_eq!(pod["automountServiceAccountToken"], false, "{name}");
        for c in pod["containers"].as_array().unwrap() {
            let sc = &c["securityContext"];
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
            assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"], "{name}");
            assert!(sc["capabilities"]["add"].is_null(), "{name}");
            assert_ne!(sc["privileged"], true, "{name}");
            assert_ne!(sc["runAsUser"], 0, "{name}");
            assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{name}");
        }
    }
    // Only the API and the workers may open a connection to Redis.
    let policy = find(&docs, "NetworkPolicy", "redis");
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "redis"
    );
    assert_eq!(
        policy["spec"]["policyTypes"],
        serde_json::json!(["Ingress"])
    );
    let rules = policy["spec"]["ingress"].as_array().unwrap();
    assert_eq!(rules.len(), 1);
    let mut from: Vec<&str> = rules[0]["from"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert!(f["ipBlock"].is_null() && f["namespaceSelector"].is_null());
            f["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
                .as_str()
                .unwrap()
        })
        .collect();
    from.sort();
    assert_eq!(from, ["scanq-api", "scanq-worker", "scanq-worker-dmz"]);
    assert_eq!(rules[0]["ports"][0]["port"], 6379);
}

#[test]
fn kubectl_renders_the_kustomization_where_it_is_installed() {
    let kubectl = std::process::Command::new("kubectl")
        .args(["kustomize"])
        .arg(repo().join("deploy/k8s"))
        .output();
    let Ok(out) = kubectl else {
        eprintln!("kubectl is not installed here: only the checks above ran");
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for kind in [
        "Deployment",
        "NetworkPolicy",
        "Service",
        "ScaledObject",
        "ConfigMap",
    ] {
        assert!(text.contains(&format!("kind: {kind}")), "{kind}");
    }
    assert!(text.contains("namespace: scanq"), "{text}");
}
