//! Big scans (DESIGN §12): a parent job and its chunks, as the public document shows them.
//!
//! A chunk is an ordinary job named `<parent>:<n>` (n from 0) whose `parent` field names the
//! parent; the parent is a job whose state, progress and result come from its chunks
//! (`queue/parent.rs`): it never runs a tool itself.

use serde::{Deserialize, Serialize};

use super::{CorrelationId, JobState};

/// A parent's chunks by state (`chunks` in its document): counted by the chunks' own scripts,
/// so reading them costs the same whatever the number of chunks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChunkTally {
    pub total: u64,
    pub queued: u64,
    pub scheduled: u64,
    pub running: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
}

impl ChunkTally {
    /// Chunks counted in some state (fewer than `total` while chunks are still being queued).
    pub fn counted(&self) -> u64 {
        self.queued + self.scheduled + self.running + self.succeeded + self.failed + self.cancelled
    }

    /// Chunks not finished yet.
    pub fn open(&self) -> u64 {
        self.queued + self.scheduled + self.running
    }

    /// Adds `n` chunks in `state`.
    pub fn add(&mut self, state: JobState, n: u64) {
        let slot = match state {
            // A chunk never waits for approval itself (its parent does); counted as queued.
            JobState::Queued | JobState::AwaitingApproval => &mut self.queued,
            JobState::Scheduled => &mut self.scheduled,
            JobState::Running => &mut self.running,
            JobState::Succeeded => &mut self.succeeded,
            JobState::Failed => &mut self.failed,
            JobState::Cancelled => &mut self.cancelled,
        };
        *slot += n;
    }

    /// The parent's state for this tally: terminal once every chunk is (failed if one failed
    /// for good, else cancelled if one was cancelled, else succeeded); running once a chunk
    /// started or finished; scheduled while every waiting chunk waits for a time; else queued.
    pub fn parent_state(&self) -> JobState {
        if self.counted() >= self.total && self.open() == 0 && self.total > 0 {
            if self.failed > 0 {
                JobState::Failed
            } else if self.cancelled > 0 {
                JobState::Cancelled
            } else {
                JobState::Succeeded
            }
        } else if self.running + self.succeeded + self.failed + self.cancelled > 0 {
            JobState::Running
        } else if self.scheduled > 0 && self.queued == 0 && self.counted() >= self.total {
            JobState::Scheduled
        } else {
            JobState::Queued
        }
    }
}

impl ChunkTally {
    /// The parent's state once a cancel was asked for it: final as soon as no chunk is open,
    /// even when some chunks were never queued (a submit refused half-way, or cancelled while
    /// its chunks were still being queued).
    pub fn parent_state_cancelled(&self) -> JobState {
        if self.open() > 0 {
            self.parent_state()
        } else if self.failed > 0 {
            JobState::Failed
        } else {
            JobState::Cancelled
        }
    }
}

/// The separator between a parent's correlation ID and a chunk's number.
pub const CHUNK_SEPARATOR: char = ':';

/// The correlation ID of chunk `n` of `parent`.
pub fn chunk_id(parent: &CorrelationId, n: u64) -> CorrelationId {
    CorrelationId::parse(&format!("{parent}{CHUNK_SEPARATOR}{n}"))
        .expect("a parent's ID leaves room for its chunk numbers (request::MAX_PARENT_ID)")
}

/// The parent a chunk's ID names, if it has the form `<parent>:<n>` (the job's `parent` field
/// says whether it really is a chunk).
pub fn parent_of(cid: &CorrelationId) -> Option<CorrelationId> {
    let (parent, n) = cid.as_str().rsplit_once(CHUNK_SEPARATOR)?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    CorrelationId::parse(parent).ok()
}

/// The number `n` of a chunk ID `<parent>:<n>`, if it has that form.
pub fn chunk_index(cid: &CorrelationId) -> Option<u64> {
    parent_of(cid)?;
    cid.as_str().rsplit_once(CHUNK_SEPARATOR)?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(total: u64, by: &[(JobState, u64)]) -> ChunkTally {
        let mut t = ChunkTally {
            total,
            ..Default::default()
        };
        for (s, n) in by {
            t.add(*s, *n);
        }
        t
    }

    #[test]
    fn a_parent_is_terminal_only_when_every_chunk_is() {
        use JobState::*;
        assert_eq!(tally(4, &[(Queued, 4)]).parent_state(), Queued);
        assert_eq!(
            tally(4, &[(Queued, 3), (Running, 1)]).parent_state(),
            Running
        );
        assert_eq!(
            tally(4, &[(Queued, 3), (Succeeded, 1)]).parent_state(),
            Running
        );
        assert_eq!(tally(4, &[(Succeeded, 4)]).parent_state(), Succeeded);
        assert_eq!(
            tally(4, &[(Succeeded, 3), (Failed, 1)]).parent_state(),
            Failed
        );
        assert_eq!(
            tally(4, &[(Succeeded, 2), (Cancelled, 2)]).parent_state(),
            Cancelled
        );
        assert_eq!(
            tally(4, &[(Succeeded, 3), (Running, 1)]).parent_state(),
            Running
        );
        // Still being queued: not done although every counted chunk is.
        assert_eq!(tally(4, &[(Succeeded, 2)]).parent_state(), Running);
        assert_eq!(tally(4, &[(Scheduled, 4)]).parent_state(), Scheduled);
    }

    #[test]
    fn a_cancelled_parent_is_final_once_no_chunk_is_open_even_with_chunks_never_queued() {
        use JobState::*;
        let half = tally(16, &[(Cancelled, 5)]);
        assert_eq!(half.parent_state(), Running);
        assert_eq!(half.parent_state_cancelled(), Cancelled);
        assert_eq!(
            tally(4, &[(Cancelled, 2), (Running, 1)]).parent_state_cancelled(),
            Running
        );
        assert_eq!(
            tally(4, &[(Cancelled, 2), (Failed, 1)]).parent_state_cancelled(),
            Failed
        );
    }

    #[test]
    fn chunk_ids_name_their_parent() {
        let p = CorrelationId::parse("scan-1").unwrap();
        let c = chunk_id(&p, 17);
        assert_eq!(c.as_str(), "scan-1:17");
        assert_eq!(parent_of(&c), Some(p));
        assert_eq!(parent_of(&CorrelationId::parse("a:b").unwrap()), None);
        assert_eq!(parent_of(&CorrelationId::parse("plain").unwrap()), None);
    }
}
