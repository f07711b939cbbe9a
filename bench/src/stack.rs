//! What a benchmark phase runs against: a redis-server (started here, or an existing one), a
//! temporary `noop`-only catalog, and the real `scanq-api` / `scanq-worker` binaries started as
//! processes from the bench's own target directory. Every process started here is killed when
//! its handle is dropped (also on error and on Ctrl-C, which drops the running phase).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use scanq::catalog::Catalog;
use scanq::config::Config;
use scanq::domain::ToolName;
use scanq::keys::Keys;
use scanq_tests::{Proc, RedisServer, free_port};

/// The only tool the benchmark uses: in-process, succeeds at once, sends no packets.
pub const TOOL: &str = "noop";

/// The target of every benchmark job: loopback (the `noop` executor never contacts it).
pub const TARGET: &str = "127.0.0.1";

/// A catalog with the `noop` tool only, so workers claim from one queue, as BullMQ and apalis
/// do in the comparison.
const CATALOG: &str = r#"mode = "replace"

[tools.noop]
executor = "noop"
"#;

/// Settings a phase's processes share.
#[derive(Debug, Clone)]
pub struct Settings {
    pub worker_concurrency: u32,
    pub lease_sec: u64,
    pub reap_interval_ms: u64,
}

/// The Redis the benchmark talks to.
pub enum Redis {
    /// Started here; flushed between phases, killed at the end.
    Own(RedisServer),
    /// Given with `--redis-url`; only keys under the run's prefixes are touched and removed.
    External(String),
}

impl Redis {
    pub async fn start(url: Option<String>) -> anyhow::Result<Self> {
        let redis = match url {
            Some(u) => Self::External(u),
            None => Self::Own(RedisServer::start().await),
        };
        let mut con = redis.con().await?;
        let _: String = redis::cmd("PING")
            .query_async(&mut con)
            .await
            .with_context(|| format!("redis at {} does not answer PING", redis.url()))?;
        Ok(redis)
    }

    pub fn url(&self) -> String {
        match self {
            Self::Own(s) => s.url(),
            Self::External(u) => u.clone(),
        }
    }

    pub async fn con(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.url())?;
        // The bench's own commands (FLUSHALL, INFO, counts) may wait behind a busy server;
        // FLUSHALL of a big drain takes longer than the default 500 ms response timeout.
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(60)));
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .with_context(|| format!("cannot connect to redis at {}", self.url()))
    }

    /// Removes what a phase wrote under `prefix`.
    pub async fn clean(&self, prefix: &str) -> anyhow::Result<()> {
        let mut con = self.con().await?;
        match self {
            Self::Own(_) => {
                let _: () = redis::cmd("FLUSHALL").query_async(&mut con).await?;
            }
            Self::External(_) => {
                // Every scanq key starts with `<prefix>:` (see `scanq::keys`); the prefix is
                // unique to this run and phase.
                let pattern = format!("{prefix}:*");
                let mut cursor: u64 = 0;
                loop {
                    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut con)
                        .await?;
                    if !keys.is_empty() {
                        let _: () = redis::cmd("UNLINK")
                            .arg(&keys)
                            .query_async(&mut con)
                            .await?;
                    }
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
            }
        }
        Ok(())
    }
}

/// One phase's configuration: its own key prefix and the catalog file.
pub struct Phase {
    pub cfg: Config,
    pub catalog: Catalog,
    _dir: tempfile::TempDir,
}

impl Phase {
    pub fn new(redis: &Redis, name: &str, s: &Settings) -> anyhow::Result<Self> {
        Self::at(&redis.url(), |_| {}, name, s)
    }

    /// A phase against the Redis at `url`, its configuration adjusted by `adjust` (cluster mode,
    /// partitions).
    pub fn at(
        url: &str,
        adjust: impl FnOnce(&mut Config),
        name: &str,
        s: &Settings,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let catalog_path = dir.path().join("catalog.toml");
        std::fs::write(&catalog_path, CATALOG)?;
        let catalog = Catalog::load(Some(&catalog_path))?;
        let mut cfg = Config {
            redis_url: url.to_owned(),
            key_prefix: format!("scanq-bench-{}-{name}", std::process::id()),
            api_addr: loopback(free_port()),
            catalog: Some(catalog_path),
            allowed_targets: "127.0.0.0/8".into(),
            worker_concurrency: s.worker_concurrency,
            lease_sec: s.lease_sec,
            reap_interval_ms: s.reap_interval_ms,
            max_queue_len: 1_000_000_000,
            ..Config::default()
        };
        adjust(&mut cfg);
        cfg.validate()?;
        Ok(Self {
            cfg,
            catalog,
            _dir: dir,
        })
    }

    pub fn tool(&self) -> ToolName {
        ToolName::parse(TOOL).expect("valid tool name")
    }

    pub fn keys(&self) -> Keys {
        Keys::for_fleet(&self.cfg, Some(&self.catalog))
    }

    pub fn api_url(&self) -> String {
        format!("http://{}", self.cfg.api_addr)
    }

    /// Starts `scanq-api` and waits until `/readyz` says ready.
    pub async fn start_api(&self, limit: Duration) -> anyhow::Result<Proc> {
        let mut api = spawn("scanq-api", &self.cfg, &[])?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let url = format!("{}/readyz", self.api_url());
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = api.child.try_wait()? {
                bail!(
                    "scanq-api exited at start ({status}); run with SCANQ_TEST_LOGS=1 to see why"
                );
            }
            if let Ok(r) = http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(api);
            }
            if Instant::now() > deadline {
                bail!("scanq-api not ready within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Starts `n` `scanq-worker` processes (without waiting for them).
    pub fn start_workers(&self, n: u32) -> anyhow::Result<Vec<Proc>> {
        (0..n)
            .map(|_| {
                let metrics = loopback(free_port()).to_string();
                spawn(
                    "scanq-worker",
                    &self.cfg,
                    &[("SCANQ_WORKER_METRICS_ADDR", metrics)],
                )
            })
            .collect()
    }

    /// Waits until `n` workers have registered their heartbeat.
    pub async fn wait_workers(
        &self,
        redis: &Redis,
        workers: &mut [Proc],
        limit: Duration,
    ) -> anyhow::Result<()> {
        let mut con = redis.con().await?;
        let key = self.keys().workers();
        let deadline = Instant::now() + limit;
        loop {
            for w in workers.iter_mut() {
                if let Some(status) = w.child.try_wait()? {
                    bail!(
                        "scanq-worker exited at start ({status}); run with SCANQ_TEST_LOGS=1 to see why"
                    );
                }
            }
            let live: usize = redis::cmd("ZCARD").arg(&key).query_async(&mut con).await?;
            if live >= workers.len() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} workers not registered within {limit:?}", workers.len());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The directory of the running executable's sibling binaries (`target/<profile>/`).
fn bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let mut dir = exe
        .parent()
        .context("executable has no directory")?
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    Ok(dir)
}

/// Spawns a workspace binary that lies next to this executable.
fn spawn(name: &str, cfg: &Config, extra: &[(&str, String)]) -> anyhow::Result<Proc> {
    let path = bin_dir()?.join(name);
    if !path.is_file() {
        bail!(
            "{} not found: build the workspace first (`cargo build --release --workspace`)",
            path.display()
        );
    }
    Ok(Proc::spawn(name, cfg, extra))
}
