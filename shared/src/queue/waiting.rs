//! Why a ready job is not claimed, in its document (REST, MCP, the CLI): a queued job that
//! needs raw sockets while no live raw-capable worker serves its tool in its zone says
//! `waiting_for: "raw_capable_worker"`; any other queued job whose tool no live worker of its
//! zone serves says `waiting_for: "zone:<name>"` (DESIGN §13). Decided from the live
//! heartbeats, read at most once a second per process, and only when a document needs it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Queue, QueueError};
use crate::domain::{Capabilities, JobDocument, JobState, Need, WaitingFor, Zone};

/// How long the served queues read from the heartbeats stand.
const FRESH: Duration = Duration::from_secs(1);

/// The queues (tool, zone) some live worker serves, and those some live raw-capable one does.
#[derive(Debug, Default)]
pub(super) struct Served {
    any: HashSet<(String, Zone)>,
    raw: HashSet<(String, Zone)>,
}

/// [`Served`] as last read.
pub(super) type RawServed = std::sync::Mutex<Option<(Instant, Arc<Served>)>>;

/// What a heartbeat says about serving jobs.
#[derive(serde::Deserialize)]
struct Beat {
    #[serde(default)]
    capabilities: Capabilities,
    #[serde(default)]
    zone: Zone,
    #[serde(default)]
    tools: std::collections::BTreeMap<String, bool>,
}

impl Queue {
    /// Sets `waiting_for` on each queued document whose tool no live worker of its zone
    /// serves (raw-capable, when it needs raw sockets). A big scan's parent never runs, so it
    /// never waits. Best effort: unreadable heartbeats set nothing.
    pub async fn explain_waits(&self, docs: &mut [JobDocument]) {
        let waits = |d: &JobDocument| d.state == JobState::Queued && d.chunks.is_none();
        if !docs.iter().any(waits) {
            return;
        }
        let served = match self.raw_served().await {
            Ok(s) => s,
            Err(err) => {
                tracing::warn!(error = %err, "Heartbeats not read; waiting_for left out");
                return;
            }
        };
        for d in docs.iter_mut().filter(|d| waits(d)) {
            let queue = (d.tool.clone(), d.zone.clone());
            if d.needs.contains(&Need::RawSockets) && !served.raw.contains(&queue) {
                d.waiting_for = Some(WaitingFor::RawCapableWorker);
            } else if !served.any.contains(&queue) {
                d.waiting_for = Some(WaitingFor::Zone(d.zone.clone()));
            }
        }
    }

    /// The queues some live worker serves (the tool's binary present there, in its zone).
    async fn raw_served(&self) -> Result<Arc<Served>, QueueError> {
        if let Some((at, set)) = self.raw_served.lock().expect("raw_served lock").as_ref()
            && at.elapsed() < FRESH
        {
            return Ok(set.clone());
        }
        let mut con = self.connection().await?;
        let mut served = Served::default();
        let beats = live_heartbeats(&mut con, &self.keys)
            .await?
            .into_iter()
            .filter_map(|(_, _, doc)| serde_json::from_str::<Beat>(&doc).ok());
        for b in beats {
            for (tool, _) in b.tools.into_iter().filter(|(_, present)| *present) {
                let queue = (tool, b.zone.clone());
                if b.capabilities.raw_sockets {
                    served.raw.insert(queue.clone());
                }
                served.any.insert(queue);
            }
        }
        let set = Arc::new(served);
        *self.raw_served.lock().expect("raw_served lock") = Some((Instant::now(), set.clone()));
        Ok(set)
    }
}

/// The heartbeats of the live workers: `(id, expiry ms, heartbeat JSON)` — the workers whose
/// heartbeat has not lapsed by Redis' clock and whose description is still there. One read for
/// everyone who needs them (`/v1/workers`, `/health`, `waiting_for`).
pub(crate) async fn live_heartbeats(
    con: &mut super::Connection,
    keys: &crate::keys::Keys,
) -> Result<Vec<(String, u64, String)>, QueueError> {
    let (s, us): (u64, u64) = redis::cmd("TIME").query_async(con).await?;
    let now = s * 1000 + us / 1000;
    let live: Vec<(String, u64)> = redis::cmd("ZRANGE")
        .arg(keys.workers())
        .arg(format!("({now}"))
        .arg("+inf")
        .arg("BYSCORE")
        .arg("WITHSCORES")
        .query_async(con)
        .await?;
    if live.is_empty() {
        return Ok(Vec::new());
    }
    let docs: Vec<Option<String>> = redis::cmd("MGET")
        .arg(
            live.iter()
                .map(|(id, _)| keys.worker(id))
                .collect::<Vec<_>>(),
        )
        .query_async(con)
        .await?;
    Ok(live
        .into_iter()
        .zip(docs)
        .filter_map(|((id, expires), doc)| Some((id, expires, doc?)))
        .collect())
}
