//! Raw-socket scans end to end (root only): a worker that can confine them (root, nftables, a
//! network namespace per run) says so, claims them, and runs nmap's SYN, UDP and OS-detection
//! scans of a loopback listener in a namespace of their own with `CAP_NET_RAW` alone; the job's
//! result says how it was confined. (A worker that cannot confine them leaves them waiting:
//! tests/raw_routing.rs.)

use std::time::Duration;

use scanq::catalog::Catalog;
use scanq::config::EgressConfinement;
use scanq_tests::*;
use serde_json::{Value, json};

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// `(port, state)` of every port nmap reported for the first host.
fn ports(done: &Value) -> Vec<(u64, String)> {
    done["result"]["parsed"]["hosts"][0]["ports"]
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .map(|p| {
                    (
                        p["port"].as_u64().unwrap_or(0),
                        p["state"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syn_udp_and_os_scans_run_confined_on_a_raw_capable_worker() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let redis = RedisServer::start().await;
    let mut cfg = test_config(&redis, "rawscan");
    cfg.allowed_targets = "127.0.0.0/8".into();
    cfg.egress_confinement = EgressConfinement::Required;
    cfg.allow_unconfined = false;
    let catalog = Catalog::builtin();
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;

    let workers = eventually(Duration::from_secs(20), "a worker heartbeat", || async {
        let w = get_json(&base, "/v1/workers").await;
        (w["count"] == 1).then_some(w)
    })
    .await;
    let caps = &workers["workers"][0]["capabilities"];
    assert_eq!(caps["raw_sockets"], true, "{workers}");
    assert_eq!(caps["unconfined"], false, "{workers}");

    let jobs = [
        ("syn", format!("-sS -Pn -n -p {port},1")),
        ("udp", "-sU -Pn -n -p 9".to_owned()),
        ("os", format!("-sS -O -Pn -n -p {port},1")),
    ];
    for (cid, args) in &jobs {
        let r = post_json(
            &base,
            "/v1/jobs",
            &json!({"tool":"nmap","target":"127.0.0.1","args":args,"correlation_id":cid}),
        )
        .await;
        assert_eq!(r.status(), 202);
        let doc: Value = r.json().await.unwrap();
        assert_eq!(doc["needs"], json!(["raw_sockets"]), "{doc}");
        assert!(doc.get("waiting_for").is_none(), "{doc}");
    }
    for (cid, _) in &jobs {
        let done = wait_done(&base, cid, Duration::from_secs(120)).await;
        assert_eq!(done["state"], "succeeded", "{done}");
        let c = &done["result"]["confinement"];
        assert_eq!(c["mode"], "netns", "{done}");
        assert_eq!(c["allowed"], json!(["127.0.0.1"]), "{done}");
        assert_eq!(c["refused_attempts"], 0, "{done}");
        let command: Vec<&str> = done["result"]["command"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(command.contains(&"--privileged"), "{command:?}");
        let found = ports(&done);
        match *cid {
            "udp" => assert!(found.contains(&(9, "closed".into())), "{found:?}"),
            _ => {
                assert!(
                    found.contains(&(u64::from(port), "open".into())),
                    "{found:?}"
                );
                assert!(found.contains(&(1, "closed".into())), "{found:?}");
            }
        }
    }
    let os = get_json(&base, "/v1/jobs/os").await;
    let stdout = os["result"]["stdout"].as_str().unwrap_or("");
    assert!(
        stdout.contains("osmatch") || stdout.contains("osfingerprint"),
        "{stdout}"
    );
    drop(listener);
}
