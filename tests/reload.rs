//! SIGHUP reloads the config file, the tool catalog and the target scope in the API and in a
//! worker (issue 14): the new set is validated whole and swapped in; a bad file is refused,
//! naming the key, and the old set stays in force; `scanq_config_reloads_total{result}` counts
//! both; a job queued before a reload is checked against the scope in force when it is claimed.
//! Real binaries, configured only through a config file (`SCANQ_CONFIG`), and the in-process
//! `noop`/`sleep` tools, so no private address is ever touched.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use scanq_tests::*;
use serde_json::{Value, json};

struct Files {
    config: PathBuf,
    catalog: PathBuf,
    redis_url: String,
    prefix: String,
    api_port: u16,
    worker_port: u16,
}

impl Files {
    /// Writes the config file (with `extra` lines) and the catalog (in-process tools plus
    /// `catalog_extra`).
    fn write(&self, allowed: &str, extra: &str, catalog_extra: &str) {
        std::fs::write(&self.catalog, format!("{INPROCESS_TOOLS}\n{catalog_extra}")).unwrap();
        let text = format!(
            "redis_url = \"{}\"\nkey_prefix = \"{}\"\napi_addr = \"127.0.0.1:{}\"\n\
             worker_metrics_addr = \"127.0.0.1:{}\"\ncatalog = \"{}\"\n\
             allowed_targets = \"{allowed}\"\nlease_sec = 2\nheartbeat_sec = 1\n\
             reap_interval_ms = 100\nschedule_min_every_sec = 1\nschedule_tick_ms = 100\n\
             {extra}\n",
            self.redis_url,
            self.prefix,
            self.api_port,
            self.worker_port,
            self.catalog.display(),
        );
        std::fs::write(&self.config, text).unwrap();
    }
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

async fn reloads(base: &str, result: &str) -> Option<u64> {
    metric(
        base,
        &format!("scanq_config_reloads_total{{result=\"{result}\"}}"),
    )
    .await
}

/// Waits until both processes counted `n` reloads with `result`.
async fn wait_reloads(api: &str, worker: &str, result: &str, n: u64) {
    eventually(Duration::from_secs(10), "reload counted", || {
        let (api, worker) = (api.to_owned(), worker.to_owned());
        async move {
            let a = reloads(&api, result).await?;
            let w = reloads(&worker, result).await?;
            (a == n && w == n).then_some(())
        }
    })
    .await;
}

async fn submit(base: &str, body: Value) -> (u16, Value) {
    let r = post_json(base, "/v1/jobs", &body).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn sighup_reloads_config_catalog_and_scope_in_api_and_worker() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let files = Files {
        config: dir.path().join("scanq.toml"),
        catalog: dir.path().join("catalog.toml"),
        redis_url: redis.url(),
        prefix: unique_prefix("reload"),
        api_port: free_port(),
        worker_port: free_port(),
    };
    files.write("10.0.0.0/8", "", "");
    let (api_log, worker_log) = (dir.path().join("api.log"), dir.path().join("worker.log"));
    let api = spawn("scanq-api", &files.config, &api_log);
    let worker = spawn("scanq-worker", &files.config, &worker_log);
    let base = format!("http://127.0.0.1:{}", files.api_port);
    let wbase = format!("http://127.0.0.1:{}", files.worker_port);
    wait_reloads(&base, &wbase, "ok", 0).await;
    let hup = || {
        api.signal(Signal::SIGHUP);
        worker.signal(Signal::SIGHUP);
    };

    // Out of scope, and no such template yet.
    let (status, problem) = submit(&base, json!({"tool": "noop", "target": "192.168.7.7"})).await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (422, Some("target")),
        "{problem}"
    );
    let short = json!({"tool": "sleep", "target": "10.0.0.5", "template": "short", "correlation_id": "short"});
    let (status, problem) = submit(&base, short.clone()).await;
    assert_eq!(status, 422, "{problem}");

    // A new scope and a new template: both processes take them.
    files.write(
        "10.0.0.0/8,192.168.0.0/16",
        "",
        "[tools.sleep.templates]\nshort = \"--ms 10\"\n",
    );
    hup();
    wait_reloads(&base, &wbase, "ok", 1).await;
    let (status, doc) = submit(
        &base,
        json!({"tool": "noop", "target": "192.168.7.7", "correlation_id": "wide"}),
    )
    .await;
    assert_eq!(status, 202, "{doc}");
    assert_eq!(
        wait_done(&base, "wide", Duration::from_secs(20)).await["state"],
        "succeeded"
    );
    let (status, doc) = submit(&base, short).await;
    assert_eq!(status, 202, "{doc}");
    assert_eq!(
        wait_done(&base, "short", Duration::from_secs(20)).await["state"],
        "succeeded"
    );

    // Schedulers judge a schedule's runs by the set in force too: runs of the wide scope fire.
    let wide = json!({"tool": "noop", "target": "192.168.7.10", "every_sec": 1});
    let r = http()
        .put(format!("{base}/v1/schedules/wide"))
        .json(&wide)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    eventually(
        Duration::from_secs(15),
        "a scheduled run in the wide scope",
        || {
            let base = base.clone();
            async move {
                let runs = get_json(&base, "/v1/schedules/wide/runs").await;
                let runs = runs["runs"].as_array()?.clone();
                runs.iter().any(|j| j["state"] == "succeeded").then_some(())
            }
        },
    )
    .await;

    // A bad file is refused with the key's name; the running set stays in force.
    files.write("10.0.0.0/8", "max_hosts = 0", "");
    hup();
    wait_reloads(&base, &wbase, "refused", 1).await;
    for log in [&api_log, &worker_log] {
        let text = std::fs::read_to_string(log).unwrap();
        assert!(
            text.contains("Configuration reload refused") && text.contains("max_hosts"),
            "{text}"
        );
    }
    let (status, doc) = submit(&base, json!({"tool": "noop", "target": "192.168.7.8"})).await;
    assert_eq!(status, 202, "the old scope is still in force: {doc}");
    // A key fixed at start is refused too, by name.
    files.write("10.0.0.0/8", "worker_concurrency = 3", "");
    hup();
    wait_reloads(&base, &wbase, "refused", 2).await;
    let text = std::fs::read_to_string(&api_log).unwrap();
    assert!(text.contains("worker_concurrency"), "{text}");

    // A job queued under the wide scope is checked against the narrow one when claimed.
    let (status, doc) = submit(
        &base,
        json!({"tool": "noop", "target": "192.168.7.9", "correlation_id": "later", "delay_sec": 3}),
    )
    .await;
    assert_eq!(status, 202, "{doc}");
    files.write(
        "10.0.0.0/8",
        "",
        "[tools.sleep.templates]\nshort = \"--ms 10\"\n",
    );
    hup();
    wait_reloads(&base, &wbase, "ok", 2).await;
    let done = wait_done(&base, "later", Duration::from_secs(20)).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(done["error"]["type"], "validation_error", "{done}");
    // ... and so are the schedule's next runs (refused, not made).
    let refused = "scanq_schedule_runs_total{result=\"refused\"}";
    eventually(Duration::from_secs(15), "a scheduled run refused", || {
        let (base, wbase) = (base.clone(), wbase.clone());
        async move {
            let n = metric(&base, refused).await.unwrap_or(0)
                + metric(&wbase, refused).await.unwrap_or(0);
            (n >= 1).then_some(())
        }
    })
    .await;
}
