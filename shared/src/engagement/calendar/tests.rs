//! The calendar with a fixed clock: time zones, overnight windows, DST change days, blackouts,
//! merged windows, the bounds of a body, and a property test of the next opening.

use proptest::prelude::*;

use super::*;

/// Ms since the epoch of an RFC 3339 time.
fn ms(s: &str) -> u64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .expect("a test time")
        .timestamp_millis() as u64
}

fn window(days: &[Weekday], start: &str, end: &str) -> Window {
    Window {
        days: days.to_vec(),
        start: start.into(),
        end: end.into(),
    }
}

fn cal(tz: &str, windows: Vec<Window>) -> Calendar {
    Calendar {
        timezone: Some(tz.into()),
        windows,
        blackouts: vec![],
    }
}

fn blackout(start: &str, end: &str) -> Blackout {
    Blackout {
        start_ms: ms(start),
        end_ms: ms(end),
        reason: None,
    }
}

fn open_until(s: &str) -> Timing {
    Timing::Open {
        closes_ms: Some(ms(s)),
    }
}

fn opens(s: &str) -> Timing {
    Timing::Opens { at_ms: ms(s) }
}

const WEEKDAYS: &[Weekday] = &[
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
];

// 2026-12-07 is a Monday; 2026-12-09 a Wednesday, 2026-12-11 a Friday.

#[test]
fn no_windows_and_no_blackouts_is_always_open() {
    let c = Calendar::default();
    assert_eq!(
        c.timing(ms("2026-12-09T03:00:00Z")),
        Timing::Open { closes_ms: None }
    );
}

#[test]
fn office_hours_in_utc_open_close_and_skip_the_weekend() {
    let c = cal("UTC", vec![window(WEEKDAYS, "09:00", "17:00")]);
    assert_eq!(
        c.timing(ms("2026-12-09T10:00:00Z")),
        open_until("2026-12-09T17:00:00Z")
    );
    assert_eq!(
        c.timing(ms("2026-12-09T18:00:00Z")),
        opens("2026-12-10T09:00:00Z")
    );
    assert_eq!(
        c.timing(ms("2026-12-11T17:00:00Z")),
        opens("2026-12-14T09:00:00Z"),
        "the end is exclusive, and the weekend is skipped"
    );
    assert_eq!(
        c.timing(ms("2026-12-09T09:00:00Z")),
        open_until("2026-12-09T17:00:00Z"),
        "the start is inclusive"
    );
}

#[test]
fn windows_are_read_in_the_calendars_time_zone() {
    // Berlin is UTC+1 in December, New York UTC-5, Kolkata UTC+5:30 all year.
    let at = ms("2026-12-07T07:30:00Z");
    let berlin = cal(
        "Europe/Berlin",
        vec![window(&[Weekday::Mon], "09:00", "10:00")],
    );
    assert_eq!(berlin.timing(at), opens("2026-12-07T08:00:00Z"));
    let ny = cal(
        "America/New_York",
        vec![window(&[Weekday::Mon], "02:00", "03:00")],
    );
    assert_eq!(ny.timing(at), open_until("2026-12-07T08:00:00Z"));
    let kolkata = cal(
        "Asia/Kolkata",
        vec![window(&[Weekday::Mon], "13:00:30", "14:00")],
    );
    assert_eq!(kolkata.timing(at), opens("2026-12-07T07:30:30Z"));
    assert_eq!(
        kolkata.timing(ms("2026-12-07T08:00:00Z")),
        open_until("2026-12-07T08:30:00Z")
    );
}

#[test]
fn the_weekday_is_the_local_one() {
    // Monday 01:00 in Kolkata is still Sunday in UTC.
    let c = cal(
        "Asia/Kolkata",
        vec![window(&[Weekday::Mon], "00:00", "02:00")],
    );
    assert_eq!(
        c.timing(ms("2026-12-06T19:00:00Z")),
        open_until("2026-12-06T20:30:00Z")
    );
}

#[test]
fn an_overnight_window_runs_into_the_next_day() {
    let c = cal("UTC", vec![window(&[Weekday::Fri], "22:00", "06:00")]);
    assert_eq!(
        c.timing(ms("2026-12-12T03:00:00Z")),
        open_until("2026-12-12T06:00:00Z"),
        "saturday morning belongs to friday's window"
    );
    assert_eq!(
        c.timing(ms("2026-12-11T21:00:00Z")),
        opens("2026-12-11T22:00:00Z")
    );
    assert_eq!(
        c.timing(ms("2026-12-12T07:00:00Z")),
        opens("2026-12-18T22:00:00Z")
    );
}

#[test]
fn a_start_skipped_by_spring_forward_opens_at_the_first_valid_time() {
    // Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00Z).
    let c = cal(
        "Europe/Berlin",
        vec![window(&[Weekday::Sun], "02:30", "04:00")],
    );
    assert_eq!(
        c.timing(ms("2026-03-29T00:30:00Z")),
        opens("2026-03-29T01:00:00Z")
    );
    assert_eq!(
        c.timing(ms("2026-03-29T01:30:00Z")),
        open_until("2026-03-29T02:00:00Z")
    );
}

#[test]
fn an_overnight_window_across_spring_forward_is_an_hour_shorter() {
    // Sat 22:00 CET (21:00Z) to Sun 06:00 CEST (04:00Z): seven hours.
    let c = cal(
        "Europe/Berlin",
        vec![window(&[Weekday::Sat], "22:00", "06:00")],
    );
    assert_eq!(
        c.timing(ms("2026-03-28T21:00:00Z")),
        open_until("2026-03-29T04:00:00Z")
    );
}

#[test]
fn an_ambiguous_time_on_fall_back_takes_the_earlier() {
    // New York, 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:30 happens twice
    // (05:30Z EDT and 06:30Z EST).
    let c = cal(
        "America/New_York",
        vec![window(&[Weekday::Sun], "01:30", "03:00")],
    );
    assert_eq!(
        c.timing(ms("2026-11-01T05:00:00Z")),
        opens("2026-11-01T05:30:00Z")
    );
    assert_eq!(
        c.timing(ms("2026-11-01T06:45:00Z")),
        open_until("2026-11-01T08:00:00Z"),
        "03:00 EST is 08:00Z: the window is 2.5 hours long that day"
    );
}

#[test]
fn a_blackout_inside_a_window_closes_it_early_and_defers_to_its_end() {
    let mut c = cal("UTC", vec![window(WEEKDAYS, "09:00", "17:00")]);
    c.blackouts = vec![blackout("2026-12-09T12:00:00Z", "2026-12-09T13:00:00Z")];
    assert_eq!(
        c.timing(ms("2026-12-09T10:00:00Z")),
        open_until("2026-12-09T12:00:00Z")
    );
    assert_eq!(
        c.timing(ms("2026-12-09T12:30:00Z")),
        opens("2026-12-09T13:00:00Z")
    );
    assert_eq!(
        c.timing(ms("2026-12-09T13:00:00Z")),
        open_until("2026-12-09T17:00:00Z")
    );
}

#[test]
fn a_blackout_over_a_windows_end_defers_to_the_next_window() {
    let mut c = cal("UTC", vec![window(WEEKDAYS, "09:00", "17:00")]);
    c.blackouts = vec![blackout("2026-12-09T16:00:00Z", "2026-12-10T10:00:00Z")];
    assert_eq!(
        c.timing(ms("2026-12-09T16:30:00Z")),
        opens("2026-12-10T10:00:00Z"),
        "thursday's window opens when the blackout ends"
    );
}

#[test]
fn overlapping_and_chained_blackouts_are_hopped_over() {
    let c = Calendar {
        blackouts: vec![
            blackout("2026-12-09T00:00:00Z", "2026-12-20T00:00:00Z"),
            blackout("2026-12-19T00:00:00Z", "2026-12-30T00:00:00Z"),
            blackout("2026-12-30T00:00:00Z", "2026-12-31T00:00:00Z"),
        ],
        ..Calendar::default()
    };
    assert_eq!(
        c.timing(ms("2026-12-10T00:00:00Z")),
        opens("2026-12-31T00:00:00Z")
    );
    assert_eq!(
        c.timing(ms("2026-12-08T00:00:00Z")),
        open_until("2026-12-09T00:00:00Z"),
        "with no windows, the next blackout closes the open span"
    );
}

#[test]
fn a_long_blackout_defers_to_the_first_window_after_it() {
    let mut c = cal("UTC", vec![window(&[Weekday::Mon], "09:00", "10:00")]);
    c.blackouts = vec![blackout("2026-12-01T00:00:00Z", "2027-01-20T00:00:00Z")];
    // 2027-01-25 is a Monday.
    assert_eq!(
        c.timing(ms("2026-12-07T09:30:00Z")),
        opens("2027-01-25T09:00:00Z")
    );
}

#[test]
fn touching_and_overlapping_windows_merge() {
    let c = cal(
        "UTC",
        vec![
            window(&[Weekday::Wed], "09:00", "12:00"),
            window(&[Weekday::Wed], "12:00", "14:00"),
            window(&[Weekday::Wed], "13:00", "18:00:30"),
        ],
    );
    assert_eq!(
        c.timing(ms("2026-12-09T10:00:00Z")),
        open_until("2026-12-09T18:00:30Z")
    );
}

#[test]
fn windows_covering_the_whole_week_never_close() {
    let all = Weekday::ALL;
    let c = cal(
        "Europe/Berlin",
        vec![window(all, "00:00", "12:00"), window(all, "12:00", "00:00")],
    );
    assert_eq!(
        c.timing(ms("2026-03-29T01:30:00Z")),
        Timing::Open { closes_ms: None }
    );
}

#[test]
fn a_calendar_whose_windows_name_no_day_never_opens() {
    // `check` refuses such a window; timing still answers for one read from an old store.
    let c = cal("UTC", vec![window(&[], "09:00", "10:00")]);
    assert_eq!(c.timing(ms("2026-12-09T10:00:00Z")), Timing::Never);
}

#[test]
fn check_accepts_a_full_calendar() {
    let mut c = cal(
        "America/New_York",
        vec![
            window(WEEKDAYS, "09:00", "17:00:30"),
            window(&[Weekday::Fri], "22:00", "06:00"),
        ],
    );
    c.blackouts = vec![blackout("2026-12-24T00:00:00Z", "2026-12-27T00:00:00Z")];
    assert_eq!(c.check(), Ok(()));
    assert_eq!(Calendar::default().check(), Ok(()));
}

fn refused_field(c: &Calendar) -> String {
    c.check().expect_err("refused").field
}

#[test]
fn check_refuses_an_unknown_time_zone() {
    let c = cal("Mars/Olympus_Mons", vec![]);
    let err = c.check().expect_err("refused");
    assert_eq!(err.field, "timezone");
    assert!(err.hint.contains("Europe/Berlin"), "{err:?}");
}

#[test]
fn check_refuses_bad_days_and_times_naming_the_window() {
    let ok = window(&[Weekday::Mon], "09:00", "10:00");
    let cases = [
        (window(&[], "09:00", "10:00"), "windows[1].days"),
        (
            window(
                &[Weekday::Mon, Weekday::Tue, Weekday::Mon],
                "09:00",
                "10:00",
            ),
            "windows[1].days",
        ),
        (
            window(&[Weekday::Mon], "24:00", "10:00"),
            "windows[1].start",
        ),
        (window(&[Weekday::Mon], "9:00", "10:00"), "windows[1].start"),
        (
            window(&[Weekday::Mon], "09:60", "10:00"),
            "windows[1].start",
        ),
        (
            window(&[Weekday::Mon], "09:00:60", "10:00"),
            "windows[1].start",
        ),
        (
            window(&[Weekday::Mon], "09:00:00:00", "10:00"),
            "windows[1].start",
        ),
        (
            window(&[Weekday::Mon], "+9:00", "10:00"),
            "windows[1].start",
        ),
        (window(&[Weekday::Mon], "09:00", ""), "windows[1].end"),
        (
            window(&[Weekday::Mon], "09:00", "09:00:00"),
            "windows[1].end",
        ),
    ];
    for (bad, field) in cases {
        let c = cal("UTC", vec![ok.clone(), bad.clone()]);
        assert_eq!(refused_field(&c), field, "{bad:?}");
    }
}

#[test]
fn check_refuses_too_many_windows_or_blackouts_and_backwards_blackouts() {
    let w = window(&[Weekday::Mon], "09:00", "10:00");
    assert_eq!(
        refused_field(&cal("UTC", vec![w; MAX_WINDOWS + 1])),
        "windows"
    );
    let b = blackout("2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z");
    let mut c = Calendar {
        blackouts: vec![b.clone(); MAX_BLACKOUTS + 1],
        ..Calendar::default()
    };
    assert_eq!(refused_field(&c), "blackouts");
    c.blackouts = vec![b, blackout("2026-12-02T00:00:00Z", "2026-12-02T00:00:00Z")];
    assert_eq!(refused_field(&c), "blackouts[1].end");
}

const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
];

fn any_window() -> impl Strategy<Value = Window> {
    (
        proptest::sample::subsequence(Weekday::ALL.to_vec(), 1..=7),
        0u32..96,
        0u32..96,
    )
        .prop_filter("start != end", |(_, s, e)| s != e)
        .prop_map(|(days, s, e)| {
            let hm = |q: u32| format!("{:02}:{:02}", q / 4, q % 4 * 15);
            Window {
                days,
                start: hm(s),
                end: hm(e),
            }
        })
}

/// Around the spring and autumn changes of 2026 and ordinary days.
fn any_now() -> impl Strategy<Value = u64> {
    let bases = [
        ms("2026-03-27T00:00:00Z"),
        ms("2026-10-23T00:00:00Z"),
        ms("2026-11-30T00:00:00Z"),
        ms("2026-04-03T00:00:00Z"),
    ];
    (
        proptest::sample::select(bases.to_vec()),
        0u64..5 * 86_400_000,
    )
        .prop_map(|(b, o)| b + o)
}

fn any_calendar() -> impl Strategy<Value = (Calendar, u64)> {
    (
        proptest::sample::select(ZONES.to_vec()),
        proptest::collection::vec(any_window(), 0..4),
        any_now(),
        proptest::collection::vec((0u64..10 * 86_400_000, 1u64..3 * 86_400_000), 0..4),
    )
        .prop_map(|(tz, windows, now, bs)| {
            let blackouts = bs
                .into_iter()
                .map(|(off, len)| Blackout {
                    start_ms: now - 86_400_000 + off,
                    end_ms: now - 86_400_000 + off + len,
                    reason: None,
                })
                .collect();
            (
                Calendar {
                    timezone: Some(tz.into()),
                    windows,
                    blackouts,
                },
                now,
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// `Opens{at}` is open, and no instant before it is (sampled at the minute marks and
    /// just before `at`); `Open{closes}` stays open up to `closes` and not at it.
    #[test]
    fn the_next_opening_is_open_and_nothing_before_it_is((c, now) in any_calendar()) {
        prop_assert_eq!(c.check(), Ok(()));
        match c.timing(now) {
            Timing::Opens { at_ms } => {
                prop_assert!(at_ms > now);
                let is_open = matches!(c.timing(at_ms), Timing::Open { .. });
                prop_assert!(is_open, "{:?} at {}", c.timing(at_ms), at_ms);
                let step = ((at_ms - now) / 200).max(60_000);
                let mut t = now;
                while t < at_ms {
                    prop_assert_eq!(c.timing(t), Timing::Opens { at_ms });
                    t += step;
                }
                prop_assert_eq!(c.timing(at_ms - 1), Timing::Opens { at_ms });
            }
            Timing::Open { closes_ms: Some(end) } => {
                prop_assert!(end > now);
                let is_open = matches!(c.timing(end - 1), Timing::Open { closes_ms: Some(e) } if e == end);
                prop_assert!(is_open, "{:?}", c.timing(end - 1));
                let after = matches!(c.timing(end), Timing::Open { .. });
                prop_assert!(!after, "still open at its close {}", end);
            }
            Timing::Open { closes_ms: None } => {}
            Timing::Never => prop_assert!(false, "a checked calendar always opens again"),
        }
    }
}
