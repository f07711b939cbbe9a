//! `scanq-bench`: measures, against a redis-server it starts itself (or `--redis-url`),
//! (a) HTTP submit throughput with K concurrent clients, (b) drain throughput of a pre-filled
//! queue of N `noop` jobs with W worker processes, (c) end-to-end latency (HTTP submit + wait
//! for the result) over sequential jobs, one request (`Prefer: wait`) and two (`POST`, then
//! `GET ?wait`) alternately, and (d) Redis memory per queued job, with the resident
//! memory of idle API and worker processes. It runs the real `scanq-api` and `scanq-worker`
//! binaries found next to itself, prints a table, and with `--json` one JSON line on stdout.
//! Results and how to reproduce them: `BENCHMARKS.md`; `make bench` runs it next to BullMQ.
//!
//! | module | owns |
//! |---|---|
//! | `stack` | redis, the phase's config and catalog, starting the binaries |
//! | `submit`, `drain`, `e2e`, `memory` | the four measurements |
//! | `usage` | CPU and resident memory per process, Redis command and memory statistics |
//! | `report` | the table and the JSON line |
//! | `cluster` | `--redis-cluster`: submit and drain on 1, 2 and 3 masters with as many partitions |
//! | `fanout` | `--fanout`: big scans (a parent and its chunks) next to plain jobs |
//! | `reads` | `--reads`: job, list and stats reads, with and without `If-None-Match`, next to `/healthz` |

mod cluster;
mod confine;
mod drain;
mod e2e;
mod fanout;
mod memory;
mod reads;
mod report;
mod stack;
mod submit;
mod usage;
mod wrk;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use serde_json::json;

use crate::report::{Report, Usage};
use crate::stack::{Phase, Redis, Settings};
use crate::usage::{CpuSplit, Watch, command_delta, command_stats, rss};

/// How long an idle API and worker are left alone before their resident size is read: start-up
/// allocations (pools, slots, the catalog) are done by then.
const IDLE_SETTLE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Only {
    Submit,
    Drain,
    E2e,
    Memory,
}

#[derive(Parser, Debug)]
#[command(
    name = "scanq-bench",
    version,
    about = "scanq benchmark: submit throughput, drain throughput, end-to-end latency, memory per queued job"
)]
struct Cli {
    /// Jobs in the pre-filled queue of the drain phase (N).
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..=2_000_000))]
    jobs: u64,
    /// Worker processes (W) for the drain and latency phases.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    workers: u32,
    /// Job slots per worker process (SCANQ_WORKER_CONCURRENCY).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=4096))]
    worker_concurrency: u32,
    /// Concurrent HTTP clients (K) of the submit phase, one connection each.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    clients: u32,
    /// Jobs posted in the submit phase.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..=2_000_000))]
    submit_jobs: u64,
    /// Sequential jobs (M) timed in the latency phase, each way (one request with
    /// `Prefer: wait`, and a POST then `GET ?wait`: 2 M jobs in all).
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    e2e_jobs: u64,
    /// Jobs posted (no worker running) to measure Redis memory per queued job.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=2_000_000))]
    memory_jobs: u64,
    /// Run one phase only.
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// Print one JSON line on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
    /// Use this Redis instead of starting one (only keys under the run's own prefixes are
    /// written, and removed afterwards).
    #[arg(long)]
    redis_url: Option<String>,
    /// Instead of the four phases: start Redis Clusters of 1, 2 and 3 masters (the `noop`
    /// queue split into as many partitions) and measure submit and drain on each.
    #[arg(long)]
    redis_cluster: bool,
    /// Largest cluster (masters) of `--redis-cluster`.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=8))]
    cluster_masters: u64,
    /// Job lease (SCANQ_LEASE_SEC); renewal runs every third of it.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    lease_sec: u64,
    /// How often workers promote due jobs and reclaim lapsed leases (SCANQ_REAP_INTERVAL_MS).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    reap_interval_ms: u64,
    /// Instead of the phases: measure what confinement adds to one tool run (setup +
    /// teardown, p50/p99) without it, with nftables, and with a network namespace (root only).
    #[arg(long)]
    confinement: bool,
    /// Runs per mode of `--confinement`.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    confinement_runs: u64,
    /// Instead of the phases: big scans next to plain jobs — submit of a /16 in 256 chunks,
    /// GET of parents of 4, 64 and 256 chunks, Redis memory per chunk and the drain of a
    /// parent's chunks against as many plain jobs (`--fanout-jobs`, `--workers`).
    #[arg(long)]
    fanout: bool,
    /// Parents of 256 chunks posted (one at a time) to time the submit of `--fanout`.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    fanout_submits: u64,
    /// GETs per job of `--fanout`'s read measurement.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    fanout_gets: u64,
    /// Chunks of the one parent (and plain jobs) of `--fanout`'s memory and drain measurements
    /// (one loopback address each; at most a /16). The drain phase's N by default: shorter
    /// drains (20,000 take ~1 s) vary by ±15 % from run to run.
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    fanout_jobs: u64,
    /// Instead of the phases: job, list and stats reads (with and without `If-None-Match`)
    /// next to `/healthz`, over finished jobs with nmap-sized results (`bench/src/reads.rs`).
    #[arg(long)]
    reads: bool,
    /// Finished jobs seeded for `--reads`.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(20..=100_000))]
    reads_jobs: u64,
    /// Connections of `--reads`.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    reads_connections: u32,
    /// Seconds per case of `--reads`.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    reads_secs: u64,
    /// Time limit of each phase, in seconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout_sec: u64,
}

impl Cli {
    fn runs(&self, phase: Only) -> bool {
        self.only.is_none_or(|o| o == phase)
    }
}

/// A phase's timed part: CPU and Redis command counters read at the start and at the end.
struct Meter {
    watch: Watch,
    cpu: std::collections::BTreeMap<&'static str, f64>,
    stats: usage::CommandStats,
    started: Instant,
}

impl Meter {
    async fn start(redis: &Redis, watch: Watch) -> anyhow::Result<Self> {
        let stats = command_stats(&mut redis.con().await?).await?;
        Ok(Self {
            cpu: watch.sample(),
            watch,
            stats,
            started: Instant::now(),
        })
    }

    async fn stop(self, redis: &Redis) -> anyhow::Result<Usage> {
        let wall = self.started.elapsed().as_secs_f64();
        let cpu = CpuSplit::between(&self.cpu, &self.watch.sample(), wall);
        let after = command_stats(&mut redis.con().await?).await?;
        Ok(Usage {
            cpu,
            commands: command_delta(&self.stats, &after),
        })
    }
}

async fn redis_info(redis: &Redis) -> anyhow::Result<(String, Option<u32>)> {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut redis.con().await?)
        .await?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(|v| v.trim().to_owned())
    };
    Ok((
        field("redis_version").unwrap_or_default(),
        field("process_id").and_then(|p| p.parse().ok()),
    ))
}

async fn run(cli: &Cli) -> anyhow::Result<Report> {
    let redis = Redis::start(cli.redis_url.clone()).await?;
    let (version, redis_pid) = redis_info(&redis).await?;
    let mut base = Watch::default();
    // Only a redis-server on this host has its CPU time in our /proc.
    if let Some(pid) = redis_pid.filter(|p| is_redis_server(*p)) {
        base.add("redis", pid);
    }
    base.add("bench", std::process::id());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let build = if cfg!(debug_assertions) {
        "DEBUG build (numbers not meaningful; use --release)"
    } else {
        "release build"
    };
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default();
    let mut report = Report {
        header: format!(
            "scanq-bench: {build}, {cpus} CPUs (load average {load} at start), redis-server {version}; redis, API, workers and load generator share the machine"
        ),
        settings: json!({
            "jobs": cli.jobs, "workers": cli.workers, "worker_concurrency": cli.worker_concurrency,
            "clients": cli.clients, "submit_jobs": cli.submit_jobs, "e2e_jobs": cli.e2e_jobs,
            "memory_jobs": cli.memory_jobs,
            "lease_sec": cli.lease_sec, "reap_interval_ms": cli.reap_interval_ms,
            "redis_version": version, "cpus": cpus, "loadavg_at_start": load, "release": !cfg!(debug_assertions),
        }),
        ..Report::default()
    };
    let bench = Bench {
        cli,
        redis: &redis,
        base,
        limit: Duration::from_secs(cli.timeout_sec),
        settings: Settings {
            worker_concurrency: cli.worker_concurrency,
            lease_sec: cli.lease_sec,
            reap_interval_ms: cli.reap_interval_ms,
        },
    };
    if cli.runs(Only::Submit) {
        let (r, usage, api_peak) = bench.submit().await.context("submit phase")?;
        report.submit = Some((r, usage));
        report.rss.api_peak_submit_kib = api_peak;
    }
    if cli.runs(Only::Drain) {
        let (r, prefill, usage, worker_peak) = bench.drain().await.context("drain phase")?;
        report.drain = Some((r, prefill, usage));
        report.rss.worker_peak_drain_kib = worker_peak;
    }
    if cli.runs(Only::E2e) {
        report.e2e = Some(bench.e2e().await.context("latency phase")?);
    }
    if cli.runs(Only::Memory) {
        let (r, api_idle, worker_idle) = bench.memory().await.context("memory phase")?;
        report.memory = Some(r);
        report.rss.api_idle_kib = api_idle;
        report.rss.worker_idle_kib = worker_idle;
    }
    Ok(report)
}

fn is_redis_server(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|c| c.trim_end().starts_with("redis-server"))
}

/// What every phase needs.
struct Bench<'a> {
    cli: &'a Cli,
    redis: &'a Redis,
    /// The processes watched in every phase (redis, this one).
    base: Watch,
    limit: Duration,
    settings: Settings,
}

impl Bench<'_> {
    /// (a): API only, K clients; also the API's peak resident size (KiB).
    async fn submit(&self) -> anyhow::Result<(submit::SubmitResult, Usage, Option<u64>)> {
        let cli = self.cli;
        let phase = Phase::new(self.redis, "submit", &self.settings)?;
        let api = phase.start_api(Duration::from_secs(20)).await?;
        let mut watch = self.base.clone();
        watch.add("api", api.child.id());
        // Warm-up: open every connection and let the API fill its Redis pool.
        let clients = submit::clients(cli.clients)?;
        submit::run(&phase, &clients, cli.clients as u64 * 4, self.limit).await?;
        let meter = Meter::start(self.redis, watch).await?;
        let r = submit::run(&phase, &clients, cli.submit_jobs, self.limit).await?;
        let usage = meter.stop(self.redis).await?;
        let api_peak = rss(api.child.id()).map(|r| r.peak_kib);
        drop(api);
        self.redis.clean(&phase.cfg.key_prefix).await?;
        Ok((r, usage, api_peak))
    }

    /// (b): pre-fill N jobs, then W workers drain them; returns the pre-fill rate too, and the
    /// biggest peak resident size (KiB) of a worker.
    async fn drain(&self) -> anyhow::Result<(drain::DrainResult, f64, Usage, Option<u64>)> {
        let cli = self.cli;
        let phase = Phase::new(self.redis, "drain", &self.settings)?;
        let prefill = drain::prefill(&phase, cli.jobs, 128, self.limit)
            .await
            .context("pre-fill")?;
        let mut meter = Meter::start(self.redis, self.base.clone()).await?;
        // The workers join the watch when they start, from zero CPU.
        let (r, workers) =
            drain::run(&phase, cli.jobs, cli.workers, &mut meter.watch, self.limit).await?;
        let usage = meter.stop(self.redis).await?;
        let worker_peak = workers
            .iter()
            .filter_map(|w| rss(w.child.id()).map(|r| r.peak_kib))
            .max();
        drop(workers);
        self.redis.clean(&phase.cfg.key_prefix).await?;
        Ok((r, prefill, usage, worker_peak))
    }

    /// (c): API and W idle workers, one job at a time.
    async fn e2e(&self) -> anyhow::Result<(e2e::E2eResult, Usage)> {
        let phase = Phase::new(self.redis, "e2e", &self.settings)?;
        let api = phase.start_api(Duration::from_secs(20)).await?;
        let mut workers = phase.start_workers(self.cli.workers)?;
        phase
            .wait_workers(self.redis, &mut workers, Duration::from_secs(20))
            .await?;
        let mut watch = self.base.clone();
        watch.add("api", api.child.id());
        for w in &workers {
            watch.add("workers", w.child.id());
        }
        let http = e2e::client()?;
        e2e::run(&http, &phase, "warm-up", 50, self.limit).await?;
        let meter = Meter::start(self.redis, watch).await?;
        let r = e2e::run(&http, &phase, "e2e", self.cli.e2e_jobs, self.limit).await?;
        let usage = meter.stop(self.redis).await?;
        drop(workers);
        drop(api);
        self.redis.clean(&phase.cfg.key_prefix).await?;
        Ok((r, usage))
    }

    /// (d): the resident size (KiB) of an idle API and an idle worker; then, with the worker
    /// stopped, Redis memory per job queued through the API.
    async fn memory(&self) -> anyhow::Result<(memory::MemoryResult, Option<u64>, Option<u64>)> {
        let cli = self.cli;
        let phase = Phase::new(self.redis, "memory", &self.settings)?;
        let api = phase.start_api(Duration::from_secs(20)).await?;
        let mut workers = phase.start_workers(1)?;
        phase
            .wait_workers(self.redis, &mut workers, Duration::from_secs(20))
            .await?;
        tokio::time::sleep(IDLE_SETTLE).await;
        let api_idle = rss(api.child.id()).map(|r| r.now_kib);
        let worker_idle = rss(workers[0].child.id()).map(|r| r.now_kib);
        drop(workers);

        // Warm-up, as in (a): every client connects and the API's Redis pool fills up, so the
        // connections' buffers are in both readings and the delta is the jobs alone.
        let clients = submit::clients(cli.clients)?;
        let warm_up = cli.clients as u64 * 4;
        submit::run(&phase, &clients, warm_up, self.limit).await?;
        let before = memory::read(self.redis).await?;
        submit::run(&phase, &clients, cli.memory_jobs, self.limit).await?;
        let after = memory::read(self.redis).await?;
        let jobs_in_redis = warm_up + cli.memory_jobs;
        let kinds = memory::breakdown(self.redis, &phase, jobs_in_redis).await?;
        drop(api);
        self.redis.clean(&phase.cfg.key_prefix).await?;
        let r = memory::MemoryResult::new(cli.memory_jobs, jobs_in_redis, &before, &after, kinds);
        Ok((r, api_idle, worker_idle))
    }
}

/// `--redis-cluster`.
async fn cluster_main(cli: &Cli) -> ExitCode {
    let settings = Settings {
        worker_concurrency: cli.worker_concurrency,
        lease_sec: cli.lease_sec,
        reap_interval_ms: cli.reap_interval_ms,
    };
    let run = cluster::run(
        cli.cluster_masters as usize,
        cli.jobs,
        cli.submit_jobs,
        cli.clients,
        cli.workers,
        &settings,
        Duration::from_secs(cli.timeout_sec),
    );
    let outcome = tokio::select! {
        r = run => r,
        sig = interrupted() => Err(anyhow::anyhow!("interrupted by {sig}; stopped everything started")),
    };
    match outcome {
        Ok(rows) => {
            let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
            let table = format!(
                "scanq-bench --redis-cluster: {} build, {cpus} CPUs shared by every master, the API, the workers and the load\n{}",
                if cfg!(debug_assertions) {
                    "DEBUG"
                } else {
                    "release"
                },
                cluster::table(&rows)
            );
            if cli.json {
                eprintln!("{table}");
                println!(
                    "{}",
                    json!({"cluster": cluster::json(&rows), "cpus": cpus, "workers": cli.workers, "jobs": cli.jobs, "submit_jobs": cli.submit_jobs, "clients": cli.clients})
                );
            } else {
                println!("{table}");
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("scanq-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--fanout`.
async fn fanout_main(cli: &Cli) -> ExitCode {
    let settings = Settings {
        worker_concurrency: cli.worker_concurrency,
        lease_sec: cli.lease_sec,
        reap_interval_ms: cli.reap_interval_ms,
    };
    let sizes = fanout::Sizes {
        submits: cli.fanout_submits,
        gets: cli.fanout_gets,
        jobs: cli.fanout_jobs,
        workers: cli.workers,
    };
    let run = async {
        let redis = Redis::start(cli.redis_url.clone()).await?;
        fanout::run(
            &redis,
            &settings,
            sizes,
            Duration::from_secs(cli.timeout_sec),
        )
        .await
    };
    let outcome = tokio::select! {
        r = run => r,
        sig = interrupted() => Err(anyhow::anyhow!("interrupted by {sig}; stopped everything started")),
    };
    match outcome {
        Ok(r) if cli.json => {
            eprintln!("{}", r.table());
            println!("{}", r.json());
            ExitCode::SUCCESS
        }
        Ok(r) => {
            println!("{}", r.table());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("scanq-bench --fanout: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--reads`.
async fn reads_main(cli: &Cli) -> ExitCode {
    let settings = Settings {
        worker_concurrency: cli.worker_concurrency,
        lease_sec: cli.lease_sec,
        reap_interval_ms: cli.reap_interval_ms,
    };
    let sizes = reads::Sizes {
        jobs: cli.reads_jobs,
        connections: cli.reads_connections,
        secs: cli.reads_secs,
    };
    let run = async {
        let redis = Redis::start(cli.redis_url.clone()).await?;
        reads::run(
            &redis,
            &settings,
            sizes,
            Duration::from_secs(cli.timeout_sec),
        )
        .await
    };
    let outcome = tokio::select! {
        r = run => r,
        sig = interrupted() => Err(anyhow::anyhow!("interrupted by {sig}; stopped everything started")),
    };
    match outcome {
        Ok(r) if cli.json => {
            eprintln!("{}", r.table());
            println!("{}", r.json());
            ExitCode::SUCCESS
        }
        Ok(r) => {
            println!("{}", r.table());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("scanq-bench --reads: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// SIGINT or SIGTERM.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The nftables tables the workers started here create go when the run ends.
    scanq_worker::confine::host_tables::remove_at_exit();
    dispatch(&cli).await
}

/// The mode the flags name, run to its end.
async fn dispatch(cli: &Cli) -> ExitCode {
    if cli.redis_cluster {
        return cluster_main(cli).await;
    }
    if cli.confinement {
        return confine::main(cli.confinement_runs).await;
    }
    if cli.fanout {
        return fanout_main(cli).await;
    }
    if cli.reads {
        return reads_main(cli).await;
    }
    // On a signal the running phase is dropped, which kills every process it started.
    let outcome = tokio::select! {
        r = run(cli) => r,
        sig = interrupted() => Err(anyhow::anyhow!("interrupted by {sig}; stopped everything started")),
    };
    match outcome {
        Ok(report) => {
            if cli.json {
                eprintln!("{}", report.table());
                println!("{}", report.json());
            } else {
                println!("{}", report.table());
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("scanq-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}
