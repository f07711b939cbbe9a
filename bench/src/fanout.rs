//! `scanq-bench --fanout` (issue 21 "Measure", DESIGN §12): what a big scan costs next to plain
//! jobs, with the `noop` tool over loopback addresses only (`127.0.0.0/8`; noop sends nothing).
//!
//! 1. **submit**: API only, no worker; P parents of a /16 with `chunk_hosts` 256 (256 chunks
//!    each) posted one after the other over HTTP, timed from request to 202; Redis commands per
//!    submit from `INFO commandstats`.
//! 2. **read**: one plain job and parents of 4, 64 and 256 chunks (a /16 with `chunk_hosts`
//!    16384, 1024, 256), each read R times with `GET /v1/jobs/{id}`, one at a time, for Redis
//!    commands per GET; then R more rounds of one GET of each, interleaved, for the latency.
//!    A parent's read should not grow with its chunks.
//! 3. **plain**: N plain `noop` jobs queued with `Queue::submit` (as in the drain phase), Redis
//!    memory per job read before any worker runs, then W workers drain them (the drain phase's
//!    clock: first claim to last result).
//! 4. **chunks**: one parent of N chunks (`chunk_hosts` 1 over N loopback addresses) posted over
//!    HTTP, Redis memory per chunk read the same way, the API stopped, then the same W workers
//!    drain the chunks; also timed until the parent itself reads `succeeded` (its merged result
//!    written by the workers' settler).
//!
//! Memory deltas leave out client buffers (`mem_clients_normal`): one pipelined submit of N
//! chunks leaves a query buffer of megabytes on the API's connection for a while, which is not
//! what a chunk costs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use scanq::domain::{CorrelationId, JobId, TenantId};
use serde_json::{Value, json};

use crate::drain;
use crate::stack::{Phase, Redis, Settings, TOOL};
use crate::submit::{histogram, ms};
use crate::usage::{Watch, command_delta, command_stats, memory_info};

/// Chunk counts of the read measurement, over a /16 (65,536 addresses).
const READ_CHUNKS: [u64; 3] = [4, 64, 256];
/// The largest chunk of the read measurement needs a per-job host limit this big.
const MAX_HOSTS: u32 = 16_384;
/// Loopback addresses: a parent of N chunks scans N of them, `chunk_hosts` 1.
const SLASH16: &str = "127.0.0.0/16";

/// The sizes of one run.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Parents of 256 chunks posted in the submit measurement (P).
    pub submits: u64,
    /// GETs per job in the read measurement (R).
    pub gets: u64,
    /// Plain jobs and chunks of the drain and memory measurements (N).
    pub jobs: u64,
    /// Worker processes of the drains (W).
    pub workers: u32,
}

/// One row of the read measurement.
#[derive(Debug, Clone)]
pub struct ReadRow {
    /// 0 for the plain job.
    pub chunks: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub commands_per_get: f64,
    /// Script calls per GET (`evalsha`), part of `commands_per_get`.
    pub by_command: BTreeMap<String, f64>,
}

/// What `--fanout` measured.
#[derive(Debug, Clone, Default)]
pub struct FanoutResult {
    pub loadavg: String,
    pub sizes: Option<Sizes>,
    pub submit_p50_ms: f64,
    pub submit_p99_ms: f64,
    pub submit_max_ms: f64,
    /// Redis commands per parent submit (256 chunks), and per chunk.
    pub submit_commands: f64,
    pub reads: Vec<ReadRow>,
    pub plain_bytes: f64,
    pub chunk_bytes: f64,
    pub plain_drain: f64,
    pub chunk_drain: f64,
    /// The one POST of the N-chunk parent.
    pub big_submit_ms: f64,
    /// First claim to the parent's `succeeded`.
    pub parent_done_secs: f64,
    /// Redis commands per drained plain job / chunk (the bench's own polls included).
    pub plain_drain_commands: f64,
    pub chunk_drain_commands: f64,
    /// Redis time (µs, `INFO commandstats`) per drained plain job / chunk.
    pub plain_drain_usec: f64,
    pub chunk_drain_usec: f64,
    /// Per drained job / chunk, by command: (calls, µs of Redis time).
    pub plain_drain_by_command: BTreeMap<String, (f64, f64)>,
    pub chunk_drain_by_command: BTreeMap<String, (f64, f64)>,
    /// Redis time (µs) per submit of 256 chunks.
    pub submit_usec: f64,
}

pub async fn run(
    redis: &Redis,
    settings: &Settings,
    sizes: Sizes,
    limit: Duration,
) -> anyhow::Result<FanoutResult> {
    let mut out = FanoutResult {
        loadavg: std::fs::read_to_string("/proc/loadavg").unwrap_or_default(),
        sizes: Some(sizes),
        ..FanoutResult::default()
    };
    let phase = Phase::at(
        &redis.url(),
        |c| c.max_hosts = MAX_HOSTS,
        "fanout",
        settings,
    )?;
    let http = client()?;
    let api = phase.start_api(Duration::from_secs(20)).await?;
    let base = phase.api_url();
    // Warm-up: scripts loaded, the API's pool and the client's connection open.
    for _ in 0..4 {
        post(
            &http,
            &base,
            json!({"tool": TOOL, "target": SLASH16, "chunk_hosts": 256}),
        )
        .await?;
    }

    // 1. Submit of a /16 in 256 chunks.
    let mut h = histogram();
    let before = command_stats(&mut redis.con().await?).await?;
    for _ in 0..sizes.submits {
        let t = Instant::now();
        post(
            &http,
            &base,
            json!({"tool": TOOL, "target": SLASH16, "chunk_hosts": 256}),
        )
        .await?;
        h.record(t.elapsed().as_micros().max(1) as u64)?;
    }
    let after = command_stats(&mut redis.con().await?).await?;
    out.submit_p50_ms = ms(&h, 0.5);
    out.submit_p99_ms = ms(&h, 0.99);
    out.submit_max_ms = h.max() as f64 / 1000.0;
    out.submit_commands = calls(&before, &after).values().sum::<f64>() / sizes.submits as f64;
    out.submit_usec = usec(&before, &after) / sizes.submits as f64;
    redis.clean(&phase.cfg.key_prefix).await?;

    // 2. GET of a plain job and of parents of 4, 64, 256 chunks.
    let mut jobs = vec![(
        0,
        post(&http, &base, json!({"tool": TOOL, "target": "127.0.0.1"})).await?,
    )];
    for n in READ_CHUNKS {
        let body = json!({"tool": TOOL, "target": SLASH16, "chunk_hosts": 65_536 / n});
        jobs.push((n, post(&http, &base, body).await?));
    }
    let urls: Vec<String> = jobs
        .iter()
        .map(|(_, id)| format!("{base}/v1/jobs/{id}"))
        .collect();
    // Commands: each job's GETs alone between two readings.
    for ((chunks, id), url) in jobs.iter().zip(&urls) {
        let before = command_stats(&mut redis.con().await?).await?;
        for _ in 0..sizes.gets {
            let doc = get(&http, url).await?;
            if *chunks > 0 && doc["chunks"]["total"] != *chunks {
                bail!("parent {id} should have {chunks} chunks: {doc}");
            }
        }
        let after = command_stats(&mut redis.con().await?).await?;
        let by_command: BTreeMap<String, f64> = calls(&before, &after)
            .into_iter()
            .map(|(k, v)| (k, v / sizes.gets as f64))
            .collect();
        out.reads.push(ReadRow {
            chunks: *chunks,
            p50_ms: 0.0,
            p99_ms: 0.0,
            commands_per_get: by_command.values().sum(),
            by_command,
        });
    }
    // Latency: the jobs' GETs interleaved, so a slow moment of the machine hits them alike.
    let mut hs: Vec<_> = urls.iter().map(|_| histogram()).collect();
    for _ in 0..sizes.gets {
        for (url, h) in urls.iter().zip(hs.iter_mut()) {
            let t = Instant::now();
            get(&http, url).await?;
            h.record(t.elapsed().as_micros().max(1) as u64)?;
        }
    }
    for (row, h) in out.reads.iter_mut().zip(&hs) {
        row.p50_ms = ms(h, 0.5);
        row.p99_ms = ms(h, 0.99);
    }
    drop(api);
    redis.clean(&phase.cfg.key_prefix).await?;

    // 3. N plain jobs: memory, then the drain.
    let m0 = jobs_memory(redis).await?;
    drain::prefill(&phase, sizes.jobs, 128, limit)
        .await
        .context("pre-fill")?;
    out.plain_bytes = (jobs_memory(redis).await? - m0) / sizes.jobs as f64;
    let before = command_stats(&mut redis.con().await?).await?;
    let (r, workers) = drain::run(
        &phase,
        sizes.jobs,
        sizes.workers,
        &mut Watch::default(),
        limit,
    )
    .await?;
    let after = command_stats(&mut redis.con().await?).await?;
    drop(workers);
    out.plain_drain = r.jobs_per_sec;
    out.plain_drain_commands = calls(&before, &after).values().sum::<f64>() / sizes.jobs as f64;
    out.plain_drain_usec = usec(&before, &after) / sizes.jobs as f64;
    out.plain_drain_by_command = per_job(&before, &after, sizes.jobs);
    redis.clean(&phase.cfg.key_prefix).await?;

    // 4. One parent of N chunks: memory, then the drain.
    let api = phase.start_api(Duration::from_secs(20)).await?;
    let m0 = jobs_memory(redis).await?;
    let t = Instant::now();
    let cid = post(
        &http,
        &base,
        json!({"tool": TOOL, "target": loopback_list(sizes.jobs), "chunk_hosts": 1}),
    )
    .await?;
    out.big_submit_ms = t.elapsed().as_secs_f64() * 1000.0;
    out.chunk_bytes = (jobs_memory(redis).await? - m0) / sizes.jobs as f64;
    drop(api);
    let parent = JobId::new(
        phase.tool(),
        Default::default(),
        TenantId::default_tenant(),
        CorrelationId::parse(&cid).map_err(|e| anyhow::anyhow!("parent id {cid}: {e:?}"))?,
    );
    let key = phase.keys().job(&parent);
    let before = command_stats(&mut redis.con().await?).await?;
    let spawned = Instant::now();
    let (r, workers) = drain::run(
        &phase,
        sizes.jobs,
        sizes.workers,
        &mut Watch::default(),
        limit,
    )
    .await?;
    let after = command_stats(&mut redis.con().await?).await?;
    out.chunk_drain = r.jobs_per_sec;
    out.chunk_drain_commands = calls(&before, &after).values().sum::<f64>() / sizes.jobs as f64;
    out.chunk_drain_usec = usec(&before, &after) / sizes.jobs as f64;
    out.chunk_drain_by_command = per_job(&before, &after, sizes.jobs);
    let first_claim = r.with_startup_secs - r.secs;
    let mut con = redis.con().await?;
    let deadline = Instant::now() + limit;
    loop {
        let state: Option<String> = redis::cmd("HGET")
            .arg(&key)
            .arg("state")
            .query_async(&mut con)
            .await?;
        match state.as_deref() {
            Some("succeeded") => break,
            Some("failed" | "cancelled") | None => bail!("the parent ended {state:?}"),
            _ if Instant::now() > deadline => bail!("the parent did not end within {limit:?}"),
            // The polling interval of this deadline-bounded poll.
            _ => tokio::time::sleep(Duration::from_millis(2)).await,
        }
    }
    out.parent_done_secs = spawned.elapsed().as_secs_f64() - first_claim;
    drop(workers);
    redis.clean(&phase.cfg.key_prefix).await?;
    Ok(out)
}

/// `n` loopback addresses from 127.0.0.0 as few aligned CIDR blocks (largest first).
pub fn loopback_list(n: u64) -> String {
    let mut parts = vec![];
    let mut at: u64 = 0;
    for bits in (0..=16).rev() {
        let size = 1u64 << bits;
        if n & size != 0 {
            let a = (127u64 << 24) + at;
            parts.push(format!(
                "{}.{}.{}.{}/{}",
                a >> 24,
                (a >> 16) & 255,
                (a >> 8) & 255,
                a & 255,
                32 - bits
            ));
            at += size;
        }
    }
    parts.join(",")
}

/// Commands run between two readings, by name, without the bench's own `INFO`.
fn calls(
    before: &crate::usage::CommandStats,
    after: &crate::usage::CommandStats,
) -> BTreeMap<String, f64> {
    command_delta(before, after)
        .into_iter()
        .filter(|(name, _, _)| name != "info")
        .map(|(name, n, _)| (name, n as f64))
        .collect()
}

/// Microseconds of Redis time between two readings, without the bench's own `INFO`.
fn usec(before: &crate::usage::CommandStats, after: &crate::usage::CommandStats) -> f64 {
    command_delta(before, after)
        .into_iter()
        .filter(|(name, _, _)| name != "info")
        .map(|(_, _, us)| us as f64)
        .sum()
}

/// Calls and µs of Redis time per job, by command, without the bench's own `INFO`.
fn per_job(
    before: &crate::usage::CommandStats,
    after: &crate::usage::CommandStats,
    jobs: u64,
) -> BTreeMap<String, (f64, f64)> {
    command_delta(before, after)
        .into_iter()
        .filter(|(name, _, _)| name != "info")
        .map(|(name, n, us)| (name, (n as f64 / jobs as f64, us as f64 / jobs as f64)))
        .collect()
}

/// Redis memory that holds data: `used_memory` without client buffers.
async fn jobs_memory(redis: &Redis) -> anyhow::Result<f64> {
    let m = memory_info(&mut redis.con().await?).await?;
    let used = m.get("used_memory").copied().context("no used_memory")?;
    let clients = m.get("mem_clients_normal").copied().unwrap_or(0);
    Ok(used.saturating_sub(clients) as f64)
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .http1_only()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(120))
        .build()?)
}

/// Posts a job; its correlation ID on 202.
async fn post(http: &reqwest::Client, base: &str, body: Value) -> anyhow::Result<String> {
    let resp = http
        .post(format!("{base}/v1/jobs"))
        .json(&body)
        .send()
        .await
        .context("POST /v1/jobs")?;
    let status = resp.status();
    let doc: Value = resp.json().await.unwrap_or_default();
    if status.as_u16() != 202 {
        bail!("POST /v1/jobs answered {status}: {doc}");
    }
    doc["correlation_id"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no id in {doc}"))
}

async fn get(http: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    let resp = http.get(url).send().await.context("GET /v1/jobs/{id}")?;
    let status = resp.status();
    let doc: Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!("GET {url} answered {status}: {doc}");
    }
    Ok(doc)
}

impl FanoutResult {
    pub fn table(&self) -> String {
        let s = self.sizes.expect("sizes");
        let mut t = format!(
            "scanq-bench --fanout: {} build, load average {} at start\n",
            if cfg!(debug_assertions) {
                "DEBUG"
            } else {
                "release"
            },
            self.loadavg.split_whitespace().next().unwrap_or("?")
        );
        t += &format!(
            "submit of a /16 in 256 chunks over HTTP, {} parents one at a time: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {:.0} Redis commands per submit ({:.2} per chunk), {:.0} µs of Redis time\n",
            s.submits,
            self.submit_p50_ms,
            self.submit_p99_ms,
            self.submit_max_ms,
            self.submit_commands,
            self.submit_commands / 256.0,
            self.submit_usec
        );
        t += &format!(
            "GET /v1/jobs/{{id}}, {} each, one at a time (latency: one GET of each in turn):\n",
            s.gets
        );
        for r in &self.reads {
            let what = match r.chunks {
                0 => "plain job".to_owned(),
                n => format!("parent of {n} chunks"),
            };
            let cmds: Vec<String> = r
                .by_command
                .iter()
                .map(|(k, v)| format!("{k} {v:.2}"))
                .collect();
            t += &format!(
                "  {what:<22} p50 {:.3} ms  p99 {:.3} ms  {:.2} Redis commands per GET ({})\n",
                r.p50_ms,
                r.p99_ms,
                r.commands_per_get,
                cmds.join(", ")
            );
        }
        t += &format!(
            "Redis memory, queued, no worker: {:.0} B per plain job, {:.0} B per chunk (ratio {:.2})\n",
            self.plain_bytes,
            self.chunk_bytes,
            self.chunk_bytes / self.plain_bytes
        );
        t += &format!(
            "drain, {} worker process(es), {} jobs: plain {:.0}/s, chunks {:.0}/s (ratio {:.2}); parent succeeded {:.2} s after the first claim; Redis commands per job: plain {:.1}, chunk {:.1}; Redis time per job: plain {:.1} µs, chunk {:.1} µs\n",
            s.workers,
            s.jobs,
            self.plain_drain,
            self.chunk_drain,
            self.chunk_drain / self.plain_drain,
            self.parent_done_secs,
            self.plain_drain_commands,
            self.chunk_drain_commands,
            self.plain_drain_usec,
            self.chunk_drain_usec
        );
        t += &format!(
            "the one POST of the {}-chunk parent: {:.0} ms",
            s.jobs, self.big_submit_ms
        );
        t
    }

    pub fn json(&self) -> Value {
        let s = self.sizes.expect("sizes");
        json!({
            "fanout": {
                "loadavg_at_start": self.loadavg.split_whitespace().next(),
                "submits": s.submits, "gets": s.gets, "jobs": s.jobs, "workers": s.workers,
                "submit_256_p50_ms": self.submit_p50_ms,
                "submit_256_p99_ms": self.submit_p99_ms,
                "submit_256_max_ms": self.submit_max_ms,
                "submit_256_commands": self.submit_commands,
                "reads": self.reads.iter().map(|r| json!({
                    "chunks": r.chunks, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms,
                    "commands_per_get": r.commands_per_get, "by_command": r.by_command,
                })).collect::<Vec<_>>(),
                "plain_bytes_per_job": self.plain_bytes,
                "chunk_bytes_per_chunk": self.chunk_bytes,
                "plain_drain_jobs_per_sec": self.plain_drain,
                "chunk_drain_jobs_per_sec": self.chunk_drain,
                "drain_ratio": self.chunk_drain / self.plain_drain,
                "parent_done_secs": self.parent_done_secs,
                "big_submit_ms": self.big_submit_ms,
                "plain_drain_commands_per_job": self.plain_drain_commands,
                "chunk_drain_commands_per_chunk": self.chunk_drain_commands,
                "plain_drain_redis_usec_per_job": self.plain_drain_usec,
                "chunk_drain_redis_usec_per_chunk": self.chunk_drain_usec,
                "plain_drain_by_command": self.plain_drain_by_command,
                "chunk_drain_by_command": self.chunk_drain_by_command,
                "submit_256_redis_usec": self.submit_usec,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_list_covers_exactly_n_addresses_in_aligned_blocks() {
        assert_eq!(loopback_list(1), "127.0.0.0/32");
        assert_eq!(loopback_list(5), "127.0.0.0/30,127.0.0.4/32");
        assert_eq!(
            loopback_list(20_000),
            "127.0.0.0/18,127.0.64.0/21,127.0.72.0/22,127.0.76.0/23,127.0.78.0/27"
        );
        assert_eq!(loopback_list(65_536), "127.0.0.0/16");
    }
}
