//! What every progress parser is: the [`ProgressParser`] trait that the worker feeds with raw
//! stdout chunks, the [`Progress`] it reports, and the forward-only rule both parsers
//! ([`NmapProgress`](super::NmapProgress) and [`PercentLines`](super::PercentLines)) apply.
//! Kept apart from the parsers so that each depends on it and neither on the other.

use serde::{Deserialize, Serialize};

/// Progress of one job, as stored in the job document's `progress`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Progress {
    /// Overall percent done, 0..=100, never decreasing within one run.
    pub percent: f64,
    /// Seconds left in the current phase, when the tool says.
    pub eta_sec: Option<u64>,
    /// What the tool is doing now, e.g. `Connect Scan`.
    pub phase: Option<String>,
}

/// Incremental progress tracker fed with raw stdout chunks as they arrive.
///
/// Chunks may split lines and elements anywhere. `feed` returns `Some` only when progress
/// moved forward (a higher percent or a new phase), never a lower percent than before.
pub trait ProgressParser: Send {
    fn feed(&mut self, chunk: &[u8]) -> Option<Progress>;
}

/// Returns `now` and remembers it when it moved forward from the last report.
pub(crate) fn report_if_forward(
    reported: &mut Option<Progress>,
    now: Progress,
) -> Option<Progress> {
    let forward = match reported {
        None => now.percent > 0.0 || now.phase.is_some(),
        Some(last) => now.percent > last.percent || now.phase != last.phase,
    };
    if forward {
        *reported = Some(now.clone());
        Some(now)
    } else {
        None
    }
}
