//! Schedules: a validated job template fired on a cadence (`cron` + `timezone`, or `every_sec`),
//! by whichever API or worker process looks first, exactly once per slot fleet-wide.
//!
//! | module | owns |
//! |---|---|
//! | this file | the definition ([`ScheduleDef`]) and its bounds |
//! | `slots` | checked slot arithmetic: next slot, catch-up slot, a cron's smallest gap, jitter |
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
mod slots;
mod store;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use body::{OWN_FIELDS, ScheduleBody, TEMPLATE_FIELDS};
pub use fire::{FireResult, ParkReason, Refusal, RunFinished, Scheduler, run_id};
pub use service::{
    LastRun, MAX_BIG_SCAN_ID, MAX_ID, RunEntry, ScheduleDocument, ScheduleError, ScheduleState,
    Upserted, pause_action, schedule_id,
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
