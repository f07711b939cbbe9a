//! The submit gate: a tool's open breaker or cluster-wide switch turns submits away (503 with
//! `Retry-After`) unless the request says `queue_if_unavailable`. Breaker state is cached for
//! a second per API instance so the gate costs no Redis round trip per submit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use scanq::breaker::BreakerState;
use scanq::domain::ToolName;
use scanq::queue::Queue;

use crate::error::AppError;

const FRESH: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Seen {
    at: Instant,
    open: bool,
    retry_after_sec: u64,
    disabled: bool,
}

#[derive(Debug, Default)]
pub struct BreakerCache {
    seen: Mutex<HashMap<String, Seen>>,
}

impl BreakerCache {
    pub fn forget(&self, tool: &str) {
        self.seen.lock().expect("cache lock").remove(tool);
    }

    /// Refuses the submit when the tool is disabled or its breaker refuses new work.
    pub async fn check(
        &self,
        queue: &Queue,
        tool: &ToolName,
        queue_if_unavailable: bool,
    ) -> Result<(), AppError> {
        let cached = self
            .seen
            .lock()
            .expect("cache lock")
            .get(tool.as_str())
            .copied();
        let seen = match cached {
            Some(s) if s.at.elapsed() < FRESH => s,
            _ => {
                let snap = queue.breaker_snapshot(tool).await?;
                let disabled = queue.tool_disabled(tool).await?;
                let s = Seen {
                    at: Instant::now(),
                    open: matches!(snap.state, BreakerState::Open | BreakerState::ForcedOpen),
                    retry_after_sec: snap.retry_after_ms.div_ceil(1000).max(1),
                    disabled,
                };
                self.seen
                    .lock()
                    .expect("cache lock")
                    .insert(tool.to_string(), s);
                s
            }
        };
        if seen.disabled && !queue_if_unavailable {
            return Err(AppError::Unavailable(format!(
                "tool {tool} is disabled by an operator; retry later or set queue_if_unavailable"
            )));
        }
        if seen.open && !queue_if_unavailable {
            return Err(AppError::BreakerOpen {
                tool: tool.to_string(),
                retry_after: seen.retry_after_sec,
            });
        }
        Ok(())
    }
}
