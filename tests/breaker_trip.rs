//! Closed → open: consecutive and rate trips, quorum, open period and back-off, generations.

#[path = "breaker/fixture.rs"]
mod fixture;

use fixture::{Fx, T0, settings};
use scanq::breaker::{Admission, BreakerSettings, BreakerState, ForceAction, Outcome, TripMode};

#[tokio::test]
async fn consecutive_failures_trip_the_breaker_at_the_threshold() {
    let mut fx = Fx::new(settings()).await;
    for i in 0..4 {
        let (recorded, t) = fx.run(T0 + i, "w1", Outcome::Failure).await;
        assert_eq!(recorded, Outcome::Failure);
        assert!(t.is_none(), "tripped after {} failures", i + 1);
    }
    assert_eq!(fx.snapshot(T0 + 4).await.consecutive_failures, 4);

    let (_, t) = fx.run(T0 + 4, "w1", Outcome::Failure).await;

    let t = t.expect("fifth failure trips");
    assert_eq!(
        (t.from, t.to, t.reason.as_str()),
        (
            BreakerState::Closed,
            BreakerState::Open,
            "failure_threshold"
        )
    );
    assert_eq!(t.at_ms, T0 + 4);
    let snap = fx.snapshot(T0 + 4).await;
    assert_eq!(snap.state, BreakerState::Open);
    assert_eq!(snap.generation, t.generation);
    assert_eq!(snap.last_errors.len(), 5);
    assert_eq!(snap.last_errors[0].reason, "spawn_error: boom");
}

#[tokio::test]
async fn a_success_resets_the_consecutive_count() {
    let mut fx = Fx::new(settings()).await;
    for _ in 0..4 {
        fx.run(T0, "w1", Outcome::Failure).await;
    }
    fx.run(T0, "w1", Outcome::Success).await;
    for _ in 0..4 {
        let (_, t) = fx.run(T0, "w1", Outcome::Failure).await;
        assert!(t.is_none());
    }
    assert_eq!(fx.snapshot(T0).await.state, BreakerState::Closed);
}

#[tokio::test]
async fn the_open_breaker_rejects_with_the_time_left_until_half_open() {
    let mut fx = Fx::new(settings()).await;
    fx.trip(T0).await;

    assert_eq!(
        fx.admit(T0, "w9", "p1").await,
        Admission::Reject {
            retry_after_ms: 60_000
        }
    );
    assert_eq!(
        fx.admit(T0 + 59_000, "w9", "p1").await,
        Admission::Reject {
            retry_after_ms: 1_000
        }
    );
    let snap = fx.snapshot(T0 + 30_000).await;
    assert_eq!(
        (snap.retry_after_ms, snap.open_period_ms, snap.opened_at_ms),
        (30_000, Some(60_000), Some(T0))
    );

    let admitted = fx.admit(T0 + 60_000, "w9", "p1").await;

    assert!(matches!(admitted, Admission::Probe { .. }), "{admitted:?}");
    assert_eq!(fx.snapshot(T0 + 60_000).await.state, BreakerState::HalfOpen);
}

#[tokio::test]
async fn the_rate_mode_trips_only_once_the_window_holds_min_calls() {
    let s = BreakerSettings {
        mode: TripMode::Rate,
        failure_rate: 0.5,
        min_calls: 10,
        window_sec: 60,
        ..settings()
    };
    let mut fx = Fx::new(s).await;
    for i in 0..9 {
        let (_, t) = fx.run(T0 + i * 1000, "w1", Outcome::Failure).await;
        assert!(t.is_none(), "tripped with only {} calls", i + 1);
    }
    let snap = fx.snapshot(T0 + 9_000).await;
    assert_eq!((snap.window_calls, snap.window_failures), (9, 9));

    let (_, t) = fx.run(T0 + 9_000, "w1", Outcome::Failure).await;

    let t = t.expect("tenth call at 100 % failures trips");
    assert_eq!(t.reason, "failure_rate");
}

#[tokio::test]
async fn the_rate_mode_ignores_calls_that_left_the_window_and_low_rates() {
    let s = BreakerSettings {
        mode: TripMode::Rate,
        failure_rate: 0.5,
        min_calls: 4,
        window_sec: 10,
        ..settings()
    };
    let mut fx = Fx::new(s).await;
    // Three failures long ago, then one now: the window holds only one call.
    for i in 0..3 {
        fx.run(T0 + i, "w1", Outcome::Failure).await;
    }
    let (_, t) = fx.run(T0 + 20_000, "w1", Outcome::Failure).await;
    assert!(t.is_none());
    // Below the rate: 1 failure in 4 calls, then 2 in 6.
    for _ in 0..3 {
        fx.run(T0 + 20_001, "w1", Outcome::Success).await;
    }
    let (_, t) = fx.run(T0 + 20_002, "w1", Outcome::Success).await;
    assert!(t.is_none());
    let (_, t) = fx.run(T0 + 20_003, "w1", Outcome::Failure).await;
    assert!(t.is_none(), "2 of 6 is below 0.5");
    let (_, t) = fx.run(T0 + 20_004, "w1", Outcome::Failure).await;
    assert!(t.is_none(), "3 of 7 is below 0.5");
    let (_, t) = fx.run(T0 + 20_005, "w1", Outcome::Failure).await;
    assert!(t.is_some(), "4 of 8 reaches 0.5");
}

#[tokio::test]
async fn failures_from_one_worker_do_not_trip_a_quorum_of_two() {
    let s = BreakerSettings {
        min_workers: 2,
        ..settings()
    };
    let mut fx = Fx::new(s).await;
    for _ in 0..12 {
        let (_, t) = fx.run(T0, "w1", Outcome::Failure).await;
        assert!(t.is_none(), "one worker alone tripped the breaker");
    }

    let (_, t) = fx.run(T0, "w2", Outcome::Failure).await;

    assert_eq!(
        t.expect("a second worker completes the quorum").to,
        BreakerState::Open
    );
}

#[tokio::test]
async fn the_rate_mode_quorum_counts_distinct_failing_workers() {
    let s = BreakerSettings {
        mode: TripMode::Rate,
        min_calls: 3,
        min_workers: 2,
        ..settings()
    };
    let mut fx = Fx::new(s).await;
    for _ in 0..5 {
        let (_, t) = fx.run(T0, "w1", Outcome::Failure).await;
        assert!(t.is_none());
    }
    fx.run(T0, "w2", Outcome::Success).await;

    let (_, t) = fx.run(T0, "w2", Outcome::Failure).await;

    assert!(t.is_some());
}

/// Re-opens a half-open breaker: waits out the period, admits a probe and fails it.
async fn retrip(fx: &mut Fx, now: u64) -> u64 {
    let open_until = fx
        .snapshot(now)
        .await
        .open_until_ms
        .expect("breaker is open");
    let g = fx
        .admit(open_until, "w1", "probe")
        .await
        .generation()
        .expect("probe admitted");
    let (_, t) = fx
        .record(open_until, g, Outcome::Failure, "w1", "probe")
        .await;
    let t = t.expect("a probe failure re-opens");
    assert_eq!(
        (t.from, t.to, t.reason.as_str()),
        (BreakerState::HalfOpen, BreakerState::Open, "probe_failure")
    );
    open_until
}

#[tokio::test]
async fn the_open_period_grows_on_each_retrip_is_capped_and_resets_after_closing() {
    let mut fx = Fx::new(settings()).await;
    fx.trip(T0).await;
    let mut now = T0;
    let mut periods = vec![fx.snapshot(now).await.open_period_ms.unwrap()];
    for _ in 0..5 {
        now = retrip(&mut fx, now).await;
        periods.push(fx.snapshot(now).await.open_period_ms.unwrap());
    }
    assert_eq!(
        periods,
        vec![60_000, 90_000, 135_000, 202_500, 300_000, 300_000]
    );

    // Close it through probes, then trip again: back to the base period.
    let open_until = fx.snapshot(now).await.open_until_ms.unwrap();
    for i in 0..2 {
        let probe = format!("ok{i}");
        let g = fx
            .admit(open_until, "w1", &probe)
            .await
            .generation()
            .unwrap();
        fx.record(open_until, g, Outcome::Success, "w1", &probe)
            .await;
    }
    assert_eq!(fx.snapshot(open_until).await.state, BreakerState::Closed);
    fx.trip(open_until + 1).await;
    assert_eq!(
        fx.snapshot(open_until + 1).await.open_period_ms,
        Some(60_000)
    );
}

#[tokio::test]
async fn jitter_keeps_the_open_period_within_its_bounds() {
    let mut fx = Fx::new(BreakerSettings {
        jitter: 0.1,
        ..Default::default()
    })
    .await;
    let mut seen = Vec::new();
    for round in 0..5 {
        let now = T0 + round * 1_000_000;
        fx.trip(now).await;
        let period = fx.snapshot(now).await.open_period_ms.unwrap();
        assert!((54_000..=66_000).contains(&period), "{period}");
        seen.push(period);
        fx.breaker
            .force(
                &mut fx.con,
                &fx.keys,
                &fx.settings,
                Some(now),
                ForceAction::Reset,
            )
            .await
            .unwrap();
    }
    assert!(
        seen.iter().any(|p| *p != seen[0]),
        "jitter never varied: {seen:?}"
    );
}

#[tokio::test]
async fn stale_generations_neither_close_nor_retrip_the_breaker() {
    let mut fx = Fx::new(settings()).await;
    // Slow jobs admitted while closed, before the trip.
    let old = fx.admit(T0, "slow", "").await.generation().unwrap();
    fx.trip(T0 + 1).await;
    let probe_gen = fx
        .admit(T0 + 60_001, "w1", "p1")
        .await
        .generation()
        .unwrap();

    // A stale success must not count as a probe success.
    for _ in 0..3 {
        let (recorded, t) = fx
            .record(T0 + 60_002, old, Outcome::Success, "slow", "")
            .await;
        assert_eq!((recorded, t), (Outcome::Ignored, None));
    }
    let snap = fx.snapshot(T0 + 60_002).await;
    assert_eq!(
        (snap.state, snap.probe_successes),
        (BreakerState::HalfOpen, 0)
    );

    // Close it properly, then stale failures (old closed gen, old probe gen) must not re-trip.
    fx.record(T0 + 60_003, probe_gen, Outcome::Success, "w1", "p1")
        .await;
    let g = fx
        .admit(T0 + 60_003, "w1", "p2")
        .await
        .generation()
        .unwrap();
    fx.record(T0 + 60_004, g, Outcome::Success, "w1", "p2")
        .await;
    assert_eq!(fx.snapshot(T0 + 60_004).await.state, BreakerState::Closed);
    for stale in [old, probe_gen].into_iter().cycle().take(10) {
        let (recorded, t) = fx
            .record(T0 + 60_005, stale, Outcome::Failure, "slow", "")
            .await;
        assert_eq!((recorded, t), (Outcome::Ignored, None));
    }
    let snap = fx.snapshot(T0 + 60_005).await;
    assert_eq!(
        (snap.state, snap.consecutive_failures),
        (BreakerState::Closed, 0)
    );
}

#[tokio::test]
async fn redis_time_is_used_when_no_clock_is_passed() {
    let mut fx = Fx::new(settings()).await;
    let s = fx.settings.clone();
    for i in 0..5 {
        let g = fx
            .breaker
            .admit(&mut fx.con, &fx.keys, &s, None, "w", "")
            .await
            .unwrap()
            .generation()
            .unwrap();
        fx.breaker
            .record(
                &mut fx.con,
                &fx.keys,
                &s,
                None,
                g,
                Outcome::Failure,
                &format!("w{i}"),
                "",
                "signal",
            )
            .await
            .unwrap();
    }

    let admitted = fx
        .breaker
        .admit(&mut fx.con, &fx.keys, &s, None, "w", "")
        .await
        .unwrap();

    let Admission::Reject { retry_after_ms } = admitted else {
        panic!("{admitted:?}")
    };
    assert!(
        (50_000..=60_000).contains(&retry_after_ms),
        "{retry_after_ms}"
    );
    let snap = fx
        .breaker
        .snapshot(&mut fx.con, &fx.keys, None)
        .await
        .unwrap();
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        snap.now_ms.abs_diff(wall) < 10_000,
        "Redis TIME {} vs wall {wall}",
        snap.now_ms
    );
}
