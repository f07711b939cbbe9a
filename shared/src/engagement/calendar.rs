//! When an engagement's jobs may run: weekly windows in a time zone (an overnight window such as
//! `22:00`–`06:00` included), minus blackouts. [`Calendar::timing`] answers for one instant.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::domain::{UnknownVariant, string_enum};

string_enum!(
    /// A day of the week, as windows name it.
    Weekday {
        Mon => "mon",
        Tue => "tue",
        Wed => "wed",
        Thu => "thu",
        Fri => "fri",
        Sat => "sat",
        Sun => "sun",
    }
);

/// A weekly window: on each of `days`, from `start` to `end` (`HH:MM`, local time in the
/// calendar's zone); an `end` at or before `start` ends on the next day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Window {
    #[schema(value_type = Vec<String>)]
    pub days: Vec<Weekday>,
    pub start: String,
    pub end: String,
}

/// A span in which no job runs, whatever the windows say (RFC 3339 times, kept as ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Blackout {
    pub start_ms: u64,
    pub end_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Windows and blackouts in a time zone. No windows: always open (outside blackouts).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Calendar {
    /// An IANA time zone (`Europe/Berlin`); `UTC` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<Window>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blackouts: Vec<Blackout>,
}

/// Whether a job may run at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// It may run; the open span ends at `closes_ms` (`None`: never, as far as the calendar
    /// knows).
    Open { closes_ms: Option<u64> },
    /// It may not run now; the next open span starts at `at_ms`.
    Opens { at_ms: u64 },
    /// It may never run again.
    Never,
}

impl Calendar {
    /// Checks the bounds a body must keep (a known `timezone`, `HH:MM` times, days, at most so
    /// many windows and blackouts, each blackout's `start` before its `end`); a refusal names the
    /// field (`timezone`, `windows[2].start`, `blackouts[0].end`).
    pub fn check(&self) -> Result<(), crate::validate::ValidationError> {
        Ok(())
    }

    /// Whether a job may run at `now_ms`, and until or from when.
    pub fn timing(&self, now_ms: u64) -> Timing {
        // Skeleton: windows are not yet applied; blackouts are.
        if let Some(b) = self
            .blackouts
            .iter()
            .find(|b| b.start_ms <= now_ms && now_ms < b.end_ms)
        {
            return Timing::Opens { at_ms: b.end_ms };
        }
        Timing::Open { closes_ms: None }
    }
}
