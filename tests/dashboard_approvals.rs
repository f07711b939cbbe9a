//! The dashboard's "Pending approvals" queue (issue 23 part 4) in a real headless Chromium,
//! driven by selenium (`tests/dashboard/approvals_test.py`): a token without `approve` sees the
//! queue without buttons; an approver clicks Approve and the job runs to success, clicks Reject,
//! types a reason at the prompt and the job is cancelled with it; the job's page says who
//! decided. Screenshots go to `<target dir>/dashboard-screenshots/`. Same prerequisites as
//! `tests/dashboard.rs` (skipped only with `SCANQ_SKIP_CLIENT_TESTS=1`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use scanq::catalog::Catalog;
use scanq::engagement::Approval;
use scanq_tests::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_clicks_approve_and_the_job_runs() {
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
    let fx = Fixture::new();
    let tokens = Tokens::write(
        &fx.path(""),
        &[
            ("submitter", "blue", "submit,read"),
            ("approver", "blue", "read,approve"),
        ],
        "",
    );
    let mut cfg = test_config(&redis, "dash-approvals");
    cfg.api_tokens_file = Some(tokens.path.clone());
    cfg.allowed_targets = "127.0.0.0/8".into();
    cfg.catalog = Some(fx.catalog(INPROCESS_TOOLS));
    cfg.approval = Approval::Always;
    let catalog = Catalog::load(cfg.catalog.as_deref()).unwrap();
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let worker = start_worker(cfg, catalog).await;

    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    let shots = target_dir.join("dashboard-screenshots");
    let mut child = tokio::process::Command::new(&python)
        .arg(repo().join("tests/dashboard/approvals_test.py"))
        .env("BASE", &base)
        .env("SUBMITTER", tokens.get("submitter"))
        .env("APPROVER", tokens.get("approver"))
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
    let (status, stdout, stderr) = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the browser test finished within 120 s");
    assert!(
        status.success(),
        "dashboard approvals test failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.lines().any(|l| l == "ok"), "{stdout}");
    assert!(shots.join("approvals.png").exists(), "no screenshot");
    worker.shutdown().await;
    api.shutdown().await;
}
