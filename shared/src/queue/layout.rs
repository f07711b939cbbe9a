//! The fleet's record of each tool's partition count (`P:{T}:partitions`, in the tool's home
//! slot). A job's partition is `crc16(ref) mod N`, so a process that counts a tool's partitions
//! differently from the rest of the fleet would look for its jobs in the wrong places: they would
//! be neither claimed nor found by ID. The first process to start records N for each tool; every
//! later one compares and refuses to start on a difference, naming the tool and both counts.
//! A reload never changes the count (`reload::LiveCell::reload`).

use super::{Queue, QueueError};
use crate::catalog::Catalog;
use crate::domain::ToolName;

impl Queue {
    /// The start check of every API and worker: [`Queue::check_layout`] for each tool of
    /// `catalog`. A difference is an error (the process must not start); a Redis that cannot be
    /// reached is only logged, as the process keeps trying to reach it anyway.
    pub async fn check_layout_at_start(&self, catalog: &Catalog) -> Result<(), String> {
        let tools: Vec<ToolName> = catalog.tools().map(|(t, _)| t.clone()).collect();
        match self.check_layout(&tools).await {
            Ok(checked) => checked,
            Err(err) => {
                tracing::warn!(error = %err, "Could not check the tools' partition counts against the fleet's record");
                Ok(())
            }
        }
    }

    /// Records each tool's partition count where none is recorded yet, and compares the others.
    /// `Ok(Err(message))` when the fleet's record differs from this process's catalog.
    pub async fn check_layout(&self, tools: &[ToolName]) -> Result<Result<(), String>, QueueError> {
        if tools.is_empty() {
            return Ok(Ok(()));
        }
        let mut pipe = redis::pipe();
        for tool in tools {
            let key = self.keys.tool(tool).layout();
            pipe.cmd("SET")
                .arg(&key)
                .arg(self.keys.partitions(tool))
                .arg("NX")
                .ignore()
                .get(&key);
        }
        let mut con = self.connection().await?;
        let recorded: Vec<Option<u16>> = pipe.query_async(&mut con).await?;
        for (tool, recorded) in tools.iter().zip(recorded) {
            let here = self.keys.partitions(tool);
            if let Some(fleet) = recorded
                && fleet != here
            {
                return Ok(Err(format!(
                    "tool `{tool}`: this process spreads its queue over {here} partition(s), but \
                     the fleet on this Redis and key prefix uses {fleet} (recorded in `{key}`). \
                     Every process must use the same count, and it cannot change while the tool \
                     has jobs: set `partitions = {fleet}` (or SCANQ_QUEUE_PARTITIONS), or move to \
                     a new SCANQ_KEY_PREFIX (docs/scaling.md)",
                    key = self.keys.tool(tool).layout(),
                )));
            }
        }
        Ok(Ok(()))
    }
}
