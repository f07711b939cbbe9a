//! A definition's slots: when it fires next, the latest slot a catch-up fires, a cron's
//! smallest gap, the per-slot jitter. Every computation is checked: a stored definition whose
//! slots would overflow is a [`SlotError`] (the scheduler parks it), never a panic or a wrapped
//! value.

use chrono::TimeZone;
use croner::Cron;

use super::{MAX_JITTER_SEC, MAX_SPAN_SEC, ScheduleDef, SlotError, bounded_time, parse_cron};

/// The parsed cadence of a definition.
enum Cadence {
    Every { ms: u64 },
    Cron { cron: Box<Cron>, tz: chrono_tz::Tz },
}

impl ScheduleDef {
    pub(super) fn tz(&self) -> chrono_tz::Tz {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{EARLIEST_MS, Overlap};
    use serde_json::Value;

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
}
