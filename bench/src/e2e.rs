//! (c) End-to-end latency on an idle system: one client, one job at a time — `POST /v1/jobs`,
//! then `GET /v1/jobs/{id}?wait=5` until the result is there — timed from sending the POST to
//! receiving the finished document.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::stack::{Phase, TARGET, TOOL};
use crate::submit::{histogram, ms};

/// What the latency phase measured.
#[derive(Debug, Clone)]
pub struct E2eResult {
    pub jobs: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The POST alone (the rest is the wait for the result).
    pub post_p50_ms: f64,
    pub post_p99_ms: f64,
    /// Means of the job document's `queue_wait_ms` (enqueue → claim) and `duration_ms`
    /// (claim → result written), from Redis `TIME` in whole milliseconds: averaged over many
    /// jobs they show the share of each step.
    pub queue_wait_mean_ms: f64,
    pub run_mean_ms: f64,
}

/// Submits one job and waits for its result; how long the POST took, and the document.
async fn one(http: &reqwest::Client, base: &str, cid: &str) -> anyhow::Result<(Duration, Value)> {
    let start = Instant::now();
    let body = format!(r#"{{"tool":"{TOOL}","target":"{TARGET}","correlation_id":"{cid}"}}"#);
    let resp = http
        .post(format!("{base}/v1/jobs"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .context("POST /v1/jobs")?;
    if resp.status().as_u16() != 202 {
        let status = resp.status();
        bail!(
            "POST /v1/jobs answered {status}: {}",
            resp.text().await.unwrap_or_default()
        );
    }
    resp.bytes().await?;
    let posted = start.elapsed();
    // A long-poll returns the document as it is when the wait ends; ask again until final.
    for _ in 0..3 {
        let doc: Value = http
            .get(format!("{base}/v1/jobs/{cid}?wait=5"))
            .send()
            .await
            .context("GET /v1/jobs/{id}?wait=5")?
            .error_for_status()?
            .json()
            .await?;
        match doc["state"].as_str() {
            Some("succeeded") => return Ok((posted, doc)),
            Some("failed" | "cancelled") => bail!("benchmark job {cid} did not succeed: {doc}"),
            _ => {}
        }
    }
    bail!("benchmark job {cid} not finished after 15 s")
}

/// The one client of the latency phase (one keep-alive connection).
pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .http1_only()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Runs `count` jobs strictly one after the other (correlation IDs `<name>-<i>`).
pub async fn run(
    http: &reqwest::Client,
    phase: &Phase,
    name: &str,
    count: u64,
    limit: Duration,
) -> anyhow::Result<E2eResult> {
    let base = phase.api_url();
    let mut h = histogram();
    let mut post = histogram();
    let (mut wait_ms, mut run_ms) = (0.0, 0.0);
    let run = async {
        for i in 0..count {
            let cid = format!("{name}-{i}");
            let t = Instant::now();
            let (posted, doc) = one(http, &base, &cid).await?;
            wait_ms += doc["queue_wait_ms"].as_f64().unwrap_or(0.0);
            run_ms += doc["duration_ms"].as_f64().unwrap_or(0.0);
            post.record(posted.as_micros().max(1) as u64)?;
            h.record(t.elapsed().as_micros().max(1) as u64)?;
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(limit, run)
        .await
        .with_context(|| format!("latency phase did not finish within {limit:?}"))??;
    Ok(E2eResult {
        jobs: count,
        p50_ms: ms(&h, 0.5),
        p99_ms: ms(&h, 0.99),
        max_ms: h.max() as f64 / 1000.0,
        post_p50_ms: ms(&post, 0.5),
        post_p99_ms: ms(&post, 0.99),
        queue_wait_mean_ms: wait_ms / count.max(1) as f64,
        run_mean_ms: run_ms / count.max(1) as f64,
    })
}
