//! The tool never runs as the worker (issue 20, docs/sandbox.md "Deployment"): a worker whose
//! `exec` tools would run as its own uid refuses to start unless `SCANQ_ALLOW_UNCONFINED=true`
//! (then it warns); a root worker that switches to `SCANQ_TOOL_USER`, or a catalog without
//! `exec` tools, starts as before; and the worker process is non-dumpable, so a process of its
//! own uid cannot read `/proc/<worker>/environ` or ptrace it. Real `scanq-worker` processes, some
//! started as `nobody` (65534); Redis on loopback. These tests run as root (like `make test`).

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use scanq::config::{Config, EgressConfinement};
use scanq_tests::*;

const NOBODY: u32 = 65534;
/// A value the worker holds in its environment, as it would a Redis password.
const SECRET: &str = "hunter2-worker-secret";

/// A worker configuration: the built-in catalog (nmap, an `exec` tool), nothing allowed.
fn worker_cfg(redis_url: String, mode: EgressConfinement) -> Config {
    Config {
        redis_url,
        key_prefix: unique_prefix("unconf"),
        egress_confinement: mode,
        worker_metrics_addr: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        ..Config::default()
    }
}

/// `scanq-worker` with `cfg` as `SCANQ_*` variables (plus `extra`), as `uid` when given.
fn worker(cfg: &Config, extra: &[(&str, &str)], uid: Option<u32>) -> Command {
    let mut cmd = Command::new(bin("scanq-worker"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("WORKER_SECRET", SECRET)
        .envs(config_env(cfg))
        .envs(extra.iter().copied())
        .current_dir("/")
        .stdin(Stdio::null());
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    cmd
}

/// Runs a worker that is expected to exit at once; returns what it printed.
async fn exits(mut cmd: Command) -> Output {
    tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || cmd.output()),
    )
    .await
    .expect("the worker exits at once")
    .unwrap()
    .expect("spawn the worker")
}

/// Starts a worker that is expected to serve; returns it once its `/healthz` answers, with the
/// path of its log.
async fn serving(mut cmd: Command, cfg: &Config, dir: &Path) -> (Proc, std::path::PathBuf) {
    let log = dir.join("worker.log");
    let file = std::fs::File::create(&log).unwrap();
    cmd.stdout(file.try_clone().unwrap()).stderr(file);
    let mut proc = Proc {
        child: cmd.spawn().expect("spawn the worker"),
    };
    let url = format!("http://{}/healthz", cfg.worker_metrics_addr);
    let client = http();
    eventually(
        Duration::from_secs(30),
        "the worker serves /healthz",
        || {
            let up = client.get(&url).send();
            let exited = proc.child.try_wait().unwrap();
            let log = log.clone();
            async move {
                if let Some(status) = exited {
                    panic!(
                        "the worker exited ({status}): {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                up.await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(|_| ())
            }
        },
    )
    .await;
    (proc, log)
}

/// Reads a file as `uid`: Some(content) when it could read it.
fn read_as(uid: u32, path: &str) -> Option<String> {
    let out = Command::new("head")
        .args(["-c", "65536", path])
        .uid(uid)
        .gid(uid)
        .output()
        .expect("run head");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Tries `ptrace(PTRACE_ATTACH)` on `pid` as `uid` (and detaches): true when it was allowed.
fn ptrace_as(uid: u32, pid: i32) -> bool {
    const ATTACH: &str = "import ctypes, os, sys\n\
        libc = ctypes.CDLL(None, use_errno=True)\n\
        pid = int(sys.argv[1])\n\
        if libc.ptrace(16, pid, 0, 0) != 0: sys.exit(1)\n\
        os.waitpid(pid, 0x40000000)\n\
        libc.ptrace(17, pid, 0, 0)\n";
    Command::new("/usr/bin/python3")
        .args(["-c", ATTACH, &pid.to_string()])
        .uid(uid)
        .gid(uid)
        .status()
        .expect("run python3")
        .success()
}

/// Whether Yama lets a process ptrace any process of its uid (not only its descendants).
fn yama_allows_same_uid_ptrace() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").map_or(true, |s| s.trim() == "0")
}

#[tokio::test]
async fn a_non_root_worker_with_an_exec_tool_refuses_to_start() {
    // `auto` without the privilege: confinement turns itself off; no Redis needed to refuse.
    let cfg = worker_cfg("redis://127.0.0.1:1".into(), EgressConfinement::Auto);
    let out = exits(worker(&cfg, &[], Some(NOBODY))).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for part in [
        "refusing to start",
        "nmap",
        "own uid",
        "as root",
        "SCANQ_TOOL_USER",
        "SCANQ_ALLOW_UNCONFINED=true",
    ] {
        assert!(err.contains(part), "{part}: {err}");
    }
}

#[tokio::test]
async fn a_non_root_worker_with_the_confinement_capabilities_still_refuses_to_start() {
    // CAP_NET_ADMIN & co. as ambient capabilities of uid nobody: the nftables rules go in, but
    // only a root worker switches a run to its own uid, so the tool would run as nobody — the
    // worker's uid — and its packets would match no rule.
    let cfg = worker_cfg("redis://127.0.0.1:1".into(), EgressConfinement::Required);
    let caps = "+net_admin,+setuid,+setgid,+chown";
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(format!("--inh-caps={caps}"))
        .arg(format!("--ambient-caps={caps}"))
        .arg(bin("scanq-worker"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .envs(config_env(&cfg))
        .current_dir("/")
        .stdin(Stdio::null());
    let out = exits(cmd).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Egress confinement on (nftables)"), "{err}");
    assert!(
        err.contains("egress confinement cannot switch the run's uid without root"),
        "{err}"
    );
    assert!(err.contains("SCANQ_ALLOW_UNCONFINED=true"), "{err}");
}

#[tokio::test]
async fn a_root_worker_without_confinement_or_tool_user_refuses_to_start() {
    let cfg = worker_cfg("redis://127.0.0.1:1".into(), EgressConfinement::Off);
    let out = exits(worker(&cfg, &[], None)).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SCANQ_EGRESS_CONFINEMENT=off and SCANQ_TOOL_USER is not set"),
        "{err}"
    );
    assert!(err.contains("SCANQ_ALLOW_UNCONFINED=true"), "{err}");
}

#[tokio::test]
async fn a_root_worker_that_switches_to_the_tool_user_or_runs_no_exec_tool_starts() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Root, confinement off, SCANQ_TOOL_USER=nobody: the tool runs as nobody, not as root.
    let cfg = worker_cfg(redis.url(), EgressConfinement::Off);
    let cmd = worker(&cfg, &[("SCANQ_TOOL_USER", "nobody")], None);
    let (proc, log) = serving(cmd, &cfg, dir.path()).await;
    drop(proc);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("SCANQ_ALLOW_UNCONFINED"), "{text}");

    // Not root, `auto`, but only in-process tools: nothing to refuse.
    let fixture = Fixture::new();
    let catalog = fixture.catalog("mode = \"replace\"\n[tools.fast]\nexecutor = \"noop\"\n");
    let cfg = Config {
        catalog: Some(catalog),
        ..worker_cfg(redis.url(), EgressConfinement::Auto)
    };
    let (_proc, _) = serving(worker(&cfg, &[], Some(NOBODY)), &cfg, fixture.dir.path()).await;
}

#[tokio::test]
async fn an_allowed_unconfined_worker_warns_and_its_own_uid_can_neither_read_nor_trace_it() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = worker_cfg(redis.url(), EgressConfinement::Auto);
    let cmd = worker(&cfg, &[("SCANQ_ALLOW_UNCONFINED", "true")], Some(NOBODY));
    let (proc, log) = serving(cmd, &cfg, dir.path()).await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("WARN") && text.contains("SCANQ_ALLOW_UNCONFINED=true"),
        "{text}"
    );

    // The control: a dumpable process of uid nobody, its environ readable by nobody.
    let mut plain = Proc {
        child: Command::new("sleep")
            .arg("600")
            .env("WORKER_SECRET", SECRET)
            .uid(NOBODY)
            .gid(NOBODY)
            .spawn()
            .unwrap(),
    };
    let control = format!("/proc/{}/environ", plain.pid());
    assert!(
        read_as(NOBODY, &control).is_some_and(|e| e.contains(SECRET)),
        "the control's environ is readable by its own uid"
    );
    let yama_open = yama_allows_same_uid_ptrace();
    if yama_open {
        assert!(ptrace_as(NOBODY, plain.pid()), "the control can be traced");
    }
    plain.child.kill().unwrap();

    // The worker: the kernel gives its /proc files to root (the sign of non-dumpable), and
    // another process of its uid — what an unconfined tool is — reads neither file.
    let pid = proc.pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status.lines().any(|l| l.starts_with("Uid:\t65534")),
        "{status}"
    );
    for file in ["environ", "mem"] {
        let path = format!("/proc/{pid}/{file}");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{path} owner");
    }
    let environ = format!("/proc/{pid}/environ");
    assert_eq!(
        read_as(NOBODY, &environ),
        None,
        "{environ} read by uid nobody"
    );
    assert!(!ptrace_as(NOBODY, pid), "the worker traced by its own uid");
    // Root still can read it (the kernel's own view), and it does hold the secret.
    assert!(std::fs::read_to_string(&environ).unwrap().contains(SECRET));
}

#[tokio::test]
async fn a_reload_that_turns_a_tool_into_an_unconfined_exec_tool_is_refused() {
    let redis = RedisServer::start().await;
    let fixture = Fixture::new();
    let catalog = fixture.catalog("mode = \"replace\"\n[tools.fast]\nexecutor = \"noop\"\n");
    let cfg = Config {
        catalog: Some(catalog.clone()),
        ..worker_cfg(redis.url(), EgressConfinement::Auto)
    };
    let (proc, log) = serving(worker(&cfg, &[], Some(NOBODY)), &cfg, fixture.dir.path()).await;
    // Same tool name, now a real command: it would run as the worker's uid.
    std::fs::write(
        &catalog,
        "mode = \"replace\"\n[tools.fast]\nexecutor = \"exec\"\ncommand = \"/bin/true\"\n",
    )
    .unwrap();
    proc.signal(nix::sys::signal::Signal::SIGHUP);
    let base = format!("http://{}", cfg.worker_metrics_addr);
    eventually(Duration::from_secs(10), "the reload refused", || {
        let base = base.clone();
        async move {
            let n = metric(&base, "scanq_config_reloads_total{result=\"refused\"}").await?;
            (n == 1).then_some(())
        }
    })
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("reload refused")
            && text.contains("would run as the worker's own uid")
            && text.contains("SCANQ_ALLOW_UNCONFINED=true"),
        "{text}"
    );
}
