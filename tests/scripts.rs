//! Each queue script called directly against a real Redis: enqueue (idempotency, conflict,
//! back-pressure, delay), claim (priorities without starvation, skipping cancelled jobs, the
//! disabled switch), renew (ok / cancel / lost), complete (fencing, retry, dead letters,
//! hand-back, defer), reap (promotion, takeover, poison jobs), cancel, retry, event and the
//! window-end sweep; the listing's conditional removal; decide (a person's decision on a job held for approval) and retry's way back
//! to the person.

use std::collections::HashMap;

use redis::AsyncCommands;
use scanq::config::Config;
use scanq::domain::{Priority, ToolName, Verdict};
use scanq::keys::{Keys, ToolKeys};
use scanq::queue::script_settings;
use scanq::scripts::{
    BreakerArgs, CancelOutcome, CompleteStatus, Completion, DecideOutcome, EnqueueOutcome,
    RenewStatus, RetryOutcome, ScriptSettings, Scripts, WatchMode,
};
use scanq_tests::*;

struct Fx {
    _redis: RedisServer,
    con: redis::aio::MultiplexedConnection,
    scripts: Scripts,
    set: ScriptSettings,
    tk: ToolKeys,
}

const BREAKER: BreakerArgs<'static> = BreakerArgs {
    settings_json: "{}",
    held_error_json: "{}",
};

async fn fx() -> Fx {
    let redis = RedisServer::start().await;
    let con = redis.con().await;
    let cfg = Config {
        lease_sec: 30,
        max_queue_len: 5,
        max_deliveries: 2,
        retry_base_ms: 1,
        retry_max_ms: 1,
        ..Config::default()
    };
    let keys = Keys::new(&unique_prefix("s"));
    let set = script_settings(&cfg, &keys);
    let tk = keys.tool(&ToolName::parse("t").unwrap());
    Fx {
        _redis: redis,
        con,
        scripts: Scripts::new(),
        set,
        tk,
    }
}

impl Fx {
    async fn enqueue(&mut self, r: &str, hash: &str, prio: Priority, delay: u64) -> EnqueueOutcome {
        let fields = [
            ("tool", "t".to_owned()),
            ("cid", r.to_owned()),
            ("priority", prio.as_str().to_owned()),
            ("max_attempts", "2".to_owned()),
        ];
        self.scripts
            .enqueue(
                &mut self.con,
                &self.tk,
                &self.set,
                r,
                hash,
                prio,
                false,
                (delay, false),
                &fields,
            )
            .await
            .unwrap()
    }

    /// A normal-priority job of request "h" with these fields.
    async fn enqueue_fields(&mut self, r: &str, fields: &[(&str, String)]) -> EnqueueOutcome {
        self.scripts
            .enqueue(
                &mut self.con,
                &self.tk,
                &self.set,
                r,
                "h",
                Priority::Normal,
                false,
                (0, false),
                fields,
            )
            .await
            .unwrap()
    }

    async fn claim(&mut self, want: usize, round: u64) -> Vec<(String, u64)> {
        let c = self
            .scripts
            .claim(
                &mut self.con,
                &self.tk,
                &self.set,
                "w1",
                want,
                round,
                "t",
                BREAKER,
                "",
                false,
                0,
                false,
            )
            .await
            .unwrap();
        c.jobs.into_iter().map(|j| (j.job_ref, j.fence)).collect()
    }

    async fn claim_raw(&mut self, want: usize) -> scanq::scripts::Claimed {
        self.scripts
            .claim(
                &mut self.con,
                &self.tk,
                &self.set,
                "w1",
                want,
                0,
                "t",
                BREAKER,
                "",
                false,
                0,
                false,
            )
            .await
            .unwrap()
    }

    async fn complete(&mut self, r: &str, fence: u64, outcome: &'static str) -> String {
        self.complete_with(r, fence, outcome, String::new()).await
    }

    async fn complete_with(
        &mut self,
        r: &str,
        fence: u64,
        outcome: &'static str,
        result_json: String,
    ) -> String {
        let c = Completion {
            job_ref: r.into(),
            fence,
            outcome: outcome.parse().unwrap(),
            result_json,
            error_json: String::new(),
            delay_ms: 0,
            verdict: Verdict::Ignored,
            breaker_reason: String::new(),
        };
        let done = self
            .scripts
            .complete(&mut self.con, &self.tk, &self.set, "t", "{}", "w1", &[c])
            .await
            .unwrap();
        match done.states[0] {
            CompleteStatus::Stale => "stale".to_owned(),
            CompleteStatus::Moved(s) => s.as_str().to_owned(),
        }
    }

    /// The notify channel's messages from now on.
    async fn notifications(&self) -> impl futures::Stream<Item = redis::Msg> + Unpin + use<> {
        let mut sub = self._redis.client().get_async_pubsub().await.unwrap();
        sub.subscribe(&self.set.notify_channel).await.unwrap();
        sub.into_on_message()
    }

    async fn state(&mut self, r: &str) -> String {
        let s: Option<String> = self.con.hget(self.tk.job(r), "state").await.unwrap();
        s.unwrap_or_default()
    }

    async fn counts(&mut self) -> HashMap<String, i64> {
        self.con.hgetall(self.tk.counts()).await.unwrap()
    }
}

#[tokio::test]
async fn enqueue_is_idempotent_refuses_conflicts_and_respects_the_queue_limit() {
    let mut f = fx().await;
    assert!(matches!(
        f.enqueue("a/1", "h", Priority::Normal, 0).await,
        EnqueueOutcome::Created { .. }
    ));
    assert!(matches!(
        f.enqueue("a/1", "h", Priority::Normal, 0).await,
        EnqueueOutcome::Exists { .. }
    ));
    assert!(matches!(
        f.enqueue("a/1", "other", Priority::Normal, 0).await,
        EnqueueOutcome::Conflict { .. }
    ));
    for i in 2..=5 {
        f.enqueue(&format!("a/{i}"), "h", Priority::Normal, 0).await;
    }
    assert_eq!(
        f.enqueue("a/6", "h", Priority::Normal, 0).await,
        EnqueueOutcome::Full { depth: 5 }
    );
    assert_eq!(f.counts().await["queued"], 5);
    assert_eq!(f.state("a/6").await, "");
}

#[tokio::test]
async fn a_delayed_job_is_scheduled_and_promoted_when_due() {
    let mut f = fx().await;
    f.enqueue("a/d", "h", Priority::Normal, 1).await;
    assert_eq!(f.state("a/d").await, "scheduled");
    let report = eventually(std::time::Duration::from_secs(5), "promotion", || {
        let mut con = f.con.clone();
        let (scripts, tk, set) = (&f.scripts, f.tk.clone(), f.set.clone());
        async move {
            let r = scripts
                .reap(&mut con, &tk, &set, "t", 10, "{}", "{}")
                .await
                .ok()?;
            (r.promoted == 1).then_some(r)
        }
    })
    .await;
    assert_eq!(report.promoted, 1);
    assert_eq!(f.state("a/d").await, "queued");
}

#[tokio::test]
async fn claim_prefers_high_priority_but_low_gets_the_first_pick_in_some_rounds() {
    let mut f = fx().await;
    f.enqueue("a/low", "h", Priority::Low, 0).await;
    f.enqueue("a/high", "h", Priority::High, 0).await;
    // Round 0: high first.
    assert_eq!(f.claim(1, 0).await[0].0, "a/high");
    f.enqueue("a/high2", "h", Priority::High, 0).await;
    // Round 9: low gets the first pick.
    assert_eq!(f.claim(1, 9).await[0].0, "a/low");
    let c = f.counts().await;
    assert_eq!((c["running"], c["queued"]), (2, 1));
}

#[tokio::test]
async fn claim_skips_cancelled_jobs_and_nothing_while_the_tool_is_disabled() {
    let mut f = fx().await;
    f.enqueue("a/x", "h", Priority::Normal, 0).await;
    let out = f
        .scripts
        .cancel(&mut f.con, &f.tk, &f.set, "a/x", "t", "{}")
        .await
        .unwrap();
    assert_eq!(out, CancelOutcome::Cancelled);
    assert!(f.claim(5, 0).await.is_empty());

    f.enqueue("a/y", "h", Priority::Normal, 0).await;
    let _: () = f.con.set(f.tk.disabled(), "1").await.unwrap();
    assert!(f.claim(5, 0).await.is_empty());
    let _: () = f.con.del(f.tk.disabled()).await.unwrap();
    assert_eq!(f.claim(5, 0).await.len(), 1);
}

#[tokio::test]
async fn renew_extends_reports_cancel_requests_and_lost_attempts() {
    let mut f = fx().await;
    f.enqueue("a/1", "h", Priority::Normal, 0).await;
    f.enqueue("a/2", "h", Priority::Normal, 0).await;
    let jobs = f.claim(2, 0).await;
    let out = f
        .scripts
        .cancel(&mut f.con, &f.tk, &f.set, &jobs[0].0, "t", "{}")
        .await
        .unwrap();
    assert_eq!(out, CancelOutcome::Requested);
    let pairs = vec![jobs[0].clone(), (jobs[1].0.clone(), jobs[1].1 + 7)];
    let st = f
        .scripts
        .renew(&mut f.con, &f.tk, &f.set, &pairs)
        .await
        .unwrap();
    assert_eq!(st, vec![RenewStatus::Cancel, RenewStatus::Lost]);
}

#[tokio::test]
async fn complete_is_fenced_retries_then_files_a_dead_letter() {
    let mut f = fx().await;
    f.enqueue("a/1", "h", Priority::Normal, 0).await;
    // A queued job does not expire (docs/queue.md "Retention"): its TTL comes when it ends.
    let ttl: i64 = f.con.pttl(f.tk.job("a/1")).await.unwrap();
    assert_eq!(ttl, -1, "a queued job has no TTL");
    let (r, fence) = f.claim(1, 0).await.remove(0);
    assert_eq!(f.complete(&r, fence + 1, "succeeded").await, "stale");
    assert_eq!(f.complete(&r, fence, "retry").await, "scheduled");
    // Promote and run the second (last) attempt; a retry now fails it for good.
    eventually(std::time::Duration::from_secs(5), "promoted", || {
        let mut con = f.con.clone();
        let (scripts, tk, set) = (&f.scripts, f.tk.clone(), f.set.clone());
        async move {
            (scripts
                .reap(&mut con, &tk, &set, "t", 10, "{}", "{}")
                .await
                .ok()?
                .promoted
                == 1)
                .then_some(())
        }
    })
    .await;
    let (r, fence) = f.claim(1, 0).await.remove(0);
    assert_eq!(f.complete(&r, fence, "retry").await, "failed");
    let dead: Vec<String> = f.con.zrange(f.tk.dead(), 0, -1).await.unwrap();
    assert_eq!(dead, vec!["a/1"]);
    let ttl: i64 = f.con.pttl(f.tk.job("a/1")).await.unwrap();
    assert!(ttl > 0, "a dead job expires after the dead TTL: {ttl}");
    // A failed job can be retried from the dead letters.
    let out = f
        .scripts
        .retry(&mut f.con, &f.tk, &f.set, "a/1", "t")
        .await
        .unwrap();
    assert_eq!(out, RetryOutcome::Queued);
    assert_eq!(f.state("a/1").await, "queued");
    let ttl: i64 = f.con.pttl(f.tk.job("a/1")).await.unwrap();
    assert_eq!(ttl, -1, "queued again, it no longer expires");
    let dead: Vec<String> = f.con.zrange(f.tk.dead(), 0, -1).await.unwrap();
    assert!(dead.is_empty());
}

#[tokio::test]
async fn a_handed_back_job_is_queued_at_once_without_counting_the_attempt() {
    let mut f = fx().await;
    f.enqueue("a/1", "h", Priority::Normal, 0).await;
    let (r, fence) = f.claim(1, 0).await.remove(0);
    assert_eq!(f.complete(&r, fence, "handback").await, "queued");
    let attempt: String = f.con.hget(f.tk.job(&r), "attempt").await.unwrap();
    assert_eq!(attempt, "0");
    // It was a delivery, though: the hash now says so (a start alone never writes it).
    let deliveries: String = f.con.hget(f.tk.job(&r), "deliveries").await.unwrap();
    assert_eq!(deliveries, "1");
    assert_eq!(f.claim(1, 0).await.len(), 1);
    let h: HashMap<String, String> = f.con.hgetall(f.tk.job(&r)).await.unwrap();
    assert_eq!(
        (h["attempt"].as_str(), h["deliveries"].as_str()),
        ("1", "2")
    );
}

#[tokio::test]
async fn the_hot_steps_store_only_what_cannot_be_derived() {
    let mut f = fx().await;
    f.enqueue("a/1", "h", Priority::Normal, 0).await;
    let (r, fence) = f.claim(1, 0).await.remove(0);
    let h: HashMap<String, String> = f.con.hgetall(f.tk.job(&r)).await.unwrap();
    for derived in ["queue_wait_ms", "updated_ms", "deliveries"] {
        assert!(!h.contains_key(derived), "{derived} in {h:?}");
    }
    assert_eq!(h["evseq"], "2");
    let result = r#"{"exit_code":0}"#.to_owned();
    assert_eq!(
        f.complete_with(&r, fence, "succeeded", result).await,
        "succeeded"
    );
    let h: HashMap<String, String> = f.con.hgetall(f.tk.job(&r)).await.unwrap();
    for derived in ["queue_wait_ms", "updated_ms", "duration_ms", "deliveries"] {
        assert!(!h.contains_key(derived), "{derived} in {h:?}");
    }
    // The document still has them, from the times the hash keeps.
    let doc = scanq::domain::JobDocument::from_hash(&h).unwrap();
    let (created, started, finished) = ["created_ms", "started_ms", "finished_ms"]
        .map(|k| h[k].parse::<u64>().unwrap())
        .into();
    assert_eq!(doc.queue_wait_ms, Some(started - created));
    assert_eq!(doc.duration_ms, Some(finished - started));
    assert_eq!(
        doc.result.unwrap().stdout,
        "",
        "the stored result reads back whole"
    );
    // Redis kept the finished job's hash compact (no field above 64 bytes).
    let encoding: String = redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg(f.tk.job(&r))
        .query_async(&mut f.con)
        .await
        .unwrap();
    assert_eq!(encoding, "listpack");
}

#[tokio::test]
async fn reap_takes_over_lapsed_leases_and_poison_jobs_go_dead() {
    let mut f = fx().await;
    f.set.lease_ms = 1;
    f.enqueue("a/1", "h", Priority::Normal, 0).await;
    let (_, fence) = f.claim(1, 0).await.remove(0);
    let taken = eventually(std::time::Duration::from_secs(5), "takeover", || {
        let mut con = f.con.clone();
        let (scripts, tk, set) = (&f.scripts, f.tk.clone(), f.set.clone());
        async move {
            let r = scripts
                .reap(
                    &mut con,
                    &tk,
                    &set,
                    "t",
                    10,
                    "{\"type\":\"worker_lost\"}",
                    "{}",
                )
                .await
                .ok()?;
            (!r.taken_over.is_empty()).then_some(r.taken_over)
        }
    })
    .await;
    assert_eq!(taken, vec![("a/1".to_owned(), "scheduled".to_owned())]);
    // The old attempt can no longer write.
    assert_eq!(f.complete("a/1", fence, "succeeded").await, "stale");

    // Second delivery lapses too: max_deliveries (2) reached → dead as worker_lost.
    eventually(std::time::Duration::from_secs(5), "second delivery", || {
        let mut con = f.con.clone();
        let (scripts, tk, set) = (&f.scripts, f.tk.clone(), f.set.clone());
        async move {
            scripts
                .reap(&mut con, &tk, &set, "t", 10, "{}", "{}")
                .await
                .ok()?;
            let c = scripts
                .claim(
                    &mut con, &tk, &set, "w1", 1, 0, "t", BREAKER, "", false, 0, false,
                )
                .await
                .ok()?;
            (!c.jobs.is_empty()).then_some(())
        }
    })
    .await;
    eventually(std::time::Duration::from_secs(5), "dead", || {
        let mut con = f.con.clone();
        let (scripts, tk, set) = (&f.scripts, f.tk.clone(), f.set.clone());
        async move {
            let r = scripts
                .reap(
                    &mut con,
                    &tk,
                    &set,
                    "t",
                    10,
                    "{\"type\":\"worker_lost\"}",
                    "{}",
                )
                .await
                .ok()?;
            (r.taken_over.first()?.1 == "failed").then_some(())
        }
    })
    .await;
    let err: String = f.con.hget(f.tk.job("a/1"), "error").await.unwrap();
    assert!(err.contains("worker_lost"));
}

#[tokio::test]
async fn cancel_answers_for_finished_and_missing_jobs_and_events_are_fenced() {
    let mut f = fx().await;
    f.enqueue("a/1", "h", Priority::Normal, 0).await;
    let (r, fence) = f.claim(1, 0).await.remove(0);
    let pos = f
        .scripts
        .event(
            &mut f.con,
            &f.tk,
            &f.set,
            &r,
            fence,
            "progress",
            "{}",
            "{\"percent\":5}",
            "t",
        )
        .await
        .unwrap();
    assert!(pos.is_some());
    let stale = f
        .scripts
        .event(
            &mut f.con,
            &f.tk,
            &f.set,
            &r,
            fence + 1,
            "progress",
            "{}",
            "",
            "t",
        )
        .await
        .unwrap();
    assert_eq!(stale, None);
    f.complete(&r, fence, "succeeded").await;
    let out = f
        .scripts
        .cancel(&mut f.con, &f.tk, &f.set, &r, "t", "{}")
        .await
        .unwrap();
    assert_eq!(
        out,
        CancelOutcome::Final {
            state: "succeeded".into()
        }
    );
    let out = f
        .scripts
        .cancel(&mut f.con, &f.tk, &f.set, "a/none", "t", "{}")
        .await
        .unwrap();
    assert_eq!(out, CancelOutcome::Missing);
    let out = f
        .scripts
        .retry(&mut f.con, &f.tk, &f.set, &r, "t")
        .await
        .unwrap();
    assert_eq!(
        out,
        RetryOutcome::NotRetryable {
            state: "succeeded".into()
        }
    );
    // Event positions are 0-1, 0-2, … in order.
    let ids: Vec<String> = redis::cmd("XRANGE")
        .arg(f.tk.events(&r))
        .arg("-")
        .arg("+")
        .query_async::<redis::streams::StreamRangeReply>(&mut f.con)
        .await
        .unwrap()
        .ids
        .into_iter()
        .map(|e| e.id)
        .collect();
    let expected: Vec<String> = (1..=ids.len()).map(|i| format!("0-{i}")).collect();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn renewing_several_tools_is_one_pipeline_and_survives_a_script_flush() {
    let mut f = fx().await;
    f.enqueue("a/1", "h", Priority::Normal, 0).await;
    let (r, fence) = f.claim(1, 0).await.remove(0);
    let other = Keys::new("other-prefix").tool(&ToolName::parse("u").unwrap());
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut f.con)
        .await
        .unwrap();

    let replies = f
        .scripts
        .renew_all(
            &mut f.con,
            &f.set,
            &[
                (f.tk.clone(), vec![(r, fence)]),
                (other, vec![("a/x".into(), 1)]),
            ],
        )
        .await
        .unwrap();

    assert_eq!(
        replies,
        vec![vec![RenewStatus::Ok], vec![RenewStatus::Lost]]
    );
}

#[tokio::test]
async fn withdraw_takes_back_only_a_waiting_job_of_the_same_request() {
    let mut f = fx().await;
    f.enqueue("a/1", "h", Priority::Normal, 0).await;
    f.enqueue("a/2", "h", Priority::Normal, 60_000).await;
    f.enqueue("a/3", "h", Priority::High, 0).await;
    let tk = f.tk.clone();
    // Another request under the same ID is not taken back.
    assert!(
        !f.scripts
            .withdraw(&mut f.con, &tk, "a/1", "other")
            .await
            .unwrap()
    );
    assert!(
        f.scripts
            .withdraw(&mut f.con, &tk, "a/1", "h")
            .await
            .unwrap()
    );
    assert!(
        f.scripts
            .withdraw(&mut f.con, &tk, "a/2", "h")
            .await
            .unwrap()
    );
    assert_eq!(f.state("a/1").await, "");
    let sched: i64 = f.con.zcard(tk.scheduled()).await.unwrap();
    assert_eq!(sched, 0);
    let c = f.counts().await;
    assert_eq!((c["queued"], c["scheduled"]), (1, 0), "{c:?}");
    // A job a worker already took is left to run; the withdrawn one's entry is skipped.
    let claimed = f.claim(5, 0).await;
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    assert_eq!(claimed[0].0, "a/3");
    assert!(
        !f.scripts
            .withdraw(&mut f.con, &tk, "a/3", "h")
            .await
            .unwrap()
    );
    assert_eq!(f.state("a/3").await, "running");
}

#[tokio::test]
async fn a_gated_claim_stamps_the_home_generation_or_the_probe_and_a_gated_completion_owes_them() {
    let mut f = fx().await;
    f.enqueue("a/1", "h", Priority::Normal, 0).await;
    f.enqueue("a/2", "h", Priority::Normal, 0).await;
    let tk = f.tk.clone();
    let closed = f
        .scripts
        .claim(
            &mut f.con, &tk, &f.set, "w1", 1, 0, "t", BREAKER, "closed:7", false, 0, false,
        )
        .await
        .unwrap();
    assert_eq!(closed.jobs.len(), 1);
    assert_eq!(closed.home, None, "a gated claim does not read a breaker");
    let first = closed.jobs[0].clone();
    let bgen: String = f.con.hget(tk.job(&first.job_ref), "bgen").await.unwrap();
    assert_eq!(bgen, "7");
    let probe = f
        .scripts
        .claim(
            &mut f.con,
            &tk,
            &f.set,
            "w1",
            1,
            0,
            "t",
            BREAKER,
            "probe:w1:0:1:3",
            false,
            0,
            false,
        )
        .await
        .unwrap();
    assert_eq!(probe.jobs.len(), 1);
    let second = probe.jobs[0].clone();
    let h: HashMap<String, String> = f.con.hgetall(tk.job(&second.job_ref)).await.unwrap();
    assert_eq!((h["probe"].as_str(), h["bgen"].as_str()), ("w1:0:1", "3"));
    // Completed without breaker settings: nothing recorded here, the reply owes both.
    let done = f
        .scripts
        .complete(
            &mut f.con,
            &tk,
            &f.set,
            "t",
            "",
            "w1",
            &[first.clone(), second.clone()].map(|j| Completion {
                job_ref: j.job_ref,
                fence: j.fence,
                outcome: "succeeded".parse().unwrap(),
                result_json: String::new(),
                error_json: String::new(),
                delay_ms: 0,
                verdict: Verdict::Success,
                breaker_reason: String::new(),
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        done.owed,
        vec![Some((7, String::new())), Some((3, "w1:0:1".to_owned()))]
    );
    let breaker: HashMap<String, String> = f.con.hgetall(tk.breaker()).await.unwrap();
    assert!(breaker.is_empty(), "{breaker:?}");
    // Ungated, the home's claim reports its breaker.
    f.enqueue("a/3", "h", Priority::Normal, 0).await;
    let home = f.claim_raw(1).await;
    assert_eq!(home.home.unwrap().state, "closed");
}

// Engagement windows (DESIGN §14): the worker's `defer` and the fleet's window-end sweep.

#[tokio::test]
async fn a_deferred_job_waits_for_its_window_without_counting_the_attempt() {
    let mut f = fx().await;
    f.enqueue("a/1", "h", Priority::Normal, 0).await;
    let (r, fence) = f.claim(1, 0).await.remove(0);
    let c = Completion {
        job_ref: r.clone(),
        fence,
        outcome: scanq::domain::Outcome::Defer,
        result_json: String::new(),
        error_json: String::new(),
        delay_ms: 1,
        verdict: Verdict::Ignored,
        breaker_reason: String::new(),
    };
    let done = f
        .scripts
        .complete(&mut f.con, &f.tk, &f.set, "t", "{}", "w1", &[c])
        .await
        .unwrap();
    assert_eq!(
        done.states,
        vec![CompleteStatus::Moved(scanq::domain::JobState::Scheduled)]
    );
    let h: HashMap<String, String> = f.con.hgetall(f.tk.job(&r)).await.unwrap();
    assert_eq!(h["waiting"], "window");
    assert_eq!(h["attempt"], "0", "the deferred attempt does not count");
    assert_eq!(h["deliveries"], "0");
    let due: Vec<String> = f.con.zrange(f.tk.scheduled(), 0, -1).await.unwrap();
    assert_eq!(due, vec![r.clone()]);
    // Promoted when due; the claim that starts it clears the wait.
    eventually(std::time::Duration::from_secs(5), "promoted", || {
        let mut con = f.con.clone();
        let (scripts, tk, set) = (&f.scripts, f.tk.clone(), f.set.clone());
        async move {
            (scripts
                .reap(&mut con, &tk, &set, "t", 10, "{}", "{}")
                .await
                .ok()?
                .promoted
                == 1)
                .then_some(())
        }
    })
    .await;
    assert_eq!(f.claim(1, 0).await.len(), 1);
    let h: HashMap<String, String> = f.con.hgetall(f.tk.job(&r)).await.unwrap();
    assert_eq!(h["attempt"], "1");
    assert!(!h.contains_key("waiting"));
}

#[tokio::test]
async fn window_ends_stops_due_attempts_by_redis_time_and_drops_stale_members() {
    let mut f = fx().await;
    for r in ["a/1", "a/2", "a/3"] {
        f.enqueue(r, "h", Priority::Normal, 0).await;
    }
    let jobs: HashMap<String, u64> = f.claim(3, 0).await.into_iter().collect();
    let ends = f.tk.window_ends();
    let (due_1, stale_2, later_3) = (
        format!("{}:a/1", jobs["a/1"]),
        format!("{}:a/2", jobs["a/2"] + 9),
        format!("{}:a/3", jobs["a/3"]),
    );
    let _: i64 = f
        .con
        .zadd_multiple(
            &ends,
            &[(1u64, &due_1), (1, &stale_2), (u64::MAX / 4, &later_3)],
        )
        .await
        .unwrap();

    let stopped = f
        .scripts
        .window_ends(&mut f.con, &f.tk, &f.set, "t", 10, None)
        .await
        .unwrap();

    assert_eq!(
        stopped,
        vec!["a/1"],
        "only the due member of a running attempt"
    );
    let left: Vec<String> = f.con.zrange(&ends, 0, -1).await.unwrap();
    assert_eq!(
        left,
        vec![later_3.clone()],
        "due members are dropped, stale or not"
    );
    let h: HashMap<String, String> = f.con.hgetall(f.tk.job("a/1")).await.unwrap();
    assert_eq!(h["cancel_requested"], "1");
    assert_eq!(h["stop_reason"], "window_closed");
    let st = f
        .scripts
        .renew(&mut f.con, &f.tk, &f.set, &[("a/1".into(), jobs["a/1"])])
        .await
        .unwrap();
    assert_eq!(st, vec![RenewStatus::WindowClosed]);
    // The running worker's own timer names its member, whatever its score.
    let forced = f
        .scripts
        .window_ends(&mut f.con, &f.tk, &f.set, "t", 10, Some(&later_3))
        .await
        .unwrap();
    assert_eq!(forced, vec!["a/3"]);
    let st = f
        .scripts
        .renew(
            &mut f.con,
            &f.tk,
            &f.set,
            &[("a/2".into(), jobs["a/2"]), ("a/3".into(), jobs["a/3"])],
        )
        .await
        .unwrap();
    assert_eq!(st, vec![RenewStatus::Ok, RenewStatus::WindowClosed]);
}

impl Fx {
    /// Enqueues a job held for a person's approval (`approval` = `needed`).
    async fn enqueue_held(&mut self, r: &str, delay: u64) -> EnqueueOutcome {
        let fields = [
            ("max_attempts", "1".to_owned()),
            ("approval", "needed".to_owned()),
        ];
        self.scripts
            .enqueue(
                &mut self.con,
                &self.tk,
                &self.set,
                r,
                r,
                Priority::Normal,
                false,
                (delay, true),
                &fields,
            )
            .await
            .unwrap()
    }

    async fn decide(&mut self, r: &str, d: scanq::domain::Decision) -> DecideOutcome {
        let fields = [
            ("approval_decision", d.as_str().to_owned()),
            ("approval_by", "bob".to_owned()),
        ];
        self.scripts
            .decide(
                &mut self.con,
                &self.tk,
                &self.set,
                r,
                "t",
                d,
                "{\"type\":\"cancelled\"}",
                &fields,
            )
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_held_job_takes_no_slot_until_approved_and_a_rejected_one_waits_again_on_retry() {
    use scanq::domain::{Decision, JobState};
    let mut f = fx().await;
    // The queue length is 5: five held jobs do not fill it, and one more plain job still fits.
    for i in 0..6 {
        let out = f.enqueue_held(&format!("a/h{i}"), 0).await;
        assert!(
            matches!(out, EnqueueOutcome::Created { ref state, .. } if state == "awaiting_approval"),
            "{out:?}"
        );
    }
    let held = f.enqueue_held("a/late", 60_000).await;
    assert!(matches!(held, EnqueueOutcome::Created { .. }));
    assert!(matches!(
        f.enqueue("a/plain", "p", Priority::Normal, 0).await,
        EnqueueOutcome::Created { .. }
    ));
    let c = f.counts().await;
    assert_eq!(
        (c.get("awaiting_approval"), c.get("queued")),
        (Some(&7), Some(&1))
    );
    let claimed = f.claim(10, 0).await;
    assert_eq!(
        claimed.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>(),
        ["a/plain"],
        "only the plain job is claimable"
    );

    // Approved: queued and claimable; a delayed one scheduled; a second decision is refused.
    // (It may have waited long for the person: it lives a job's TTL from its approval.)
    let _: bool = f.con.pexpire(f.tk.job("a/h0"), 5_000).await.unwrap();
    assert_eq!(
        f.decide("a/h0", Decision::Approved).await,
        DecideOutcome::Queued {
            state: JobState::Queued
        }
    );
    assert_eq!(
        f.decide("a/late", Decision::Approved).await,
        DecideOutcome::Queued {
            state: JobState::Scheduled
        }
    );
    assert_eq!(
        f.decide("a/h0", Decision::Rejected).await,
        DecideOutcome::NotAwaiting {
            state: "queued".into()
        }
    );
    assert_eq!(
        f.decide("a/none", Decision::Approved).await,
        DecideOutcome::Missing
    );
    let claimed = f.claim(10, 1).await;
    assert_eq!(
        claimed.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>(),
        ["a/h0"]
    );
    let ttl: i64 = f.con.pttl(f.tk.job("a/h0")).await.unwrap();
    assert_eq!(
        ttl, -1,
        "an approved job is admitted: like a new queued job it does not expire"
    );
    let by: Option<String> = f.con.hget(f.tk.job("a/h0"), "approval_by").await.unwrap();
    assert_eq!(by.as_deref(), Some("bob"));

    // The queue length (5) counts queued and scheduled jobs: a/late and four more reach it.
    for i in 1..5 {
        assert!(matches!(
            f.decide(&format!("a/h{i}"), Decision::Approved).await,
            DecideOutcome::Queued { .. }
        ));
    }
    assert!(
        matches!(
            f.decide("a/h5", Decision::Approved).await,
            DecideOutcome::Full { .. }
        ),
        "under the queue length"
    );
    assert_eq!(
        f.state("a/h5").await,
        "awaiting_approval",
        "a full queue leaves it waiting"
    );

    // Rejected: cancelled; a retry puts it back before the person, not in the queue.
    assert_eq!(
        f.decide("a/h5", Decision::Rejected).await,
        DecideOutcome::Rejected
    );
    assert_eq!(f.state("a/h5").await, "cancelled");
    let out = f
        .scripts
        .retry(&mut f.con, &f.tk, &f.set, "a/h5", "t")
        .await
        .unwrap();
    assert_eq!(out, RetryOutcome::Awaiting);
    assert_eq!(f.state("a/h5").await, "awaiting_approval");
    let gone: Option<String> = f
        .con
        .hget(f.tk.job("a/h5"), "approval_decision")
        .await
        .unwrap();
    assert_eq!(gone, None, "the old decision is cleared");
    let c = f.counts().await;
    assert_eq!(c.get("awaiting_approval"), Some(&1));
    assert_eq!(c.get("cancelled").copied().unwrap_or(0), 0);
}

#[tokio::test]
async fn a_watcher_after_the_approval_is_told_the_job_was_created_awaiting_it() {
    use scanq::domain::{Decision, JobState};
    let mut f = fx().await;
    f.enqueue_held("a/w", 0).await;
    assert_eq!(
        f.decide("a/w", Decision::Approved).await,
        DecideOutcome::Queued {
            state: JobState::Queued
        }
    );
    let h = f
        .scripts
        .watch(
            &mut f.con,
            &f.tk,
            "a/w",
            "t",
            10_000,
            scanq::scripts::WatchMode::Stream,
        )
        .await
        .unwrap();
    assert_eq!(h["state"], "queued");
    let events: redis::streams::StreamRangeReply =
        f.con.xrange_all(f.tk.events("a/w")).await.unwrap();
    let first = &events.ids[0];
    let data: String = first.get("data").unwrap();
    assert!(data.contains("\"awaiting_approval\""), "{data}");
    let last = events.ids.last().unwrap();
    let data: String = last.get("data").unwrap();
    assert!(data.contains("\"queued\""), "{data}");
}

#[tokio::test]
async fn jobs_without_their_default_fields_and_backlog_items_of_older_releases_still_run() {
    let mut f = fx().await;
    // A fair-share window of one: the first job goes onto the stream, the next ones wait.
    f.set.fair_window = 1;
    // What this release writes for a job at the defaults: no `timeout_sec`, no `max_attempts`.
    let fields = [("target", "127.0.0.1".to_owned())];
    // IDs the API makes are lowercase UUIDs: the submitter packs them into 16 bytes for the
    // backlog (`CorrelationId::packed`); anything else is kept as it is.
    let made = "a/019af0c2-7e1d-7b3a-9c4e-0123456789ab";
    let upper = "a/019AF0C2-7E1D-7B3A-9C4E-0123456789AB";
    for r in ["a/j1", "a/j2", "a/j3", made, upper] {
        let out = f.enqueue_fields(r, &fields).await;
        assert!(matches!(out, EnqueueOutcome::Created { .. }), "{out:?}");
    }
    let stored: HashMap<String, String> = f.con.hgetall(f.tk.job("a/j1")).await.unwrap();
    assert!(!stored.contains_key("timeout_sec") && !stored.contains_key("max_attempts"));
    let id = scanq::domain::JobId::new(
        ToolName::parse("t").unwrap(),
        Default::default(),
        scanq::domain::TenantId::parse("a").unwrap(),
        scanq::domain::CorrelationId::parse("j1").unwrap(),
    );
    let doc = scanq::domain::JobDocument::from_job(&id, &stored).unwrap();
    assert_eq!(
        (doc.max_attempts, doc.timeout_sec),
        (3, 600),
        "the document is unchanged"
    );
    let backlog = format!("{}a", f.tk.backlog_prefix());
    let items: Vec<Vec<u8>> = f.con.lrange(&backlog, 0, -1).await.unwrap();
    assert_eq!(
        (&items[0][..], &items[1][..]),
        (&b"j2"[..], &b"j3"[..]),
        "the list is the tenant's: items are bare IDs"
    );
    assert_eq!(items[2], made.as_bytes()[2..].to_vec());
    assert_eq!(items[3], upper.as_bytes()[2..].to_vec());
    // An item as an older release wrote it (`<lane>|<tenant>/<cid>`), and a packed one as
    // `Queue::submit` writes it, read the same.
    let _: () = f.con.lset(&backlog, 1, "normal|a/j3").await.unwrap();
    let packed = scanq::domain::CorrelationId::parse(&made[2..])
        .unwrap()
        .packed()
        .unwrap();
    let _: () = f.con.lset(&backlog, 2, &packed[..]).await.unwrap();

    let mut started = Vec::new();
    for _ in 0..5 {
        let c = f.claim_raw(1).await;
        assert_eq!(
            c.jobs.len(),
            1,
            "each claim refills the next from the backlog"
        );
        assert_eq!(c.jobs[0].timeout_sec, Some(600), "the stored default");
        started.push((c.jobs[0].job_ref.clone(), c.jobs[0].fence));
    }
    let refs: Vec<&str> = started.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(refs, ["a/j1", "a/j2", "a/j3", made, upper]);
    // Attempt 1 of the default 3: a retry is scheduled, not failed.
    assert_eq!(f.complete("a/j1", started[0].1, "retry").await, "scheduled");
}

/// `listing_drop.lua`: a member found gone is removed only while its score is the one read; a
/// member listed anew meanwhile (a submit reusing an expired job's ID) stays.
#[tokio::test]
async fn listing_drop_removes_only_members_whose_score_did_not_move() {
    let mut f = fx().await;
    let listing = "s-listing:jobs:default";
    let _: i64 = f
        .con
        .zadd_multiple(
            listing,
            &[(1024u64, "gone"), (2048, "reused"), (4096, "kept")],
        )
        .await
        .unwrap();
    // Read at 2048; a resubmit lists it again at 8192 before the removal.
    let _: i64 = f.con.zadd(listing, "reused", 8192u64).await.unwrap();

    let removed = f
        .scripts
        .listing_drop(
            &mut f.con,
            listing,
            &[
                ("gone".into(), 1024),
                ("reused".into(), 2048),
                ("absent".into(), 1),
            ],
        )
        .await
        .unwrap();

    let left: Vec<(String, u64)> = f.con.zrange_withscores(listing, 0, -1).await.unwrap();
    assert_eq!(removed, 1);
    assert_eq!(
        left,
        [("kept".to_owned(), 4096), ("reused".to_owned(), 8192)]
    );
}

/// A claim's refill moves a tenant's backlogged jobs onto the stream as one batch entry (one
/// `XADD` for them all). A claim asking for fewer jobs than a batch holds takes the first ones
/// and puts the rest back on the stream's tail, still counted in the tenant's share: nothing is
/// lost or started twice, and the tenant's jobs start in the order they were submitted, with
/// another tenant's jobs taking their turn in between.
#[tokio::test]
async fn a_refill_batch_read_in_part_puts_the_rest_back_and_loses_nothing() {
    let mut f = fx().await;
    f.set.fair_window = 3;
    f.set.max_queue_len = 100;
    for i in 0..10 {
        f.enqueue(&format!("a/j{i}"), "h", Priority::Normal, 0)
            .await;
    }
    f.enqueue("b/x", "h", Priority::Normal, 0).await;
    let backlog = format!("{}a", f.tk.backlog_prefix());
    let waiting: i64 = f.con.llen(&backlog).await.unwrap();
    assert_eq!(
        waiting, 7,
        "three of a's jobs on the stream, seven in its backlog"
    );

    let mut started = Vec::new();
    let mut batches_seen = false;
    for _ in 0..20 {
        let entries: redis::streams::StreamRangeReply =
            f.con.xrange_all(&f.tk.streams()[1]).await.unwrap();
        batches_seen |= entries
            .ids
            .iter()
            .any(|e| e.map.contains_key("b") && !e.map.contains_key("ref"));
        let got = f.claim(2, 0).await;
        if got.is_empty() {
            break;
        }
        started.extend(got.into_iter().map(|(r, _)| r));
    }
    assert!(batches_seen, "the refills wrote batch entries");
    let a: Vec<&String> = started.iter().filter(|r| r.starts_with("a/")).collect();
    let expected: Vec<String> = (0..10).map(|i| format!("a/j{i}")).collect();
    assert_eq!(
        a,
        expected.iter().collect::<Vec<_>>(),
        "a's jobs in order, each once"
    );
    assert_eq!(started.len(), 11, "b's job too: {started:?}");
    let b_at = started.iter().position(|r| r == "b/x").unwrap();
    assert!(
        b_at < 6,
        "b's job is not held behind a's backlog: {started:?}"
    );

    let left: i64 = f.con.xlen(&f.tk.streams()[1]).await.unwrap();
    let waiting: i64 = f.con.llen(&backlog).await.unwrap();
    let shares: HashMap<String, i64> = f.con.hgetall(f.tk.counts()).await.unwrap();
    assert_eq!((left, waiting), (0, 0), "stream and backlog empty");
    assert!(
        !shares.keys().any(|k| k.starts_with("share:")),
        "no share left over: {shares:?}"
    );
    assert_eq!(shares.get("queued").copied().unwrap_or(0), 0);
    assert_eq!(shares.get("running").copied().unwrap_or(0), 11);
}

/// A refill batch is per lane: a tenant's backlog holds jobs of every priority in the order they
/// came, and each refill puts its high-priority jobs in one entry on the high stream and its
/// normal ones on the normal stream, so a high-priority job let in by a refill still goes first.
#[tokio::test]
async fn a_refill_writes_one_batch_per_lane_and_priority_still_orders_the_claims() {
    let mut f = fx().await;
    f.set.fair_window = 2;
    f.set.max_queue_len = 100;
    f.enqueue("a/n0", "h", Priority::Normal, 0).await;
    f.enqueue("a/h0", "h", Priority::High, 0).await;
    // Over the window: into a's backlog, in this order.
    f.enqueue("a/n1", "h", Priority::Normal, 0).await;
    f.enqueue("a/h1", "h", Priority::High, 0).await;
    f.enqueue("a/n2", "h", Priority::Normal, 0).await;
    let first: Vec<String> = f.claim(2, 0).await.into_iter().map(|(r, _)| r).collect();
    assert_eq!(first, ["a/h0", "a/n0"]);
    // The claim let in n1 and h1: one batch entry on each stream.
    let [high, normal, _] = f.tk.streams();
    for (stream, item) in [(&high, "h1"), (&normal, "n1")] {
        let entries: redis::streams::StreamRangeReply = f.con.xrange_all(stream).await.unwrap();
        assert_eq!(entries.ids.len(), 1, "{stream}");
        let e = &entries.ids[0];
        assert!(e.map.contains_key("b"), "a batch entry: {:?}", e.map);
        let raw: Vec<String> = redis::cmd("XRANGE")
            .arg(stream)
            .arg("-")
            .arg("+")
            .query_async::<Vec<(String, Vec<String>)>>(&mut f.con)
            .await
            .unwrap()
            .remove(0)
            .1;
        assert!(raw.last().unwrap().ends_with(item), "{raw:?}");
    }
    let next: Vec<String> = f.claim(1, 0).await.into_iter().map(|(r, _)| r).collect();
    assert_eq!(next, ["a/h1"], "the high-priority job goes first");
    // That claim freed a place: n2 came in behind n1.
    let rest: Vec<String> = f.claim(5, 0).await.into_iter().map(|(r, _)| r).collect();
    assert_eq!(rest, ["a/n1", "a/n2"]);
    assert!(f.claim(5, 0).await.is_empty());
}

/// A job created by a submit that waits for its end (`watch` and `watch_end` among its creation
/// fields, `Prefer: wait`) is published only when it ends: its claim's `running` does not wake
/// the waiter. A watcher that registers (`watch.lua`: SSE, `GET ?wait`) clears `watch_end`, and
/// from then on every change is published again.
/// The run-time samples keep the newest 1000 (what the stats read), cut back only once the list
/// holds 100 more: one command per call instead of two.
#[tokio::test]
async fn the_sample_lists_are_cut_back_to_the_newest_thousand_past_a_slack() {
    let mut f = fx().await;
    let key = f.tk.run_samples();
    let old: Vec<u64> = vec![999_999; 1098];
    let _: () = f.con.lpush(&key, &old).await.unwrap();
    for r in ["a/1", "a/2"] {
        f.enqueue_fields(r, &[("tool", "t".to_owned())]).await;
        let claimed = f.claim(1, 0).await;
        let (r, fence) = &claimed[0];
        assert_eq!(f.complete(r, *fence, "succeeded").await, "succeeded");
    }
    let len: usize = f.con.llen(&key).await.unwrap();
    assert_eq!(len, 1100, "not cut back yet at the slack");
    f.enqueue_fields("a/3", &[("tool", "t".to_owned())]).await;
    let claimed = f.claim(1, 0).await;
    let (r, fence) = &claimed[0];
    f.complete(r, *fence, "succeeded").await;
    let kept: Vec<u64> = f.con.lrange(&key, 0, -1).await.unwrap();
    assert_eq!(kept.len(), 1000, "cut back to the newest thousand");
    assert!(
        kept[..3].iter().all(|ms| *ms < 999_999),
        "the new samples are kept: {:?}",
        &kept[..3]
    );
}

#[tokio::test]
async fn a_job_waited_for_by_its_submitter_is_published_only_when_it_ends() {
    let mut f = fx().await;
    let mut messages = f.notifications().await;
    for r in ["a/w", "a/s"] {
        f.enqueue_fields(r, &waited_for()).await;
    }
    // An SSE client registers on the second one: it wants every change.
    let hash = f
        .scripts
        .watch(&mut f.con, &f.tk, "a/s", "t", 60_000, WatchMode::Notify)
        .await
        .unwrap();
    assert!(!hash.contains_key("watch_end"), "{hash:?}");
    let claimed = f.claim(2, 0).await;
    assert_eq!(claimed.len(), 2);
    // The claim published `running` for the SSE-watched job only.
    assert_eq!(next_message(&mut messages).await, "t/a/s");
    for (r, fence) in &claimed {
        f.complete(r, *fence, "succeeded").await;
    }
    // Then each end, the waited-for job's included: its hash, then its tag alone.
    let mut ends = Vec::new();
    for _ in 0..4 {
        ends.push(next_message(&mut messages).await);
    }
    for r in ["a/w", "a/s"] {
        let tag = format!("t/{r}");
        let mine: Vec<&String> = ends
            .iter()
            .filter(|m| m.split('\n').next() == Some(tag.as_str()))
            .collect();
        assert_eq!(mine.len(), 2, "{ends:?}");
        let (_, doc) = mine[0]
            .split_once('\n')
            .expect("the end with its hash comes first");
        let flat: Vec<String> = serde_json::from_str(doc).unwrap();
        let hash: HashMap<&str, &str> = flat
            .chunks(2)
            .map(|p| (p[0].as_str(), p[1].as_str()))
            .collect();
        assert_eq!(hash.get("state"), Some(&"succeeded"), "{hash:?}");
        assert!(hash.contains_key("finished_ms"), "{hash:?}");
        assert_eq!(mine[1], &tag, "then the tag alone");
    }
}

/// A watched job whose hash at its end is bigger than a message should carry (a big result:
/// every API process receives every message) is published by its tag alone: the waiter reads it.
#[tokio::test]
async fn a_watched_end_too_big_to_send_is_published_as_its_tag_alone() {
    let mut f = fx().await;
    let mut messages = f.notifications().await;
    f.enqueue_fields("a/big", &waited_for()).await;
    let claimed = f.claim(1, 0).await;
    let big = format!("{{\"stdout\":\"{}\"}}", "x".repeat(70_000));
    let (r, fence) = &claimed[0];
    assert_eq!(
        f.complete_with(r, *fence, "succeeded", big).await,
        "succeeded"
    );
    // Its first message is the tag alone (an end with its hash would have come first).
    assert_eq!(next_message(&mut messages).await, "t/a/big");
}

/// The creation fields of a job whose submitter waits for its end (`Prefer: wait`): registered
/// for a minute, its end only published.
fn waited_for() -> [(&'static str, String); 3] {
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 60_000;
    [
        ("tool", "t".to_owned()),
        ("watch", until.to_string()),
        ("watch_end", "1".to_owned()),
    ]
}

async fn next_message(m: &mut (impl futures::Stream<Item = redis::Msg> + Unpin)) -> String {
    use futures::StreamExt;
    let msg = tokio::time::timeout(std::time::Duration::from_secs(5), m.next())
        .await
        .expect("a message within 5 s")
        .expect("the subscription is open");
    msg.get_payload::<String>().unwrap()
}

/// Outside a cluster the enqueue claims a new ID in the tenant's listing itself (one round trip):
/// a new ID is listed and created without the idempotency read; an ID listed already writes
/// nothing and says so (the caller then takes the two-step path); a full queue takes the member
/// back.
#[tokio::test]
async fn an_enqueue_that_claims_its_id_in_the_listing_lists_new_ids_only() {
    use scanq::scripts::Listed;
    let mut f = fx().await;
    let listing = format!("{}:listing:a", unique_prefix("l"));
    let claim = |score: u64| Listed::Claim {
        listing: listing.clone(),
        score,
        at_ms: 1_000,
        packed: None,
    };
    let fields = [("tool", "t".to_owned())];
    let enqueue = async |f: &mut Fx, r: &str, listed: Listed| {
        f.scripts
            .enqueue_listed(
                &mut f.con,
                &f.tk,
                &f.set,
                r,
                "h",
                (Priority::Normal, false),
                (0, false),
                listed,
                None,
                &fields,
            )
            .await
            .unwrap()
    };
    let first = enqueue(&mut f, "a/one", claim(1024)).await;
    assert!(
        matches!(first, Some(EnqueueOutcome::Created { .. })),
        "{first:?}"
    );
    let score: Option<f64> = f.con.zscore(&listing, "one").await.unwrap();
    assert_eq!(score, Some(1024.0));
    // Listed already: nothing written (the score stays the first one's).
    assert_eq!(enqueue(&mut f, "a/one", claim(2048)).await, None);
    let score: Option<f64> = f.con.zscore(&listing, "one").await.unwrap();
    assert_eq!(score, Some(1024.0));
    // A full queue (max 5): the new ID's member is taken back.
    for i in 0..4 {
        enqueue(&mut f, &format!("a/f{i}"), claim(4096 + i)).await;
    }
    let full = enqueue(&mut f, "a/over", claim(9999)).await;
    assert!(
        matches!(full, Some(EnqueueOutcome::Full { .. })),
        "{full:?}"
    );
    let over: Option<f64> = f.con.zscore(&listing, "over").await.unwrap();
    assert_eq!(over, None, "a refused job is not listed");
}
