//! Writes results: attempts send their [`Completion`] here; one task batches them per tool into
//! one `complete.lua` call and retries with back-off while Redis is unreachable, so a finished
//! scan's result is not lost to an outage. A job leaves the worker's running set (and stops
//! having its lease renewed) only once its result is written.

use std::collections::HashMap;
use std::time::Duration;

use scanq::domain::{ErrorInfo, JobState, ToolName};
use scanq::scripts::{CompleteStatus, Completion};
use tokio::sync::mpsc;

use crate::state::{Finished, SharedRef};

const MAX_BATCH: usize = 512;

pub async fn run(w: SharedRef, mut rx: mpsc::UnboundedReceiver<Finished>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut by_tool: HashMap<ToolName, Vec<Finished>> = HashMap::new();
        for f in batch.drain(..) {
            by_tool.entry(f.id.tool.clone()).or_default().push(f);
        }
        for (tool, items) in by_tool {
            write(&w, &tool, items).await;
        }
    }
}

async fn write(w: &SharedRef, tool: &ToolName, items: Vec<Finished>) {
    let completions: Vec<Completion> = items.iter().map(|f| f.completion.clone()).collect();
    let mut backoff = Duration::from_millis(50);
    let mut logged = false;
    let done = loop {
        match w.queue.complete(tool, &completions).await {
            Ok(done) => break done,
            Err(err) if !err.is_transient() => {
                // Drop the batch and let the leases lapse, so the reaper retries those jobs
                // instead of this writer stalling for ever.
                tracing::error!(error = %err, jobs = items.len(), "Redis refused the results; the jobs will be retried after their leases lapse");
                for f in &items {
                    w.forget(&f.id);
                }
                return;
            }
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
    w.note_transitions(tool, &done.transitions);
    // A worker completes only its own zone's jobs.
    let zone = w.queue.zone().as_str();
    for verdict in done.breaker.iter().flatten() {
        w.metrics
            .breaker_calls
            .with_label_values(&[tool.as_str(), zone, verdict.as_str()])
            .inc();
    }
    for (f, state) in items.iter().zip(done.states) {
        let _enter = f.span.enter();
        match state {
            CompleteStatus::Stale => {
                tracing::warn!("Result refused: the attempt was taken over (fencing)");
            }
            CompleteStatus::Moved(s) => {
                if s != JobState::Queued {
                    // The attempt ran (finished, or scheduled for a retry); a hand-back did not.
                    w.metrics
                        .run_time
                        .with_label_values(&[tool.as_str(), zone])
                        .observe(f.started.elapsed().as_secs_f64());
                }
                if s.is_terminal() {
                    let error_type = serde_json::from_str::<ErrorInfo>(&f.completion.error_json)
                        .map(|e| e.kind.as_str().to_owned())
                        .unwrap_or_default();
                    w.metrics
                        .jobs_finished
                        .with_label_values(&[tool.as_str(), zone, s.as_str(), error_type.as_str()])
                        .inc();
                    if f.parent.is_empty() {
                        w.job_events.finished(f.id.clone());
                    }
                }
                if !f.parent.is_empty() {
                    // A chunk: its parent's events are emitted once, when the parent finishes.
                    w.settler.touch(&f.id, &f.parent);
                }
            }
        }
        w.forget(&f.id);
    }
}
