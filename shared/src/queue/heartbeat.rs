//! A worker's presence: its self-description (`GET /v1/workers`, the zones' live workers)
//! written with an expiry at each heartbeat, its entry in the live set, and leaving the set on
//! shutdown. What the API reads of it is `waiting.rs` (`live_heartbeats`).

use std::collections::HashMap;
use std::time::Duration;

use super::Consumer;
use crate::domain::{Capabilities, Zone};

/// A worker's self-description, written with each heartbeat (`GET /v1/workers`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Heartbeat {
    pub id: String,
    pub version: &'static str,
    pub pid: u32,
    pub started_ms: u64,
    pub concurrency: u32,
    /// The zone whose jobs it claims (DESIGN §13).
    pub zone: Zone,
    /// Egress confinement of its tool runs: `nftables`, `unconfined` or `off`.
    pub confinement: &'static str,
    /// Tags of the jobs running here.
    pub running: Vec<String>,
    /// Tool → its binary is present on this worker.
    pub tools: HashMap<String, bool>,
    /// What it can do (raw-socket scans confined, per-run cgroups, unconfined runs).
    pub capabilities: Capabilities,
}

impl Consumer {
    /// Writes the worker's self-description with an expiry of `ttl` and drops workers whose
    /// heartbeat has lapsed from the live set.
    pub async fn heartbeat(&self, doc: &Heartbeat, ttl: Duration) -> Result<(), super::QueueError> {
        let ttl_ms = ttl.as_millis() as u64;
        let mut con = self.pool.get().await?;
        let now: (u64, u64) = redis::cmd("TIME").query_async(&mut con).await?;
        let now_ms = now.0 * 1000 + now.1 / 1000;
        let json = serde_json::to_string(doc).expect("serializable");
        let _: () = redis::pipe()
            .cmd("SET")
            .arg(self.keys.worker(&self.id))
            .arg(json)
            .arg("PX")
            .arg(ttl_ms)
            .ignore()
            .zadd(self.keys.workers(), &self.id, now_ms + ttl_ms)
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(self.keys.workers())
            .arg("-inf")
            .arg(now_ms)
            .ignore()
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    /// Leaves the live set (on shutdown). Best effort.
    pub async fn deregister(&self) {
        if let Ok(mut con) = self.pool.get().await {
            let _: redis::RedisResult<()> = redis::pipe()
                .del(self.keys.worker(&self.id))
                .zrem(self.keys.workers(), &self.id)
                .query_async(&mut con)
                .await;
        }
    }
}
