//! Writes results: attempts send their [`Completion`] here; one task batches them per tool into
//! one `complete.lua` call and retries with back-off while Redis is unreachable, so a finished
//! scan's result is not lost to an outage. A job leaves the worker's running set (and stops
//! having its lease renewed) only once its result is written.

use std::collections::HashMap;
use std::time::Duration;

use scanq::domain::{ErrorInfo, ToolName};
use scanq::keys::ToolKeys;
use scanq::scripts::Completion;
use tokio::sync::mpsc;

use crate::Worker;

/// A finished attempt waiting to be written.
#[derive(Debug)]
pub struct Finished {
    pub tag: String,
    pub tool: ToolName,
    pub completion: Completion,
    /// When the attempt was claimed (for `scanq_job_run_seconds`).
    pub started: std::time::Instant,
    pub span: tracing::Span,
}

const MAX_BATCH: usize = 512;

pub async fn run(worker: Worker, mut rx: mpsc::UnboundedReceiver<Finished>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut by_tool: HashMap<ToolName, Vec<Finished>> = HashMap::new();
        for f in batch.drain(..) {
            by_tool.entry(f.tool.clone()).or_default().push(f);
        }
        for (tool, items) in by_tool {
            write(&worker, &tool, items).await;
        }
    }
}

async fn write(worker: &Worker, tool: &ToolName, items: Vec<Finished>) {
    let inner = &worker.inner;
    let tk: ToolKeys = inner.keys.tool(tool);
    let completions: Vec<Completion> = items.iter().map(|f| f.completion.clone()).collect();
    let mut backoff = Duration::from_millis(50);
    let mut logged = false;
    let done = loop {
        let res = async {
            let mut con = inner.pool.get().await?;
            let breaker_json = inner
                .breaker_json
                .get(tool)
                .map(String::as_str)
                .unwrap_or("{}");
            let done = inner
                .scripts
                .complete(
                    &mut con,
                    &tk,
                    &inner.settings,
                    tool.as_str(),
                    breaker_json,
                    &inner.id,
                    &completions,
                )
                .await?;
            let states = done.states.clone();
            // Finished jobs keep their correlation-ID index only as long as their result.
            let mut pipe = redis::pipe();
            for (f, state) in items.iter().zip(&states) {
                if matches!(state.as_str(), "succeeded" | "failed" | "cancelled")
                    && let Some((tenant, cid)) = f.completion.job_ref.split_once('/')
                    && let (Ok(t), Ok(c)) = (
                        scanq::domain::TenantId::parse(tenant),
                        scanq::domain::CorrelationId::parse(cid),
                    )
                {
                    let ttl = if state == "failed" {
                        inner.cfg.dead_ttl_sec
                    } else {
                        inner.cfg.result_ttl_sec
                    };
                    pipe.pexpire(inner.keys.index(&t, &c), (ttl * 1000) as i64)
                        .ignore();
                }
            }
            let _: () = pipe.query_async(&mut con).await?;
            anyhow::Ok(done)
        }
        .await;
        match res {
            Ok(done) => break done,
            Err(err) => {
                if !logged {
                    tracing::warn!(error = %err, jobs = items.len(), "Writing results failed; retrying with back-off");
                    logged = true;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    };
    if logged {
        tracing::info!(jobs = items.len(), "Results written after retry");
    }
    worker.note_transitions(tool, &done.transitions);
    for label in done.breaker.iter().filter(|l| !l.is_empty()) {
        inner
            .metrics
            .breaker_calls
            .with_label_values(&[tool.as_str(), label.as_str()])
            .inc();
    }
    for (f, state) in items.iter().zip(done.states) {
        let _enter = f.span.enter();
        if state == "stale" {
            tracing::warn!("Result refused: the attempt was taken over (fencing)");
            worker.forget(&f.tag);
            continue;
        }
        if state != "queued" {
            // The attempt ran (finished, or scheduled for a retry); a hand-back did not count.
            inner
                .metrics
                .run_time
                .with_label_values(&[tool.as_str()])
                .observe(f.started.elapsed().as_secs_f64());
        }
        if matches!(state.as_str(), "succeeded" | "failed" | "cancelled") {
            let error_type = serde_json::from_str::<ErrorInfo>(&f.completion.error_json)
                .map(|e| e.kind.as_str().to_owned())
                .unwrap_or_default();
            inner
                .metrics
                .jobs_finished
                .with_label_values(&[tool.as_str(), state.as_str(), error_type.as_str()])
                .inc();
        }
        worker.forget(&f.tag);
    }
}
