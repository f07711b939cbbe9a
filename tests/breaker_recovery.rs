//! Half-open probes, admin actions, history, concurrency, embedding the library, failure paths.

#[path = "breaker/fixture.rs"]
mod fixture;

use fixture::{Fx, T0, settings};
use scanq::breaker::{
    Admission, Breaker, BreakerSettings, BreakerState, ForceAction, LIB_LUA, Outcome,
};

/// A breaker tripped at T0 whose open period ends at T0 + 60 s.
async fn tripped(s: BreakerSettings) -> Fx {
    let mut fx = Fx::new(s).await;
    fx.trip(T0).await;
    fx
}
const HALF: u64 = T0 + 60_000;

#[tokio::test]
async fn half_open_admits_exactly_k_probes_across_workers() {
    let mut fx = tripped(BreakerSettings {
        half_open_max_probes: 2,
        ..settings()
    })
    .await;

    let a = fx.admit(HALF, "w1", "p1").await;
    let b = fx.admit(HALF, "w2", "p2").await;
    let c = fx.admit(HALF + 10, "w3", "p3").await;

    assert!(
        matches!(a, Admission::Probe { .. }) && matches!(b, Admission::Probe { .. }),
        "{a:?} {b:?}"
    );
    assert_eq!(a.generation(), b.generation());
    let Admission::Reject { retry_after_ms } = c else {
        panic!("{c:?}")
    };
    assert!((1..=1_000).contains(&retry_after_ms));
    assert_eq!(fx.snapshot(HALF + 10).await.probes_in_flight, 2);
    // The same probe asking again keeps its slot rather than taking another.
    assert!(matches!(
        fx.admit(HALF + 20, "w1", "p1").await,
        Admission::Probe { .. }
    ));
}

#[tokio::test]
async fn an_expired_probe_lease_frees_its_slot() {
    let mut fx = tripped(settings()).await;
    assert!(matches!(
        fx.admit(HALF, "dead", "p-dead").await,
        Admission::Probe { .. }
    ));
    assert!(matches!(
        fx.admit(HALF + 29_999, "w2", "p2").await,
        Admission::Reject { .. }
    ));

    let after_lease = fx.admit(HALF + 30_000, "w2", "p2").await;

    assert!(
        matches!(after_lease, Admission::Probe { .. }),
        "{after_lease:?}"
    );
    assert_eq!(fx.snapshot(HALF + 30_000).await.probes_in_flight, 1);
}

#[tokio::test]
async fn enough_probe_successes_close_the_breaker() {
    let mut fx = tripped(settings()).await;
    let g = fx.admit(HALF, "w1", "p1").await.generation().unwrap();
    let (recorded, t) = fx.record(HALF + 1, g, Outcome::Success, "w1", "p1").await;
    assert_eq!((recorded, t), (Outcome::Success, None));
    assert_eq!(fx.snapshot(HALF + 1).await.probe_successes, 1);

    let g2 = fx.admit(HALF + 2, "w2", "p2").await.generation().unwrap();
    let (_, t) = fx.record(HALF + 3, g2, Outcome::Success, "w2", "p2").await;

    let t = t.expect("second success closes");
    assert_eq!(
        (t.from, t.to, t.reason.as_str()),
        (
            BreakerState::HalfOpen,
            BreakerState::Closed,
            "probe_success_threshold"
        )
    );
    let snap = fx.snapshot(HALF + 3).await;
    assert_eq!(
        (
            snap.consecutive_failures,
            snap.probes_in_flight,
            snap.re_trips
        ),
        (0, 0, 0)
    );
    assert!(matches!(
        fx.admit(HALF + 4, "w3", "").await,
        Admission::Allow { .. }
    ));
}

#[tokio::test]
async fn a_probe_failure_reopens_the_breaker() {
    let mut fx = tripped(settings()).await;
    let g = fx.admit(HALF, "w1", "p1").await.generation().unwrap();
    fx.record(HALF, g, Outcome::Success, "w1", "p1").await;
    let g = fx.admit(HALF + 1, "w1", "p2").await.generation().unwrap();

    let (recorded, t) = fx.record(HALF + 2, g, Outcome::Failure, "w1", "p2").await;

    assert_eq!(recorded, Outcome::Failure);
    assert_eq!(t.unwrap().to, BreakerState::Open);
    assert_eq!(
        fx.admit(HALF + 2, "w1", "p3").await,
        Admission::Reject {
            retry_after_ms: 90_000
        }
    );
}

#[tokio::test]
async fn admit_reports_the_lazy_move_to_half_open() {
    let mut fx = tripped(settings()).await;
    let s = fx.settings.clone();
    let (admission, t) = fx
        .breaker
        .admit_traced(&mut fx.con, &fx.keys, &s, Some(HALF), "w1", "p1")
        .await
        .unwrap();
    assert!(matches!(admission, Admission::Probe { .. }));
    let t = t.expect("transition reported");
    assert_eq!(
        (t.from, t.to, t.reason.as_str()),
        (
            BreakerState::Open,
            BreakerState::HalfOpen,
            "open_period_elapsed"
        )
    );
}

#[tokio::test]
async fn forced_open_rejects_everything_until_closed() {
    let mut fx = Fx::new(settings()).await;
    let s = fx.settings.clone();
    let t = fx
        .breaker
        .force(&mut fx.con, &fx.keys, &s, Some(T0), ForceAction::Open)
        .await
        .unwrap();
    assert_eq!(t.unwrap().to, BreakerState::ForcedOpen);
    assert_eq!(
        fx.breaker
            .force(&mut fx.con, &fx.keys, &s, Some(T0), ForceAction::Open)
            .await
            .unwrap(),
        None
    );

    for later in [T0, T0 + 60_000, T0 + 86_400_000] {
        assert!(matches!(
            fx.admit(later, "w1", "p").await,
            Admission::Reject { .. }
        ));
        assert_eq!(fx.snapshot(later).await.state, BreakerState::ForcedOpen);
    }

    let t = fx
        .breaker
        .force(&mut fx.con, &fx.keys, &s, Some(T0 + 1), ForceAction::Close)
        .await
        .unwrap();
    assert_eq!((t.unwrap().reason.as_str()), "forced_close");
    assert!(matches!(
        fx.admit(T0 + 2, "w1", "").await,
        Admission::Allow { .. }
    ));
    assert_eq!(
        fx.breaker
            .force(&mut fx.con, &fx.keys, &s, Some(T0 + 3), ForceAction::Close)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn reset_clears_counts_errors_and_backoff() {
    let mut fx = tripped(settings()).await;
    let g = fx.admit(HALF, "w1", "p").await.generation().unwrap();
    fx.record(HALF, g, Outcome::Failure, "w1", "p").await;
    assert_eq!(fx.snapshot(HALF).await.re_trips, 1);
    let s = fx.settings.clone();

    let t = fx
        .breaker
        .force(
            &mut fx.con,
            &fx.keys,
            &s,
            Some(HALF + 1),
            ForceAction::Reset,
        )
        .await
        .unwrap();

    assert_eq!(t.unwrap().to, BreakerState::Closed);
    let snap = fx.snapshot(HALF + 1).await;
    assert_eq!(
        (snap.state, snap.consecutive_failures, snap.re_trips),
        (BreakerState::Closed, 0, 0)
    );
    assert!(snap.last_errors.is_empty() && snap.opened_at_ms.is_none());
    fx.trip(HALF + 2).await;
    assert_eq!(fx.snapshot(HALF + 2).await.open_period_ms, Some(60_000));
}

#[tokio::test]
async fn a_disabled_breaker_always_allows_and_never_trips() {
    let mut fx = Fx::new(settings()).await;
    let s = fx.settings.clone();
    fx.breaker
        .force(&mut fx.con, &fx.keys, &s, Some(T0), ForceAction::Disable)
        .await
        .unwrap();

    for i in 0..20 {
        let (recorded, t) = fx.run(T0 + i, &format!("w{i}"), Outcome::Failure).await;
        assert_eq!((recorded, t), (Outcome::Ignored, None));
    }

    assert!(matches!(
        fx.admit(T0 + 100, "w1", "").await,
        Admission::Allow { .. }
    ));
    assert_eq!(fx.snapshot(T0 + 100).await.state, BreakerState::Disabled);
}

#[tokio::test]
async fn history_keeps_the_last_100_transitions_newest_first() {
    let mut fx = Fx::new(settings()).await;
    let s = fx.settings.clone();
    for i in 0..60 {
        fx.breaker
            .force(
                &mut fx.con,
                &fx.keys,
                &s,
                Some(T0 + 2 * i),
                ForceAction::Open,
            )
            .await
            .unwrap();
        fx.breaker
            .force(
                &mut fx.con,
                &fx.keys,
                &s,
                Some(T0 + 2 * i + 1),
                ForceAction::Close,
            )
            .await
            .unwrap();
    }

    let snap = fx.snapshot(T0 + 200).await;

    assert_eq!(snap.history.len(), 100);
    assert_eq!(snap.generation, 120);
    let newest = &snap.history[0];
    assert_eq!(
        (newest.from, newest.to, newest.generation, newest.at_ms),
        (
            BreakerState::ForcedOpen,
            BreakerState::Closed,
            120,
            T0 + 119
        )
    );
    for pair in snap.history.windows(2) {
        assert_eq!(pair[0].from, pair[1].to, "history chains from/to");
        assert_eq!(pair[0].generation, pair[1].generation + 1);
    }
}

#[tokio::test]
async fn fifty_concurrent_admits_in_half_open_admit_exactly_k() {
    let k = 3;
    let mut fx = tripped(BreakerSettings {
        half_open_max_probes: k,
        ..settings()
    })
    .await;
    assert!(matches!(
        fx.admit(HALF - 1, "w", "early").await,
        Admission::Reject { .. }
    ));
    let breaker = std::sync::Arc::new(Breaker::new());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let (breaker, keys, s) = (breaker.clone(), fx.keys.clone(), fx.settings.clone());
        let mut con = fx.server.con().await;
        tasks.spawn(async move {
            breaker
                .admit(
                    &mut con,
                    &keys,
                    &s,
                    Some(HALF),
                    &format!("w{i}"),
                    &format!("p{i}"),
                )
                .await
                .unwrap()
        });
    }

    let mut probes = 0;
    while let Some(admission) = tasks.join_next().await {
        if matches!(admission.unwrap(), Admission::Probe { .. }) {
            probes += 1;
        }
    }

    assert_eq!(probes, k);
    assert_eq!(fx.snapshot(HALF).await.probes_in_flight, u64::from(k));
}

#[tokio::test]
async fn the_library_works_when_prepended_to_another_script_body() {
    // The lead's claim/complete scripts are built exactly like this: lib .. body.
    let body = r#"
local bk = { state = KEYS[1], hist = KEYS[2], probes = KEYS[3], window = KEYS[4] }
local cfg = cjson.decode(ARGV[1])
local now = breaker_now(ARGV[2])
local out = {}
for i = 1, 5 do
  local d, g = breaker_admit(bk, cfg, now, 'w' .. i, 'job' .. i)
  local tr, label = breaker_record(bk, cfg, now, g, 'failure', 'w' .. i, 'job' .. i, 'signal')
  out[#out + 1] = d .. ':' .. label .. ':' .. (tr and tr.to or '-')
end
local d, g, retry = breaker_admit(bk, cfg, now, 'w9', 'job9')
redis.call('SET', KEYS[5], d)
out[#out + 1] = d .. ':' .. retry
return out
"#;
    let mut fx = Fx::new(settings()).await;
    let script = redis::Script::new(&format!("{LIB_LUA}{body}"));
    let k = &fx.keys;

    let out: Vec<String> = script
        .key(
            &[
                &k.state,
                &k.hist,
                &k.probes,
                &k.window,
                "test:{nmap}:claimed",
            ][..],
        )
        .arg(fx.settings.to_json())
        .arg(T0)
        .invoke_async(&mut fx.con)
        .await
        .unwrap();

    assert_eq!(
        out,
        [
            "allow:failure:-",
            "allow:failure:-",
            "allow:failure:-",
            "allow:failure:-",
            "allow:failure:open",
            "reject:60000"
        ]
    );
    assert_eq!(fx.snapshot(T0).await.state, BreakerState::Open);
}

#[tokio::test]
async fn a_bad_clock_override_is_a_script_error() {
    let mut fx = Fx::new(settings()).await;
    let script = redis::Script::new(scanq::breaker::GET_LUA);
    let k = &fx.keys;
    let err = script
        .key(&[&k.state, &k.hist, &k.probes, &k.window][..])
        .arg("yesterday")
        .invoke_async::<Vec<String>>(&mut fx.con)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("now_ms override is not a number"),
        "{err}"
    );
}

#[tokio::test]
async fn calls_fail_with_an_error_when_redis_is_down() {
    let mut fx = Fx::new(settings()).await;
    fx.server.kill();
    let s = fx.settings.clone();
    let result = fx
        .breaker
        .admit(&mut fx.con, &fx.keys, &s, Some(T0), "w1", "")
        .await;
    assert!(result.is_err(), "{result:?}");
}

#[tokio::test]
async fn a_fresh_breaker_snapshot_is_closed_and_empty() {
    let mut fx = Fx::new(settings()).await;
    let snap = fx.snapshot(T0).await;
    assert_eq!(
        (snap.state, snap.generation, snap.retry_after_ms),
        (BreakerState::Closed, 0, 0)
    );
    assert!(snap.history.is_empty() && snap.last_errors.is_empty());
    let json = serde_json::to_value(&snap).unwrap();
    assert_eq!(json["state"], "closed");
}
