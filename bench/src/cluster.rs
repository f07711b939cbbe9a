//! `--redis-cluster`: the same submit and drain measurements against a Redis Cluster that the
//! bench starts itself, with 1, 2 and 3 masters (no replicas) and the `noop` queue split into as
//! many partitions as there are masters. Besides throughput it reports the Redis commands per job
//! summed over the masters, and how evenly they were spread (the busiest master's share).

use std::time::Duration;

use anyhow::Context;
use scanq_tests::RedisCluster;
use serde_json::{Value, json};

use crate::stack::{Phase, Settings};
use crate::{drain, submit};

/// One cluster size's figures.
#[derive(Debug, Clone)]
pub struct ClusterRow {
    pub masters: usize,
    pub submit: submit::SubmitResult,
    pub drain: drain::DrainResult,
    /// Redis commands per job over the drain (all masters), and the busiest master's share.
    pub drain_commands_per_job: f64,
    pub busiest_share: f64,
}

/// `total_commands_processed` of every node.
async fn commands(cluster: &RedisCluster) -> anyhow::Result<Vec<u64>> {
    let mut out = Vec::new();
    for n in &cluster.nodes {
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query_async(&mut n.con().await)
            .await?;
        out.push(
            info.lines()
                .find_map(|l| l.strip_prefix("total_commands_processed:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0),
        );
    }
    Ok(out)
}

/// Runs submit and drain on clusters of 1..=`max_masters` masters.
pub async fn run(
    max_masters: usize,
    jobs: u64,
    submit_jobs: u64,
    clients: u32,
    workers: u32,
    s: &Settings,
    limit: Duration,
) -> anyhow::Result<Vec<ClusterRow>> {
    let mut rows = Vec::new();
    for masters in 1..=max_masters {
        let cluster = RedisCluster::start_masters(masters).await;
        let adjust = |cfg: &mut scanq::config::Config| {
            cfg.redis_cluster = true;
            cfg.redis_url = cluster.seeds();
            cfg.queue_partitions = masters as u16;
        };
        let phase = Phase::at("", adjust, &format!("cluster{masters}-submit"), s)?;
        let api = phase.start_api(Duration::from_secs(20)).await?;
        let http = submit::clients(clients)?;
        submit::run(&phase, &http, clients as u64 * 4, limit).await?;
        let submitted = submit::run(&phase, &http, submit_jobs, limit)
            .await
            .context("cluster submit")?;
        drop(api);

        let phase = Phase::at("", adjust, &format!("cluster{masters}-drain"), s)?;
        drain::prefill(&phase, jobs, 128, limit)
            .await
            .context("cluster pre-fill")?;
        let before = commands(&cluster).await?;
        let mut watch = crate::usage::Watch::default();
        let (drained, procs) = drain::run(&phase, jobs, workers, &mut watch, limit)
            .await
            .context("cluster drain")?;
        let after = commands(&cluster).await?;
        drop(procs);
        let per_node: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        let total: u64 = per_node.iter().sum();
        rows.push(ClusterRow {
            masters,
            submit: submitted,
            drain: drained,
            drain_commands_per_job: total as f64 / jobs as f64,
            busiest_share: *per_node.iter().max().unwrap_or(&0) as f64 / total.max(1) as f64,
        });
    }
    Ok(rows)
}

pub fn table(rows: &[ClusterRow]) -> String {
    let mut out = String::from(
        "masters = partitions | submit jobs/s | submit p99 ms | drain jobs/s | Redis commands/job (drain) | busiest master's share\n",
    );
    for r in rows {
        out.push_str(&format!(
            "{:>20} | {:>13.0} | {:>13.1} | {:>12.0} | {:>26.1} | {:>21.0}%\n",
            r.masters,
            r.submit.jobs_per_sec,
            r.submit.p99_ms,
            r.drain.jobs_per_sec,
            r.drain_commands_per_job,
            r.busiest_share * 100.0
        ));
    }
    out
}

pub fn json(rows: &[ClusterRow]) -> Value {
    json!(
        rows.iter()
            .map(|r| json!({
                "masters": r.masters,
                "partitions": r.masters,
                "submit_jobs_per_sec": r.submit.jobs_per_sec,
                "submit_p99_ms": r.submit.p99_ms,
                "drain_jobs_per_sec": r.drain.jobs_per_sec,
                "drain_commands_per_job": r.drain_commands_per_job,
                "busiest_master_share": r.busiest_share,
            }))
            .collect::<Vec<_>>()
    )
}
