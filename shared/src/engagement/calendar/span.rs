//! Windows laid out as spans of real time: each window on each local day around an instant
//! becomes `[start, end)` in ms since the epoch (DST gaps and repeats resolved), and spans that
//! touch or overlap are merged, so a job's open span ends where the last of them ends.

use chrono::{DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike};
use chrono_tz::Tz;

use super::{Weekday, Window, clock};

/// Local days laid out before the instant's own day (an overnight window that began two days
/// ago across a DST change still counts) and after it (a weekly window recurs within 7 days; a
/// blackout hop starts a new search from its end).
const BEFORE: u64 = 2;
const AFTER: u64 = 9;

/// The merged window span that contains `t`, or else the first that starts after it, as
/// `(start, end)`; `end` is `None` when the span runs past every day laid out (it covers more
/// than a week without a break, so the windows never close). No windows: always open. `None`:
/// no window opens within the days laid out (no window names any day).
pub(super) fn next_open(windows: &[Window], tz: Tz, t: u64) -> Option<(u64, Option<u64>)> {
    if windows.is_empty() {
        return Some((0, None));
    }
    let day = DateTime::from_timestamp_millis(i64::try_from(t).ok()?)?
        .with_timezone(&tz)
        .date_naive();
    let first = day.checked_sub_days(Days::new(BEFORE))?;
    let last = day.checked_add_days(Days::new(AFTER))?;
    // Every window starting on `first..=last` ends before the local midnight after `last`.
    let edge = instant(
        tz,
        last.checked_add_days(Days::new(1))?.and_hms_opt(0, 0, 0)?,
    );
    let spans = merged(windows, tz, first, last);
    spans
        .into_iter()
        .find(|&(_, e)| e > t)
        .map(|(s, e)| (s, (e < edge).then_some(e)))
}

/// Every window on every local day from `first` to `last`, as sorted, merged spans.
fn merged(windows: &[Window], tz: Tz, first: NaiveDate, last: NaiveDate) -> Vec<(u64, u64)> {
    let mut spans = Vec::new();
    for d in first.iter_days().take_while(|d| *d <= last) {
        let wd = weekday(d.weekday());
        for w in windows.iter().filter(|w| w.days.contains(&wd)) {
            let (Some(s), Some(e)) = (clock(&w.start), clock(&w.end)) else {
                continue;
            };
            let end_day = if e < s { d.succ_opt() } else { Some(d) };
            let (Some(sl), Some(el)) = (at(d, s), end_day.and_then(|ed| at(ed, e))) else {
                continue;
            };
            let (s_ms, e_ms) = (instant(tz, sl), instant(tz, el));
            if e_ms > s_ms {
                spans.push((s_ms, e_ms));
            }
        }
    }
    spans.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(spans.len());
    for (s, e) in spans {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

fn at(d: NaiveDate, secs: u32) -> Option<NaiveDateTime> {
    d.and_hms_opt(secs / 3600, secs / 60 % 60, secs % 60)
}

/// The instant a local time names in `tz`, in ms since the epoch: a time that occurs twice
/// takes the earlier; a time skipped by a DST gap moves to the first valid minute after it.
pub(super) fn instant(tz: Tz, local: NaiveDateTime) -> u64 {
    let mut l = local;
    // No zone skips more than a day; a time past it is read as UTC rather than loop.
    for _ in 0..=24 * 60 {
        match tz.from_local_datetime(&l) {
            LocalResult::Single(x) | LocalResult::Ambiguous(x, _) => {
                return u64::try_from(x.timestamp_millis()).unwrap_or(0);
            }
            LocalResult::None => {
                let whole = l.with_second(0).unwrap_or(l);
                l = whole + chrono::Duration::minutes(1);
            }
        }
    }
    u64::try_from(local.and_utc().timestamp_millis()).unwrap_or(0)
}

fn weekday(d: chrono::Weekday) -> Weekday {
    match d {
        chrono::Weekday::Mon => Weekday::Mon,
        chrono::Weekday::Tue => Weekday::Tue,
        chrono::Weekday::Wed => Weekday::Wed,
        chrono::Weekday::Thu => Weekday::Thu,
        chrono::Weekday::Fri => Weekday::Fri,
        chrono::Weekday::Sat => Weekday::Sat,
        chrono::Weekday::Sun => Weekday::Sun,
    }
}
