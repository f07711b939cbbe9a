//! The worker's waits on Redis: blocking until work arrives on any claimable ready stream, and
//! waiting for replicas to acknowledge a claim or a result (`SCANQ_REDIS_MIN_REPLICAS_ACK`).

use std::time::Duration;

use super::{Conn, Consumer};
use crate::keys::ToolKeys;

impl Consumer {
    /// Blocks (on a dedicated connection without response timeout) until any of the worker's
    /// claimable ready streams holds an entry, or `timeout` passes. A ready stream holds only
    /// unclaimed entries (the claim deletes what it takes), so reading from `0-0` returns at once
    /// while work is waiting and blocks while there is none: no entry can slip in between a
    /// claim and the wait. Disabled tools and tools whose breaker refused are left out (their
    /// entries would wake the worker for nothing), and so are the raw lanes on a worker that is
    /// not raw-capable (it never claims from them).
    pub async fn wait_for_work(&self, timeout: Duration) {
        let streams: Vec<String> = {
            let disabled = self.disabled.lock().expect("disabled lock");
            self.tools
                .iter()
                .filter(|t| {
                    !disabled.contains(&t.name) && self.open.is_open(t.name.as_str()).is_none()
                })
                .flat_map(|t| {
                    t.parts
                        .iter()
                        .flat_map(|p| p.claimable_streams(self.capabilities.raw_sockets))
                })
                .collect()
        };
        if streams.is_empty() {
            tokio::time::sleep(timeout).await;
            return;
        }
        // One XREAD can only name keys of one slot in a cluster: one read per slot, each on a
        // connection of its own, and the first to return wakes the worker. (A read left blocking
        // is answered when its entry arrives or it times out; the next read on its connection
        // queues behind it, so no wake-up is lost.)
        let groups: Vec<Vec<String>> = if self.pool.is_cluster() {
            let mut by_slot: Vec<(u16, Vec<String>)> = Vec::new();
            for s in streams {
                let slot = super::slot(s.as_bytes());
                match by_slot.iter_mut().find(|(x, _)| *x == slot) {
                    Some((_, v)) => v.push(s),
                    None => by_slot.push((slot, vec![s])),
                }
            }
            by_slot.into_iter().map(|(_, v)| v).collect()
        } else {
            vec![streams]
        };
        let mut guard = self.blocking.lock().await;
        while guard.len() < groups.len() {
            match self.pool.dedicated().await {
                Ok(con) => guard.push(con),
                Err(_) => {
                    tokio::time::sleep(timeout.min(Duration::from_millis(500))).await;
                    return;
                }
            }
        }
        let reads = groups.iter().zip(guard.iter()).map(|(streams, con)| {
            let mut con = con.clone();
            let mut cmd = redis::cmd("XREAD");
            cmd.arg("BLOCK")
                .arg(timeout.as_millis() as u64)
                .arg("COUNT")
                .arg(1)
                .arg("STREAMS");
            for s in streams {
                cmd.arg(s);
            }
            for _ in streams {
                cmd.arg("0-0");
            }
            Box::pin(async move { cmd.query_async::<redis::Value>(&mut con).await })
        });
        let (res, _, _) = futures::future::select_all(reads).await;
        if res.is_err() {
            guard.clear();
        }
    }

    /// With `redis_min_replicas_ack`: whether enough replicas acknowledged this connection's
    /// writes to the server holding `tk`'s keys (asked up to three times). Always true without.
    pub(super) async fn replicated(&self, con: &mut Conn, tk: &ToolKeys) -> bool {
        let (wanted, wait_ms) = self.replicas;
        if wanted == 0 {
            return true;
        }
        for _ in 0..3 {
            match con.wait_replicas(&tk.counts(), wanted, wait_ms).await {
                Ok(acked) if acked >= wanted => return true,
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "WAIT for replicas failed");
                    return false;
                }
            }
        }
        false
    }
}
