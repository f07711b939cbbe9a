//! Live reporting while a tool runs: its output is fed to the tool's progress parser (catalog
//! `progress = "nmap"`), and `progress` events (at most one a second, never going backwards)
//! and bounded `output` events are appended to the job's event stream, fenced by the attempt's
//! token so a stale attempt cannot write.

use std::time::{Duration, Instant};

use scanq::domain::ProgressInfo;
use scanq::nmap::progress_parser_for_hosts;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::sandbox::{OutputChunk, Stream};
use crate::state::{RunningJob, SharedRef};

/// At most this many bytes of output per `output` event.
pub const OUTPUT_EVENT_BYTES: usize = 4096;
/// At most this many bytes of output events per job (the full output is in the result).
pub const OUTPUT_EVENTS_CAP: usize = 256 * 1024;
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

pub struct Live {
    pub parser: Option<String>,
    pub expected_hosts: Option<u64>,
}

/// Consumes the sandbox's output tap until the tool ends.
pub async fn report(
    w: SharedRef,
    job: RunningJob,
    live: Live,
    mut rx: UnboundedReceiver<OutputChunk>,
) {
    let mut parser = live
        .parser
        .as_deref()
        .and_then(|p| progress_parser_for_hosts(p, live.expected_hosts));
    let mut last_sent: Option<Instant> = None;
    let mut best = -1.0f64;
    let mut pending: Option<ProgressInfo> = None;
    let mut output_sent = 0usize;
    while let Some(chunk) = rx.recv().await {
        if let Some(p) = parser.as_mut().and_then(|p| p.feed(&chunk.data))
            && p.percent > best
        {
            best = p.percent;
            pending = Some(ProgressInfo {
                percent: p.percent,
                eta_sec: p.eta_sec,
                phase: p.phase,
                ..ProgressInfo::default()
            });
        }
        if output_sent < OUTPUT_EVENTS_CAP {
            for piece in chunk.data.chunks(OUTPUT_EVENT_BYTES) {
                if output_sent >= OUTPUT_EVENTS_CAP {
                    break;
                }
                output_sent += piece.len();
                let stream = match chunk.stream {
                    Stream::Stdout => "stdout",
                    Stream::Stderr => "stderr",
                };
                // Untrusted, like the result's stdout (docs/sandbox.md, "Untrusted output").
                let text = scanq::untrusted::clean(&String::from_utf8_lossy(piece), usize::MAX);
                let data = serde_json::json!({"stream": stream, "text": text});
                send(&w, &job, "output", &data.to_string(), "").await;
            }
        }
        let due = last_sent.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY);
        if due && let Some(p) = pending.take() {
            let json = serde_json::to_string(&p).expect("serializable");
            send(&w, &job, "progress", &json, &json).await;
            last_sent = Some(Instant::now());
        }
    }
    if let Some(p) = pending.take() {
        let json = serde_json::to_string(&p).expect("serializable");
        send(&w, &job, "progress", &json, &json).await;
    }
}

async fn send(w: &SharedRef, job: &RunningJob, kind: &str, data: &str, progress: &str) {
    if let Err(err) = w
        .queue
        .event(&job.id, job.fence, kind, data, progress)
        .await
    {
        tracing::debug!(error = %err, "Live event not written");
    }
}
