//! When an engagement's jobs may run: weekly windows in a time zone (an overnight window such as
//! `22:00`–`06:00` included), minus blackouts. [`Calendar::timing`] answers for one instant.
//!
//! How an instant is judged: the windows are laid out as spans of real time (UTC ms) over the
//! local days around it (`span.rs`), touching or overlapping spans merged into one; then the
//! blackouts are cut out. Local times that a DST change skips move to the first valid instant
//! after the gap; a local time that occurs twice (the hour repeated in autumn) takes the
//! earlier. Windows repeat weekly, so the next opening, if there is one, is found within eight
//! days of windows after each blackout it falls into: the search hops over at most every
//! blackout once, then gives up with [`Timing::Never`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::domain::{UnknownVariant, string_enum};
use crate::validate::ValidationError;

mod span;
#[cfg(test)]
mod tests;

/// At most this many windows in a calendar.
pub const MAX_WINDOWS: usize = 64;
/// At most this many blackouts in a calendar.
pub const MAX_BLACKOUTS: usize = 256;

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

/// A weekly window: on each of `days`, from `start` to `end` (`HH:MM` or `HH:MM:SS`, local time
/// in the calendar's zone); an `end` before `start` ends on the next day (`fri` `22:00`–`06:00`
/// runs into Saturday morning). `days` name the day the window starts.
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
    /// Checks the bounds a body must keep (a known `timezone`, `HH:MM` or `HH:MM:SS` times, days
    /// named once each, `start != end`, at most [`MAX_WINDOWS`] windows and [`MAX_BLACKOUTS`]
    /// blackouts, each blackout's `start` before its `end`); a refusal names the field
    /// (`timezone`, `windows[2].start`, `blackouts[0].end`).
    pub fn check(&self) -> Result<(), ValidationError> {
        if let Some(tz) = &self.timezone
            && tz.parse::<chrono_tz::Tz>().is_err()
        {
            return Err(ValidationError::new(
                "timezone",
                format!(
                    "{:?} is not a known IANA time zone",
                    crate::untrusted::clean(tz, 64)
                ),
                "an IANA zone name such as UTC, Europe/Berlin or America/New_York",
            ));
        }
        if self.windows.len() > MAX_WINDOWS {
            return Err(ValidationError::new(
                "windows",
                format!("has {} windows", self.windows.len()),
                format!("at most {MAX_WINDOWS} windows (a window may name several days)"),
            ));
        }
        for (i, w) in self.windows.iter().enumerate() {
            w.check(i)?;
        }
        if self.blackouts.len() > MAX_BLACKOUTS {
            return Err(ValidationError::new(
                "blackouts",
                format!("has {} blackouts", self.blackouts.len()),
                format!("at most {MAX_BLACKOUTS} blackouts"),
            ));
        }
        for (i, b) in self.blackouts.iter().enumerate() {
            if b.start_ms >= b.end_ms {
                return Err(ValidationError::new(
                    format!("blackouts[{i}].end"),
                    "is not after its start",
                    "an end later than the blackout's start",
                ));
            }
        }
        Ok(())
    }

    /// Whether a job may run at `now_ms`, and until or from when.
    pub fn timing(&self, now_ms: u64) -> Timing {
        let tz = self.zone();
        let mut t = now_ms;
        // Each round either answers or hops past one blackout for good (t only grows).
        for _ in 0..=self.blackouts.len() + 1 {
            let Some((start, end)) = span::next_open(&self.windows, tz, t) else {
                return Timing::Never;
            };
            let at = start.max(t);
            if let Some(b_end) = self
                .blackouts
                .iter()
                .filter(|b| b.start_ms <= at && at < b.end_ms)
                .map(|b| b.end_ms)
                .max()
            {
                t = b_end;
                continue;
            }
            if at > now_ms {
                return Timing::Opens { at_ms: at };
            }
            let cut = self
                .blackouts
                .iter()
                .map(|b| b.start_ms)
                .filter(|&s| s > at)
                .min();
            let closes_ms = match (end, cut) {
                (Some(e), Some(c)) => Some(e.min(c)),
                (e, c) => e.or(c),
            };
            return Timing::Open { closes_ms };
        }
        Timing::Never
    }

    /// The calendar's zone (`UTC` when absent or, for a value that never passed `check`, unknown).
    fn zone(&self) -> chrono_tz::Tz {
        self.timezone
            .as_deref()
            .and_then(|z| z.parse().ok())
            .unwrap_or(chrono_tz::UTC)
    }
}

impl Window {
    fn check(&self, i: usize) -> Result<(), ValidationError> {
        if self.days.is_empty() {
            return Err(ValidationError::new(
                format!("windows[{i}].days"),
                "is empty",
                format!("one or more of: {}", Weekday::ACCEPTED.trim_end()),
            ));
        }
        if let Some(d) = self
            .days
            .iter()
            .enumerate()
            .find_map(|(k, d)| self.days[..k].contains(d).then_some(d))
        {
            return Err(ValidationError::new(
                format!("windows[{i}].days"),
                format!("names {d} twice"),
                "each day at most once",
            ));
        }
        let start = clock(&self.start).ok_or_else(|| bad_clock(i, "start", &self.start))?;
        let end = clock(&self.end).ok_or_else(|| bad_clock(i, "end", &self.end))?;
        if start == end {
            return Err(ValidationError::new(
                format!("windows[{i}].end"),
                "equals its start",
                "a different time; an end before the start ends on the next day \
                 (22:00 to 06:00 runs overnight)",
            ));
        }
        Ok(())
    }
}

fn bad_clock(i: usize, which: &str, value: &str) -> ValidationError {
    ValidationError::new(
        format!("windows[{i}].{which}"),
        format!(
            "{:?} is not a time of day",
            crate::untrusted::clean(value, 32)
        ),
        "HH:MM or HH:MM:SS, 24-hour, from 00:00 to 23:59:59",
    )
}

/// `HH:MM` or `HH:MM:SS` as seconds after midnight.
pub(crate) fn clock(s: &str) -> Option<u32> {
    let mut parts = s.split(':');
    let mut field = |max: u32| -> Option<u32> {
        let p = parts.next()?;
        if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse().ok().filter(|&v| v <= max)
    };
    let (h, m) = (field(23)?, field(59)?);
    let sec = match parts.next() {
        None => 0,
        Some(p) if p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse().ok().filter(|&v| v <= 59)?
        }
        Some(_) => return None,
    };
    parts.next().is_none().then_some(h * 3600 + m * 60 + sec)
}
