//! The worker ↔ script protocol as types: what an attempt ended as ([`Outcome`]), how its
//! failure is classified ([`FailureKind`]), what the breaker hears ([`Verdict`]), and why a
//! running attempt was stopped ([`StopReason`]). The strings are the ones `complete.lua` reads.

use super::job::{UnknownVariant, string_enum};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

string_enum!(
    /// How an attempt ended, as the worker reports it to `complete.lua`.
    Outcome {
        Succeeded => "succeeded",
        Failed => "failed",
        Cancelled => "cancelled",
        /// Retryable failure: scheduled after a back-off while attempts remain, else failed.
        Retry => "retry",
        /// The worker is shutting down: queued again at once; the attempt does not count.
        Handback => "handback",
        /// Claimed outside its engagement's window (judged again before the tool ran):
        /// `scheduled` until the opening with `waiting: window`; the attempt does not count.
        Defer => "defer",
    }
);

string_enum!(
    /// What the tool's breaker hears about an attempt.
    Verdict {
        Success => "success",
        Failure => "failure",
        /// Says nothing about the tool's health (validation, cancel, hand-back, stale).
        Ignored => "ignored",
    }
);

string_enum!(
    /// How the worker classifies a failed attempt; a tool's `breaker.failure_kinds` lists the
    /// kinds that count against its breaker. Every kind here is emitted by the worker (see
    /// `worker/src/execute.rs`), and a catalog naming any other kind is refused.
    ///
    /// A run that exceeds `timeout_sec` is `timeout`: a slow or filtering target causes it as
    /// often as a broken tool does, so it does not count against the breaker by default.
    FailureKind {
        /// The tool could not be started (missing binary, exec failure).
        SpawnError => "spawn_error",
        /// The tool was killed by a signal it did not ask for.
        Signal => "signal",
        /// The tool (or its start) hit a resource limit.
        ResourceExhausted => "resource_exhausted",
        /// The tool ran longer than the job's `timeout_sec` and was killed.
        Timeout => "timeout",
        /// The tool exited with a non-zero code.
        ExitNonzero => "exit_nonzero",
        /// The sandbox killed the tool for a system call it forbids (seccomp): something a
        /// scanner never needs, so the tool or its build is suspect.
        SandboxViolation => "sandbox_violation",
    }
);

string_enum!(
    /// Why the worker stopped a running attempt before it ended by itself.
    StopReason {
        /// A client cancelled the job: report `cancelled`.
        Cancel => "cancel",
        /// The lease was taken over by another worker: drop the result.
        Lost => "lost",
        /// The worker is shutting down: hand the job back.
        Handback => "handback",
        /// Its engagement's window ended (`stop_at_window_end`, DESIGN §14): report `cancelled`
        /// with `window_closed`, keeping the partial result; never retried automatically. The
        /// fleet's sweep stores it on the job as `stop_reason` (the string lease renewal
        /// answers with).
        WindowClosed => "window_closed",
    }
);

impl FailureKind {
    /// The kinds that count against a breaker unless a tool says otherwise.
    pub const DEFAULT_BREAKER: [FailureKind; 4] = [
        FailureKind::SpawnError,
        FailureKind::Signal,
        FailureKind::ResourceExhausted,
        FailureKind::SandboxViolation,
    ];
}
