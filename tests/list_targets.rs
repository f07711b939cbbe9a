//! A job whose target is a list (a chunk of a big scan, DESIGN §12) runs as one job: the tool is
//! given every address, each its own argument, and the run's egress confinement lets it reach
//! exactly those addresses (root only: real nftables rules, a real network namespace for raw
//! scans). Loopback only: listeners on 127.0.0.1 and 127.0.0.2 are in the list, one on
//! 127.0.0.3 is not.
//!
//! A list within the tool's `max_hosts` is one ordinary job (a big scan's chunks are such jobs).
//! The worker's own check is shown on a stored list no submit could make: the job is submitted
//! with one address and its stored `target` rewritten to a list over the tool's limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use scanq::catalog::Catalog;
use scanq::config::{Config, EgressConfinement};
use scanq::domain::{CorrelationId, JobId, TenantId, ToolName};
use scanq::queue::Queue;
use scanq_tests::*;
use serde_json::{Value, json};

const LIST: &str = "127.0.0.1,127.0.0.2";

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// A listener that counts the connections it accepts.
async fn listener(ip: &str) -> (u16, Arc<AtomicU32>) {
    let l = tokio::net::TcpListener::bind((ip, 0))
        .await
        .expect("bind loopback");
    let port = l.local_addr().unwrap().port();
    let hits = Arc::new(AtomicU32::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(sock);
        }
    });
    (port, hits)
}

/// A fake tool that tries each listener and says which connects succeeded.
fn prober(ports: [u16; 3]) -> String {
    let mut body = "#!/bin/bash\n".to_owned();
    for (host, port) in ["127.0.0.1", "127.0.0.2", "127.0.0.3"].iter().zip(ports) {
        body.push_str(&format!(
            "if timeout 5 bash -c 'exec 3<>/dev/tcp/{host}/{port}' 2>/dev/null; then echo \"ok {host}\"; else echo \"refused {host}\"; fi\n"
        ));
    }
    body
}

async fn submit(base: &str, body: Value) {
    let r = post_json(base, "/v1/jobs", &body).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let doc: Value = r.json().await.unwrap();
    assert!(
        doc.get("chunks").is_none(),
        "a list within max_hosts is one job: {doc}"
    );
}

/// Submits `body` and rewrites its stored target to `list`, as a job written by something
/// other than the API might be. No worker may be running yet.
async fn submit_then_store(base: &str, redis: &RedisServer, cfg: &Config, body: Value, list: &str) {
    let r = post_json(base, "/v1/jobs", &body).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let queue = Queue::new(scanq::queue::pool(cfg).unwrap(), cfg);
    let job = JobId::new(
        ToolName::parse(body["tool"].as_str().unwrap()).unwrap(),
        Default::default(),
        TenantId::parse("default").unwrap(),
        CorrelationId::parse(body["correlation_id"].as_str().unwrap()).unwrap(),
    );
    let mut con = redis.con().await;
    let written: i64 = redis::cmd("HSET")
        .arg(queue.keys().job(&job))
        .arg("target")
        .arg(list)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(
        written, 0,
        "the job's target field existed and was replaced"
    );
}

/// The tool's argv as the job recorded it.
fn command(done: &Value) -> Vec<String> {
    done["result"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect()
}

/// The state nmap reported for `port` on the host at `addr`.
fn port_state(done: &Value, addr: &str, port: u16) -> String {
    let hosts = done["result"]["parsed"]["hosts"].as_array().unwrap();
    hosts
        .iter()
        .find(|h| h["addresses"][0]["addr"] == addr)
        .and_then(|h| h["ports"].as_array())
        .and_then(|ports| ports.iter().find(|p| p["port"] == port))
        .and_then(|p| p["state"].as_str())
        .unwrap_or("missing")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_target_reaches_every_listed_address_and_nothing_else() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let redis = RedisServer::start().await;
    let fixture = Fixture::new();
    let (p1, h1) = listener("127.0.0.1").await;
    let (p2, h2) = listener("127.0.0.2").await;
    let (p3, h3) = listener("127.0.0.3").await;
    let tool = fixture.script("prober", &prober([p1, p2, p3]));
    // The built-in tools (nmap) and the prober.
    let path = fixture.catalog(&fake_tool_catalog("prober", &tool, ""));
    let catalog = Catalog::load(Some(&path)).expect("catalog");
    let mut cfg = test_config(&redis, "listplain");
    cfg.egress_confinement = EgressConfinement::Required;
    cfg.allow_unconfined = false;
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;
    submit(
        &base,
        json!({"tool":"prober","target":LIST,"correlation_id":"probe"}),
    )
    .await;
    submit(
        &base,
        json!({"tool":"nmap","target":LIST,"args":format!("-sT -Pn -n -p {p1},{p2}"),
               "correlation_id":"scan"}),
    )
    .await;

    // The fake tool: both listed listeners answer, the third address is refused by the kernel.
    let done = wait_done(&base, "probe", Duration::from_secs(60)).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let out = done["result"]["stdout"].as_str().unwrap();
    assert!(out.contains("ok 127.0.0.1"), "{out}");
    assert!(out.contains("ok 127.0.0.2"), "{out}");
    assert!(out.contains("refused 127.0.0.3"), "{out}");
    assert_eq!(h3.load(Ordering::SeqCst), 0, "nothing reached 127.0.0.3");
    let c = &done["result"]["confinement"];
    assert_eq!(c["mode"], "nftables", "{done}");
    assert_eq!(c["allowed"], json!(["127.0.0.1", "127.0.0.2"]), "{done}");
    assert!(c["refused_attempts"].as_u64().unwrap() >= 1, "{c}");
    let argv = command(&done);
    assert_eq!(
        argv[argv.len() - 2..],
        ["127.0.0.1", "127.0.0.2"],
        "{argv:?}"
    );

    // Real nmap, plain connect scan: one run finds the open port of each listed address.
    let scan = wait_done(&base, "scan", Duration::from_secs(90)).await;
    assert_eq!(scan["state"], "succeeded", "{scan}");
    let argv = command(&scan);
    assert_eq!(
        argv[argv.len() - 2..],
        ["127.0.0.1", "127.0.0.2"],
        "{argv:?}"
    );
    assert_eq!(port_state(&scan, "127.0.0.1", p1), "open", "{scan}");
    assert_eq!(port_state(&scan, "127.0.0.2", p2), "open", "{scan}");
    assert_eq!(
        scan["result"]["confinement"]["allowed"],
        json!(["127.0.0.1", "127.0.0.2"])
    );
    assert!(h1.load(Ordering::SeqCst) >= 2 && h2.load(Ordering::SeqCst) >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_syn_scan_of_a_list_finds_each_listed_listener_in_its_namespace() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let one = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let two = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let (p1, p2) = (
        one.local_addr().unwrap().port(),
        two.local_addr().unwrap().port(),
    );
    let redis = RedisServer::start().await;
    let mut cfg = test_config(&redis, "listraw");
    cfg.allowed_targets = "127.0.0.0/8".into();
    cfg.egress_confinement = EgressConfinement::Required;
    cfg.allow_unconfined = false;
    let catalog = Catalog::builtin();
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;
    submit(
        &base,
        json!({"tool":"nmap","target":LIST,"args":format!("-sS -Pn -n -p {p1},{p2}"),
               "correlation_id":"syn"}),
    )
    .await;

    let done = wait_done(&base, "syn", Duration::from_secs(120)).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let c = &done["result"]["confinement"];
    assert_eq!(c["mode"], "netns", "{done}");
    assert_eq!(c["allowed"], json!(["127.0.0.1", "127.0.0.2"]), "{done}");
    assert_eq!(c["refused_attempts"], 0, "{done}");
    let argv = command(&done);
    assert_eq!(
        argv[argv.len() - 2..],
        ["127.0.0.1", "127.0.0.2"],
        "{argv:?}"
    );
    assert_eq!(port_state(&done, "127.0.0.1", p1), "open", "{done}");
    assert_eq!(port_state(&done, "127.0.0.2", p2), "open", "{done}");
    // Each address's other port is closed: the scan reached both hosts, not only the listeners.
    assert_eq!(port_state(&done, "127.0.0.1", p2), "closed", "{done}");
    assert_eq!(port_state(&done, "127.0.0.2", p1), "closed", "{done}");
    drop((one, two));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_chunk_of_a_big_scan_runs_confined_to_its_own_list() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let one = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let three = std::net::TcpListener::bind("127.0.0.3:0").unwrap();
    let (p1, p3) = (
        one.local_addr().unwrap().port(),
        three.local_addr().unwrap().port(),
    );
    let redis = RedisServer::start().await;
    let mut cfg = test_config(&redis, "listchunks");
    cfg.egress_confinement = EgressConfinement::Required;
    cfg.allow_unconfined = false;
    let catalog = Catalog::builtin();
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;
    let r = post_json(
        &base,
        "/v1/jobs",
        &json!({"tool":"nmap","target":"127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4",
                "chunk_hosts":2,"args":format!("-sT -Pn -n -p {p1},{p3}"),
                "correlation_id":"big"}),
    )
    .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());

    let parent = wait_done(&base, "big", Duration::from_secs(120)).await;
    assert_eq!(parent["state"], "succeeded", "{parent}");
    for (n, list, port) in [
        (0, ["127.0.0.1", "127.0.0.2"], p1),
        (1, ["127.0.0.3", "127.0.0.4"], p3),
    ] {
        let chunk = get_json(&base, &format!("/v1/jobs/big:{n}")).await;
        assert_eq!(chunk["state"], "succeeded", "{chunk}");
        assert_eq!(chunk["target"], list.join(","), "{chunk}");
        let c = &chunk["result"]["confinement"];
        assert_eq!(c["allowed"], json!(list), "{chunk}");
        assert_eq!(c["refused_attempts"], 0, "{chunk}");
        let argv = command(&chunk);
        assert_eq!(argv[argv.len() - 2..], list, "{argv:?}");
        assert_eq!(port_state(&chunk, list[0], port), "open", "{chunk}");
    }
    drop((one, three));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_list_over_the_tools_max_hosts_is_refused_by_the_worker_naming_both_numbers() {
    let redis = RedisServer::start().await;
    let fixture = Fixture::new();
    let (p1, h1) = listener("127.0.0.1").await;
    let (p2, h2) = listener("127.0.0.2").await;
    let (p3, _) = listener("127.0.0.3").await;
    let tool = fixture.script("prober", &prober([p1, p2, p3]));
    // One host per job: the single target passes the API, the stored list of two does not.
    let path = fixture.catalog(&fake_tool_catalog("prober", &tool, "max_hosts = 1"));
    let catalog = Catalog::load(Some(&path)).expect("catalog");
    let cfg = test_config(&redis, "listcap");
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    submit_then_store(
        &base,
        &redis,
        &cfg,
        json!({"tool":"prober","target":"127.0.0.1","correlation_id":"over","max_attempts":1}),
        LIST,
    )
    .await;
    let _worker = start_worker(cfg, catalog).await;

    let done = wait_done(&base, "over", Duration::from_secs(30)).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(done["error"]["type"], "validation_error", "{done}");
    let message = done["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("covers 2 hosts") && message.contains("at most 1"),
        "{message}"
    );
    assert!(done["result"].get("command").is_none(), "{done}");
    assert_eq!(h1.load(Ordering::SeqCst) + h2.load(Ordering::SeqCst), 0);
}
