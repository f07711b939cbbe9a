//! (b) Drain throughput: N `noop` jobs are put in the queue first (through the library's
//! `Queue::submit`, the call the API makes, from many concurrent tasks), then W `scanq-worker`
//! processes are started and the clock runs until the tool's counts hash shows all N succeeded.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use scanq::domain::TenantId;
use scanq::queue::Queue;
use scanq::request::{JobSpec, Policy};
use scanq::validate::TargetPolicy;
use serde_json::json;

use crate::stack::{Phase, TARGET, TOOL};
use crate::usage::Watch;

/// What the drain phase measured.
#[derive(Debug, Clone)]
pub struct DrainResult {
    pub jobs: u64,
    pub workers: u32,
    /// From the first claimed job to the last result written.
    pub secs: f64,
    pub jobs_per_sec: f64,
    /// From starting the worker processes to the last result written.
    pub with_startup_secs: f64,
    /// How often the bench read the counts hash (one `HGETALL` each, plus the pool's
    /// check-out), which Redis's command statistics of the phase include.
    pub polls: u64,
}

/// Puts `n` jobs in the queue with `tasks` concurrent submitters; returns jobs/s.
pub async fn prefill(phase: &Phase, n: u64, tasks: u64, limit: Duration) -> anyhow::Result<f64> {
    tokio::time::timeout(limit, prefill_inner(phase, n, tasks))
        .await
        .with_context(|| format!("pre-fill did not finish within {limit:?}"))?
}

async fn prefill_inner(phase: &Phase, n: u64, tasks: u64) -> anyhow::Result<f64> {
    let cfg = phase.cfg.clone();
    let pool = scanq::queue::pool(&cfg).map_err(anyhow::Error::msg)?;
    let queue = Queue::new(pool, &cfg);
    queue.prepare().await.context("load the scripts")?;
    let targets = TargetPolicy::parse(&cfg.allowed_targets, &cfg.denied_targets, cfg.max_hosts)
        .map_err(anyhow::Error::msg)?;
    let zones = scanq::validate::ZoneMap::default();
    let policy = Policy {
        catalog: &phase.catalog,
        targets: &targets,
        zones: &zones,
        allow_intrusive: false,
        default_max_attempts: cfg.default_max_attempts,
        require_engagement: false,
        approval: scanq::engagement::Approval::Never,
    };
    let spec = JobSpec::from_json(&json!({"tool": TOOL, "target": TARGET}), &policy)
        .map_err(|e| anyhow::anyhow!("benchmark job refused: {e:?}"))?;
    let spec = Arc::new(spec);
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let share = n / tasks + u64::from(t < n % tasks);
        let queue = queue.clone();
        let spec = spec.clone();
        set.spawn(async move {
            let tenant = TenantId::default_tenant();
            for _ in 0..share {
                let s = queue.submit(&tenant, &spec).await?;
                if !s.created {
                    bail!("a pre-fill job was not created");
                }
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn count(counts: &HashMap<String, i64>, state: &str) -> u64 {
    counts.get(state).copied().unwrap_or(0).max(0) as u64
}

/// Starts `workers` workers on a queue pre-filled with `n` jobs and times the drain; returns the
/// worker processes still running (so their CPU time can be read).
pub async fn run(
    phase: &Phase,
    n: u64,
    workers: u32,
    watch: &mut Watch,
    limit: Duration,
) -> anyhow::Result<(DrainResult, Vec<scanq_tests::Proc>)> {
    let cfg = phase.cfg.clone();
    let queue = Queue::new(scanq::queue::pool(&cfg).map_err(anyhow::Error::msg)?, &cfg);
    let tool = phase.tool();
    let before = queue.counts(&tool).await?;
    if count(&before, "queued") != n {
        bail!("expected {n} queued jobs after pre-fill, counts are {before:?}");
    }

    let spawned = Instant::now();
    let mut procs = phase.start_workers(workers)?;
    for p in &procs {
        watch.add("workers", p.child.id());
    }
    let deadline = spawned + limit;
    let mut first: Option<Instant> = None;
    let mut polls = 0;
    loop {
        let counts = queue.counts(&tool).await?;
        polls += 1;
        let now = Instant::now();
        if first.is_none() && count(&counts, "queued") < n {
            first = Some(now);
        }
        let failed = count(&counts, "failed") + count(&counts, "cancelled");
        if failed > 0 {
            bail!("{failed} benchmark jobs did not succeed: {counts:?}");
        }
        if count(&counts, "succeeded") >= n {
            let first = first.unwrap_or(spawned);
            let secs = now.duration_since(first).as_secs_f64();
            let result = DrainResult {
                jobs: n,
                workers,
                secs,
                jobs_per_sec: n as f64 / secs,
                with_startup_secs: now.duration_since(spawned).as_secs_f64(),
                polls,
            };
            return Ok((result, procs));
        }
        for p in procs.iter_mut() {
            if let Some(status) = p.child.try_wait()? {
                bail!("a scanq-worker exited during the drain ({status}); counts {counts:?}");
            }
        }
        if now > deadline {
            bail!("drain did not finish within {limit:?}: counts {counts:?}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
