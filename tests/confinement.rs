//! The kernel-enforced layers (docs/sandbox.md). Egress confinement: as root, each `exec` run may
//! reach only its job's resolved target, the kernel refuses the rest and the job reports it;
//! rules are gone after the job, after a cancel, and after a SIGKILLed worker is restarted.
//! Seccomp: a tool that makes a denied system call is killed and classified. Loopback only: the
//! listeners are on 127.0.0.1, 127.0.0.2 and 127.0.0.3.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use scanq::catalog::Catalog;
use scanq::config::{Config, EgressConfinement};
use scanq_tests::*;
use serde_json::{Value, json};

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

/// A fake tool that connects to the three listeners and says which connects succeeded, after
/// writing its uid to `uid_dir/uid` (when it sleeps, it sleeps after that).
fn prober(ports: [u16; 3], uid_dir: &Path) -> String {
    let hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
    let mut body = format!(
        "#!/bin/bash\nid -u > {}/uid\nsleep_ms=0\n[ \"$1\" = --sleep-ms ] && sleep_ms=$2\n",
        uid_dir.display()
    );
    for (host, port) in hosts.iter().zip(ports) {
        body.push_str(&format!(
            "if timeout 5 bash -c 'exec 3<>/dev/tcp/{host}/{port}' 2>/dev/null; then echo \"ok {host}\"; else echo \"refused {host}\"; fi\n"
        ));
    }
    body.push_str("[ $sleep_ms -gt 0 ] && sleep $((sleep_ms/1000))\nexit 0\n");
    body
}

struct Stack {
    _redis: RedisServer,
    _api: Task,
    worker: Option<Task>,
    base: String,
    metrics: String,
    cfg: Config,
    fixture: Fixture,
    ports: [u16; 3],
    hits: [Arc<AtomicU32>; 3],
}

/// Uids of their own for one test's runs. The tests of this binary run at once, and a run's uid
/// is free again once it ends: with one shared range, another test's run could take the uid a
/// test is checking (`has_chain`, `processes_of`) and hold it for its whole sleep.
fn own_uids() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let first = 61_000 + NEXT.fetch_add(1, Ordering::Relaxed) * 16;
    format!("{first}-{}", first + 15)
}

async fn stack(name: &str, mode: EgressConfinement) -> Stack {
    let redis = RedisServer::start().await;
    let fixture = Fixture::new();
    let uid_dir = fixture.path("uid");
    std::fs::create_dir(&uid_dir).unwrap();
    std::fs::set_permissions(&uid_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (p1, h1) = listener("127.0.0.1").await;
    let (p2, h2) = listener("127.0.0.2").await;
    let (p3, h3) = listener("127.0.0.3").await;
    let tool = fixture.script("prober", &prober([p1, p2, p3], &uid_dir));
    let path = fixture.catalog(&fake_tool_catalog("prober", &tool, ""));
    let catalog = Catalog::load(Some(&path)).expect("catalog");
    let mut cfg = test_config(&redis, name);
    cfg.egress_confinement = mode;
    cfg.sandbox_uid_range = own_uids();
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let (worker, metrics) = start_worker_with_metrics(cfg.clone(), catalog).await;
    Stack {
        _redis: redis,
        _api: api,
        worker: Some(worker),
        base,
        metrics,
        cfg,
        fixture,
        ports: [p1, p2, p3],
        hits: [h1, h2, h3],
    }
}

fn nft_table() -> String {
    let out = Command::new("nft")
        .args(["list", "table", "inet", "scanq"])
        .output()
        .expect("nft runs (scripts/install-deps.sh installs nftables)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn has_chain(uid: u32) -> bool {
    nft_table().contains(&format!("chain run_{uid} "))
}

fn processes_of(uid: u32) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .filter(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .is_some_and(|ids| ids.split_whitespace().next() == Some(&uid.to_string()))
        })
        .count()
}

async fn submit(base: &str, body: Value) {
    let r = post_json(base, "/v1/jobs", &body).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
}

async fn tool_uid(fixture: &Fixture) -> u32 {
    let file = fixture.path("uid").join("uid");
    eventually(Duration::from_secs(20), "the tool wrote its uid", || {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        async move { text.trim().parse::<u32>().ok() }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confined_tool_reaches_only_its_target_and_the_refusals_are_on_the_job() {
    let s = stack("confined", EgressConfinement::Auto).await;
    submit(
        &s.base,
        json!({"tool":"prober","target":"127.0.0.1","correlation_id":"c"}),
    )
    .await;
    let done = wait_done(&s.base, "c", Duration::from_secs(30)).await;

    assert_eq!(done["state"], "succeeded", "{done}");
    let out = done["result"]["stdout"].as_str().unwrap();
    assert!(out.contains("ok 127.0.0.1"), "{out}");
    assert!(out.contains("refused 127.0.0.2"), "{out}");
    assert!(out.contains("refused 127.0.0.3"), "{out}");
    assert_eq!(s.hits[0].load(Ordering::SeqCst), 1);
    assert_eq!(s.hits[1].load(Ordering::SeqCst), 0);
    assert_eq!(s.hits[2].load(Ordering::SeqCst), 0);
    let c = &done["result"]["confinement"];
    assert_eq!(c["mode"], "nftables", "{done}");
    assert_eq!(c["allowed"], json!(["127.0.0.1"]));
    assert!(c["refused_attempts"].as_u64().unwrap() >= 2, "{c}");
    let uid = c["uid"].as_u64().unwrap() as u32;
    assert_eq!(
        tool_uid(&s.fixture).await,
        uid,
        "the tool ran as the run's uid"
    );
    // (Removed with the next claim's transaction, or alone shortly after.)
    eventually(
        Duration::from_secs(10),
        "the run's rules gone after the job",
        || async move { (!has_chain(uid)).then_some(()) },
    )
    .await;

    // The worker says it confines, in /v1/workers and /health, and counts the refusals.
    let workers = get_json(&s.base, "/v1/workers").await;
    assert_eq!(
        workers["workers"][0]["confinement"], "nftables",
        "{workers}"
    );
    let health = get_json(&s.base, "/health").await;
    assert!(
        health.to_string().contains("egress confinement"),
        "{health}"
    );
    assert!(health.to_string().contains(": nftables"), "{health}");
    let refused = metric(
        &s.metrics,
        "scanq_egress_refused_packets_total{tool=\"prober\"}",
    )
    .await
    .expect("the refused-packets metric");
    assert!(refused >= 2, "{refused}");

    // Real nmap under confinement still finds the open port of its own target.
    let port = s.ports[0];
    submit(
        &s.base,
        json!({"tool":"nmap","target":"127.0.0.1","args":format!("-sT -Pn -n -p {port}"),"correlation_id":"n"}),
    )
    .await;
    let scan = wait_done(&s.base, "n", Duration::from_secs(60)).await;
    assert_eq!(scan["state"], "succeeded", "{scan}");
    assert_eq!(scan["result"]["confinement"]["mode"], "nftables", "{scan}");
    let ports = &scan["result"]["parsed"]["hosts"][0]["ports"];
    assert!(
        ports
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["port"] == port && p["state"] == "open"),
        "{ports}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconfined_the_same_tool_reaches_all_three_listeners() {
    let s = stack("unconfined", EgressConfinement::Off).await;
    submit(
        &s.base,
        json!({"tool":"prober","target":"127.0.0.1","correlation_id":"u"}),
    )
    .await;
    let done = wait_done(&s.base, "u", Duration::from_secs(30)).await;

    assert_eq!(done["state"], "succeeded", "{done}");
    let out = done["result"]["stdout"].as_str().unwrap();
    for host in ["127.0.0.1", "127.0.0.2", "127.0.0.3"] {
        assert!(out.contains(&format!("ok {host}")), "{out}");
    }
    assert!(done["result"].get("confinement").is_none(), "{done}");
    let workers = get_json(&s.base, "/v1/workers").await;
    assert_eq!(workers["workers"][0]["confinement"], "off", "{workers}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_leaves_no_rules_and_no_process() {
    let mut s = stack("confcancel", EgressConfinement::Required).await;
    submit(
        &s.base,
        json!({"tool":"prober","target":"127.0.0.1","args":"--sleep-ms 60000","correlation_id":"k"}),
    )
    .await;
    let uid = tool_uid(&s.fixture).await;
    eventually(
        Duration::from_secs(10),
        "the run's chain exists",
        || async move { has_chain(uid).then_some(()) },
    )
    .await;

    let r = http()
        .delete(format!("{}/v1/jobs/k", s.base))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let done = wait_done(&s.base, "k", Duration::from_secs(30)).await;
    assert_eq!(done["state"], "cancelled", "{done}");
    eventually(
        Duration::from_secs(10),
        "rules and processes gone",
        || async move { (!has_chain(uid) && processes_of(uid) == 0).then_some(()) },
    )
    .await;
    s.worker.take().unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_workers_rules_are_cleared_when_a_worker_starts() {
    let s = stack("confkill", EgressConfinement::Off).await;
    // The in-process worker of the stack does not confine; a real worker process does.
    let mut cfg = s.cfg.clone();
    cfg.egress_confinement = EgressConfinement::Required;
    cfg.catalog = Some(s.fixture.path("catalog.toml"));
    cfg.worker_metrics_addr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    // Only the process takes prober jobs: stop the in-process one first.
    let mut s = s;
    s.worker.take().unwrap().shutdown().await;
    let mut worker = Proc::spawn("scanq-worker", &cfg, &[]);
    submit(
        &s.base,
        json!({"tool":"prober","target":"127.0.0.1","args":"--sleep-ms 60000","correlation_id":"x","max_attempts":1}),
    )
    .await;
    let uid = tool_uid(&s.fixture).await;
    // The owner comment names the worker's pid namespace, pid and start time.
    let pid = format!(".{}.", worker.pid());
    let table = nft_table();
    let owner = table
        .split('"')
        .find(|c| c.starts_with("scanq owner=") && c.contains(&pid))
        .unwrap_or_else(|| panic!("no rule owned by the worker: {table}"))
        .to_owned();

    worker.signal(nix::sys::signal::Signal::SIGKILL);
    worker.wait_exit(Duration::from_secs(10)).await;
    assert!(
        nft_table().contains(&owner),
        "a dead worker cannot remove its rules"
    );
    let dead = owner.clone();
    cfg.worker_metrics_addr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _restarted = Proc::spawn("scanq-worker", &cfg, &[]);
    eventually(
        Duration::from_secs(20),
        "the restarted worker clears them",
        || {
            let table = nft_table();
            let dead = dead.clone();
            async move { (!table.contains(&dead) && processes_of(uid) == 0).then_some(()) }
        },
    )
    .await;
    let _ = http().delete(format!("{}/v1/jobs/x", s.base)).send().await;
}

#[tokio::test]
async fn required_confinement_without_the_privilege_refuses_to_start() {
    let cfg = Config {
        egress_confinement: EgressConfinement::Required,
        redis_url: "redis://127.0.0.1:1".into(),
        worker_metrics_addr: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        ..Config::default()
    };
    let mut cmd = Command::new(bin("scanq-worker"));
    cmd.env_clear()
        .envs(config_env(&cfg))
        .current_dir("/")
        .uid(65534)
        .gid(65534);
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || cmd.output()),
    )
    .await
    .expect("the worker exits at once")
    .unwrap()
    .expect("spawn as nobody");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SCANQ_EGRESS_CONFINEMENT=required"), "{err}");
    assert!(err.contains("CAP_NET_ADMIN"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_that_calls_a_denied_syscall_is_killed_and_not_retried() {
    let redis = RedisServer::start().await;
    let fixture = Fixture::new();
    // ptrace(PTRACE_TRACEME): harmless without the filter, a sandbox violation with it.
    let tool = fixture.script(
        "tracer",
        &format!(
            "#!/usr/bin/python3\nimport ctypes, sys\nprint('calling ptrace', flush=True)\n\
             r = ctypes.CDLL(None, use_errno=True).syscall({}, 0, 0, 0, 0)\n\
             print('ptrace returned', r, flush=True)\n",
            libc_ptrace()
        ),
    );
    let path = fixture.catalog(&fake_tool_catalog("tracer", &tool, ""));
    let catalog = Catalog::load(Some(&path)).expect("catalog");
    let mut cfg = test_config(&redis, "seccomp");
    cfg.sandbox_uid_range = own_uids();
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let (_worker, wm) = start_worker_with_metrics(cfg, catalog).await;
    submit(
        &base,
        json!({"tool":"tracer","target":"127.0.0.1","correlation_id":"t","max_attempts":3}),
    )
    .await;
    let done = wait_done(&base, "t", Duration::from_secs(30)).await;

    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(
        done["attempt"], 1,
        "a sandbox violation is not retried: {done}"
    );
    assert_eq!(done["error"]["type"], "execution_error");
    assert!(
        done["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sandbox violation"),
        "{done}"
    );
    let out = done["result"]["stdout"].as_str().unwrap();
    assert!(out.contains("calling ptrace"), "the tool ran: {out}");
    assert!(
        !out.contains("ptrace returned"),
        "the call never returned: {out}"
    );
    // Its own failure kind: the breaker hears it, and the worker counts it.
    let b = get_json(&base, "/v1/breakers/tracer").await;
    let errors = b["last_errors"].as_array().cloned().unwrap_or_default();
    assert!(
        errors.iter().any(|e| e["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("sandbox_violation: "))),
        "{b}"
    );
    assert_eq!(
        metric(&wm, "scanq_sandbox_violations_total{tool=\"tracer\"}").await,
        Some(1)
    );
}

/// The ptrace system call number of this architecture.
fn libc_ptrace() -> i64 {
    match std::env::consts::ARCH {
        "x86_64" => 101,
        "aarch64" => 117,
        other => panic!("no ptrace number for {other}"),
    }
}
