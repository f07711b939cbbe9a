//! The dashboard in a real headless Chromium (issue 14), driven by selenium
//! (`tests/dashboard/dashboard_test.py`): load the page with a token, submit a job through the
//! API, watch its row and progress bar appear, open the detail view and see the bar move with
//! SSE progress, cancel the running job from the UI, follow a big scan's chunk bars and page its
//! chunk table, visit every page, and check that a read-only token is offered no actions. Zones
//! (issue 22): a job of a zone with a worker runs there and shows its zone, a job of a zone
//! with no worker shows why it waits, a big scan spanning zones lists them, the workers table
//! and the overview show zones. Screenshots of each page go to
//! `<target dir>/dashboard-screenshots/` for review.
//!
//! Chromium and chromedriver come from Debian (`scripts/install-deps.sh`), selenium from PyPI
//! into `.tools/venv-selenium` (`scripts/install-test-tools.sh`); when they are missing the test
//! fails, unless `SCANQ_SKIP_CLIENT_TESTS=1` says to skip it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use scanq::catalog::Catalog;
use scanq::config::{Config, ZonesSetting};
use scanq::domain::Zone;
use scanq_tests::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_follows_and_cancels_a_job_in_headless_chromium() {
    let python = repo().join(".tools/venv-selenium/bin/python");
    for needed in [
        python.as_path(),
        Path::new("/usr/bin/chromium"),
        Path::new("/usr/bin/chromedriver"),
    ] {
        if !needed.exists() {
            if std::env::var("SCANQ_SKIP_CLIENT_TESTS").as_deref() == Ok("1") {
                eprintln!("\n!!! SKIPPED: {} is not installed.\n", needed.display());
                return;
            }
            panic!(
                "{} is missing: run scripts/install-deps.sh and scripts/install-test-tools.sh (make test does), or set SCANQ_SKIP_CLIENT_TESTS=1",
                needed.display()
            );
        }
    }
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = Tokens::write(
        dir.path(),
        &[("ops", "ops", "admin"), ("viewer", "ops", "read")],
        "",
    );
    let fixture = Fixture::new();
    let fake = fixture.script("fake", &fake_tool_script(None));
    let catalog = fixture.catalog(&fake_tool_catalog("fake", &fake, "progress = \"nmap\"\n"));
    let catalog = Catalog::load(Some(&catalog)).unwrap();
    let mut cfg = test_config(&redis, "dash");
    cfg.api_tokens_file = Some(tokens.path.clone());
    cfg.allowed_targets = "127.0.0.0/8".into();
    // Zones (issue 22): zone `a` has a worker of its own, zone `b` none.
    cfg.zones = ZonesSetting::Text("a=127.0.1.0/24;b=127.0.2.0/24".into());
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let zone_a = Config {
        worker_id: Some("w-zone-a".into()),
        worker_zone: Zone::parse("a").unwrap(),
        ..cfg.clone()
    };
    let _worker = start_worker(cfg, catalog.clone()).await;
    let _worker_a = start_worker(zone_a, catalog).await;

    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    let shots = target_dir.join("dashboard-screenshots");
    let mut child = tokio::process::Command::new(&python)
        .arg(repo().join("tests/dashboard/dashboard_test.py"))
        .env("BASE", &base)
        .env("ADMIN", tokens.get("ops"))
        .env("VIEWER", tokens.get("viewer"))
        .env("SHOTS", &shots)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let run = async {
        use tokio::io::AsyncReadExt;
        let (mut o, mut e) = (String::new(), String::new());
        let _ = tokio::join!(out.read_to_string(&mut o), err.read_to_string(&mut e));
        (child.wait().await.unwrap(), o, e)
    };
    let (status, stdout, stderr) = tokio::time::timeout(Duration::from_secs(150), run)
        .await
        .expect("the browser test finished within 150 s");
    assert!(
        status.success(),
        "dashboard test failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.lines().any(|l| l == "ok"), "{stdout}");
    for page in [
        "overview",
        "jobs",
        "detail",
        "cancelled",
        "bigscan",
        "chunk",
        "zones",
        "waiting",
        "queues",
        "breakers",
        "workers",
        "tools",
        "dead",
    ] {
        assert!(
            shots.join(format!("{page}.png")).exists(),
            "no screenshot of {page}"
        );
    }
}
