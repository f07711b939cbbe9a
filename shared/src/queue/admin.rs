//! Operators' actions and reads: a tool's breaker, the cluster-wide tool switch, state counts.

use std::collections::HashMap;

use redis::AsyncCommands;

use super::{Queue, QueueError};
use crate::breaker::{BreakerSettings, ForceAction, Snapshot, Transition};
use crate::domain::{ToolName, Zone};

impl Queue {
    /// The tool's breaker in `zone` as dashboards see it (each zone's queue has its own).
    pub async fn breaker_snapshot(
        &self,
        tool: &ToolName,
        zone: &Zone,
    ) -> Result<Snapshot, QueueError> {
        let mut con = self.connection().await?;
        let keys = self.keys.home(tool, zone).breaker_keys();
        Ok(self.breaker.snapshot(&mut con, &keys, None).await?)
    }

    /// Admin action on the tool's breaker in `zone`; the transition made, if any.
    pub async fn breaker_force(
        &self,
        tool: &ToolName,
        zone: &Zone,
        settings: &BreakerSettings,
        action: ForceAction,
    ) -> Result<Option<Transition>, QueueError> {
        let mut con = self.connection().await?;
        let keys = self.keys.home(tool, zone).breaker_keys();
        Ok(self
            .breaker
            .force(&mut con, &keys, settings, None, action)
            .await?)
    }

    /// Enables or disables a tool cluster-wide: workers stop claiming it at once.
    pub async fn set_tool_enabled(&self, tool: &ToolName, enabled: bool) -> Result<(), QueueError> {
        let mut con = self.connection().await?;
        let key = self.keys.tool(tool).disabled();
        if enabled {
            let _: () = con.del(key).await?;
        } else {
            let _: () = con.set(key, "1").await?;
        }
        Ok(())
    }

    /// Whether the tool is disabled cluster-wide.
    pub async fn tool_disabled(&self, tool: &ToolName) -> Result<bool, QueueError> {
        let mut con = self.connection().await?;
        Ok(con.exists(self.keys.tool(tool).disabled()).await?)
    }

    /// Jobs per state for one tool in zone `default` (kept exact by the scripts), over all
    /// its partitions.
    pub async fn counts(&self, tool: &ToolName) -> Result<HashMap<String, i64>, QueueError> {
        self.zone_counts(tool, &Zone::default()).await
    }

    /// Jobs per state for one tool in `zone`, over all its partitions.
    pub async fn zone_counts(
        &self,
        tool: &ToolName,
        zone: &Zone,
    ) -> Result<HashMap<String, i64>, QueueError> {
        let mut con = self.connection().await?;
        let mut pipe = redis::pipe();
        for tk in self.keys.partitions_of(tool, zone) {
            pipe.hgetall(tk.counts());
        }
        let parts: Vec<HashMap<String, i64>> = pipe.query_async(&mut con).await?;
        let mut out: HashMap<String, i64> = HashMap::new();
        for (k, v) in parts.into_iter().flatten() {
            *out.entry(k).or_default() += v;
        }
        Ok(out)
    }
}
