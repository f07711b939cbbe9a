//! Following a job for a bounded time: re-read it on every notification for its tag (and at
//! least every few seconds), and turn what changed into `notifications/progress` that only ever
//! increase, as the protocol requires.

use std::time::Duration;

use scanq::domain::{CorrelationId, JobDocument, JobState, ToolName};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::Ctx;
use super::protocol::{RpcError, notification};

/// Longest a tool call may wait for a job: below the ~60 s after which real clients give up.
pub const MAX_WAIT_SEC: u64 = 50;

/// The client's progress token and the channel to its response stream.
#[derive(Debug)]
pub struct Progress {
    token: Value,
    tx: mpsc::UnboundedSender<Value>,
    sent: Option<f64>,
}

impl Progress {
    pub fn new(token: Value, tx: mpsc::UnboundedSender<Value>) -> Self {
        Self {
            token,
            tx,
            sent: None,
        }
    }

    /// Sends the job's progress if it moved forward (0 while waiting, 100 when done).
    pub fn report(&mut self, doc: &JobDocument) {
        let (value, message) = match doc.state {
            s if s.is_terminal() => (100.0, format!("{s}")),
            JobState::Running => {
                let p = doc.progress.as_ref();
                let pct = p.map_or(0.0, |p| p.percent).clamp(0.0, 99.0);
                let phase = p.and_then(|p| p.phase.clone());
                // A big scan's parent says its chunks and hosts instead of a tool's phase.
                let message = match (super::view::chunk_summary(doc), phase) {
                    (Some(chunks), _) => format!("running: {pct:.0}%, {chunks}"),
                    (None, Some(ph)) => format!("running: {pct:.0}% {ph}"),
                    (None, None) => format!("running: {pct:.0}%"),
                };
                (pct, message)
            }
            s => (0.0, format!("{s}")),
        };
        if self.sent.is_some_and(|s| value <= s) {
            return;
        }
        self.sent = Some(value);
        let _ = self.tx.send(notification(
            "notifications/progress",
            json!({"progressToken": self.token, "progress": value, "total": 100, "message": message}),
        ));
    }
}

/// Reads the job until it is terminal or `wait` has passed; reports progress on the way.
/// `None` when the job does not exist for this caller.
pub async fn follow(
    ctx: &mut Ctx,
    tool: &ToolName,
    cid: &CorrelationId,
    wait: Duration,
) -> Result<Option<JobDocument>, RpcError> {
    let tenant = ctx.caller.tenant.clone();
    let tag = scanq::queue::Queue::tag(tool, &tenant, cid);
    let mut sub = ctx.state.inner.listener.subscribe(&tag);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // Registered as a watcher (renewed on every read), so the job's changes are published.
        let Some((_, doc)) = ctx
            .state
            .queue()
            .watch(&tenant, cid, scanq::scripts::WatchMode::Notify)
            .await?
        else {
            return Ok(None);
        };
        if let Some(p) = ctx.progress.as_mut() {
            p.report(&doc);
        }
        let now = tokio::time::Instant::now();
        if doc.state.is_terminal() || now >= deadline {
            return Ok(Some(doc));
        }
        sub.wait((deadline - now).min(Duration::from_secs(5))).await;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn doc(state: &str, progress: Option<&str>) -> JobDocument {
        let mut h: HashMap<String, String> = [
            ("cid", "c"),
            ("tool", "nmap"),
            ("state", state),
            ("created_ms", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        if let Some(p) = progress {
            h.insert("progress".into(), p.into());
        }
        JobDocument::from_hash(&h).unwrap()
    }

    #[test]
    fn progress_only_ever_increases() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut p = Progress::new(json!("tok"), tx);
        p.report(&doc("queued", None));
        p.report(&doc("queued", None));
        p.report(&doc(
            "running",
            Some(r#"{"percent":40.0,"eta_sec":null,"phase":"Ping Scan"}"#),
        ));
        p.report(&doc(
            "running",
            Some(r#"{"percent":10.0,"eta_sec":null,"phase":"Connect Scan"}"#),
        ));
        p.report(&doc("succeeded", None));
        let mut seen = vec![];
        while let Ok(n) = rx.try_recv() {
            assert_eq!(n["params"]["progressToken"], "tok");
            seen.push(n["params"]["progress"].as_f64().unwrap());
        }
        assert_eq!(seen, vec![0.0, 40.0, 100.0]);
    }
}
