//! The breaker's vocabulary: its states, what admission and recording answer, admin actions,
//! transitions and the snapshot shown to dashboards. Each enum has one string mapping
//! (`as_str`/`FromStr`), and the Lua scripts use exactly those strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A string that is not one of an enum's names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what}: {value:?}")]
pub struct UnknownName {
    what: &'static str,
    value: String,
}

macro_rules! string_enum {
    ($name:ident, $what:literal, { $($variant:ident => $s:literal),+ $(,)? }) => {
        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name used in Redis, Lua, JSON and metrics.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok($name::$variant),)+
                    _ => Err(UnknownName { what: $what, value: s.to_string() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// Where a tool's breaker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Jobs run; failures are counted.
    Closed,
    /// Jobs wait until the open period has passed.
    Open,
    /// A few probe jobs run to test whether the tool works again.
    HalfOpen,
    /// An admin opened it; it stays open until an admin closes or resets it.
    ForcedOpen,
    /// An admin disabled it: it never trips and always admits.
    Disabled,
}

string_enum!(BreakerState, "breaker state", {
    Closed => "closed",
    Open => "open",
    HalfOpen => "half_open",
    ForcedOpen => "forced_open",
    Disabled => "disabled",
});

impl BreakerState {
    /// The value of the `scanq_breaker_state` gauge: 0 closed, 1 open, 2 half-open.
    /// Forced open counts as open; disabled as closed.
    pub fn gauge_value(self) -> i64 {
        match self {
            BreakerState::Closed | BreakerState::Disabled => 0,
            BreakerState::Open | BreakerState::ForcedOpen => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

/// The outcome of one admitted job, as passed to and reported by `record`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The tool worked (whatever the scan found).
    Success,
    /// A failure of a kind that counts against the breaker.
    Failure,
    /// Neither: a user error, a cancel, or a result from an older generation.
    Ignored,
}

string_enum!(Outcome, "breaker outcome", {
    Success => "success",
    Failure => "failure",
    Ignored => "ignored",
});

/// An admin action on a breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForceAction {
    /// Move to `forced_open` until closed or reset.
    Open,
    /// Move to `closed` (no-op when closed); back-off starts again from the base period.
    Close,
    /// Move to `closed` and clear counts, last errors and back-off; always recorded.
    Reset,
    /// Move to `disabled`: never trips, always admits.
    Disable,
}

string_enum!(ForceAction, "breaker action", {
    Open => "open",
    Close => "close",
    Reset => "reset",
    Disable => "disable",
});

/// May a job start now?
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Admission {
    /// Run it; report its outcome with this generation.
    Allow { generation: u64 },
    /// Run it as a half-open probe (it holds a probe slot until recorded or its lease ends).
    Probe { generation: u64 },
    /// Do not run it; ask again after this long.
    Reject { retry_after_ms: u64 },
}

impl Admission {
    /// The generation to report the outcome with, when the job may run.
    pub fn generation(&self) -> Option<u64> {
        match *self {
            Admission::Allow { generation } | Admission::Probe { generation } => Some(generation),
            Admission::Reject { .. } => None,
        }
    }
}

/// One state change, as stored in the history list (newest first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub from: BreakerState,
    pub to: BreakerState,
    /// Why: `failure_threshold`, `failure_rate`, `open_period_elapsed`, `probe_failure`,
    /// `probe_success_threshold`, `forced_open`, `forced_close`, `reset` or `disabled`.
    pub reason: String,
    pub at_ms: u64,
    /// The generation the breaker entered with this transition.
    pub generation: u64,
}

/// A counted failure, kept for the dashboard (newest first, at most 10).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureNote {
    pub at_ms: u64,
    pub worker: String,
    pub reason: String,
    pub generation: u64,
}

/// Everything a dashboard or `GET /v1/breakers` shows about one breaker.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Snapshot {
    pub state: BreakerState,
    pub generation: u64,
    pub consecutive_failures: u64,
    /// Calls and failures in the current rate window (0 in consecutive mode).
    pub window_calls: u64,
    pub window_failures: u64,
    pub probe_successes: u64,
    pub probes_in_flight: u64,
    /// Re-trips from half-open since the breaker last closed (drives the back-off).
    pub re_trips: u64,
    /// While open: time until half-open; else 0.
    pub retry_after_ms: u64,
    pub opened_at_ms: Option<u64>,
    pub open_until_ms: Option<u64>,
    pub open_period_ms: Option<u64>,
    /// The clock the snapshot was taken at (Redis TIME unless overridden).
    pub now_ms: u64,
    pub last_errors: Vec<FailureNote>,
    /// Newest first, at most 100.
    pub history: Vec<Transition>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_round_trips_through_its_string() {
        for s in BreakerState::ALL {
            assert_eq!(s.as_str().parse::<BreakerState>(), Ok(*s));
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        assert!("halfopen".parse::<BreakerState>().is_err());
    }

    #[test]
    fn every_outcome_and_action_round_trips_through_its_string() {
        for o in Outcome::ALL {
            assert_eq!(o.as_str().parse::<Outcome>(), Ok(*o));
        }
        for a in ForceAction::ALL {
            assert_eq!(a.as_str().parse::<ForceAction>(), Ok(*a));
        }
    }

    #[test]
    fn the_gauge_maps_states_to_the_documented_numbers() {
        assert_eq!(BreakerState::Closed.gauge_value(), 0);
        assert_eq!(BreakerState::Open.gauge_value(), 1);
        assert_eq!(BreakerState::HalfOpen.gauge_value(), 2);
        assert_eq!(BreakerState::ForcedOpen.gauge_value(), 1);
        assert_eq!(BreakerState::Disabled.gauge_value(), 0);
    }
}
