//! Schedules: a validated job template fired on a cadence (`cron` + `timezone`, or `every_sec`),
//! by whichever API or worker process looks first, exactly once per slot fleet-wide.
//!
//! | module | owns |
//! |---|---|
//! | this file | the definition ([`ScheduleDef`]): parsing a request body, refusing bad fields, slot arithmetic |
//! | `store` | the schedules in Redis (under their own hash tag `{sched}`), the claim/commit scripts |
//! | `fire` | one firing step ([`Scheduler::tick`]) and the loop every process runs |
//!
//! How a slot is fired exactly once, even when a process dies mid-fire, is described in
//! `docs/schedules.md`: a claim moves the schedule's due time a lease ahead; the run's
//! correlation ID is derived from the slot, so a second claimant after a crash re-submits the
//! *same* job (idempotent) instead of a new one; the commit moves the schedule to its next slot.

mod fire;
mod store;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use fire::{FireResult, Refusal, Scheduler, run_id};
pub use store::{Claimed, ScheduleStore, ScheduleView, StoreError};

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

/// The fields of a schedule body that are not the job template.
const OWN_FIELDS: &[&str] = &[
    "cron",
    "timezone",
    "every_sec",
    "jitter_sec",
    "start_at",
    "end_at",
    "overlap",
    "catchup_sec",
];

/// A schedule as stored: its cadence and policies plus the job template (the submit body
/// without `correlation_id`), which is validated again at every fire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub template: Value,
}

fn bad(field: &str, message: impl Into<String>, hint: impl Into<String>) -> RequestError {
    RequestError::Invalid(ValidationError::new(field, message, hint))
}

fn time_field(obj: &Map<String, Value>, field: &str) -> Result<Option<String>, RequestError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|_| Some(s.clone()))
            .map_err(|e| {
                bad(
                    field,
                    e.to_string(),
                    "an RFC 3339 time: 2026-11-29T10:00:00Z",
                )
            }),
        Some(_) => Err(bad(field, "must be a string", "2026-11-29T10:00:00Z")),
    }
}

fn int_field(
    obj: &Map<String, Value>,
    field: &str,
    hint: &str,
) -> Result<Option<u64>, RequestError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| bad(field, "must be a non-negative integer", hint)),
    }
}

fn str_field<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    hint: &str,
) -> Result<Option<&'a str>, RequestError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(field, "must be a string", hint)),
    }
}

/// A 5-field cron expression (minute hour day-of-month month day-of-week).
pub fn parse_cron(expr: &str) -> Result<Cron, String> {
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

impl ScheduleDef {
    /// Parses and checks a `PUT /v1/schedules/{id}` body: the template exactly as a submit
    /// (same 422s), plus the schedule's own fields.
    pub fn from_json(
        body: &Value,
        policy: &Policy<'_>,
        min_every_sec: u64,
    ) -> Result<Self, RequestError> {
        let Some(obj) = body.as_object() else {
            return Err(bad(
                "body",
                "must be a JSON object",
                "{\"tool\":\"nmap\",\"target\":\"127.0.0.1\",\"every_sec\":3600}",
            ));
        };
        if obj.contains_key("correlation_id") {
            return Err(bad(
                "correlation_id",
                "is set by the schedule for each run",
                "leave correlation_id out of a schedule",
            ));
        }
        let template: Map<String, Value> = obj
            .iter()
            .filter(|(k, _)| !OWN_FIELDS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let template = Value::Object(template);
        JobSpec::from_json(&template, policy)?;
        let cron = str_field(obj, "cron", "a 5-field cron expression: */15 * * * *")?;
        let every_sec = int_field(obj, "every_sec", "seconds between runs, e.g. 3600")?;
        match (cron, every_sec) {
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
        if let Some(c) = cron {
            parse_cron(c).map_err(|e| {
                bad(
                    "cron",
                    e,
                    "5 fields: minute hour day-of-month month day-of-week, e.g. 0 3 * * 1-5",
                )
            })?;
        }
        if let Some(n) = every_sec
            && n < min_every_sec
        {
            return Err(bad(
                "every_sec",
                format!("{n} is below the minimum of {min_every_sec}"),
                format!("at least {min_every_sec} (SCANQ_SCHEDULE_MIN_EVERY_SEC)"),
            ));
        }
        let timezone = str_field(obj, "timezone", "an IANA zone such as Europe/Paris")?;
        if let Some(tz) = timezone {
            if cron.is_none() {
                return Err(bad(
                    "timezone",
                    "applies to cron only",
                    "leave timezone out with every_sec",
                ));
            }
            chrono_tz::Tz::from_str(tz).map_err(|_| {
                bad(
                    "timezone",
                    format!("`{tz}` is not a known time zone"),
                    "an IANA zone such as UTC or Europe/Paris",
                )
            })?;
        }
        let overlap = match str_field(obj, "overlap", Overlap::ACCEPTED)? {
            None => Overlap::Skip,
            Some(o) => o.parse().map_err(|e: UnknownVariant| {
                bad("overlap", e.to_string(), Overlap::ACCEPTED.trim_end())
            })?,
        };
        let jitter_sec = int_field(obj, "jitter_sec", "0..=3600")?.unwrap_or(0);
        if jitter_sec > 3600 {
            return Err(bad(
                "jitter_sec",
                format!("{jitter_sec} is above 3600"),
                "0..=3600",
            ));
        }
        let catchup_sec = int_field(obj, "catchup_sec", "seconds, e.g. 600")?.unwrap_or(0);
        let start_at = time_field(obj, "start_at")?;
        let end_at = time_field(obj, "end_at")?;
        if let (Some(s), Some(e)) = (&start_at, &end_at)
            && parse_ms(e) <= parse_ms(s)
        {
            return Err(bad(
                "end_at",
                "is not after start_at",
                "a time after start_at",
            ));
        }
        Ok(Self {
            cron: cron.map(str::to_owned),
            timezone: timezone.map(str::to_owned),
            every_sec,
            jitter_sec,
            start_at,
            end_at,
            overlap,
            catchup_sec,
            template,
        })
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

    /// The first slot strictly after `after_ms` (ms since the epoch), or `None` when the
    /// schedule has ended. `anchor_ms` is where `every_sec` slots start counting.
    pub fn next_slot(&self, after_ms: u64, anchor_ms: u64) -> Option<u64> {
        let start = self.start_at.as_deref().map(parse_ms).unwrap_or(0);
        let after = after_ms.max(start.saturating_sub(1));
        let slot = if let Some(every) = self.every_sec {
            let every = every * 1000;
            let anchor = self.start_at.as_deref().map(parse_ms).unwrap_or(anchor_ms);
            if after < anchor {
                anchor
            } else {
                anchor + ((after - anchor) / every + 1) * every
            }
        } else {
            let cron = parse_cron(self.cron.as_deref()?).ok()?;
            let tz: chrono_tz::Tz = self.timezone.as_deref().unwrap_or("UTC").parse().ok()?;
            let t = tz.timestamp_millis_opt(after as i64).single()?;
            let next = cron.find_next_occurrence(&t, false).ok()?;
            next.timestamp_millis() as u64
        };
        match self.end_at.as_deref().map(parse_ms) {
            Some(end) if slot > end => None,
            _ => Some(slot),
        }
    }

    /// The latest slot at or before `now_ms` and after `since_ms`, if any.
    pub fn latest_slot(&self, since_ms: u64, now_ms: u64, anchor_ms: u64) -> Option<u64> {
        let mut slot = self
            .next_slot(since_ms, anchor_ms)
            .filter(|s| *s <= now_ms)?;
        if let Some(every) = self.every_sec {
            let every = every * 1000;
            slot += (now_ms - slot) / every * every;
            return Some(slot);
        }
        // Cron: walk forward (bounded: a cron slot is at least a minute apart).
        for _ in 0..100_000 {
            match self.next_slot(slot, anchor_ms) {
                Some(n) if n <= now_ms => slot = n,
                _ => break,
            }
        }
        Some(slot)
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
        h % (self.jitter_sec * 1000 + 1)
    }
}

/// Milliseconds since the epoch of an RFC 3339 time (checked at parse time).
fn parse_ms(s: &str) -> u64 {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis().max(0) as u64)
        .unwrap_or(0)
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
            template: Value::Null,
        };
        d.cron = cadence["cron"].as_str().map(str::to_owned);
        d.timezone = cadence["timezone"].as_str().map(str::to_owned);
        d.every_sec = cadence["every_sec"].as_u64();
        d
    }

    #[test]
    fn every_sec_slots_count_from_the_anchor() {
        let d = def(serde_json::json!({"every_sec": 10}));
        assert_eq!(d.next_slot(1_000, 1_000), Some(11_000));
        assert_eq!(d.next_slot(10_999, 1_000), Some(11_000));
        assert_eq!(d.next_slot(11_000, 1_000), Some(21_000));
        assert_eq!(d.latest_slot(1_000, 45_000, 1_000), Some(41_000));
        assert_eq!(d.latest_slot(1_000, 5_000, 1_000), None);
    }

    #[test]
    fn cron_slots_follow_the_time_zone() {
        let d = def(serde_json::json!({"cron": "0 3 * * *", "timezone": "Europe/Paris"}));
        // 2026-11-29T00:00:00Z; 03:00 in Paris (UTC+1) is 02:00Z.
        let midnight = 1_795_910_400_000;
        assert_eq!(d.next_slot(midnight, 0), Some(midnight + 2 * 3_600_000));
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
