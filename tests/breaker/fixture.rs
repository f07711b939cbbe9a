//! The breaker fixture: a throwaway redis-server (from the harness) and one tool's breaker on it.
#![allow(dead_code)]

use redis::aio::MultiplexedConnection;
use scanq::breaker::{
    Admission, Breaker, BreakerKeys, BreakerSettings, Outcome, Snapshot, Transition,
};
use scanq_tests::RedisServer;

/// A fixed fake clock start (ms); tests move time by passing later values.
pub const T0: u64 = 1_700_000_000_000;

pub fn keys(tool: &str) -> BreakerKeys {
    BreakerKeys {
        state: format!("test:{{{tool}}}:breaker"),
        hist: format!("test:{{{tool}}}:breaker:hist"),
        probes: format!("test:{{{tool}}}:breaker:probes"),
        window: format!("test:{{{tool}}}:breaker:window"),
    }
}

/// Defaults without jitter, so open periods are exact.
pub fn settings() -> BreakerSettings {
    BreakerSettings {
        jitter: 0.0,
        ..Default::default()
    }
}

/// One breaker on one private Redis, with helpers that pass the fake clock.
pub struct Fx {
    pub server: RedisServer,
    pub con: MultiplexedConnection,
    pub breaker: Breaker,
    pub keys: BreakerKeys,
    pub settings: BreakerSettings,
}

impl Fx {
    pub async fn new(settings: BreakerSettings) -> Self {
        settings.validate().unwrap();
        let server = RedisServer::start().await;
        let con = server.con().await;
        Fx {
            server,
            con,
            breaker: Breaker::new(),
            keys: keys("nmap"),
            settings,
        }
    }

    pub async fn admit(&mut self, now: u64, worker: &str, probe: &str) -> Admission {
        self.breaker
            .admit(
                &mut self.con,
                &self.keys,
                &self.settings,
                Some(now),
                worker,
                probe,
            )
            .await
            .unwrap()
    }

    pub async fn record(
        &mut self,
        now: u64,
        generation: u64,
        outcome: Outcome,
        worker: &str,
        probe: &str,
    ) -> (Outcome, Option<Transition>) {
        self.breaker
            .record(
                &mut self.con,
                &self.keys,
                &self.settings,
                Some(now),
                generation,
                outcome,
                worker,
                probe,
                "spawn_error: boom",
            )
            .await
            .unwrap()
    }

    /// Admits one job as `worker` and records `outcome` for it at the same instant.
    pub async fn run(
        &mut self,
        now: u64,
        worker: &str,
        outcome: Outcome,
    ) -> (Outcome, Option<Transition>) {
        let probe = format!("{worker}-{now}");
        let generation = self
            .admit(now, worker, &probe)
            .await
            .generation()
            .expect("job was admitted");
        self.record(now, generation, outcome, worker, &probe).await
    }

    pub async fn snapshot(&mut self, now: u64) -> Snapshot {
        self.breaker
            .snapshot(&mut self.con, &self.keys, Some(now))
            .await
            .unwrap()
    }

    /// Trips a closed consecutive-mode breaker at `now`; returns the transition.
    pub async fn trip(&mut self, now: u64) -> Transition {
        let n = self.settings.failure_threshold;
        let mut last = None;
        for i in 0..n {
            let (_, t) = self.run(now, &format!("w{i}"), Outcome::Failure).await;
            last = t;
        }
        last.expect("the breaker tripped")
    }
}
