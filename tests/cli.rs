//! The `scanq` CLI (issue 14), run as the real binary against a live API and worker: submit
//! with --watch and a parsed result table (real nmap against 127.0.0.1), the listings, result
//! formats, cancel, and the documented exit codes (0 ok, 1 unreachable, 2 usage, 3 refused by
//! the server with its detail and hint, 4 job failed or cancelled); a big scan (issue 21)
//! watched as one parent, its tally in `get` and its chunks paged by `scanq chunks`; zones
//! (issue 22): `submit --zone`, the zone in `get`, `jobs`, `watch`, `chunks`, `workers` and a
//! row per tool and zone in `stats`, a job no worker of its zone serves saying so in words.

use std::process::Output;
use std::time::Duration;

use scanq::catalog::Catalog;
use scanq_tests::*;
use serde_json::Value;

struct Stack {
    _redis: RedisServer,
    _api: Task,
    _worker: Task,
    base: String,
    cfg: scanq::config::Config,
    catalog: Catalog,
}

async fn stack() -> Stack {
    stack_with(|_| {}).await
}

/// The stack with `setup` applied to the configuration of the API and the worker.
async fn stack_with(setup: impl FnOnce(&mut scanq::config::Config)) -> Stack {
    let redis = RedisServer::start().await;
    let mut cfg = test_config(&redis, "cli");
    setup(&mut cfg);
    let catalog = Catalog::from_sources(
        scanq::catalog::DEFAULT_CATALOG,
        Some(("test", INPROCESS_TOOLS)),
    )
    .unwrap();
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let worker = start_worker(cfg.clone(), catalog.clone()).await;
    Stack {
        _redis: redis,
        _api: api,
        _worker: worker,
        base,
        cfg,
        catalog,
    }
}

/// Runs `scanq ARGS` against `url` (off the async runtime) and returns its output.
async fn scanq(url: &str, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(bin("scanq"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SCANQ_URL", url)
        .args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap());
    tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("scanq finished")
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_watch_prints_the_parsed_result_and_every_listing_answers() {
    let s = stack().await;
    let out = scanq(
        &s.base,
        &[
            "submit",
            "nmap",
            "127.0.0.1",
            "--template",
            "quick",
            "--id",
            "cli-scan",
            "--watch",
        ],
    )
    .await;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("cli-scan succeeded"), "{stdout}");
    assert!(
        stdout.contains("HOST") && stdout.contains("127.0.0.1"),
        "{stdout}"
    );

    let out = scanq(&s.base, &["result", "cli-scan", "--format", "csv"]).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("host,protocol,port,state,service"));
    let out = scanq(&s.base, &["result", "cli-scan", "--format", "xml"]).await;
    assert!(
        text(&out.stdout).contains("<nmaprun"),
        "{}",
        text(&out.stdout)
    );
    let out = scanq(&s.base, &["result", "cli-scan", "--format", "json"]).await;
    let parsed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(parsed["hosts"].is_array(), "{parsed}");

    for (args, header) in [
        (vec!["jobs"], "cli-scan"),
        (vec!["get", "cli-scan"], "succeeded"),
        (vec!["tools"], "TEMPLATES"),
        (vec!["workers"], "WORKER"),
        (vec!["breakers"], "nmap"),
        (vec!["stats"], "QUEUED"),
    ] {
        let out = scanq(&s.base, &args).await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stdout).contains(header),
            "{args:?}: {}",
            text(&out.stdout)
        );
    }
    let out = scanq(&s.base, &["--json", "stats"]).await;
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["scope"], "fleet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_cancels_and_usage_have_their_exit_codes() {
    let s = stack().await;
    // 3: refused, printed as detail + hint (no raw JSON).
    let out = scanq(&s.base, &["submit", "noop", "db.example.org"]).await;
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("error (422): target:") && err.contains("\nhint: "),
        "{err}"
    );
    assert!(!err.contains('{'), "{err}");
    let out = scanq(&s.base, &["jobs", "--limit", "0"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));

    // 4: a job that ends cancelled.
    let out = scanq(
        &s.base,
        &[
            "submit",
            "sleep",
            "10.0.0.5",
            "--args",
            "--ms 60000",
            "--id",
            "long",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = scanq(&s.base, &["cancel", "long"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("long: cancel"),
        "{}",
        text(&out.stdout)
    );
    let out = scanq(&s.base, &["watch", "long"]).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("job long cancelled"),
        "{}",
        text(&out.stderr)
    );
    // A cancelled job is retried (the typed client reads the queued job back), and cancelled.
    let out = scanq(&s.base, &["--json", "retry", "long"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["correlation_id"], "long", "{doc}");
    assert_eq!(
        scanq(&s.base, &["cancel", "long"]).await.status.code(),
        Some(0)
    );
    // A flag the shared body type cannot hold is refused before any request, naming it.
    let out = scanq(
        &s.base,
        &["submit", "noop", "127.0.0.1", "--priority", "urgent"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--priority"),
        "{}",
        text(&out.stderr)
    );

    // 2: usage; 1: nothing listening.
    assert_eq!(scanq(&s.base, &["frobnicate"]).await.status.code(), Some(2));
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    assert_eq!(scanq(&nowhere, &["tools"]).await.status.code(), Some(1));

    // Offline helpers.
    let out = scanq(
        &s.base,
        &[
            "token", "new", "--name", "ci", "--tenant", "blue", "--scopes", "read",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("[[tokens]]"));
    let out = scanq(&s.base, &["completions", "bash"]).await;
    assert!(text(&out.stdout).contains("scanq"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_scan_is_watched_as_one_parent_and_its_chunks_are_listed_page_by_page() {
    let s = stack().await;
    let port = free_port().to_string();
    let args = format!("-sT -n -p {port}");
    // 64 loopback addresses in chunks of 16: one parent, four chunks, real nmap.
    let out = scanq(
        &s.base,
        &[
            "submit",
            "nmap",
            "127.3.0.0/26",
            "--args",
            &args,
            "--chunk-hosts",
            "16",
            "--id",
            "cli-big",
            "--watch",
        ],
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("cli-big succeeded"), "{stdout}");
    assert_eq!(stdout.matches("127.3.0.").count(), 64, "{stdout}");
    // One watch, of the parent: no chunk is followed on its own.
    assert!(stderr.contains("submitted cli-big"), "{stderr}");
    assert!(!stderr.contains("cli-big:"), "{stderr}");

    let out = scanq(&s.base, &["get", "cli-big"]).await;
    let got = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(got.contains("64 of 64 done"), "{got}");
    assert!(got.contains("4 total: 4 succeeded"), "{got}");
    let out = scanq(&s.base, &["get", "cli-big:1"]).await;
    assert!(
        text(&out.stdout).contains("parent:"),
        "{}",
        text(&out.stdout)
    );

    let out = scanq(&s.base, &["chunks", "cli-big", "--limit", "3"]).await;
    let page = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(page.starts_with("CHUNK"), "{page}");
    for n in 0..3 {
        assert!(
            page.contains(&format!("cli-big:{n}  succeeded  127.3.0.{}/28", n * 16)),
            "{page}"
        );
    }
    assert!(
        page.contains("next page: scanq chunks cli-big --cursor 3 --limit 3"),
        "{page}"
    );
    let out = scanq(
        &s.base,
        &["chunks", "cli-big", "--cursor", "3", "--limit", "3"],
    )
    .await;
    let last = text(&out.stdout);
    assert!(
        last.contains("cli-big:3  succeeded  127.3.0.48/28"),
        "{last}"
    );
    assert!(last.contains("1 shown of 4 chunks"), "{last}");
    let out = scanq(&s.base, &["--json", "chunks", "cli-big"]).await;
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(all["total"], 4, "{all}");

    // Refusals keep their exit code: a chunk size out of bounds, the chunks of a plain job.
    let out = scanq(
        &s.base,
        &["submit", "noop", "127.3.1.0/24", "--chunk-hosts", "0"],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("chunk_hosts"),
        "{}",
        text(&out.stderr)
    );
    let out = scanq(&s.base, &["submit", "noop", "127.0.0.1", "--id", "plain"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = scanq(&s.base, &["chunks", "plain"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let out = scanq(&s.base, &["chunks", "cli-big", "--limit", "0"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_a_big_scan_in_a_terminal_draws_one_bar_with_hosts_and_chunks() {
    let s = stack().await;
    // The bar is drawn only on a terminal: run the CLI under `script`, which gives it a pty.
    // Four chunks of the in-process `sleep` tool, each running 1.5 s, so the bar shows them.
    let command = format!(
        "{} submit sleep 127.3.2.0/29 --args '--ms 1500' --chunk-hosts 2 --id cli-bar --watch",
        bin("scanq").display()
    );
    let mut cmd = std::process::Command::new("script");
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SCANQ_URL", &s.base)
        .env("TERM", "xterm")
        .env("COLUMNS", "160")
        .args(["-qfec", &command, "/dev/null"]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap());
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("scanq finished")
        .unwrap();
    let screen = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{screen}");
    assert!(screen.contains("submitted cli-bar"), "{screen}");
    assert!(screen.contains("/8 hosts; chunks: 4 total"), "{screen}");
    // From the first frame to the last the message carries the hosts and chunks (a state
    // event adds the state to them rather than replacing them).
    for bare in ["cli-bar waiting", "cli-bar queued", "cli-bar running"] {
        assert!(!screen.contains(bare), "{bare}: {screen}");
    }
    assert!(screen.contains("hosts; chunks: 4 total"), "{screen}");
    // One bar, the parent's: no chunk is named, and so none has a bar of its own.
    assert!(!screen.contains("cli-bar:"), "{screen}");
    assert!(screen.contains("cli-bar succeeded"), "{screen}");
}

/// Runs `scanq ARGS` (a shell command line) under `script`, which gives it a terminal, and
/// returns what it drew; it must exit 0.
async fn scanq_tty(url: &str, args: &str) -> String {
    let command = format!("{} {args}", bin("scanq").display());
    let mut cmd = std::process::Command::new("script");
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SCANQ_URL", url)
        .env("TERM", "xterm")
        .env("COLUMNS", "160")
        .args(["-qfec", &command, "/dev/null"]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap());
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("scanq finished")
        .unwrap();
    let screen = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{screen}");
    screen
}

/// The whitespace-separated cells of the first line of `out` whose first cell is `first`.
fn row(out: &str, first: &str) -> Vec<String> {
    out.lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .find(|cells| cells.first().is_some_and(|c| c == first))
        .unwrap_or_else(|| panic!("no row {first}:\n{out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zones_are_submitted_shown_in_every_listing_and_refused_with_the_field() {
    // Zone a has a worker of its own (next to the stack's worker of zone default); zone b none.
    let s = stack_with(|cfg| {
        cfg.zones = scanq::config::ZonesSetting::Text("a=127.0.1.0/24;b=127.0.2.0/24".into());
    })
    .await;
    let zone_a = scanq::config::Config {
        worker_id: Some("cli-w-a".into()),
        worker_zone: scanq::domain::Zone::parse("a").unwrap(),
        ..s.cfg.clone()
    };
    let _zone_a = start_worker(zone_a, s.catalog.clone()).await;

    // submit --zone, watched: the watch names the zone, and the zone's worker ran it.
    let out = scanq(
        &s.base,
        &[
            "submit",
            "noop",
            "127.0.1.5",
            "--zone",
            "a",
            "--id",
            "za",
            "--watch",
        ],
    )
    .await;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("za succeeded in "), "{stdout}");
    assert!(stdout.contains("(zone a)"), "{stdout}");
    let got = text(&scanq(&s.base, &["get", "za"]).await.stdout);
    assert_eq!(row(&got, "zone:"), ["zone:", "a"], "{got}");
    assert_eq!(row(&got, "worker:"), ["worker:", "cli-w-a"], "{got}");

    // In a terminal the bar names the job with its zone.
    let screen = scanq_tty(
        &s.base,
        "submit sleep 127.0.1.6 --args '--ms 1500' --zone a --id zbar --watch",
    )
    .await;
    assert!(screen.contains("zbar (zone a) running"), "{screen}");

    // A job of zone b (placed by its target) waits, and says why in words.
    let out = scanq(&s.base, &["submit", "noop", "127.0.2.5", "--id", "zb"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let got = text(&scanq(&s.base, &["get", "zb"]).await.stdout);
    assert_eq!(row(&got, "zone:"), ["zone:", "b"], "{got}");
    assert_eq!(
        row(&got, "waiting_for:")[1..].join(" "),
        "no live worker of zone b serves its tool; it starts when one does (zone:b)",
        "{got}"
    );
    let jobs = text(&scanq(&s.base, &["jobs"]).await.stdout);
    assert!(jobs.starts_with("ID"), "{jobs}");
    assert_eq!(
        row(&jobs, "ID")[..4],
        ["ID", "TOOL", "ZONE", "TARGET"],
        "{jobs}"
    );
    assert_eq!(
        row(&jobs, "zb")[..5],
        ["zb", "noop", "b", "127.0.2.5", "queued"]
    );
    assert!(
        jobs.contains("queued (waiting for a worker of zone b)"),
        "{jobs}"
    );
    assert_eq!(row(&jobs, "za")[..3], ["za", "noop", "a"], "{jobs}");

    // A target spanning zones is one big scan over them; each chunk runs in its own zone.
    let out = scanq(
        &s.base,
        &[
            "submit",
            "noop",
            "127.0.1.9,127.0.9.9",
            "--id",
            "span",
            "--watch",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let got = text(&scanq(&s.base, &["get", "span"]).await.stdout);
    let zone = row(&got, "zone:").join(" ");
    assert!(
        zone == "zone: a (big scan over a, default)"
            || zone == "zone: default (big scan over default, a)",
        "{got}"
    );
    let page = text(&scanq(&s.base, &["chunks", "span"]).await.stdout);
    assert_eq!(
        row(&page, "CHUNK")[..4],
        ["CHUNK", "STATE", "TARGET", "ZONE"],
        "{page}"
    );
    let mut zones: Vec<String> = ["span:0", "span:1"]
        .iter()
        .map(|c| row(&page, c)[3].clone())
        .collect();
    zones.sort();
    assert_eq!(zones, ["a", "default"], "{page}");

    // Workers and stats: the zone of each worker, a row per tool and zone.
    let workers = text(&scanq(&s.base, &["workers"]).await.stdout);
    assert_eq!(
        row(&workers, "WORKER")[..2],
        ["WORKER", "ZONE"],
        "{workers}"
    );
    assert_eq!(row(&workers, "cli-w-a")[1], "a", "{workers}");
    let stats = text(&scanq(&s.base, &["stats"]).await.stdout);
    assert_eq!(
        row(&stats, "TOOL")[..3],
        ["TOOL", "ZONE", "QUEUED"],
        "{stats}"
    );
    let noop: Vec<Vec<String>> = stats
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .filter(|c| c.first().is_some_and(|t| t == "noop"))
        .collect();
    let zones: Vec<&str> = noop.iter().map(|c| c[1].as_str()).collect();
    assert_eq!(zones, ["a", "b", "default"], "{stats}");
    assert_eq!(noop[1][2], "1", "zone b has one queued job: {stats}");
    let out = scanq(&s.base, &["--json", "stats"]).await;
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        json["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["tool"] == "noop" && t["zone"] == "b" && t["counts"]["queued"] == 1),
        "{json}"
    );

    // Refusals name the field: a target outside the zone named, a zone the map does not have.
    for (target, zone) in [("127.0.0.1", "a"), ("127.0.1.5", "nowhere")] {
        let out = scanq(&s.base, &["submit", "noop", target, "--zone", zone]).await;
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{err}");
        assert!(err.contains("error (422): zone"), "{err}");
        assert!(err.contains("\nhint: "), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_by_polling_sends_if_none_match_and_gets_304_while_nothing_changes() {
    let s = stack().await;
    let resp = post_json(
        &s.base,
        "/v1/jobs",
        &serde_json::json!({"tool": "sleep", "target": "127.0.0.1", "args": "--ms 1500", "correlation_id": "polled"}),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 202);

    let out = scanq(&s.base, &["watch", "polled", "--poll-ms", "100"]).await;

    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("polled succeeded in"),
        "{}",
        text(&out.stdout)
    );
    // A 1.5 s run polled every 100 ms: most polls found the job unchanged.
    let metrics = http()
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let not_modified: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("scanq_http_requests_total")
                && l.contains(r#"route="/v1/jobs/{id}""#)
                && l.contains(r#"status="304""#)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        not_modified >= 3.0,
        "304s served: {not_modified}\n{metrics}"
    );
}
