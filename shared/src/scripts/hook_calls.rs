//! Wrappers of the webhook scripts (`lua/hook_*.lua`): emitting into a tenant's outbox, the
//! fair claim, recording an attempt, and creating or replacing a subscription within the
//! tenant's cap. Every key they touch is in `KEYS`, built by [`crate::keys::HookKeys`].

use redis::aio::ConnectionLike;
use redis::{RedisResult, Script};

use crate::keys::HookKeys;

/// What [`HookScripts::claim`] found for one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookClaim {
    /// A delivery, leased until `now_ms` + the lease.
    Claimed { now_ms: u64, member: String },
    /// Nothing due for this tenant.
    Idle,
    /// The tenant is at its in-flight bound.
    TenantBusy,
    /// The fleet is at its in-flight bound.
    FleetBusy,
}

/// Bounds of deliveries being attempted at once, across every process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlight {
    pub per_tenant: u64,
    pub fleet: u64,
}

/// One attempt as `hook_finish.lua` records it.
#[derive(Debug, Clone, Copy)]
pub struct Finish<'a> {
    pub member: &'a str,
    pub tenant: &'a str,
    pub sub_member: &'a str,
    /// The log line; `None` when the delivery's hash is gone (nothing to log).
    pub entry: Option<&'a str>,
    /// When to try again; `None` = it ended.
    pub next_ms: Option<u64>,
    pub outcome: &'a str,
    pub log_len: u64,
    pub keep_ended_ms: u64,
    /// The claim's lease expiry; `None` = no ownership check.
    pub lease_until: Option<u64>,
}

/// What [`HookScripts::put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Done { count: u64 },
    AtCap { count: u64 },
    NotFound,
}

#[derive(Debug)]
pub struct HookScripts {
    emit: Script,
    claim: Script,
    finish: Script,
    put: Script,
}

impl Default for HookScripts {
    fn default() -> Self {
        Self::new()
    }
}

impl HookScripts {
    pub fn new() -> Self {
        Self {
            emit: super::build(include_str!("lua/hook_emit.lua")),
            claim: super::build(include_str!("lua/hook_claim.lua")),
            finish: super::build(include_str!("lua/hook_finish.lua")),
            put: super::build(include_str!("lua/hook_put.lua")),
        }
    }

    pub(super) fn all(&self) -> [&Script; 4] {
        [&self.emit, &self.claim, &self.finish, &self.put]
    }

    /// Writes one event for one subscription; false when the event id was already known.
    #[allow(clippy::too_many_arguments)]
    pub async fn emit(
        &self,
        con: &mut impl ConnectionLike,
        keys: &HookKeys,
        tenant: &str,
        member: &str,
        event: &str,
        body: &str,
    ) -> RedisResult<bool> {
        let n: u64 = self
            .emit
            .key(keys.delivery(member))
            .key(keys.outbox(tenant))
            .key(keys.ring())
            .arg(member)
            .arg(event)
            .arg(body)
            .arg(tenant)
            .invoke_async(con)
            .await?;
        Ok(n == 1)
    }

    /// Tries to claim a due delivery of `tenant` for `lease_ms`.
    pub async fn claim(
        &self,
        con: &mut impl ConnectionLike,
        keys: &HookKeys,
        tenant: &str,
        lease_ms: u64,
        bounds: InFlight,
    ) -> RedisResult<HookClaim> {
        let reply: Vec<String> = self
            .claim
            .key(keys.ring())
            .key(keys.outbox(tenant))
            .key(keys.in_flight(tenant))
            .key(keys.in_flight_all())
            .arg(tenant)
            .arg(lease_ms)
            .arg(bounds.per_tenant)
            .arg(bounds.fleet)
            .invoke_async(con)
            .await?;
        Ok(match reply.as_slice() {
            [now, word, member] if word == "claimed" => HookClaim::Claimed {
                now_ms: now.parse().unwrap_or(0),
                member: member.clone(),
            },
            [_, word] if word == "fleet" => HookClaim::FleetBusy,
            [_, word] if word == "tenant" => HookClaim::TenantBusy,
            _ => HookClaim::Idle,
        })
    }

    /// Records an attempt and frees its in-flight slot; false when the lease was taken over
    /// (the attempt is only logged).
    pub async fn finish(
        &self,
        con: &mut impl ConnectionLike,
        keys: &HookKeys,
        f: Finish<'_>,
    ) -> RedisResult<bool> {
        let n: u64 = self
            .finish
            .key(keys.delivery(f.member))
            .key(keys.outbox(f.tenant))
            .key(keys.in_flight(f.tenant))
            .key(keys.in_flight_all())
            .key(keys.ring())
            .key(keys.log(f.sub_member))
            .arg(f.member)
            .arg(f.tenant)
            .arg(f.entry.unwrap_or_default())
            .arg(f.next_ms.map(|n| n.to_string()).unwrap_or_default())
            .arg(f.outcome)
            .arg(f.log_len)
            .arg(f.keep_ended_ms)
            .arg(f.lease_until.map(|n| n.to_string()).unwrap_or_default())
            .invoke_async(con)
            .await?;
        Ok(n == 1)
    }

    /// Creates (within `cap`) or replaces the subscription `sub_member` = `<tenant>/<id>`.
    #[allow(clippy::too_many_arguments)]
    pub async fn put(
        &self,
        con: &mut impl ConnectionLike,
        keys: &HookKeys,
        tenant: &crate::domain::TenantId,
        id: &str,
        replace: bool,
        created_ms: u64,
        cap: u64,
        fields: &[(&str, String)],
    ) -> RedisResult<PutOutcome> {
        let mut inv = self.put.prepare_invoke();
        inv.key(keys.sub(&format!("{tenant}/{id}")))
            .key(keys.subs(tenant))
            .arg(if replace { "replace" } else { "create" })
            .arg(id)
            .arg(created_ms)
            .arg(cap);
        for (k, v) in fields {
            inv.arg(*k).arg(v);
        }
        let (done, count): (i64, u64) = inv.invoke_async(con).await?;
        Ok(match done {
            1 => PutOutcome::Done { count },
            0 => PutOutcome::AtCap { count },
            _ => PutOutcome::NotFound,
        })
    }
}
