//! The zone map (issue 22, DESIGN §13): a worker re-checks every address it is about to scan
//! against its own zone and refuses (the job fails, the tool never starts) a name that resolves
//! into another zone; malformed or ambiguous maps and an unknown `SCANQ_WORKER_ZONE` stop the
//! API and the worker at start naming the key; SIGHUP reloads the map. Zones are loopback
//! sub-ranges (`a=127.0.1.0/24`); names resolve through a `StaticResolver` to loopback only.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use scanq::catalog::Catalog;
use scanq::config::{Config, ZonesSetting};
use scanq::validate::StaticResolver;
use scanq_tests::*;
use serde_json::{Value, json};

/// The fake tool, recording each start (with its arguments) in `<fixture>/starts`.
fn fake(fx: &Fixture) -> (Catalog, PathBuf) {
    let starts = fx.path("starts");
    let cmd = fx.script("fake", &fake_tool_script(Some(&starts)));
    let catalog = Catalog::load(Some(&fx.catalog(&fake_tool_catalog("fake", &cmd, "")))).unwrap();
    (catalog, starts)
}

async fn submit(base: &str, target: &str, id: &str) {
    let body = json!({"tool": "fake", "target": target, "correlation_id": id});
    let resp = post_json(base, "/v1/jobs", &body).await;
    let status = resp.status().as_u16();
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(status, 202, "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_resolving_outside_the_workers_zone_is_refused_and_never_scanned() {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let (catalog, starts) = fake(&fx);
    let mut cfg = test_config(&redis, "zone-recheck");
    cfg.zones = ZonesSetting::Text("a=127.0.1.0/24".into());
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    // A worker of zone `default`; the names carry no zone suffix, so their jobs are default's.
    let resolver = StaticResolver::new()
        .with("db.lab.internal", [IpAddr::from([127, 0, 1, 5])])
        .with("web.lab.internal", [IpAddr::from([127, 0, 9, 9])]);
    let worker_cfg = Config {
        worker_id: Some("w-default".into()),
        worker_metrics_addr: ([127, 0, 0, 1], free_port()).into(),
        ..cfg.clone()
    };
    let worker =
        scanq_worker::Worker::connect_with_resolver(worker_cfg, catalog, Arc::new(resolver))
            .await
            .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        worker
            .run(async move {
                let _ = stopped.await;
            })
            .await
    });

    submit(&base, "db.lab.internal", "outside").await;
    let done = wait_done(&base, "outside", Duration::from_secs(30)).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(done["error"]["type"], "validation_error", "{done}");
    let message = done["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(
            "127.0.1.5 (from db.lab.internal) is in zone a, outside this worker's zone default: \
             not scanned"
        ),
        "{done}"
    );
    assert!(!starts.exists(), "the tool never started");

    // In a list, the name that resolves outside is named; nothing of the list is scanned.
    submit(&base, "web.lab.internal,db.lab.internal", "list").await;
    let done = wait_done(&base, "list", Duration::from_secs(30)).await;
    assert_eq!(done["state"], "failed", "{done}");
    let message = done["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("(from db.lab.internal)"), "{done}");
    assert!(!starts.exists(), "the tool never started");

    // A name resolving inside the worker's zone runs, on its checked address.
    submit(&base, "web.lab.internal", "inside").await;
    let done = wait_done(&base, "inside", Duration::from_secs(30)).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let runs = lines(&starts);
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(runs[0].ends_with(" 127.0.9.9"), "{runs:?}");

    let _ = stop.send(());
    running.await.unwrap();
    api.shutdown().await;
}

#[tokio::test]
async fn bad_zone_settings_stop_api_and_worker_at_start_naming_the_key() {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let cfg = test_config(&redis, "zone-start");
    let cases = [
        ("A=127.0.1.0/24", "default", "`zones`", "zone must be"),
        (
            "a=127.0.1.0/24;b=127.0.1.0/24",
            "default",
            "`zones`",
            "ambiguous",
        ),
        ("a=db.lab", "default", "`zones`", "`.db.lab`"),
        (
            "a=127.0.1.0/24",
            "lab",
            "`worker_zone`",
            "accepted: default, a",
        ),
    ];
    for bin in ["scanq-worker", "scanq-api"] {
        for (n, (zones, worker_zone, key, words)) in cases.iter().enumerate() {
            let log = fx.path(&format!("{bin}-{n}.log"));
            let mut p = Proc::spawn_logged(
                bin,
                &cfg,
                &[
                    ("SCANQ_ZONES", zones.to_string()),
                    ("SCANQ_WORKER_ZONE", worker_zone.to_string()),
                    ("SCANQ_API_ADDR", format!("127.0.0.1:{}", free_port())),
                    (
                        "SCANQ_WORKER_METRICS_ADDR",
                        format!("127.0.0.1:{}", free_port()),
                    ),
                ],
                &log,
            );
            let status = p.wait_exit(Duration::from_secs(20)).await;
            assert!(!status.success(), "{bin} started with {zones:?}");
            let text = std::fs::read_to_string(&log).unwrap();
            assert!(
                text.contains(key) && text.contains(words),
                "{bin} {zones:?}: {text}"
            );
        }
    }
    // The same variables, well formed (`;` and `,` survive the environment), start a worker of
    // zone `a`.
    let port = free_port();
    let _worker = Proc::spawn(
        "scanq-worker",
        &cfg,
        &[
            (
                "SCANQ_ZONES",
                "a=127.0.1.0/24,.a.lab.internal;b=127.0.2.0/24;".into(),
            ),
            ("SCANQ_WORKER_ZONE", "a".into()),
            ("SCANQ_WORKER_METRICS_ADDR", format!("127.0.0.1:{port}")),
        ],
    );
    eventually(
        Duration::from_secs(20),
        "the worker answers",
        || async move {
            let r = http()
                .get(format!("http://127.0.0.1:{port}/healthz"))
                .send()
                .await
                .ok()?;
            r.status().is_success().then_some(())
        },
    )
    .await;
}

/// A config file for the real binaries, with the zone lines `zones`.
fn write_config(path: &Path, redis: &str, prefix: &str, ports: (u16, u16), zones: &str) {
    let text = format!(
        "redis_url = \"{redis}\"\nkey_prefix = \"{prefix}\"\napi_addr = \"127.0.0.1:{}\"\n\
         worker_metrics_addr = \"127.0.0.1:{}\"\nallowed_targets = \"127.0.0.0/8\"\n\
         lease_sec = 2\nheartbeat_sec = 1\nreap_interval_ms = 100\negress_confinement = \"off\"\n\
         allow_unconfined = true\nworker_zone = \"a\"\n{zones}\n",
        ports.0, ports.1
    );
    std::fs::write(path, text).unwrap();
}

fn spawn(name: &str, config: &Path, log: &Path) -> Proc {
    let file = std::fs::File::create(log).unwrap();
    let child = Command::new(bin(name))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("SCANQ_CONFIG", config)
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    Proc { child }
}

/// Waits until both processes counted `n` reloads with `result`.
async fn wait_reloads(bases: &[String; 2], result: &str, n: u64) {
    let series = format!("scanq_config_reloads_total{{result=\"{result}\"}}");
    eventually(Duration::from_secs(15), "reload counted", || {
        let (bases, series) = (bases.clone(), series.clone());
        async move {
            for b in &bases {
                (metric(b, &series).await? == n).then_some(())?;
            }
            Some(())
        }
    })
    .await;
}

#[tokio::test]
async fn sighup_takes_a_changed_zone_map_and_refuses_a_bad_one_naming_the_key() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("scanq.toml");
    let (prefix, ports) = (unique_prefix("zone-reload"), (free_port(), free_port()));
    let write = |zones: &str| write_config(&config, &redis.url(), &prefix, ports, zones);
    write("[zones]\na = [\"127.0.1.0/24\"]");
    let logs = [dir.path().join("api.log"), dir.path().join("worker.log")];
    let procs = [
        spawn("scanq-api", &config, &logs[0]),
        spawn("scanq-worker", &config, &logs[1]),
    ];
    let bases = [
        format!("http://127.0.0.1:{}", ports.0),
        format!("http://127.0.0.1:{}", ports.1),
    ];
    wait_reloads(&bases, "ok", 0).await;
    let hup = || procs.iter().for_each(|p| p.signal(Signal::SIGHUP));
    let read = |i: usize| std::fs::read_to_string(&logs[i]).unwrap();

    // Before: 127.0.2.4 is in no zone.
    let placed = |target: &'static str, id: &'static str| {
        let base = bases[0].clone();
        async move {
            let body = json!({"tool": "nmap", "target": target, "correlation_id": id});
            let resp = post_json(&base, "/v1/jobs", &body).await;
            assert_eq!(resp.status(), 202);
            resp.json::<Value>().await.unwrap()["zone"].clone()
        }
    };
    assert_eq!(placed("127.0.2.4", "before").await, "default");

    // A new zone, in the string form this time: taken by both.
    write("zones = \"a=127.0.1.0/24;b=127.0.2.0/24\"");
    hup();
    wait_reloads(&bases, "ok", 1).await;
    // New submits are placed by the new map, without a restart (nothing runs them: the only
    // worker serves zone a).
    assert_eq!(placed("127.0.2.5", "after").await, "b");
    for i in 0..2 {
        let text = read(i);
        assert!(
            text.contains("Configuration reloaded") && text.contains(r#"["a", "b"]"#),
            "{text}"
        );
    }

    // Ambiguous: refused naming `zones`; a map without the worker's zone: refused naming
    // `worker_zone` (fixed at start, it must stay a zone of the map).
    write("zones = \"a=127.0.1.0/24;b=127.0.1.0/24\"");
    hup();
    wait_reloads(&bases, "refused", 1).await;
    write("zones = \"b=127.0.2.0/24\"");
    hup();
    wait_reloads(&bases, "refused", 2).await;
    for i in 0..2 {
        let text = read(i);
        assert!(
            text.contains("`zones`") && text.contains("ambiguous: 127.0.1.0/24"),
            "{text}"
        );
        assert!(text.contains("`worker_zone`"), "{text}");
    }
    // The map in force is still `a`, `b`: a reload back to it changes nothing but counts ok.
    write("zones = \"a=127.0.1.0/24;b=127.0.2.0/24\"");
    hup();
    wait_reloads(&bases, "ok", 2).await;
}
