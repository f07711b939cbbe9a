//! `scanq-bench --reads` (issue 24, DESIGN §15): what polling costs the API, next to
//! `/healthz` in the same run.
//!
//! 1. **seed**: N `noop` jobs (target 127.0.0.1, nothing is scanned) are posted and finished by
//!    one real `scanq-worker`, which is then stopped; each job's `result` is then replaced by a
//!    recorded nmap-shaped result of ~3 KB (a host, eight open ports with service and version,
//!    nmap's normal output, the command) and `progress` by nmap's last one — what a finished
//!    nmap job holds, without scanning.
//! 2. **load**: for each case, C connections (one reqwest client each, keep-alive HTTP/1.1)
//!    send GETs back to back for S seconds; a case with a tag first reads it, then sends it in
//!    `If-None-Match` and expects 304. Reported: answers/s, p50 and p99 latency, bytes of one
//!    answer's body, and the rate as a share of `/healthz`'s.
//!
//!    When `wrk` is installed (`scripts/install-deps.sh`), each case is also run with
//!    `wrk -t2 -cC -dSs --latency` (and the same `If-None-Match`), side by side: wrk spends far
//!    less CPU per request than the Rust loop, so its figures are closer to the API's own.
//!
//! The load generator shares the machine with the API and Redis: compare ratios within a run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use scanq::domain::{CorrelationId, JobId, TenantId, ToolName, Zone};
use serde_json::{Value, json};

use crate::stack::{Phase, Redis, Settings, TARGET, TOOL};
use crate::submit::{histogram, ms};
use crate::wrk::{Wrk, wrk};

/// The sizes of one run.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Finished jobs seeded (N).
    pub jobs: u64,
    /// Connections (C).
    pub connections: u32,
    /// Seconds per case (S).
    pub secs: u64,
}

/// One measured case.
#[derive(Debug, Clone)]
pub struct Row {
    pub case: &'static str,
    pub path: String,
    pub conditional: bool,
    pub status: u16,
    pub answers: u64,
    /// Answers with another status than `status` (a stats tag moving at a minute's edge).
    pub other: u64,
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub bytes: usize,
    /// The same case under wrk, when it is installed.
    pub wrk: Option<Wrk>,
}

/// What `--reads` measured.
#[derive(Debug, Clone)]
pub struct ReadsResult {
    pub sizes: Sizes,
    pub loadavg: String,
    pub rows: Vec<Row>,
}

/// A finished nmap job's result: one host, eight open ports, ~3 KB as JSON.
fn nmap_result(i: u64) -> Value {
    let services = [
        (22, "ssh", "OpenSSH", "9.2p1 Debian 2+deb12u3"),
        (25, "smtp", "Postfix smtpd", ""),
        (53, "domain", "ISC BIND", "9.18.28"),
        (80, "http", "nginx", "1.22.1"),
        (443, "https", "nginx", "1.22.1"),
        (3306, "mysql", "MariaDB", "10.11.6"),
        (6379, "redis", "Redis key-value store", "7.0.15"),
        (8080, "http-proxy", "Apache Tomcat", "10.1.6"),
    ];
    let ports: Vec<Value> = services
        .iter()
        .map(|(port, name, product, version)| {
            json!({"protocol": "tcp", "port": port, "state": "open", "reason": "syn-ack",
                "service": {"name": name, "product": product, "version": version, "method": "probed", "conf": 10}})
        })
        .collect();
    let lines: String = services
        .iter()
        .map(|(port, name, product, version)| {
            format!("{port}/tcp open  {name:<10} {product} {version}\n")
        })
        .collect();
    let stdout = format!(
        "Starting Nmap 7.93 ( https://nmap.org ) at 2026-12-05 05:00 UTC\nNmap scan report for localhost ({TARGET})\nHost is up (0.000070s latency).\nNot shown: 992 closed tcp ports (conn-refused)\nPORT     STATE SERVICE    VERSION\n{lines}Service detection performed. Please report any incorrect results at https://nmap.org/submit/ .\nNmap done: 1 IP address (1 host up) scanned in 6.{i:02} seconds\n"
    );
    json!({
        "exit_code": 0, "stdout": stdout, "stderr": "", "truncated_stdout": false,
        "truncated_stderr": false, "timed_out": false,
        "command": ["nmap", "-sT", "-sV", "-T4", "--top-ports", "1000", "-oX", "-", "--stats-every", "2s", TARGET],
        "parsed": {"scanner": "nmap", "version": "7.93", "args": "nmap -sT -sV -T4 --top-ports 1000", "start": 1_796_446_800,
            "hosts": [{"status": {"state": "up", "reason": "conn-refused"},
                "addresses": [{"addr": TARGET, "addrtype": "ipv4"}],
                "hostnames": [{"name": "localhost", "type": "PTR"}], "ports": ports}],
            "stats": {"up": 1, "down": 0, "total": 1, "elapsed": 6.12}}
    })
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Posts N jobs, lets one worker finish them, then gives each an nmap-sized result.
async fn seed(phase: &Phase, redis: &Redis, n: u64, limit: Duration) -> anyhow::Result<()> {
    let http = client()?;
    let base = phase.api_url();
    for i in 0..n {
        let body = json!({"tool": TOOL, "target": TARGET, "correlation_id": format!("r-{i:05}")});
        let resp = http
            .post(format!("{base}/v1/jobs"))
            .json(&body)
            .send()
            .await?;
        if resp.status().as_u16() != 202 {
            bail!("seed submit answered {}", resp.status());
        }
    }
    let mut workers = phase.start_workers(1)?;
    phase.wait_workers(redis, &mut workers, limit).await?;
    let deadline = Instant::now() + limit;
    loop {
        let stats: Value = http
            .get(format!("{base}/v1/stats"))
            .send()
            .await?
            .json()
            .await?;
        let done: i64 = stats["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| t["counts"]["succeeded"].as_i64().unwrap_or(0))
            .sum();
        if done >= n as i64 {
            break;
        }
        if Instant::now() > deadline {
            bail!("{done} of {n} seeded jobs finished within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(workers);
    let keys = phase.keys();
    let tool = ToolName::parse(TOOL)?;
    let mut con = redis.con().await?;
    let progress = r#"{"percent":100.0,"eta_sec":0,"phase":"Service scan"}"#;
    for i in 0..n {
        let cid = CorrelationId::parse(&format!("r-{i:05}")).map_err(anyhow::Error::msg)?;
        let id = JobId::new(
            tool.clone(),
            Zone::default(),
            TenantId::default_tenant(),
            cid,
        );
        let _: () = redis::cmd("HSET")
            .arg(keys.job(&id))
            .arg("result")
            .arg(nmap_result(i).to_string())
            .arg("progress")
            .arg(progress)
            .query_async(&mut con)
            .await?;
    }
    Ok(())
}

/// One GET: status, ETag, body length.
async fn probe(
    http: &reqwest::Client,
    url: &str,
    tag: Option<&str>,
) -> anyhow::Result<(u16, Option<String>, usize)> {
    let mut req = http.get(url);
    if let Some(t) = tag {
        req = req.header("if-none-match", t);
    }
    let resp = req.send().await.with_context(|| format!("GET {url}"))?;
    let status = resp.status().as_u16();
    let etag = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((status, etag, resp.bytes().await?.len()))
}

/// C connections sending GETs of `url` back to back for `secs` seconds.
async fn load(
    clients: &[reqwest::Client],
    url: &str,
    tag: Option<String>,
    secs: u64,
    spread: u64,
) -> anyhow::Result<(u64, f64, hdrhistogram::Histogram<u64>, Vec<u16>)> {
    let stop = Instant::now() + Duration::from_secs(secs);
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (n, c) in clients.iter().enumerate() {
        // `{i}`: each connection reads its own job.
        let url = url.replace("{i}", &format!("{:05}", n as u64 % spread));
        let (c, tag, count) = (c.clone(), tag.clone(), count.clone());
        tasks.spawn(async move {
            let mut h = histogram();
            let mut statuses = Vec::new();
            while Instant::now() < stop {
                let t = Instant::now();
                let (status, _, _) = probe(&c, &url, tag.as_deref()).await?;
                h.record(t.elapsed().as_micros().max(1) as u64)?;
                statuses.push(status);
                count.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok((h, statuses))
        });
    }
    let mut all = histogram();
    let mut statuses = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (h, s) = r??;
        all.add(h)?;
        statuses.extend(s);
    }
    let wall = start.elapsed().as_secs_f64();
    Ok((count.load(Ordering::Relaxed), wall, all, statuses))
}

/// Seeds, then measures every case.
pub async fn run(
    redis: &Redis,
    settings: &Settings,
    sizes: Sizes,
    limit: Duration,
) -> anyhow::Result<ReadsResult> {
    let loadavg = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default();
    let phase = Phase::new(redis, "reads", settings)?;
    let _api = phase.start_api(limit).await?;
    tokio::time::timeout(limit, seed(&phase, redis, sizes.jobs, limit))
        .await
        .context("seeding did not finish in time")??;
    let clients: Vec<reqwest::Client> = (0..sizes.connections)
        .map(|_| client())
        .collect::<anyhow::Result<_>>()?;
    let one = format!("r-{:05}", sizes.jobs / 2);
    let cases: [(&'static str, String, bool); 12] = [
        ("healthz", "/healthz".into(), false),
        ("job", format!("/v1/jobs/{one}"), false),
        ("job", format!("/v1/jobs/{one}"), true),
        // Every connection its own job (wrk: a random one per request): no read to share.
        ("job, many", "/v1/jobs/r-{i}".into(), false),
        ("job summary", format!("/v1/jobs/{one}?view=summary"), false),
        ("job summary", format!("/v1/jobs/{one}?view=summary"), true),
        ("list 20", "/v1/jobs?limit=20".into(), false),
        ("list 20", "/v1/jobs?limit=20".into(), true),
        (
            "list 20 +result",
            "/v1/jobs?limit=20&include=result".into(),
            false,
        ),
        ("stats", "/v1/stats".into(), false),
        ("stats", "/v1/stats".into(), true),
        ("healthz", "/healthz".into(), false),
    ];
    let base = phase.api_url();
    let mut rows = Vec::new();
    for (case, path, conditional) in cases {
        let url = format!("{base}{path}");
        let (status, etag, bytes) = probe(&clients[0], &url.replace("{i}", "00000"), None).await?;
        if status != 200 {
            bail!("GET {path} answered {status}");
        }
        let tag = if conditional {
            Some(etag.with_context(|| format!("GET {path} has no ETag"))?)
        } else {
            None
        };
        let expect = if conditional { 304 } else { 200 };
        let wrk = wrk(
            &url,
            tag.as_deref(),
            sizes.connections,
            sizes.secs,
            sizes.jobs,
        )
        .await;
        let (answers, wall, h, statuses) =
            load(&clients, &url, tag, sizes.secs, sizes.jobs).await?;
        rows.push(Row {
            case,
            path,
            conditional,
            status: expect,
            answers,
            other: statuses.iter().filter(|s| **s != expect).count() as u64,
            per_sec: answers as f64 / wall,
            p50_ms: ms(&h, 0.5),
            p99_ms: ms(&h, 0.99),
            bytes: if conditional { 0 } else { bytes },
            wrk,
        });
    }
    redis.clean(&phase.cfg.key_prefix).await?;
    Ok(ReadsResult {
        sizes,
        loadavg,
        rows,
    })
}

impl ReadsResult {
    /// `/healthz`'s rate: the better of its two runs (first and last case).
    fn healthz(&self) -> f64 {
        self.rows
            .iter()
            .filter(|r| r.case == "healthz")
            .map(|r| r.per_sec)
            .fold(0.0, f64::max)
    }

    /// The same under wrk.
    fn healthz_wrk(&self) -> f64 {
        self.rows
            .iter()
            .filter(|r| r.case == "healthz")
            .filter_map(|r| r.wrk.map(|w| w.per_sec))
            .fold(0.0, f64::max)
    }

    pub fn table(&self) -> String {
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        let build = if cfg!(debug_assertions) {
            "DEBUG build (numbers not meaningful; use --release)"
        } else {
            "release build"
        };
        let mut out = format!(
            "scanq-bench --reads: {build}, {cpus} CPUs (load average {} at start), {} finished jobs with ~3 KB nmap results, {} connections, {} s per case; API, Redis and load generator share the machine\n",
            self.loadavg, self.sizes.jobs, self.sizes.connections, self.sizes.secs
        );
        out.push_str(&format!(
            "{:<16} {:<10} {:>9} {:>8} {:>8} {:>9} {:>8} | {:>9} {:>8} {:>8} {:>8}  {}\n",
            "case",
            "answer",
            "req/s",
            "p50 ms",
            "p99 ms",
            "bytes",
            "×healthz",
            "wrk req/s",
            "p50 ms",
            "p99 ms",
            "×healthz",
            "path"
        ));
        let healthz = self.healthz();
        let healthz_wrk = self.healthz_wrk();
        for r in &self.rows {
            let answer = match (r.status, r.other) {
                (s, 0) => s.to_string(),
                (s, n) => format!("{s} *{n}"),
            };
            let wrk = match r.wrk {
                Some(w) => format!(
                    "{:>9.0} {:>8.2} {:>8.2} {:>8.2}",
                    w.per_sec,
                    w.p50_ms,
                    w.p99_ms,
                    w.per_sec / healthz_wrk.max(1.0)
                ),
                None => format!("{:>9} {:>8} {:>8} {:>8}", "-", "-", "-", "-"),
            };
            out.push_str(&format!(
                "{:<16} {:<10} {:>9.0} {:>8.2} {:>8.2} {:>9} {:>8.2} | {wrk}  {}{}\n",
                r.case,
                answer,
                r.per_sec,
                r.p50_ms,
                r.p99_ms,
                r.bytes,
                r.per_sec / healthz.max(1.0),
                r.path,
                if r.conditional {
                    " (If-None-Match)"
                } else {
                    ""
                }
            ));
        }
        out.push_str("answer: the status expected; *n: answers with another status (scanq-bench's loop; wrk does not check statuses beyond 2xx/3xx)\n");
        out
    }

    pub fn json(&self) -> Value {
        let healthz = self.healthz();
        json!({
            "reads": self.rows.iter().map(|r| json!({
                "case": r.case, "path": r.path, "if_none_match": r.conditional, "status": r.status,
                "answers": r.answers, "other_status": r.other, "per_sec": r.per_sec,
                "p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "bytes": r.bytes,
                "vs_healthz": r.per_sec / healthz.max(1.0),
                "wrk": r.wrk.map(|w| json!({"per_sec": w.per_sec, "p50_ms": w.p50_ms, "p99_ms": w.p99_ms,
                    "non_2xx_3xx": w.bad, "vs_healthz": w.per_sec / self.healthz_wrk().max(1.0)})),
            })).collect::<Vec<_>>(),
            "jobs": self.sizes.jobs, "connections": self.sizes.connections, "secs": self.sizes.secs,
            "loadavg_at_start": self.loadavg, "release": !cfg!(debug_assertions),
        })
    }
}
