//! Webhook subscriptions, the outbox and delivery logs in Redis, under their own hash tag
//! `{hook}` (one cluster slot; no script touches another tag):
//!
//! | key | type | what |
//! |---|---|---|
//! | `P:{hook}:sub:<tenant>/<id>` | hash | `url`, `events` (comma-separated), `schedule_id`, `secret`, `created_ms` |
//! | `P:{hook}:subs:<tenant>` | zset | the tenant's subscription ids, score = created ms |
//! | `P:{hook}:outbox` | zset | member `<tenant>/<sub>/<event id>`, score = next attempt ms |
//! | `P:{hook}:d:<member>` | hash | one delivery: `event`, `body`, `attempts`, `first_ms`, `done`; kept 48 h after it ends (so a re-emitted event is not sent twice) |
//! | `P:{hook}:log:<tenant>/<sub>` | list | the newest 50 attempts (JSON) |

use std::collections::HashMap;
use std::sync::Arc;

use redis::Script;

use super::EventType;
use crate::domain::TenantId;
use crate::queue::{Pool, PoolError};

const LOG_LEN: isize = 50;
const KEEP_ENDED_MS: u64 = 48 * 3_600_000;

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis pool: {0}")]
    Pool(#[from] PoolError),
}

#[derive(Debug, Clone)]
struct HookKeys {
    base: String,
}

impl HookKeys {
    fn sub(&self, member: &str) -> String {
        format!("{}sub:{member}", self.base)
    }
    fn subs(&self, tenant: &TenantId) -> String {
        format!("{}subs:{tenant}", self.base)
    }
    fn outbox(&self) -> String {
        format!("{}outbox", self.base)
    }
    fn delivery_prefix(&self) -> String {
        format!("{}d:", self.base)
    }
    fn delivery(&self, member: &str) -> String {
        format!("{}{member}", self.delivery_prefix())
    }
    fn log(&self, sub_member: &str) -> String {
        format!("{}log:{sub_member}", self.base)
    }
}

/// A subscription (its secret is only ever shown by the create call).
#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: String,
    pub url: String,
    pub events: Vec<EventType>,
    pub schedule_id: Option<String>,
    pub secret: String,
    pub created_ms: u64,
}

impl Subscription {
    fn from_hash(id: &str, h: &HashMap<String, String>) -> Option<Self> {
        Some(Self {
            id: id.to_owned(),
            url: h.get("url")?.clone(),
            events: h
                .get("events")?
                .split(',')
                .filter_map(|e| e.parse().ok())
                .collect(),
            schedule_id: h.get("schedule_id").filter(|s| !s.is_empty()).cloned(),
            secret: h.get("secret")?.clone(),
            created_ms: h
                .get("created_ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        })
    }
}

/// A due delivery this process claimed.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub now_ms: u64,
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
    emit: Arc<Script>,
    claim: Arc<Script>,
}

impl WebhookStore {
    pub fn new(pool: Pool, prefix: &str) -> Self {
        Self {
            pool,
            keys: HookKeys {
                base: format!("{prefix}:{{hook}}:"),
            },
            emit: Arc::new(Script::new(include_str!("lua/emit.lua"))),
            claim: Arc::new(Script::new(include_str!("lua/claim.lua"))),
        }
    }

    pub async fn create(&self, tenant: &TenantId, sub: &Subscription) -> Result<(), HookError> {
        let m = format!("{tenant}/{}", sub.id);
        let events: Vec<&str> = sub.events.iter().map(|e| e.as_str()).collect();
        let mut con = self.pool.get().await?;
        let () = redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(self.keys.sub(&m))
            .arg(&[
                ("url", sub.url.clone()),
                ("events", events.join(",")),
                ("schedule_id", sub.schedule_id.clone().unwrap_or_default()),
                ("secret", sub.secret.clone()),
                ("created_ms", sub.created_ms.to_string()),
            ])
            .ignore()
            .zadd(self.keys.subs(tenant), &sub.id, sub.created_ms)
            .ignore()
            .query_async(&mut con)
            .await?;
        Ok(())
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

    /// The newest attempts of a subscription, newest first.
    pub async fn log(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Vec<serde_json::Value>, HookError> {
        let mut con = self.pool.get().await?;
        let lines: Vec<String> = redis::cmd("LRANGE")
            .arg(self.keys.log(&format!("{tenant}/{id}")))
            .arg(0)
            .arg(LOG_LEN - 1)
            .query_async(&mut con)
            .await?;
        Ok(lines
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
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
            let n: u64 = self
                .emit
                .key(self.keys.delivery(&m))
                .key(self.keys.outbox())
                .arg(&m)
                .arg(event.as_str())
                .arg(body)
                .invoke_async(&mut con)
                .await?;
            written += n as usize;
        }
        Ok(written)
    }

    /// Claims one due delivery for `lease_ms`.
    pub async fn claim(&self, lease_ms: u64) -> Result<Option<Delivery>, HookError> {
        let mut con = self.pool.get().await?;
        let reply: Vec<String> = self
            .claim
            .key(self.keys.outbox())
            .arg(self.keys.delivery_prefix())
            .arg(lease_ms)
            .invoke_async(&mut con)
            .await?;
        let [now, m, event, body, attempts, first] = reply.as_slice() else {
            return Ok(None);
        };
        let mut parts = m.splitn(3, '/');
        let (Some(t), Some(sub), Some(eid)) = (parts.next(), parts.next(), parts.next()) else {
            return Ok(None);
        };
        let Ok(tenant) = TenantId::parse(t) else {
            return Ok(None);
        };
        Ok(Some(Delivery {
            now_ms: now.parse().unwrap_or(0),
            member: m.clone(),
            tenant,
            sub_id: sub.to_owned(),
            event_id: eid.to_owned(),
            event: event.clone(),
            body: body.clone(),
            attempts: attempts.parse().unwrap_or(0),
            first_ms: first.parse().unwrap_or(0),
        }))
    }

    /// Records an attempt: `next_ms` = when to try again, `None` = it ended (delivered, given
    /// up, or its subscription is gone).
    pub async fn finish(
        &self,
        d: &Delivery,
        entry: &serde_json::Value,
        next_ms: Option<u64>,
        outcome: &str,
    ) -> Result<(), HookError> {
        let key = self.keys.delivery(&d.member);
        let log = self.keys.log(&d.sub_member());
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hincr(&key, "attempts", 1)
            .ignore()
            .lpush(&log, entry.to_string())
            .ignore()
            .ltrim(&log, 0, LOG_LEN - 1)
            .ignore();
        match next_ms {
            Some(at) => pipe.zadd(self.keys.outbox(), &d.member, at).ignore(),
            None => pipe
                .zrem(self.keys.outbox(), &d.member)
                .ignore()
                .hset(&key, "done", outcome)
                .ignore()
                .pexpire(&key, KEEP_ENDED_MS as i64)
                .ignore(),
        };
        let mut con = self.pool.get().await?;
        let () = pipe.query_async(&mut con).await?;
        Ok(())
    }

    /// Deliveries still waiting in the outbox (tests and health).
    pub async fn pending(&self) -> Result<u64, HookError> {
        let mut con = self.pool.get().await?;
        Ok(redis::cmd("ZCARD")
            .arg(self.keys.outbox())
            .query_async(&mut con)
            .await?)
    }
}
