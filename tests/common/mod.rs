//! The test harness: a throwaway `redis-server` per test, the API and workers started for real
//! (in-process on port 0, or as processes from `target/<profile>/`), fake tools written as small
//! scripts, and polling with a deadline. Everything started here is stopped on drop.

use std::future::Future;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use scanq::catalog::Catalog;
use scanq::config::Config;

pub mod approve;
mod bignmap;
pub mod deploy;
mod observe;
mod topology;
pub use bignmap::bignmap;
pub use observe::*;
pub use topology::*;

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A key prefix unique to this test process and call.
pub fn unique_prefix(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        name
    )
}

/// Polls `f` until it returns `Some`, or panics after `limit` naming `what`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for: {what}"
        );
        // The polling interval of this deadline-bounded poll.
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// A private redis-server on a free loopback port, with its data in a temporary directory.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
    /// The `default` user's password (`--requirepass`), when the server has one.
    password: Option<String>,
    /// A Sentinel's configuration file (the server then runs with `--sentinel`).
    sentinel_conf: Option<PathBuf>,
}

impl RedisServer {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts with extra `redis-server` arguments (e.g. `--appendonly yes`).
    pub async fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = Self {
            child: None,
            port: free_port(),
            dir,
            args: extra.iter().map(|s| s.to_string()).collect(),
            password: None,
            sentinel_conf: None,
        };
        server.spawn().await;
        server
    }

    /// Starts with a password on the `default` user (which [`RedisServer::url`] and
    /// [`RedisServer::con`] then use) and extra arguments, e.g. `--user NAME on >PASS …` ACLs.
    pub async fn start_secured(password: &str, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut args: Vec<String> = vec!["--requirepass".into(), password.into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut server = Self {
            child: None,
            port: free_port(),
            dir,
            args,
            password: Some(password.into()),
            sentinel_conf: None,
        };
        server.spawn().await;
        server
    }

    /// A Sentinel watching the primary on `primary_port` under `name` (fast failover settings).
    pub async fn start_sentinel(primary_port: u16, name: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "sentinel monitor {name} 127.0.0.1 {primary_port} 2\n\
                 sentinel down-after-milliseconds {name} 1000\n\
                 sentinel failover-timeout {name} 5000\n\
                 sentinel parallel-syncs {name} 1\n"
            ),
        )
        .expect("write sentinel.conf");
        let mut server = Self {
            child: None,
            port: free_port(),
            dir,
            args: vec![],
            password: None,
            sentinel_conf: Some(conf),
        };
        server.spawn().await;
        server
    }

    /// Whether the server process is running (not killed by the test).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The server's data directory (for ACL files, certificates, …).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The URL for another (ACL) user.
    pub fn url_as(&self, user: &str, password: &str) -> String {
        format!("redis://{user}:{password}@127.0.0.1:{}/", self.port)
    }

    /// Freezes the server (SIGSTOP): connections open but nothing answers.
    pub fn pause(&self) {
        self.send(nix::sys::signal::Signal::SIGSTOP);
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.send(nix::sys::signal::Signal::SIGCONT);
    }

    fn send(&self, sig: nix::sys::signal::Signal) {
        if let Some(c) = &self.child {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), sig);
        }
    }

    async fn spawn(&mut self) {
        // The nftables tables this process's workers create go when it exits.
        scanq_worker::confine::host_tables::remove_at_exit();
        let mut args: Vec<String> = self
            .sentinel_conf
            .iter()
            .map(|c| c.display().to_string())
            .collect();
        if self.sentinel_conf.is_some() {
            args.push("--sentinel".into());
        }
        args.extend([
            "--port".into(),
            self.port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            self.dir.path().display().to_string(),
            "--save".into(),
            "".into(),
        ]);
        if !self.args.iter().any(|a| a == "--appendonly") {
            args.extend(["--appendonly".into(), "no".into()]);
        }
        args.extend(self.args.iter().cloned());
        let child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (make test installs it)");
        self.child = Some(child);
        let client = self.client();
        eventually(Duration::from_secs(10), "redis-server answers PING", || {
            let client = client.clone();
            async move {
                let mut con = client.get_multiplexed_async_connection().await.ok()?;
                let pong: String = redis::cmd("PING").query_async(&mut con).await.ok()?;
                (pong == "PONG").then_some(())
            }
        })
        .await;
    }

    pub fn url(&self) -> String {
        match &self.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("valid url")
    }

    pub async fn con(&self) -> redis::aio::MultiplexedConnection {
        self.client()
            .get_multiplexed_async_connection()
            .await
            .expect("connect to test redis")
    }

    /// Kills the server (SIGKILL: no clean shutdown).
    pub fn kill(&mut self) {
        self.resume();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and data directory.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A configuration for tests: its own key prefix, short leases, loopback allowed.
pub fn test_config(redis: &RedisServer, name: &str) -> Config {
    Config {
        redis_url: redis.url(),
        key_prefix: unique_prefix(name),
        allowed_targets: "127.0.0.0/8,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,.lab.internal".into(),
        lease_sec: 2,
        heartbeat_sec: 1,
        worker_grace_sec: 5,
        reap_interval_ms: 100,
        retry_base_ms: 100,
        retry_max_ms: 1000,
        worker_concurrency: 8,
        // Tests that are about confinement turn it on (tests/confinement.rs); the rest run the
        // tools as the test's own user, as before — unconfined on purpose, so they say so
        // (a worker refuses that otherwise; tests/unconfined.rs).
        egress_confinement: scanq::config::EgressConfinement::Off,
        allow_unconfined: true,
        ..Config::default()
    }
}

/// A directory of fake tools and a catalog that names them.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes an executable script.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, body).expect("write script");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        p
    }

    /// Writes a catalog file with the given TOML body (extending the built-in catalog).
    pub fn catalog(&self, toml: &str) -> PathBuf {
        let p = self.path("catalog.toml");
        std::fs::write(&p, toml).expect("write catalog");
        p
    }
}

/// The standard fake tool: `fake [--sleep-ms N] [--exit N] [--out-kb N] [--children N]
/// [--ignore-term] TARGET`. Each start is recorded as a line in `starts` (when given).
pub fn fake_tool_script(starts: Option<&Path>) -> String {
    let record = starts
        .map(|p| format!("echo \"$$ $*\" >> {}\n", p.display()))
        .unwrap_or_default();
    format!(
        r#"#!/bin/bash
{record}sleep_ms=0; code=0; out_kb=0; children=0; ignore=0; progress=0
while [ $# -gt 1 ]; do
  case "$1" in
    --sleep-ms) sleep_ms=$2; shift 2;;
    --exit) code=$2; shift 2;;
    --out-kb) out_kb=$2; shift 2;;
    --children) children=$2; shift 2;;
    --ignore-term) ignore=1; shift;;
    --progress) progress=$2; shift 2;;
    *) shift;;
  esac
done
target=$1
[ $ignore = 1 ] && trap '' TERM
for i in $(seq 1 $children); do sleep 1000 & echo "child $!"; done
for i in $(seq 1 $progress); do
  echo "<taskprogress task=\"Connect Scan\" time=\"1\" percent=\"$((i*100/(progress+1))).00\" remaining=\"$((progress-i))\" etc=\"2\"/>"
  sleep 0.4
done
if [ $out_kb -gt 0 ]; then head -c $((out_kb*1024)) /dev/zero | tr '\0' 'x'; fi
echo "scanned $target"
if [ $sleep_ms -gt 0 ]; then sleep $(awk "BEGIN{{print $sleep_ms/1000}}"); fi
exit $code
"#
    )
}

/// The catalog section for the fake tool at `command`.
pub fn fake_tool_catalog(name: &str, command: &Path, extra: &str) -> String {
    format!(
        r#"
[tools.{name}]
executor = "exec"
command = "{}"
default_timeout_sec = 30
max_timeout_sec = 600
{extra}
[[tools.{name}.args.flags]]
name = "--sleep-ms"
value = {{ type = "int", min = 0, max = 3600000 }}
[[tools.{name}.args.flags]]
name = "--exit"
value = {{ type = "int", min = 0, max = 255 }}
[[tools.{name}.args.flags]]
name = "--out-kb"
value = {{ type = "int", min = 0, max = 100000 }}
[[tools.{name}.args.flags]]
name = "--children"
value = {{ type = "int", min = 0, max = 10 }}
[[tools.{name}.args.flags]]
name = "--ignore-term"
[[tools.{name}.args.flags]]
name = "--progress"
value = {{ type = "int", min = 0, max = 100 }}
"#,
        command.display()
    )
}

/// In-process `noop` and `sleep` tools.
/// A configuration for the in-process tools' catalog (`noop`, `sleep`; returned with the
/// fixture that holds it), with schedules allowed every second and looked for every 100 ms.
pub fn scheduling(redis: &RedisServer, name: &str) -> (Config, Catalog, Fixture) {
    let mut cfg = test_config(redis, name);
    cfg.schedule_min_every_sec = 1;
    cfg.schedule_tick_ms = 100;
    let fx = Fixture::new();
    let catalog = Catalog::load(Some(&fx.catalog(INPROCESS_TOOLS))).unwrap();
    (cfg, catalog, fx)
}

pub const INPROCESS_TOOLS: &str = r#"
[tools.noop]
executor = "noop"
[tools.sleep]
executor = "sleep"
default_timeout_sec = 60
[[tools.sleep.args.flags]]
name = "--ms"
value = { type = "int", min = 0, max = 3600000 }
[[tools.sleep.args.flags]]
name = "--fail"
"#;

/// A service running in this process until dropped.
pub struct Task {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl Task {
    /// Asks it to shut down and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

/// Runs a service in-process on a loopback listener until its [`Task`] is shut down or dropped;
/// returns the task and the listener's base URL.
async fn serve<F, Fut>(name: &'static str, run: F) -> (Task, String)
where
    F: FnOnce(tokio::net::TcpListener, futures::future::BoxFuture<'static, ()>) -> Fut
        + Send
        + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown: futures::future::BoxFuture<'static, ()> = Box::pin(async move {
        let _ = rx.await;
    });
    let handle = tokio::spawn(async move {
        if let Err(e) = run(listener, shutdown).await {
            eprintln!("{name} stopped: {e}");
        }
    });
    (
        Task {
            stop: Some(tx),
            handle: Some(handle),
        },
        url,
    )
}

/// Starts the API in-process on a free port; returns its base URL.
pub async fn start_api(cfg: Config, catalog: Catalog) -> (Task, String) {
    serve("api", move |l, stop| scanq_api::run(l, cfg, catalog, stop)).await
}

/// Starts a worker in-process.
pub async fn start_worker(cfg: Config, catalog: Catalog) -> Task {
    start_worker_with_metrics(cfg, catalog).await.0
}

/// Starts a worker in-process; returns it with the base URL of its `/metrics` and `/healthz`.
pub async fn start_worker_with_metrics(cfg: Config, catalog: Catalog) -> (Task, String) {
    serve("worker", move |l, stop| {
        scanq_worker::run(cfg, catalog, l, stop)
    })
    .await
}

/// A whole stack in-process: its own redis-server, an API and a worker with the in-process tools
/// (`noop`, `sleep`), the config tuned by the test; everything stops when it is dropped.
pub struct InProcess {
    _redis: RedisServer,
    _api: Task,
    _worker: Task,
    pub base: String,
}

/// Starts an [`InProcess`] stack under key prefix `name`.
pub async fn in_process(name: &str, tune: impl FnOnce(&mut Config)) -> InProcess {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let catalog = Catalog::load(Some(&fx.catalog(INPROCESS_TOOLS))).expect("catalog");
    let mut cfg = test_config(&redis, name);
    tune(&mut cfg);
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let worker = start_worker(cfg, catalog).await;
    InProcess {
        _redis: redis,
        _api: api,
        _worker: worker,
        base,
    }
}

/// Path of a workspace binary next to the test executable (`target/<profile>/<name>`).
pub fn bin(name: &str) -> PathBuf {
    // A test that starts one of the binaries may start a worker before any Redis.
    scanq_worker::confine::host_tables::remove_at_exit();
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("deps dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} not built: run `cargo build --workspace` first (make test does)",
        p.display()
    );
    p
}

/// A child process killed (SIGKILL) on drop.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    /// Spawns a workspace binary with the configuration passed as `SCANQ_*` variables.
    pub fn spawn(name: &str, cfg: &Config, extra_env: &[(&str, String)]) -> Self {
        let mut cmd = Self::command(name, cfg, extra_env, "warn");
        if std::env::var_os("SCANQ_TEST_LOGS").is_none() {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        Self {
            child: cmd.spawn().expect("spawn binary"),
        }
    }

    /// Like [`Proc::spawn`], with stdout and stderr appended to `log` (whatever
    /// `SCANQ_TEST_LOGS` says), for tests that read what a process printed.
    pub fn spawn_logged(
        name: &str,
        cfg: &Config,
        extra_env: &[(&str, String)],
        log: &Path,
    ) -> Self {
        let mut p = Self::command(name, cfg, extra_env, "info");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open log file");
        p.stdout(file.try_clone().expect("dup log file"))
            .stderr(file);
        Self {
            child: p.spawn().expect("spawn binary"),
        }
    }

    /// The command for a workspace binary: cleared environment, `RUST_LOG` (from the test's
    /// environment, else `log_level`), the configuration as `SCANQ_*`, then `extra_env`.
    fn command(name: &str, cfg: &Config, extra_env: &[(&str, String)], log_level: &str) -> Command {
        let mut cmd = Command::new(bin(name));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| log_level.into()),
            )
            .stdin(Stdio::null());
        for (k, v) in config_env(cfg) {
            cmd.env(k, v);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig);
    }

    /// Waits for exit with a deadline; returns the exit status.
    pub async fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let child = &mut self.child;
        eventually(limit, "process exit", || {
            let r = child.try_wait().ok().flatten();
            async move { r }
        })
        .await
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `SCANQ_*` variables that reproduce `cfg` in a child process.
pub fn config_env(cfg: &Config) -> Vec<(String, String)> {
    let v = serde_json::to_value(cfg).expect("serializable");
    let mut out = vec![];
    for (k, val) in v.as_object().expect("object") {
        let s = match val {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.push((format!("SCANQ_{}", k.to_uppercase()), s));
    }
    out
}

/// The body of a GET of `url` (200 expected), as text.
pub async fn get_text(url: &str) -> String {
    let resp = http().get(url).send().await.expect("get");
    assert_eq!(resp.status(), 200, "{url}");
    resp.text().await.expect("text")
}

/// Job `cid`'s document (`GET /v1/jobs/{cid}`).
pub async fn job_doc(base: &str, cid: &str) -> serde_json::Value {
    get_json(base, &format!("/v1/jobs/{cid}")).await
}

/// Polls job `cid` until `ok` holds for its document (30 s at most); `what` names the wait.
pub async fn until_job(
    base: &str,
    cid: &str,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    eventually(
        Duration::from_secs(30),
        &format!("{cid}: {what}"),
        || async {
            let d = job_doc(base, cid).await;
            ok(&d).then_some(d)
        },
    )
    .await
}

/// A test HTTP client.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client")
}

/// Polls `GET /v1/jobs/{id}` until the job is terminal; returns the document.
pub async fn wait_done(base: &str, id: &str, limit: Duration) -> serde_json::Value {
    wait_done_as(base, None, id, limit).await
}

/// [`wait_done`] with a bearer token.
pub async fn wait_done_as(
    base: &str,
    token: Option<&str>,
    id: &str,
    limit: Duration,
) -> serde_json::Value {
    let client = http();
    let token = token.map(str::to_owned);
    eventually(limit, &format!("job {id} terminal"), || {
        let client = client.clone();
        let url = format!("{base}/v1/jobs/{id}?wait=5");
        let token = token.clone();
        async move {
            let mut req = client.get(&url);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let doc: serde_json::Value = req.send().await.ok()?.json().await.ok()?;
            matches!(
                doc["state"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            )
            .then_some(doc)
        }
    })
    .await
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<u64>,
    pub event: String,
    pub data: String,
}

/// Reads SSE events from `url` until `stop` says so (or the stream ends), with a deadline.
pub async fn read_sse(
    url: &str,
    last_event_id: Option<u64>,
    limit: Duration,
    mut stop: impl FnMut(&SseEvent) -> bool,
) -> Vec<SseEvent> {
    use futures::StreamExt;
    let mut req = http().get(url);
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id.to_string());
    }
    let resp = req.send().await.expect("sse request");
    assert_eq!(resp.status(), 200, "sse status");
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let next = tokio::time::timeout_at(deadline, body.next()).await;
        let Ok(Some(Ok(bytes))) = next else {
            return out;
        };
        buf.push_str(&String::from_utf8_lossy(&bytes));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut ev = SseEvent {
                id: None,
                event: "message".into(),
                data: String::new(),
            };
            let mut any = false;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    ev.id = v.trim().parse().ok();
                    any = true;
                } else if let Some(v) = line.strip_prefix("event:") {
                    ev.event = v.trim().to_owned();
                    any = true;
                } else if let Some(v) = line.strip_prefix("data:") {
                    ev.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    any = true;
                }
            }
            if !any {
                continue;
            }
            let done = stop(&ev);
            out.push(ev);
            if done {
                return out;
            }
        }
    }
}

/// Live (non-zombie) processes whose process group is `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    let mut out = vec![];
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command (which may hold spaces) start after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2].parse() == Ok(pgid) {
            out.push(pid);
        }
    }
    out
}

/// Lines of a file, or none when it does not exist yet.
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// POSTs a JSON body to `{base}{path}`.
pub async fn post_json(base: &str, path: &str, body: &serde_json::Value) -> reqwest::Response {
    http()
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .await
        .expect("post")
}

/// The correlation IDs of a `GET /v1/jobs` page, in its order.
pub fn listed_ids(list: &serde_json::Value) -> Vec<&str> {
    list["jobs"]
        .as_array()
        .expect("a list page")
        .iter()
        .map(|j| j["correlation_id"].as_str().expect("a correlation_id"))
        .collect()
}

/// GETs `{base}{path}` as JSON.
pub async fn get_json(base: &str, path: &str) -> serde_json::Value {
    http()
        .get(format!("{base}{path}"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .unwrap_or(serde_json::Value::Null)
}
/// A tokens file written for a test, with the plaintext of each token it lists.
pub struct Tokens {
    pub path: PathBuf,
    tokens: std::collections::HashMap<String, String>,
}

impl Tokens {
    /// Writes `dir/tokens.toml` with one entry per `(name, tenant, scopes)` and `extra` TOML
    /// appended (e.g. `[tenants.blue]` caps or per-token limits).
    pub fn write(dir: &Path, entries: &[(&str, &str, &str)], extra: &str) -> Self {
        let mut text = String::new();
        let mut tokens = std::collections::HashMap::new();
        for (name, tenant, scopes) in entries {
            let token = scanq_api::auth::generate_token().expect("token");
            let tenant = scanq::domain::TenantId::parse(tenant).expect("tenant");
            let scopes = scanq_api::auth::Scopes::parse_list(scopes).expect("scopes");
            text.push_str(&scanq_api::auth::entry_toml(name, &tenant, scopes, &token));
            text.push('\n');
            tokens.insert(name.to_string(), token);
        }
        text.push_str(extra);
        let path = dir.join("tokens.toml");
        std::fs::write(&path, text).expect("write tokens file");
        Self { path, tokens }
    }

    /// Rewrites the tokens file without the entries of `tenant` (its revocation; the API
    /// takes it on SIGHUP).
    pub fn revoke_tenant(&self, tenant: &str) {
        let text = std::fs::read_to_string(&self.path).expect("read tokens file");
        let kept: String = text
            .split("[[tokens]]")
            .filter(|e| !e.trim().is_empty() && !e.contains(&format!("tenant = \"{tenant}\"")))
            .map(|e| format!("[[tokens]]{e}"))
            .collect();
        std::fs::write(&self.path, kept).expect("write tokens file");
    }

    /// The plaintext token named `name`.
    pub fn get(&self, name: &str) -> &str {
        self.tokens
            .get(name)
            .unwrap_or_else(|| panic!("no token {name}"))
    }

    /// Every plaintext token (to check that none leaks).
    pub fn all(&self) -> impl Iterator<Item = &str> {
        self.tokens.values().map(String::as_str)
    }
}
