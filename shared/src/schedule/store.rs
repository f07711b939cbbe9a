//! Schedules in Redis, all under their own hash tag `{sched}` (one cluster slot; no script
//! touches another tag):
//!
//! | key | type | what |
//! |---|---|---|
//! | `P:{sched}:def:<tenant>/<id>` | hash | `def` (JSON), `paused`, `parked` + `parked_reason`, `next_slot` (ms, '' = ended), `anchor_ms`, `created_ms`, `updated_ms`, `last_run`, `last_slot`, `firing` |
//! | `P:{sched}:due` | zset | member `<tenant>/<id>`, score = when it is due (slot + jitter, or a claim's lease end) |
//! | `P:{sched}:list:<tenant>` | zset | the tenant's schedule ids, score = created ms |
//! | `P:{sched}:runs:<tenant>/<id>` | zset | the schedule's newest [`KEEP_RUNS`] runs (correlation IDs), score = slot ms |
//!
//! The key names are built in `keys.rs` ([`SchedKeys`]).

use std::collections::HashMap;

use redis::AsyncCommands;

use super::ScheduleDef;
use crate::domain::TenantId;
use crate::keys::{Keys, SchedKeys};
use crate::queue::{Pool, PoolError};
use crate::scripts::{SchedClaim, SchedScripts};

/// How many runs a schedule's run list keeps (the newest; older ones are trimmed as new ones
/// are recorded). Their jobs stay until they expire.
pub const KEEP_RUNS: usize = 100;

/// Members dropped from the due set (deleted, ended, paused) one claim may step over.
const CLAIM_TRIES: usize = 16;

/// What a create-or-replace did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Created,
    Replaced,
    /// Not created: the tenant has `cap` schedules.
    AtCap {
        cap: u64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis pool: {0}")]
    Pool(#[from] PoolError),
    #[error("queue: {0}")]
    Queue(#[from] crate::queue::QueueError),
    #[error("stored schedule is unreadable: {0}")]
    Corrupt(String),
}

/// The due-zset member of a schedule.
pub fn member(tenant: &TenantId, id: &str) -> String {
    format!("{tenant}/{id}")
}

/// A schedule as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleView {
    pub id: String,
    /// None when the stored definition is unreadable (the schedule is then parked).
    pub def: Option<ScheduleDef>,
    pub paused: bool,
    /// Why the schedule was parked (it fires no more until it is replaced or resumed).
    pub parked: Option<String>,
    /// The next slot (ms), `None` when the schedule has ended.
    pub next_slot: Option<u64>,
    pub anchor_ms: u64,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub last_run: Option<String>,
}

impl ScheduleView {
    fn from_hash(id: &str, h: &HashMap<String, String>) -> Option<Self> {
        let def = h.get("def")?;
        let num = |k: &str| h.get(k).and_then(|v| v.parse::<u64>().ok());
        let parked = (h.get("parked").is_some_and(|p| p == "1")).then(|| {
            h.get("parked_reason")
                .cloned()
                .unwrap_or_else(|| "parked".into())
        });
        // An entry that does not pass is shown as parked (the scheduler parks it when due).
        let (def, unfit) = match ScheduleDef::from_stored(def) {
            Ok(d) => (Some(d), None),
            Err(e) => (None, Some(e)),
        };
        Some(Self {
            id: id.to_owned(),
            parked: parked.or(unfit),
            def,
            paused: h.get("paused").is_some_and(|p| p == "1"),
            next_slot: num("next_slot"),
            anchor_ms: num("anchor_ms").unwrap_or(0),
            created_ms: num("created_ms").unwrap_or(0),
            updated_ms: num("updated_ms").unwrap_or(0),
            last_run: h.get("last_run").filter(|v| !v.is_empty()).cloned(),
        })
    }
}

/// What a claim found.
#[derive(Debug, Clone)]
pub enum Claim {
    /// Nothing is due (Redis's clock, ms).
    Idle(u64),
    /// A due schedule, claimed for the lease.
    Due(Box<Claimed>),
    /// A due schedule that cannot be fired (its stored entry is unreadable or out of bounds):
    /// the caller parks it.
    Unfit { member: String, reason: String },
}

impl Claim {
    /// The claimed schedule, if the claim took one that can be fired.
    pub fn into_due(self) -> Option<Claimed> {
        match self {
            Self::Due(c) => Some(*c),
            _ => None,
        }
    }
}

/// A due schedule this process claimed.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub now_ms: u64,
    pub member: String,
    pub tenant: TenantId,
    pub id: String,
    pub def: ScheduleDef,
    pub slot: u64,
    pub slot_text: String,
    pub anchor_ms: u64,
    pub last_run: Option<String>,
    /// The slot being fired (see `claim.lua`).
    pub firing: u64,
    /// An earlier claimant of this slot died before committing.
    pub retry: bool,
}

/// The schedules of every tenant in Redis.
#[derive(Clone)]
pub struct ScheduleStore {
    pool: Pool,
    keys: SchedKeys,
    scripts: std::sync::Arc<SchedScripts>,
}

impl ScheduleStore {
    pub fn new(pool: Pool, prefix: &str) -> Self {
        Self {
            pool,
            keys: Keys::new(prefix).sched(),
            scripts: std::sync::Arc::new(SchedScripts::new()),
        }
    }

    /// Redis's clock (ms).
    pub async fn now_ms(&self) -> Result<u64, StoreError> {
        let mut con = self.pool.get().await?;
        let (s, us): (u64, u64) = redis::cmd("TIME").query_async(&mut con).await?;
        Ok(s * 1000 + us / 1000)
    }

    pub async fn get(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<ScheduleView>, StoreError> {
        let mut con = self.pool.get().await?;
        let h: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.def(&member(tenant, id)))
            .query_async(&mut con)
            .await?;
        Ok(ScheduleView::from_hash(id, &h))
    }

    /// Creates or replaces a schedule; `next_slot` is its first slot. A replaced schedule keeps
    /// its creation time, pause state and runs, and is no longer parked. A tenant with
    /// `max_per_tenant` schedules creates no more ([`Put::AtCap`]); replacing one still works.
    pub async fn put(
        &self,
        tenant: &TenantId,
        id: &str,
        def: &ScheduleDef,
        now_ms: u64,
        next_due: Option<(u64, u64)>,
        max_per_tenant: u64,
    ) -> Result<Put, StoreError> {
        let m = member(tenant, id);
        let key = self.keys.def(&m);
        let json = serde_json::to_string(def).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut con = self.pool.get().await?;
        let reserved = self
            .scripts
            .reserve(
                &mut con,
                &self.keys.list(tenant),
                id,
                max_per_tenant,
                now_ms,
            )
            .await?;
        let put = match reserved {
            0 => {
                return Ok(Put::AtCap {
                    cap: max_per_tenant,
                });
            }
            1 => Put::Created,
            _ => Put::Replaced,
        };
        let paused: Option<String> = redis::cmd("HGET")
            .arg(&key)
            .arg("paused")
            .query_async(&mut con)
            .await?;
        let paused = paused.is_some_and(|p| p == "1");
        let next = next_due.map(|(s, _)| s.to_string()).unwrap_or_default();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HSET")
            .arg(&key)
            .arg(&[
                ("def", json.as_str()),
                ("next_slot", next.as_str()),
                ("anchor_ms", &now_ms.to_string()),
                ("updated_ms", &now_ms.to_string()),
                ("firing", ""),
                ("parked", ""),
                ("parked_reason", ""),
            ])
            .ignore()
            .hset_nx(&key, "created_ms", now_ms)
            .ignore();
        match next_due {
            Some((_, due)) if !paused => pipe.zadd(self.keys.due(), &m, due).ignore(),
            _ => pipe.zrem(self.keys.due(), &m).ignore(),
        };
        let () = pipe.query_async(&mut con).await?;
        Ok(put)
    }

    /// Parks a schedule: it leaves the due set and fires no more until it is replaced or
    /// resumed; `reason` is shown on its document. False when it no longer exists.
    pub async fn park(&self, member: &str, reason: &str) -> Result<bool, StoreError> {
        let mut con = self.pool.get().await?;
        Ok(self
            .scripts
            .park(
                &mut con,
                &self.keys.def(member),
                &self.keys.due(),
                member,
                reason,
            )
            .await?)
    }

    /// The tenant's schedules, oldest first.
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<ScheduleView>, StoreError> {
        let mut con = self.pool.get().await?;
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.keys.list(tenant))
            .arg(0)
            .arg(-1)
            .query_async(&mut con)
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(v) = self.get(tenant, &id).await? {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Removes a schedule and its run list (the runs' jobs stay). False when there was none.
    pub async fn delete(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError> {
        let m = member(tenant, id);
        let mut con = self.pool.get().await?;
        let (n, _, _, _): (u64, u64, u64, u64) = redis::pipe()
            .atomic()
            .del(self.keys.def(&m))
            .zrem(self.keys.due(), &m)
            .zrem(self.keys.list(tenant), id)
            .del(self.keys.runs(&m))
            .query_async(&mut con)
            .await?;
        Ok(n > 0)
    }

    /// Pauses (no slot fires) or resumes a schedule; a resumed schedule continues at
    /// `next_due` (its first slot after now: missed slots are not fired) and is no longer
    /// parked.
    pub async fn set_paused(
        &self,
        tenant: &TenantId,
        id: &str,
        next_due: Option<(u64, u64)>,
    ) -> Result<(), StoreError> {
        let m = member(tenant, id);
        let key = self.keys.def(&m);
        let mut pipe = redis::pipe();
        pipe.atomic();
        match next_due {
            None => pipe
                .hset(&key, "paused", "1")
                .ignore()
                .zrem(self.keys.due(), &m)
                .ignore(),
            Some((slot, due)) => pipe
                .cmd("HSET")
                .arg(&key)
                .arg(&[
                    ("paused", "0".to_owned()),
                    ("next_slot", slot.to_string()),
                    ("firing", String::new()),
                    ("parked", String::new()),
                    ("parked_reason", String::new()),
                ])
                .ignore()
                .zadd(self.keys.due(), &m, due)
                .ignore(),
        };
        let mut con = self.pool.get().await?;
        let () = pipe.query_async(&mut con).await?;
        Ok(())
    }

    /// Claims one due schedule for `lease_ms`: the earliest of the due set, if it is due
    /// (members deleted, ended or paused meanwhile are dropped on the way).
    pub async fn claim(&self, lease_ms: u64) -> Result<Claim, StoreError> {
        let mut con = self.pool.get().await?;
        let due = self.keys.due();
        let mut now_ms = 0;
        for _ in 0..CLAIM_TRIES {
            let first: Vec<String> = con.zrange(&due, 0, 0).await?;
            let Some(m) = first.into_iter().next() else {
                return Ok(Claim::Idle(now_ms));
            };
            let claimed = self
                .scripts
                .claim(&mut con, &due, &self.keys.def(&m), &m, lease_ms)
                .await?;
            match claimed {
                SchedClaim::Idle { now_ms } => return Ok(Claim::Idle(now_ms)),
                SchedClaim::Gone { now_ms: n } => now_ms = n,
                SchedClaim::Claimed { now_ms, fields } => {
                    return Ok(Self::parse_claim(now_ms, m, fields));
                }
            }
        }
        Ok(Claim::Idle(now_ms))
    }

    /// A claimed schedule as stored, or [`Claim::Unfit`] naming what cannot be read.
    fn parse_claim(now_ms: u64, m: String, fields: [String; 6]) -> Claim {
        let [def, slot, anchor, last_run, firing, retry] = fields;
        let m = &m;
        let unfit = |reason: String| Claim::Unfit {
            member: m.clone(),
            reason,
        };
        let Some((tenant, id)) = m.split_once('/') else {
            return unfit(format!("unreadable due member `{m}`"));
        };
        let tenant = match TenantId::parse(tenant) {
            Ok(t) => t,
            Err(e) => return unfit(format!("unreadable tenant: {}", e.0)),
        };
        let def = match ScheduleDef::from_stored(&def) {
            Ok(d) => d,
            Err(e) => return unfit(e),
        };
        let Ok(slot_ms) = slot.parse() else {
            return unfit(format!("unreadable next slot `{slot}`"));
        };
        Claim::Due(Box::new(Claimed {
            now_ms,
            member: m.clone(),
            tenant,
            id: id.to_owned(),
            def,
            slot: slot_ms,
            slot_text: slot.clone(),
            anchor_ms: anchor.parse().unwrap_or(0),
            last_run: Some(last_run.clone()).filter(|r| !r.is_empty()),
            firing: firing.parse().unwrap_or(slot_ms),
            retry: retry == "1",
        }))
    }

    /// Moves the slot being fired to a later (catch-up) slot before its run is enqueued, so a
    /// claimant that takes over after a crash fires the same slot.
    pub async fn mark_firing(&self, c: &Claimed, slot: u64) -> Result<(), StoreError> {
        let mut con = self.pool.get().await?;
        let () = redis::cmd("HSET")
            .arg(self.keys.def(&c.member))
            .arg("firing")
            .arg(slot)
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    /// Holds the claimed slot (its `firing` stays set) and looks at it again at `due_ms`.
    pub async fn defer(&self, c: &Claimed, due_ms: u64) -> Result<(), StoreError> {
        let mut con = self.pool.get().await?;
        let _: u64 = redis::cmd("ZADD")
            .arg(self.keys.due())
            .arg("XX")
            .arg(due_ms)
            .arg(&c.member)
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    /// Records the claimed slot (with its run, if one was enqueued) and moves the schedule on.
    /// False when the claim was stale (the schedule changed meanwhile).
    pub async fn commit(
        &self,
        c: &Claimed,
        run: Option<(&str, u64)>,
        next_due: Option<(u64, u64)>,
    ) -> Result<bool, StoreError> {
        let mut con = self.pool.get().await?;
        let keys = [
            self.keys.def(&c.member),
            self.keys.due(),
            self.keys.runs(&c.member),
        ];
        Ok(self
            .scripts
            .commit(
                &mut con,
                [&keys[0], &keys[1], &keys[2]],
                &c.member,
                &c.slot_text,
                run,
                next_due,
                KEEP_RUNS,
            )
            .await?)
    }

    /// Records a run started outside the cadence (`trigger`), without moving the next slot.
    pub async fn record_run(
        &self,
        tenant: &TenantId,
        id: &str,
        cid: &str,
        at_ms: u64,
    ) -> Result<(), StoreError> {
        let m = member(tenant, id);
        let mut con = self.pool.get().await?;
        let () = redis::pipe()
            .atomic()
            .zadd(self.keys.runs(&m), cid, at_ms)
            .ignore()
            .zremrangebyrank(self.keys.runs(&m), 0, -(KEEP_RUNS as isize) - 1)
            .ignore()
            .hset(self.keys.def(&m), "last_run", cid)
            .ignore()
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    /// The schedule's runs, newest first: (correlation ID, slot ms).
    pub async fn runs(
        &self,
        tenant: &TenantId,
        id: &str,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let mut con = self.pool.get().await?;
        let flat: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(self.keys.runs(&member(tenant, id)))
            .arg(0)
            .arg(limit.saturating_sub(1) as i64)
            .arg("REV")
            .arg("WITHSCORES")
            .query_async(&mut con)
            .await?;
        Ok(flat.into_iter().map(|(c, s)| (c, s as u64)).collect())
    }
}
