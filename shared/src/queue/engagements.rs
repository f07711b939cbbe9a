//! The engagements in Redis (DESIGN §14; keys in [`crate::keys::EngKeys`]): one hash per
//! engagement holding its checked definition as JSON, and a per-tenant index. Admission reads
//! one with one `HGET`; nothing on a plain job's path touches them.

use std::collections::HashMap;

use redis::AsyncCommands;

use super::{Queue, QueueError};
use crate::domain::{EngagementId, TenantId};
use crate::engagement::Engagement;

/// An engagement as stored, with its times.
#[derive(Debug, Clone)]
pub struct StoredEngagement {
    pub engagement: Engagement,
    pub created_ms: u64,
    pub updated_ms: u64,
}

fn decode(id: &str, h: &HashMap<String, String>) -> Result<Option<StoredEngagement>, QueueError> {
    let Some(def) = h.get("def") else {
        return Ok(None);
    };
    let engagement: Engagement = serde_json::from_str(def).map_err(|e| {
        QueueError::Redis(redis::RedisError::from((
            redis::ErrorKind::Client,
            "unreadable engagement",
            format!("{id}: {e}"),
        )))
    })?;
    let num = |k: &str| h.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(Some(StoredEngagement {
        engagement,
        created_ms: num("created_ms"),
        updated_ms: num("updated_ms"),
    }))
}

impl Queue {
    /// The tenant's engagement `id`, if it exists.
    pub async fn engagement(
        &self,
        tenant: &TenantId,
        id: &EngagementId,
    ) -> Result<Option<StoredEngagement>, QueueError> {
        let mut con = self.connection().await?;
        let h: HashMap<String, String> = con
            .hgetall(self.keys.eng().def(tenant, id.as_str()))
            .await?;
        decode(id.as_str(), &h)
    }

    /// Creates or replaces an engagement; true when it is new.
    pub async fn put_engagement(
        &self,
        tenant: &TenantId,
        e: &Engagement,
        now_ms: u64,
    ) -> Result<bool, QueueError> {
        let keys = self.keys.eng();
        let key = keys.def(tenant, e.id.as_str());
        let def = serde_json::to_string(e).expect("an engagement serializes");
        let mut con = self.connection().await?;
        let (created, (), _): (i64, (), i64) = redis::pipe()
            .atomic()
            .hset_nx(&key, "created_ms", now_ms)
            .hset_multiple(&key, &[("def", def), ("updated_ms", now_ms.to_string())])
            .zadd(keys.list(tenant), e.id.as_str(), now_ms)
            .query_async(&mut con)
            .await?;
        Ok(created == 1)
    }

    /// The tenant's engagements, oldest first.
    pub async fn engagements(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<StoredEngagement>, QueueError> {
        let keys = self.keys.eng();
        let mut con = self.connection().await?;
        let ids: Vec<String> = con.zrange(keys.list(tenant), 0, -1).await?;
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(keys.def(tenant, id));
        }
        let hs: Vec<HashMap<String, String>> = pipe.query_async(&mut con).await?;
        let mut out = Vec::with_capacity(ids.len());
        for (id, h) in ids.iter().zip(&hs) {
            if let Some(e) = decode(id, h)? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Deletes an engagement; false when there was none.
    pub async fn delete_engagement(
        &self,
        tenant: &TenantId,
        id: &EngagementId,
    ) -> Result<bool, QueueError> {
        let keys = self.keys.eng();
        let mut con = self.connection().await?;
        let (gone, _): (i64, i64) = redis::pipe()
            .atomic()
            .del(keys.def(tenant, id.as_str()))
            .zrem(keys.list(tenant), id.as_str())
            .query_async(&mut con)
            .await?;
        Ok(gone == 1)
    }
}
