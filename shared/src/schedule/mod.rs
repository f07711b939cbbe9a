//! Schedules: a validated job template fired on a cadence (`cron` + `timezone`, or `every_sec`),
//! by whichever API or worker process looks first, exactly once per slot fleet-wide.
//!
//! | module | owns |
//! |---|---|
//! | this file | the definition ([`ScheduleDef`]): its bounds, checked slot arithmetic |
//! | `body` | the `PUT /v1/schedules/{id}` body ([`ScheduleBody`]) and its checks |
//! | `store` | the schedules in Redis (under their own hash tag `{sched}`), the claim/commit scripts, parking |
//! | `fire` | one firing step ([`Scheduler::tick`]) and the loop every process runs, fault isolation |
//! | `service` | what both front doors (REST, MCP) do: upsert, documents, runs, pause, trigger |
//!
//! How a slot is fired exactly once, even when a process dies mid-fire, is described in
//! `docs/schedules.md`: a claim moves the schedule's due time a lease ahead; the run's
//! correlation ID is derived from the slot, so a second claimant after a crash re-submits the
//! *same* job (idempotent) instead of a new one; the commit moves the schedule to its next slot.

mod body;
mod fire;
mod service;
mod store;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use body::{OWN_FIELDS, ScheduleBody, TEMPLATE_FIELDS};
pub use fire::{FireResult, ParkReason, Refusal, Scheduler, run_id};
pub use service::{
    LastRun, MAX_ID, RunEntry, ScheduleDocument, ScheduleError, ScheduleState, Upserted,
    pause_action, schedule_id,
};
pub use store::{Claim, Claimed, KEEP_RUNS, Put, ScheduleStore, ScheduleView, StoreError};

use crate::domain::{CorrelationId, UnknownVariant, string_enum};
use crate::request::{JobSpec, Policy, RequestError};
use crate::validate::ValidationError;

string_enum!(
    /// What a due slot does while the previous run is still queued or running.
    Overlap {
        Skip => "skip",
        QueueOne => "queue_one",
        CancelPrevious => "cancel_previous",
    }
);

/// The longest `every_sec`, `catchup_sec` (366 days).
pub const MAX_SPAN_SEC: u64 = 366 * 86_400;
/// The largest `jitter_sec`.
pub const MAX_JITTER_SEC: u64 = 3600;
/// `start_at` and `end_at` lie in `2000-01-01T00:00:00Z..2200-01-01T00:00:00Z` (ms).
pub const EARLIEST_MS: u64 = 946_684_800_000;
/// See [`EARLIEST_MS`].
pub const LATEST_MS: u64 = 7_258_118_400_000;
/// The longest `cron` text.
pub const MAX_CRON_LEN: usize = 128;
/// The longest `timezone`, `start_at` or `end_at` text.
pub const MAX_NAME_LEN: usize = 64;

/// A schedule as stored: its cadence and policies plus the job template (the submit body
/// without `correlation_id`), which is validated again at every fire. Every value is within
/// the bounds [`ScheduleDef::check`] enforces, whether it came from a request
/// ([`ScheduleBody`]) or from Redis ([`ScheduleDef::from_stored`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScheduleDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_sec: Option<u64>,
    pub jitter_sec: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<String>,
    pub overlap: Overlap,
    pub catchup_sec: u64,
    /// The job template: the submit fields of the schedule's body.
    #[schema(value_type = Object)]
    pub template: Value,
}

fn bad(field: &str, message: impl Into<String>, hint: impl Into<String>) -> ValidationError {
    ValidationError::new(field, message, hint)
}

/// Why a stored schedule's slots cannot be computed (it is parked with this reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SlotError(pub String);

/// A 5-field cron expression (minute hour day-of-month month day-of-week).
pub fn parse_cron(expr: &str) -> Result<Cron, String> {
    if expr.len() > MAX_CRON_LEN {
        return Err(format!(
            "is {} bytes long; the maximum is {MAX_CRON_LEN}",
            expr.len()
        ));
    }
    if expr.split_whitespace().count() != 5 {
        return Err(format!("`{expr}` does not have 5 fields"));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| format!("`{expr}`: {e}"))
}

/// A time field: RFC 3339 within [`EARLIEST_MS`]..[`LATEST_MS`]; its ms.
fn bounded_time(field: &str, text: &str) -> Result<u64, ValidationError> {
    let hint = "an RFC 3339 time from 2000-01-01T00:00:00Z to 2199-12-31T23:59:59Z";
    if text.len() > MAX_NAME_LEN {
        return Err(bad(field, "is too long to be a time", hint));
    }
    let t = DateTime::parse_from_rfc3339(text).map_err(|e| bad(field, e.to_string(), hint))?;
    let ms = t.timestamp_millis();
    if ms < EARLIEST_MS as i64 || ms >= LATEST_MS as i64 {
        return Err(bad(field, format!("`{text}` is out of range"), hint));
    }
    Ok(ms as u64)
}

/// The parsed cadence of a definition.
enum Cadence {
    Every { ms: u64 },
    Cron { cron: Box<Cron>, tz: chrono_tz::Tz },
}

impl ScheduleDef {
    /// Reads a definition stored in Redis: it must parse and pass [`ScheduleDef::check`]
    /// (an entry written by an older version, or by anything else, is not trusted).
    pub fn from_stored(json: &str) -> Result<Self, String> {
        let def: Self =
            serde_json::from_str(json).map_err(|e| format!("unreadable definition: {e}"))?;
        def.check()
            .map_err(|e| format!("definition out of bounds: {e}"))?;
        Ok(def)
    }

    /// Every bound on the schedule's own fields (the template is judged against the policy in
    /// force by [`ScheduleDef::admit`] and at every fire).
    pub fn check(&self) -> Result<(), ValidationError> {
        if !self.template.is_object() {
            return Err(bad(
                "template",
                "must be a JSON object",
                "the submit fields",
            ));
        }
        match (&self.cron, self.every_sec) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "every_sec",
                    "cannot be combined with cron",
                    "give cron or every_sec",
                ));
            }
            (None, None) => {
                return Err(bad(
                    "cron",
                    "is required (or every_sec)",
                    "*/15 * * * * or \"every_sec\": 3600",
                ));
            }
            _ => {}
        }
        if let Some(n) = self.every_sec
            && !(1..=MAX_SPAN_SEC).contains(&n)
        {
            return Err(bad(
                "every_sec",
                format!("{n} is out of range"),
                format!("seconds between runs, 1..={MAX_SPAN_SEC} (366 days)"),
            ));
        }
        if let Some(tz) = &self.timezone {
            if self.cron.is_none() {
                return Err(bad(
                    "timezone",
                    "applies to cron only",
                    "leave timezone out with every_sec",
                ));
            }
            if tz.len() > MAX_NAME_LEN || chrono_tz::Tz::from_str(tz).is_err() {
                return Err(bad(
                    "timezone",
                    "is not a known time zone",
                    "an IANA zone such as UTC or Europe/Paris",
                ));
            }
        }
        if let Some(c) = &self.cron {
            let cron_hint =
                "5 fields: minute hour day-of-month month day-of-week, e.g. 0 3 * * 1-5";
            let cron = parse_cron(c).map_err(|e| bad("cron", e, cron_hint))?;
            let tz = self.tz();
            let now = tz.timestamp_millis_opt(EARLIEST_MS as i64).single();
            if now.is_none_or(|t| cron.find_next_occurrence(&t, false).is_err()) {
                return Err(bad("cron", format!("`{c}` never fires"), cron_hint));
            }
        }
        if self.jitter_sec > MAX_JITTER_SEC {
            return Err(bad(
                "jitter_sec",
                format!("{} is above {MAX_JITTER_SEC}", self.jitter_sec),
                format!("0..={MAX_JITTER_SEC}"),
            ));
        }
        if self.catchup_sec > MAX_SPAN_SEC {
            return Err(bad(
                "catchup_sec",
                format!("{} is out of range", self.catchup_sec),
                format!("seconds, 0..={MAX_SPAN_SEC} (366 days)"),
            ));
        }
        let start = self
            .start_at
            .as_deref()
            .map(|s| bounded_time("start_at", s))
            .transpose()?;
        let end = self
            .end_at
            .as_deref()
            .map(|s| bounded_time("end_at", s))
            .transpose()?;
        if let (Some(s), Some(e)) = (start, end)
            && e <= s
        {
            return Err(bad(
                "end_at",
                "is not after start_at",
                "a time after start_at",
            ));
        }
        Ok(())
    }

    fn tz(&self) -> chrono_tz::Tz {
        self.timezone
            .as_deref()
            .and_then(|t| t.parse().ok())
            .unwrap_or(chrono_tz::UTC)
    }

    fn cadence(&self) -> Result<Cadence, SlotError> {
        match (&self.cron, self.every_sec) {
            (None, Some(every)) => every
                .checked_mul(1000)
                .filter(|ms| *ms > 0)
                .map(|ms| Cadence::Every { ms })
                .ok_or_else(|| SlotError(format!("every_sec {every} is out of range"))),
            (Some(c), None) => {
                let cron = parse_cron(c).map_err(|e| SlotError(format!("cron {e}")))?;
                let tz = match &self.timezone {
                    None => chrono_tz::UTC,
                    Some(t) => t
                        .parse()
                        .map_err(|_| SlotError(format!("unknown timezone `{t}`")))?,
                };
                Ok(Cadence::Cron {
                    cron: Box::new(cron),
                    tz,
                })
            }
            _ => Err(SlotError("needs exactly one of cron and every_sec".into())),
        }
    }

    fn time_ms(field: &str, text: Option<&str>) -> Result<Option<u64>, SlotError> {
        text.map(|t| bounded_time(field, t).map_err(|e| SlotError(e.to_string())))
            .transpose()
    }

    /// The template as a job spec for one run, with the run's correlation ID.
    pub fn run_spec(
        &self,
        policy: &Policy<'_>,
        cid: &CorrelationId,
    ) -> Result<JobSpec, RequestError> {
        let mut body = self.template.clone();
        if let Some(o) = body.as_object_mut() {
            o.insert("correlation_id".into(), Value::String(cid.to_string()));
        }
        JobSpec::from_json(&body, policy)
    }

    /// The first slot strictly after `after_ms` (ms since the epoch), `Ok(None)` when the
    /// schedule has ended. `anchor_ms` is where `every_sec` slots start counting. All
    /// arithmetic is checked: a definition whose slots overflow is an error, never a panic or
    /// a wrapped value.
    pub fn next_slot(&self, after_ms: u64, anchor_ms: u64) -> Result<Option<u64>, SlotError> {
        let cadence = self.cadence()?;
        self.next_with(&cadence, after_ms, anchor_ms)
    }

    fn next_with(
        &self,
        cadence: &Cadence,
        after_ms: u64,
        anchor_ms: u64,
    ) -> Result<Option<u64>, SlotError> {
        let overflow = || SlotError("slot arithmetic overflows".into());
        let start = Self::time_ms("start_at", self.start_at.as_deref())?;
        let after = after_ms.max(start.unwrap_or(0).saturating_sub(1));
        let slot = match cadence {
            Cadence::Every { ms: every } => {
                let anchor = start.unwrap_or(anchor_ms);
                if after < anchor {
                    anchor
                } else {
                    ((after - anchor) / every)
                        .checked_add(1)
                        .and_then(|k| k.checked_mul(*every))
                        .and_then(|d| anchor.checked_add(d))
                        .ok_or_else(overflow)?
                }
            }
            Cadence::Cron { cron, tz } => {
                let at = i64::try_from(after).map_err(|_| overflow())?;
                let Some(t) = tz.timestamp_millis_opt(at).single() else {
                    return Err(overflow());
                };
                match cron.find_next_occurrence(&t, false) {
                    Ok(next) => u64::try_from(next.timestamp_millis()).map_err(|_| overflow())?,
                    Err(_) => return Ok(None),
                }
            }
        };
        match Self::time_ms("end_at", self.end_at.as_deref())? {
            Some(end) if slot > end => Ok(None),
            _ => Ok(Some(slot)),
        }
    }

    /// The latest slot at or before `now_ms` and after `since_ms`, if any.
    pub fn latest_slot(
        &self,
        since_ms: u64,
        now_ms: u64,
        anchor_ms: u64,
    ) -> Result<Option<u64>, SlotError> {
        let cadence = self.cadence()?;
        let Some(first) = self
            .next_with(&cadence, since_ms, anchor_ms)?
            .filter(|s| *s <= now_ms)
        else {
            return Ok(None);
        };
        let latest = match &cadence {
            Cadence::Every { ms } => first + (now_ms - first) / ms * ms,
            Cadence::Cron { cron, tz } => {
                // The newest occurrence at or before now (one backward search, not a walk).
                let at = i64::try_from(now_ms).map_err(|_| SlotError("now out of range".into()))?;
                tz.timestamp_millis_opt(at)
                    .single()
                    .and_then(|t| cron.find_previous_occurrence(&t, true).ok())
                    .and_then(|p| u64::try_from(p.timestamp_millis()).ok())
                    .filter(|p| *p >= first)
                    .unwrap_or(first)
            }
        };
        // The end still bounds it.
        match Self::time_ms("end_at", self.end_at.as_deref())? {
            Some(end) if latest > end => Ok(Some(first)),
            _ => Ok(Some(latest)),
        }
    }

    /// The smallest gap (s) between the next `n` fires of a cron cadence after `from_ms`
    /// (looking at most ~8 years ahead); None for `every_sec` or a cron that fires once.
    pub fn cron_min_gap_sec(&self, from_ms: u64, n: usize) -> Option<u64> {
        let Ok(Cadence::Cron { cron, tz }) = self.cadence() else {
            return None;
        };
        let horizon = from_ms.saturating_add(8 * MAX_SPAN_SEC * 1000);
        let mut t = tz
            .timestamp_millis_opt(i64::try_from(from_ms).ok()?)
            .single()?;
        let mut prev: Option<i64> = None;
        let mut min: Option<u64> = None;
        for _ in 0..n {
            let Ok(next) = cron.find_next_occurrence(&t, false) else {
                break;
            };
            let ms = next.timestamp_millis();
            if let Some(p) = prev {
                let gap = ((ms - p).max(0) / 1000) as u64;
                min = Some(min.map_or(gap, |m| m.min(gap)));
            }
            if ms as u64 > horizon {
                break;
            }
            prev = Some(ms);
            t = next;
        }
        min
    }

    /// A fixed jitter for this schedule and slot, `0..=jitter_sec` seconds, in ms.
    pub fn jitter_ms(&self, id: &str, slot_ms: u64) -> u64 {
        if self.jitter_sec == 0 {
            return 0;
        }
        let mut h: u64 = 1469598103934665603;
        for b in id.bytes().chain(slot_ms.to_le_bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(1099511628211);
        }
        h % (self.jitter_sec.min(MAX_JITTER_SEC) * 1000 + 1)
    }
}

/// RFC 3339 (UTC) of a time in ms.
pub fn rfc3339(ms: u64) -> String {
    Utc.timestamp_millis_opt(ms as i64)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(cadence: Value) -> ScheduleDef {
        let mut d = ScheduleDef {
            cron: None,
            timezone: None,
            every_sec: None,
            jitter_sec: 0,
            start_at: None,
            end_at: None,
            overlap: Overlap::Skip,
            catchup_sec: 0,
            template: serde_json::json!({}),
        };
        d.cron = cadence["cron"].as_str().map(str::to_owned);
        d.timezone = cadence["timezone"].as_str().map(str::to_owned);
        d.every_sec = cadence["every_sec"].as_u64();
        d
    }

    #[test]
    fn every_sec_slots_count_from_the_anchor() {
        let d = def(serde_json::json!({"every_sec": 10}));
        assert_eq!(d.next_slot(1_000, 1_000), Ok(Some(11_000)));
        assert_eq!(d.next_slot(10_999, 1_000), Ok(Some(11_000)));
        assert_eq!(d.next_slot(11_000, 1_000), Ok(Some(21_000)));
        assert_eq!(d.latest_slot(1_000, 45_000, 1_000), Ok(Some(41_000)));
        assert_eq!(d.latest_slot(1_000, 5_000, 1_000), Ok(None));
    }

    #[test]
    fn hostile_stored_cadences_are_errors_never_panics_or_wraps() {
        for every in [0, 1 << 61, (1 << 61) + 1, u64::MAX] {
            let d = def(serde_json::json!({"every_sec": every}));
            assert!(d.next_slot(1_000, 1_000).is_err(), "{every}");
            assert!(d.latest_slot(1_000, 9_000, 1_000).is_err(), "{every}");
            assert!(d.check().is_err(), "{every}");
        }
        // In range, but far past the end of time: an error, not a wrapped slot.
        let d = def(serde_json::json!({"every_sec": MAX_SPAN_SEC}));
        assert!(d.next_slot(u64::MAX - 5, 0).is_err());
        let mut d = def(serde_json::json!({"cron": "* * * * *"}));
        d.timezone = Some("Mars/Olympus".into());
        assert!(d.next_slot(0, 0).is_err());
    }

    #[test]
    fn a_cron_catch_up_finds_the_latest_slot_without_walking() {
        let d = def(serde_json::json!({"cron": "*/5 * * * *"}));
        let midnight = 1_795_910_400_000;
        // A year of downtime: the latest slot before now, in one backward search.
        let now = midnight + 366 * 86_400_000 + 7 * 60_000;
        assert_eq!(
            d.latest_slot(midnight, now, 0),
            Ok(Some(midnight + 366 * 86_400_000 + 5 * 60_000))
        );
    }

    #[test]
    fn the_smallest_cron_gap_is_measured_over_its_next_fires() {
        let every_minute = def(serde_json::json!({"cron": "* * * * *"}));
        assert_eq!(every_minute.cron_min_gap_sec(EARLIEST_MS, 300), Some(60));
        let bursty = def(serde_json::json!({"cron": "0,1 3 * * *"}));
        assert_eq!(bursty.cron_min_gap_sec(EARLIEST_MS, 300), Some(60));
        let hourly = def(serde_json::json!({"cron": "0 * * * *"}));
        assert_eq!(hourly.cron_min_gap_sec(EARLIEST_MS, 300), Some(3600));
    }

    #[test]
    fn cron_slots_follow_the_time_zone() {
        let d = def(serde_json::json!({"cron": "0 3 * * *", "timezone": "Europe/Paris"}));
        // 2026-11-29T00:00:00Z; 03:00 in Paris (UTC+1) is 02:00Z.
        let midnight = 1_795_910_400_000;
        assert_eq!(d.next_slot(midnight, 0), Ok(Some(midnight + 2 * 3_600_000)));
    }

    #[test]
    fn cron_needs_exactly_five_fields() {
        assert!(parse_cron("*/5 * * * *").is_ok());
        assert!(parse_cron("0 */5 * * * *").is_err());
        assert!(parse_cron("61 * * * *").is_err());
    }

    #[test]
    fn every_overlap_round_trips() {
        for o in Overlap::ALL {
            assert_eq!(o.as_str().parse::<Overlap>().unwrap(), *o);
        }
    }
}
