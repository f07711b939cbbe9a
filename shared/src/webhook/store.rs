//! Webhook subscriptions, the per-tenant outboxes, the ring of tenants with deliveries and the
//! delivery logs in Redis, under the hash tag `{hook}` (key names: [`crate::keys::HookKeys`];
//! scripts: [`crate::scripts::HookScripts`]).

use std::collections::HashMap;
use std::sync::Arc;

use super::EventType;
use crate::domain::TenantId;
use crate::keys::HookKeys;
use crate::queue::{Pool, PoolError};
use crate::scripts::{Finish, HookClaim, HookScripts, InFlight, PutOutcome};

const LOG_LEN: u64 = 50;
const KEEP_ENDED_MS: u64 = 48 * 3_600_000;
/// Tenants offered to the claim per step, in ring order.
const CLAIM_CANDIDATES: isize = 16;

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis pool: {0}")]
    Pool(#[from] PoolError),
    #[error("{0}")]
    Queue(#[from] crate::queue::QueueError),
}

/// A stored subscription (its secret is only ever shown by the create call).
#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: String,
    pub url: String,
    pub events: Vec<EventType>,
    pub schedule_id: Option<String>,
    pub description: Option<String>,
    pub secret: String,
    pub created_ms: u64,
}

impl Subscription {
    fn from_hash(id: &str, h: &HashMap<String, String>) -> Option<Self> {
        let text = |k: &str| h.get(k).filter(|s| !s.is_empty()).cloned();
        Some(Self {
            id: id.to_owned(),
            url: h.get("url")?.clone(),
            events: h
                .get("events")?
                .split(',')
                .filter_map(|e| e.parse().ok())
                .collect(),
            schedule_id: text("schedule_id"),
            description: text("description"),
            secret: h.get("secret")?.clone(),
            created_ms: h
                .get("created_ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        })
    }

    /// The fields a create or replace writes (not `created_ms`; the secret only on create).
    fn fields(&self, with_secret: bool) -> Vec<(&'static str, String)> {
        let events: Vec<&str> = self.events.iter().map(|e| e.as_str()).collect();
        let mut f = vec![
            ("url", self.url.clone()),
            ("events", events.join(",")),
            ("schedule_id", self.schedule_id.clone().unwrap_or_default()),
            ("description", self.description.clone().unwrap_or_default()),
        ];
        if with_secret {
            f.push(("secret", self.secret.clone()));
        }
        f
    }
}

/// A due delivery this process claimed.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub now_ms: u64,
    /// When this claim's lease ends (its score in the outbox while it holds it).
    pub lease_until: u64,
    pub member: String,
    pub tenant: TenantId,
    pub sub_id: String,
    pub event_id: String,
    pub event: String,
    pub body: String,
    pub attempts: u64,
    pub first_ms: u64,
}

impl Delivery {
    fn sub_member(&self) -> String {
        format!("{}/{}", self.tenant, self.sub_id)
    }
}

#[derive(Clone)]
pub struct WebhookStore {
    pool: Pool,
    keys: HookKeys,
    scripts: Arc<HookScripts>,
}

impl WebhookStore {
    pub fn new(pool: Pool, prefix: &str) -> Self {
        Self {
            pool,
            keys: HookKeys::new(prefix),
            scripts: Arc::new(HookScripts::new()),
        }
    }

    /// Stores a new subscription unless the tenant already has `cap`; `Err(count)` then.
    pub async fn create(
        &self,
        tenant: &TenantId,
        sub: &Subscription,
        cap: u64,
    ) -> Result<Result<(), u64>, HookError> {
        let mut con = self.pool.get().await?;
        let fields = sub.fields(true);
        let put = self
            .scripts
            .put(
                &mut con,
                &self.keys,
                tenant,
                &sub.id,
                false,
                sub.created_ms,
                cap,
                &fields,
            )
            .await?;
        Ok(match put {
            PutOutcome::AtCap { count } => Err(count),
            _ => Ok(()),
        })
    }

    /// Replaces an existing subscription's settings (id, secret and creation time stay);
    /// false when there is no such subscription.
    pub async fn replace(&self, tenant: &TenantId, sub: &Subscription) -> Result<bool, HookError> {
        let mut con = self.pool.get().await?;
        let fields = sub.fields(false);
        let put = self
            .scripts
            .put(&mut con, &self.keys, tenant, &sub.id, true, 0, 0, &fields)
            .await?;
        Ok(put != PutOutcome::NotFound)
    }

    pub async fn get(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<Subscription>, HookError> {
        let mut con = self.pool.get().await?;
        let h: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.sub(&format!("{tenant}/{id}")))
            .query_async(&mut con)
            .await?;
        Ok(Subscription::from_hash(id, &h))
    }

    /// Whether the tenant has any subscription (one `ZCARD`).
    pub async fn has_subscriptions(&self, tenant: &TenantId) -> Result<bool, HookError> {
        let mut con = self.pool.get().await?;
        let n: u64 = redis::cmd("ZCARD")
            .arg(self.keys.subs(tenant))
            .query_async(&mut con)
            .await?;
        Ok(n > 0)
    }

    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<Subscription>, HookError> {
        let mut con = self.pool.get().await?;
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.keys.subs(tenant))
            .arg(0)
            .arg(-1)
            .query_async(&mut con)
            .await?;
        drop(con);
        let mut out = Vec::new();
        for id in ids {
            if let Some(s) = self.get(tenant, &id).await? {
                out.push(s);
            }
        }
        Ok(out)
    }

    pub async fn delete(&self, tenant: &TenantId, id: &str) -> Result<bool, HookError> {
        let m = format!("{tenant}/{id}");
        let mut con = self.pool.get().await?;
        let (n, _, _): (u64, u64, u64) = redis::pipe()
            .atomic()
            .del(self.keys.sub(&m))
            .zrem(self.keys.subs(tenant), id)
            .del(self.keys.log(&m))
            .query_async(&mut con)
            .await?;
        Ok(n > 0)
    }

    /// The newest attempts of a subscription (JSON lines as stored), newest first.
    pub async fn log(&self, tenant: &TenantId, id: &str) -> Result<Vec<String>, HookError> {
        let mut con = self.pool.get().await?;
        Ok(redis::cmd("LRANGE")
            .arg(self.keys.log(&format!("{tenant}/{id}")))
            .arg(0)
            .arg(LOG_LEN as isize - 1)
            .query_async(&mut con)
            .await?)
    }

    /// Puts an event into the outbox of every subscription of `tenant` that wants it.
    pub async fn emit(
        &self,
        tenant: &TenantId,
        event: EventType,
        event_id: &str,
        schedule_id: Option<&str>,
        body: &str,
    ) -> Result<usize, HookError> {
        let mut written = 0;
        for sub in self.list(tenant).await? {
            if !sub.events.contains(&event) {
                continue;
            }
            if let Some(only) = &sub.schedule_id
                && schedule_id != Some(only.as_str())
            {
                continue;
            }
            let m = format!("{tenant}/{}/{event_id}", sub.id);
            let mut con = self.pool.get().await?;
            let new = self
                .scripts
                .emit(
                    &mut con,
                    &self.keys,
                    tenant.as_str(),
                    &m,
                    event.as_str(),
                    body,
                )
                .await?;
            written += usize::from(new);
        }
        Ok(written)
    }

    /// Claims one due delivery for `lease_ms`, fairly: tenants are offered in ring order
    /// (the one whose turn is oldest first), each within its in-flight bound.
    pub async fn claim(
        &self,
        lease_ms: u64,
        bounds: InFlight,
    ) -> Result<Option<Delivery>, HookError> {
        let mut con = self.pool.get().await?;
        let tenants: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.keys.ring())
            .arg(0)
            .arg(CLAIM_CANDIDATES - 1)
            .query_async(&mut con)
            .await?;
        for t in tenants {
            let claimed = self
                .scripts
                .claim(&mut con, &self.keys, &t, lease_ms, bounds)
                .await?;
            let (now_ms, member) = match claimed {
                HookClaim::Claimed { now_ms, member } => (now_ms, member),
                HookClaim::FleetBusy => return Ok(None),
                HookClaim::Idle | HookClaim::TenantBusy => continue,
            };
            let h: (Option<String>, Option<String>, Option<u64>, Option<u64>) = redis::cmd("HMGET")
                .arg(self.keys.delivery(&member))
                .arg(&["event", "body", "attempts", "first_ms"])
                .query_async(&mut con)
                .await?;
            let mut parts = member.splitn(3, '/');
            let parsed = (parts.next(), parts.next(), parts.next());
            let (Some(tenant), Some(sub), Some(eid)) = parsed else {
                self.forget(&t, &member, "").await?;
                continue;
            };
            let (Ok(tenant_id), (Some(event), Some(body), attempts, first_ms)) =
                (TenantId::parse(tenant), h)
            else {
                self.forget(&t, &member, &format!("{tenant}/{sub}")).await?;
                continue;
            };
            return Ok(Some(Delivery {
                now_ms,
                lease_until: now_ms + lease_ms,
                tenant: tenant_id,
                sub_id: sub.to_owned(),
                event_id: eid.to_owned(),
                event,
                body,
                attempts: attempts.unwrap_or(0),
                first_ms: first_ms.unwrap_or(now_ms),
                member,
            }));
        }
        Ok(None)
    }

    /// Drops an outbox member whose delivery hash is gone.
    async fn forget(&self, tenant: &str, member: &str, sub_member: &str) -> Result<(), HookError> {
        let mut con = self.pool.get().await?;
        let f = Finish {
            member,
            tenant,
            sub_member,
            entry: None,
            next_ms: None,
            outcome: "dropped",
            log_len: LOG_LEN,
            keep_ended_ms: KEEP_ENDED_MS,
            lease_until: None,
        };
        self.scripts.finish(&mut con, &self.keys, f).await?;
        Ok(())
    }

    /// Records an attempt: `next_ms` = when to try again, `None` = it ended (delivered, given
    /// up, revoked, or its subscription is gone). An attempt that outlived its lease, now
    /// another's, is only logged.
    pub async fn finish(
        &self,
        d: &Delivery,
        entry: &serde_json::Value,
        next_ms: Option<u64>,
        outcome: &str,
    ) -> Result<(), HookError> {
        let entry = entry.to_string();
        let f = Finish {
            member: &d.member,
            tenant: d.tenant.as_str(),
            sub_member: &d.sub_member(),
            entry: Some(&entry),
            next_ms,
            outcome,
            log_len: LOG_LEN,
            keep_ended_ms: KEEP_ENDED_MS,
            lease_until: Some(d.lease_until),
        };
        let mut con = self.pool.get().await?;
        if !self.scripts.finish(&mut con, &self.keys, f).await? {
            tracing::info!(delivery = %d.member, "Webhook lease taken over; the attempt is only logged");
        }
        Ok(())
    }

    /// Moves what the single outbox of earlier versions still holds into the per-tenant
    /// outboxes (and their tenants into the ring); returns how many it moved.
    pub async fn adopt_legacy_outbox(&self) -> Result<u64, HookError> {
        let legacy = self.keys.legacy_outbox();
        let mut con = self.pool.get().await?;
        let mut moved = 0;
        loop {
            let batch: Vec<(String, f64)> = redis::cmd("ZRANGE")
                .arg(&legacy)
                .arg(0)
                .arg(99)
                .arg("WITHSCORES")
                .query_async(&mut con)
                .await?;
            if batch.is_empty() {
                return Ok(moved);
            }
            let mut pipe = redis::pipe();
            pipe.atomic();
            for (m, score) in &batch {
                if let Some(t) = m.split('/').next().filter(|t| TenantId::parse(t).is_ok()) {
                    pipe.zadd(self.keys.outbox(t), m, *score).ignore();
                    pipe.cmd("ZADD")
                        .arg(self.keys.ring())
                        .arg("LT")
                        .arg(*score)
                        .arg(t)
                        .ignore();
                    moved += 1;
                }
                pipe.zrem(&legacy, m).ignore();
            }
            let () = pipe.query_async(&mut con).await?;
        }
    }

    /// Deliveries still waiting in any outbox (tests and health).
    pub async fn pending(&self) -> Result<u64, HookError> {
        let mut con = self.pool.get().await?;
        let tenants: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.keys.ring())
            .arg(0)
            .arg(-1)
            .query_async(&mut con)
            .await?;
        let mut n = 0;
        for t in tenants {
            let c: u64 = redis::cmd("ZCARD")
                .arg(self.keys.outbox(&t))
                .query_async(&mut con)
                .await?;
            n += c;
        }
        Ok(n)
    }
}
