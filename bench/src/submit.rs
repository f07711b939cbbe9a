//! (a) HTTP submit throughput: K concurrent clients, each on its own keep-alive HTTP/1.1
//! connection, post `noop` jobs to a `scanq-api` process until `count` jobs were accepted. No
//! worker runs, so the API and Redis have the machine to themselves.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;

use crate::stack::{Phase, TARGET, TOOL};

/// What the submit phase measured.
#[derive(Debug, Clone)]
pub struct SubmitResult {
    pub jobs: u64,
    pub clients: u32,
    pub secs: f64,
    pub jobs_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

pub fn histogram() -> Histogram<u64> {
    // Microseconds from 1 µs to 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

pub fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Posts one job; Ok(()) on 202.
async fn post(http: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let body = format!(r#"{{"tool":"{TOOL}","target":"{TARGET}"}}"#);
    let resp = http
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .context("POST /v1/jobs")?;
    let status = resp.status();
    if status.as_u16() != 202 {
        let text = resp.text().await.unwrap_or_default();
        bail!("POST /v1/jobs answered {status}: {text}");
    }
    // Read the body so the connection can be reused.
    resp.bytes().await?;
    Ok(())
}

/// `k` HTTP clients, each keeping one connection open.
pub fn clients(k: u32) -> anyhow::Result<Vec<reqwest::Client>> {
    (0..k).map(|_| client()).collect()
}

/// Runs `count` submits spread over the `clients`, all at once.
pub async fn run(
    phase: &Phase,
    clients: &[reqwest::Client],
    count: u64,
    limit: Duration,
) -> anyhow::Result<SubmitResult> {
    let url = format!("{}/v1/jobs", phase.api_url());
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    // A JoinSet aborts its tasks when dropped (timeout, error, Ctrl-C).
    let mut tasks = tokio::task::JoinSet::new();
    for c in clients {
        let c = c.clone();
        let url = url.clone();
        let next = next.clone();
        tasks.spawn(async move {
            let mut h = histogram();
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let t = Instant::now();
                post(&c, &url).await?;
                h.record(t.elapsed().as_micros().max(1) as u64)?;
            }
            anyhow::Ok(h)
        });
    }
    let mut all = histogram();
    tokio::time::timeout(limit, async {
        while let Some(h) = tasks.join_next().await {
            all.add(h??)?;
        }
        anyhow::Ok(())
    })
    .await
    .with_context(|| format!("submit phase did not finish within {limit:?}"))??;
    let secs = start.elapsed().as_secs_f64();
    Ok(SubmitResult {
        jobs: count,
        clients: clients.len() as u32,
        secs,
        jobs_per_sec: count as f64 / secs,
        p50_ms: ms(&all, 0.5),
        p99_ms: ms(&all, 0.99),
    })
}
