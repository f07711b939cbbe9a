//! Fleet-wide limits (per-token request rate, per-tenant queued cap) shared by two API
//! instances, and the request limits: body size, unknown fields, URI and header size, request
//! timeout, CORS.

use std::time::Duration;

use scanq::catalog::Catalog;
use scanq::config::Config;
use scanq_tests::*;
use serde_json::{Value, json};

struct Two {
    redis: RedisServer,
    _a: Task,
    _b: Task,
    a: String,
    b: String,
    tokens: Tokens,
    cfg: Config,
    catalog: Catalog,
    _dir: tempfile::TempDir,
}

/// Two API instances on one Redis and key prefix, as in a fleet. No worker unless a test starts one.
async fn two_apis(entries: &[(&str, &str, &str)], extra: &str, tune: impl Fn(&mut Config)) -> Two {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = Tokens::write(dir.path(), entries, extra);
    let fixture = Fixture::new();
    let catalog = Catalog::load(Some(&fixture.catalog(INPROCESS_TOOLS))).unwrap();
    let mut cfg = test_config(&redis, "limits");
    cfg.api_tokens_file = Some(tokens.path.clone());
    tune(&mut cfg);
    let (a_task, a) = start_api(cfg.clone(), catalog.clone()).await;
    let (b_task, b) = start_api(cfg.clone(), catalog.clone()).await;
    Two {
        redis,
        _a: a_task,
        _b: b_task,
        a,
        b,
        tokens,
        cfg,
        catalog,
        _dir: dir,
    }
}

async fn get(base: &str, path: &str, token: &str) -> reqwest::Response {
    http()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn submit(base: &str, token: &str, body: Value) -> reqwest::Response {
    http()
        .post(format!("{base}/v1/jobs"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn retry_after(resp: &reqwest::Response) -> u64 {
    resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn problem(resp: reqwest::Response) -> Value {
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    resp.json().await.unwrap()
}

#[tokio::test]
async fn the_request_rate_of_a_token_is_shared_by_two_api_instances() {
    // 3 requests at once, then one every 10 s (the lines continue the last entry, `slow`).
    let two = two_apis(
        &[("other", "blue", "read"), ("slow", "blue", "read")],
        "rate_per_sec = 0.1\nburst = 3\n",
        |_| {},
    )
    .await;
    let (c, d) = (&two.a, &two.b);
    let slow = two.tokens.get("slow");

    for base in [c, d, c] {
        assert_eq!(get(base, "/v1/jobs", slow).await.status(), 200);
    }
    let refused = get(d, "/v1/jobs", slow).await;

    assert_eq!(refused.status(), 429);
    let wait = retry_after(&refused);
    assert!((5..=10).contains(&wait), "Retry-After {wait}");
    let p = problem(refused).await;
    assert_eq!(p["error_type"], "resource_exhausted");
    assert!(p["detail"].as_str().unwrap().contains("slow"), "{p}");
    // Another token has its own bucket; health stays open.
    assert_eq!(
        get(c, "/v1/jobs", two.tokens.get("other")).await.status(),
        200
    );
    assert_eq!(
        http()
            .get(format!("{c}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn a_tenant_over_its_queued_cap_gets_429_on_any_instance() {
    let two = two_apis(
        &[
            ("blue", "blue", "submit,read,cancel"),
            ("red", "red", "submit,read"),
        ],
        "[tenants.blue]\nmax_queued = 2\n",
        |_| {},
    )
    .await;
    let blue = two.tokens.get("blue");
    let job = |cid: &str| json!({"tool": "noop", "target": "10.0.0.5", "correlation_id": cid});

    assert_eq!(submit(&two.a, blue, job("j1")).await.status(), 202);
    assert_eq!(submit(&two.b, blue, job("j2")).await.status(), 202);
    let refused = submit(&two.a, blue, job("j3")).await;

    assert_eq!(refused.status(), 429);
    assert!(retry_after(&refused) >= 1);
    let p = problem(refused).await;
    assert!(p["detail"].as_str().unwrap().contains("cap is 2"), "{p}");
    // Nothing was made for the refused one.
    assert_eq!(get(&two.b, "/v1/jobs/j3", blue).await.status(), 404);
    // Resubmitting a waiting job is still the idempotent 200, not a refusal.
    assert_eq!(submit(&two.b, blue, job("j1")).await.status(), 200);
    // Another tenant is not affected.
    assert_eq!(
        submit(&two.b, two.tokens.get("red"), job("j3"))
            .await
            .status(),
        202
    );
    // Cancelling a waiting job gives its place back.
    let cancelled = http()
        .delete(format!("{}/v1/jobs/j1", two.b))
        .bearer_auth(blue)
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    assert_eq!(submit(&two.a, blue, job("j3")).await.status(), 202);
}

#[tokio::test]
async fn jobs_that_finished_free_their_tenants_places() {
    let two = two_apis(
        &[("blue", "blue", "submit,read")],
        "[tenants.blue]\nmax_queued = 1\n",
        |_| {},
    )
    .await;
    let blue = two.tokens.get("blue").to_owned();
    let job = |cid: &str| json!({"tool": "noop", "target": "10.0.0.5", "correlation_id": cid});
    assert_eq!(submit(&two.a, &blue, job("first")).await.status(), 202);
    assert_eq!(submit(&two.a, &blue, job("second")).await.status(), 429);

    // A worker runs the first job; the place frees up without any API call for it.
    let _worker = start_worker(two.cfg.clone(), two.catalog.clone()).await;
    let base = two.b.clone();
    eventually(Duration::from_secs(20), "a place frees up", || {
        let (base, blue) = (base.clone(), blue.clone());
        async move { (submit(&base, &blue, job("second")).await.status() == 202).then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn request_limits_hold_with_authentication_on() {
    let two = two_apis(&[("blue", "blue", "submit,read")], "", |_| {}).await;
    let blue = two.tokens.get("blue");
    let post = |body: String| {
        http()
            .post(format!("{}/v1/jobs", two.a))
            .bearer_auth(blue)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    let big = format!(
        r#"{{"tool":"noop","target":"10.0.0.5","args":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let r = post(big).await.unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(problem(r).await["status"], 413);

    let r = post(r#"{"tool":"noop","target":"10.0.0.5","colour":"red"}"#.into())
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(problem(r).await["field"], "colour");

    let long = format!("/v1/jobs?cursor={}", "1".repeat(9000));
    let r = get(&two.a, &long, blue).await;
    assert_eq!(r.status(), 414);
    assert_eq!(problem(r).await["status"], 414);

    let r = http()
        .get(format!("{}/v1/jobs", two.a))
        .bearer_auth(blue)
        .header("x-padding", "p".repeat(20 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    assert_eq!(problem(r).await["status"], 431);
}

#[tokio::test]
async fn a_request_stuck_on_a_frozen_redis_times_out_with_503() {
    let two = two_apis(&[("blue", "blue", "read")], "", |c| {
        c.request_timeout_sec = 1
    })
    .await;
    let blue = two.tokens.get("blue");
    assert_eq!(get(&two.a, "/v1/jobs", blue).await.status(), 200);

    two.redis.pause();
    let started = std::time::Instant::now();
    let r = get(&two.a, "/v1/jobs/anything", blue).await;
    let took = started.elapsed();
    two.redis.resume();

    assert_eq!(r.status(), 503);
    assert_eq!(retry_after(&r), 1);
    assert_eq!(problem(r).await["error_type"], "timeout");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    // Health needs no Redis round trip.
    assert_eq!(
        http()
            .get(format!("{}/healthz", two.a))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn redis_down_answers_503_not_a_rate_limit() {
    let mut two = two_apis(&[("blue", "blue", "read")], "", |_| {}).await;
    let blue = two.tokens.get("blue").to_owned();
    two.redis.kill();
    let r = get(&two.a, "/v1/jobs/x", &blue).await;
    assert_eq!(r.status(), 503);
    assert!(retry_after(&r) >= 1);
}

#[tokio::test]
async fn cors_is_off_unless_origins_are_configured() {
    let preflight = |base: String, origin: &'static str| async move {
        http()
            .request(reqwest::Method::OPTIONS, format!("{base}/v1/jobs"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
            .await
            .unwrap()
    };
    let off = two_apis(&[("blue", "blue", "read")], "", |_| {}).await;
    let r = preflight(off.a.clone(), "https://dash.example").await;
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = http()
        .get(format!("{}/v1/jobs", off.a))
        .bearer_auth(off.tokens.get("blue"))
        .header("origin", "https://dash.example")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());

    let on = two_apis(&[("blue", "blue", "read")], "", |c| {
        c.cors_origins = "https://dash.example".into()
    })
    .await;
    let r = preflight(on.a.clone(), "https://dash.example").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://dash.example"
    );
    let allowed = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(allowed.contains("authorization"), "{allowed}");
    let r = preflight(on.a.clone(), "https://evil.example").await;
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // CORS does not replace auth.
    let r = http()
        .get(format!("{}/v1/jobs", on.a))
        .header("origin", "https://dash.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

mod scripts {
    //! The two limit scripts driven directly against a real Redis, time passed in.

    use scanq::keys::Keys;
    use scanq::scripts::{AdmitOutcome, LimitScripts, Rate, RateDecision, TenantCaps};
    use scanq_tests::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_bucket_refills_at_its_rate_and_never_beyond_its_burst() {
        let redis = RedisServer::start().await;
        let mut con = redis.con().await;
        let s = LimitScripts::new();
        let key = Keys::new(&unique_prefix("rl")).rate_limit("ci");
        let rate = Rate {
            per_sec: 2.0,
            burst: 3,
        };
        let t0 = 1_000_000_u64;
        let take = |now: u64| {
            let (s, key) = (&s, key.clone());
            let mut con = con.clone();
            async move { s.take(&mut con, &key, rate, Some(now)).await.unwrap() }
        };

        for left in [2, 1, 0] {
            assert_eq!(take(t0).await, RateDecision::Allowed { remaining: left });
        }
        // Empty: the next token is whole 500 ms after the last was taken.
        assert_eq!(
            take(t0 + 100).await,
            RateDecision::Limited {
                retry_after: Duration::from_millis(400)
            }
        );
        assert_eq!(take(t0 + 500).await, RateDecision::Allowed { remaining: 0 });
        // A long pause fills the bucket to its burst, no further.
        for left in [2, 1, 0] {
            assert_eq!(
                take(t0 + 60_000).await,
                RateDecision::Allowed { remaining: left }
            );
        }
        assert!(matches!(
            take(t0 + 60_000).await,
            RateDecision::Limited { .. }
        ));
        // The bucket expires once it would be full anyway.
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut con)
            .await
            .unwrap();
        assert!((1000..=2500).contains(&ttl), "{ttl}");
    }

    #[tokio::test]
    async fn a_full_tenant_is_checked_against_its_jobs_before_a_refusal() {
        let redis = RedisServer::start().await;
        let mut con = redis.con().await;
        let s = LimitScripts::new();
        let keys = Keys::new(&unique_prefix("admit"));
        let tenant = scanq::domain::TenantId::parse("blue").unwrap();
        let (q, r, caps_key) = (
            keys.tenant_queued(&tenant),
            keys.tenant_running(&tenant),
            keys.tenant_limits(&tenant),
        );
        let caps = TenantCaps {
            max_queued: 2,
            max_running: 5,
        };
        let job = |n: u32| format!("{}:job:{n}", keys.prefix());
        let admit = |member: String| {
            let (s, q, r, c) = (&s, q.clone(), r.clone(), caps_key.clone());
            let mut con = con.clone();
            async move {
                s.admit(&mut con, &q, &r, &c, &member, 60_000, caps)
                    .await
                    .unwrap()
            }
        };
        let state = |n: u32, st: &'static str| {
            let mut con = con.clone();
            let key = job(n);
            async move {
                let _: () = redis::cmd("HSET")
                    .arg(key)
                    .arg("state")
                    .arg(st)
                    .query_async(&mut con)
                    .await
                    .unwrap();
            }
        };

        state(1, "queued").await;
        state(2, "queued").await;
        assert_eq!(
            admit(job(1)).await,
            AdmitOutcome::Admitted {
                queued: 1,
                added: true
            }
        );
        assert_eq!(
            admit(job(2)).await,
            AdmitOutcome::Admitted {
                queued: 2,
                added: true
            }
        );
        // Counted already: admitted without a new place.
        assert_eq!(
            admit(job(1)).await,
            AdmitOutcome::Admitted {
                queued: 2,
                added: false
            }
        );
        assert_eq!(admit(job(3)).await, AdmitOutcome::Full { queued: 2 });

        // Job 1 started, job 2 finished: after the once-a-second check the tenant has room, and
        // job 1 is counted as running.
        state(1, "running").await;
        state(2, "succeeded").await;
        let out = eventually(Duration::from_secs(5), "the entries are checked", || {
            let f = admit(job(3));
            async move {
                match f.await {
                    AdmitOutcome::Admitted { queued, .. } => Some(queued),
                    AdmitOutcome::Full { .. } => None,
                }
            }
        })
        .await;
        assert_eq!(out, 1);
        let running: Vec<String> = redis::cmd("ZRANGE")
            .arg(&r)
            .arg(0)
            .arg(-1)
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(running, [job(1)]);
        let stored: (u64, u64) = redis::cmd("HMGET")
            .arg(&caps_key)
            .arg("max_queued")
            .arg("max_running")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(stored, (2, 5));
    }
}
