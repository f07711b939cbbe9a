//! (c) End-to-end latency on an idle system: one client, one job at a time, timed from sending
//! the submit to receiving the finished document, by the two ways a client can ask, alternately
//! job by job (so both see the same machine):
//! - one request: `POST /v1/jobs` with `Prefer: wait=5`, answered once the job is finished
//!   (then `GET /v1/jobs/{id}?wait=5` only if that answer is not final) — the reported p50/p99;
//! - two requests: `POST /v1/jobs`, then `GET /v1/jobs/{id}?wait=5` until the result is there.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::stack::{Phase, TARGET, TOOL};
use crate::submit::{histogram, ms};

/// What the latency phase measured.
#[derive(Debug, Clone)]
pub struct E2eResult {
    /// Jobs per way of asking (the phase ran twice as many).
    pub jobs: u64,
    /// One request (`Prefer: wait=5`).
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// One-request answers that were not final, so a `GET ?wait=5` followed.
    pub followed: u64,
    /// Two requests (`POST`, then `GET ?wait=5`).
    pub two_p50_ms: f64,
    pub two_p99_ms: f64,
    pub two_max_ms: f64,
    /// The POST alone of the two-request way (the rest is the wait for the result).
    pub post_p50_ms: f64,
    pub post_p99_ms: f64,
    /// Means of the job document's `queue_wait_ms` (enqueue → claim) and `duration_ms`
    /// (claim → result written), from Redis `TIME` in whole milliseconds, over both ways:
    /// averaged over many jobs they show the share of each step.
    pub queue_wait_mean_ms: f64,
    pub run_mean_ms: f64,
}

impl E2eResult {
    /// Jobs the phase ran (both ways).
    pub fn total_jobs(&self) -> u64 {
        self.jobs * 2
    }
}

fn body(cid: &str) -> String {
    format!(r#"{{"tool":"{TOOL}","target":"{TARGET}","correlation_id":"{cid}"}}"#)
}

/// The submit's answer: its document (202 expected).
async fn post(
    http: &reqwest::Client,
    base: &str,
    cid: &str,
    prefer: Option<&str>,
) -> anyhow::Result<Value> {
    let mut req = http
        .post(format!("{base}/v1/jobs"))
        .header("content-type", "application/json")
        .body(body(cid));
    if let Some(p) = prefer {
        req = req.header("prefer", p);
    }
    let resp = req.send().await.context("POST /v1/jobs")?;
    if resp.status().as_u16() != 202 {
        let status = resp.status();
        bail!(
            "POST /v1/jobs answered {status}: {}",
            resp.text().await.unwrap_or_default()
        );
    }
    Ok(resp.json().await?)
}

/// Whether `doc` is final: true when it succeeded, an error when it ended otherwise.
fn finished(cid: &str, doc: &Value) -> anyhow::Result<bool> {
    match doc["state"].as_str() {
        Some("succeeded") => Ok(true),
        Some("failed" | "cancelled") => bail!("benchmark job {cid} did not succeed: {doc}"),
        _ => Ok(false),
    }
}

/// Long-polls until the job is final (a long-poll returns the document as it is when the wait
/// ends; ask again until final).
async fn poll(http: &reqwest::Client, base: &str, cid: &str) -> anyhow::Result<Value> {
    for _ in 0..3 {
        let doc: Value = http
            .get(format!("{base}/v1/jobs/{cid}?wait=5"))
            .send()
            .await
            .context("GET /v1/jobs/{id}?wait=5")?
            .error_for_status()?
            .json()
            .await?;
        if finished(cid, &doc)? {
            return Ok(doc);
        }
    }
    bail!("benchmark job {cid} not finished after 15 s")
}

/// One request: submits with `Prefer: wait=5`; whether a GET had to follow, and the document.
async fn one_request(
    http: &reqwest::Client,
    base: &str,
    cid: &str,
) -> anyhow::Result<(bool, Value)> {
    let doc = post(http, base, cid, Some("wait=5")).await?;
    if finished(cid, &doc)? {
        return Ok((false, doc));
    }
    Ok((true, poll(http, base, cid).await?))
}

/// Two requests: submits, then long-polls; how long the POST took, and the document.
async fn two_requests(
    http: &reqwest::Client,
    base: &str,
    cid: &str,
) -> anyhow::Result<(Duration, Value)> {
    let start = Instant::now();
    post(http, base, cid, None).await?;
    let posted = start.elapsed();
    Ok((posted, poll(http, base, cid).await?))
}

/// The one client of the latency phase (one keep-alive connection).
pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .http1_only()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Runs `count` jobs each way, strictly one after the other, alternating which way goes first
/// (correlation IDs `<name>-1-<i>` and `<name>-2-<i>`).
pub async fn run(
    http: &reqwest::Client,
    phase: &Phase,
    name: &str,
    count: u64,
    limit: Duration,
) -> anyhow::Result<E2eResult> {
    let base = phase.api_url();
    let (mut one, mut two, mut post_h) = (histogram(), histogram(), histogram());
    let (mut wait_ms, mut run_ms, mut followed) = (0.0, 0.0, 0);
    let run = async {
        for i in 0..count {
            for way in [i % 2, 1 - i % 2] {
                let t = Instant::now();
                let doc = if way == 0 {
                    let (then_get, doc) =
                        one_request(http, &base, &format!("{name}-1-{i}")).await?;
                    one.record(t.elapsed().as_micros().max(1) as u64)?;
                    followed += u64::from(then_get);
                    doc
                } else {
                    let (posted, doc) = two_requests(http, &base, &format!("{name}-2-{i}")).await?;
                    two.record(t.elapsed().as_micros().max(1) as u64)?;
                    post_h.record(posted.as_micros().max(1) as u64)?;
                    doc
                };
                wait_ms += doc["queue_wait_ms"].as_f64().unwrap_or(0.0);
                run_ms += doc["duration_ms"].as_f64().unwrap_or(0.0);
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(limit, run)
        .await
        .with_context(|| format!("latency phase did not finish within {limit:?}"))??;
    let all = (2 * count).max(1) as f64;
    Ok(E2eResult {
        jobs: count,
        p50_ms: ms(&one, 0.5),
        p99_ms: ms(&one, 0.99),
        max_ms: one.max() as f64 / 1000.0,
        followed,
        two_p50_ms: ms(&two, 0.5),
        two_p99_ms: ms(&two, 0.99),
        two_max_ms: two.max() as f64 / 1000.0,
        post_p50_ms: ms(&post_h, 0.5),
        post_p99_ms: ms(&post_h, 0.99),
        queue_wait_mean_ms: wait_ms / all,
        run_mean_ms: run_ms / all,
    })
}
