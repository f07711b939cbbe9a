//! Wrappers of the schedule scripts (`lua/sched_*.lua`): reserving a schedule's place under
//! its tenant's cap, claiming a due schedule, committing a fired slot, parking. Every key they
//! touch is in `KEYS`, built by [`crate::keys::SchedKeys`].

use redis::aio::ConnectionLike;
use redis::{RedisResult, Script};

/// What [`SchedScripts::claim`] answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchedClaim {
    /// The named schedule is not due yet (and, being the earliest, nothing is).
    Idle { now_ms: u64 },
    /// It was deleted, ended or paused meanwhile and left the due set: look again.
    Gone { now_ms: u64 },
    /// Claimed: `now_ms`, then the schedule's `def`, `next_slot`, `anchor_ms`, `last_run`,
    /// `firing` and `retry` as stored (parsed by the caller, which parks what it cannot read).
    Claimed { now_ms: u64, fields: [String; 6] },
}

#[derive(Debug)]
pub struct SchedScripts {
    reserve: Script,
    claim: Script,
    commit: Script,
    park: Script,
}

impl Default for SchedScripts {
    fn default() -> Self {
        Self::new()
    }
}

impl SchedScripts {
    pub fn new() -> Self {
        Self {
            reserve: super::build(include_str!("lua/sched_reserve.lua")),
            claim: super::build(include_str!("lua/sched_claim.lua")),
            commit: super::build(include_str!("lua/sched_commit.lua")),
            park: super::build(include_str!("lua/sched_park.lua")),
        }
    }

    pub(super) fn all(&self) -> [&Script; 4] {
        [&self.reserve, &self.claim, &self.commit, &self.park]
    }

    /// 1 created, 2 replaced, 0 the tenant is at `cap`.
    pub async fn reserve(
        &self,
        con: &mut impl ConnectionLike,
        list: &str,
        id: &str,
        cap: u64,
        now_ms: u64,
    ) -> RedisResult<u8> {
        self.reserve
            .key(list)
            .arg(id)
            .arg(cap)
            .arg(now_ms)
            .invoke_async(con)
            .await
    }

    /// Claims `member` (the earliest of the due zset) for `lease_ms` if it is due.
    pub async fn claim(
        &self,
        con: &mut impl ConnectionLike,
        due: &str,
        def: &str,
        member: &str,
        lease_ms: u64,
    ) -> RedisResult<SchedClaim> {
        let reply: Vec<String> = self
            .claim
            .key(due)
            .key(def)
            .arg(member)
            .arg(lease_ms)
            .invoke_async(con)
            .await?;
        let now_ms = reply.first().and_then(|n| n.parse().ok()).unwrap_or(0);
        Ok(match reply.as_slice() {
            [_, gone] if gone == "gone" => SchedClaim::Gone { now_ms },
            [_, _m, def, slot, anchor, last_run, firing, retry] => SchedClaim::Claimed {
                now_ms,
                fields: [
                    def.clone(),
                    slot.clone(),
                    anchor.clone(),
                    last_run.clone(),
                    firing.clone(),
                    retry.clone(),
                ],
            },
            _ => SchedClaim::Idle { now_ms },
        })
    }

    /// Records a fired slot (see `sched_commit.lua`); true when committed, false when stale.
    #[allow(clippy::too_many_arguments)]
    pub async fn commit(
        &self,
        con: &mut impl ConnectionLike,
        keys: [&str; 3],
        member: &str,
        slot_text: &str,
        run: Option<(&str, u64)>,
        next_due: Option<(u64, u64)>,
        keep_runs: usize,
    ) -> RedisResult<bool> {
        let (next, due) = next_due.map_or((String::new(), 0), |(s, d)| (s.to_string(), d));
        let n: u64 = self
            .commit
            .key(keys[0])
            .key(keys[1])
            .key(keys[2])
            .arg(member)
            .arg(slot_text)
            .arg(run.map_or("", |r| r.0))
            .arg(next)
            .arg(due)
            .arg(run.map_or(0, |r| r.1))
            .arg(keep_runs)
            .invoke_async(con)
            .await?;
        Ok(n == 1)
    }

    /// Parks a schedule; false when it no longer exists.
    pub async fn park(
        &self,
        con: &mut impl ConnectionLike,
        def: &str,
        due: &str,
        member: &str,
        reason: &str,
    ) -> RedisResult<bool> {
        let n: u8 = self
            .park
            .key(def)
            .key(due)
            .arg(member)
            .arg(reason)
            .invoke_async(con)
            .await?;
        Ok(n == 1)
    }
}
