//! The worker's waits on Redis: blocking until work arrives on any claimable ready stream, and
//! waiting for replicas to acknowledge a claim or a result (`SCANQ_REDIS_MIN_REPLICAS_ACK`).

use std::time::Duration;

use redis::streams::StreamReadReply;

use super::consumer::ToolQueue;
use super::{Conn, Consumer, StartedJob};
use crate::domain::ToolName;
use crate::keys::ToolKeys;

/// How much longer than the wait an offer stands: the worker takes it back (its next claim) or
/// reads what it brought soon after its wait ends, and a worker that died mid-wait leaves an
/// offer that lapses this long after the wait would have ended (docs/queue.md "Direct start").
const OFFER_SLACK_MS: u64 = 1000;

/// What a wait for work brought.
#[derive(Debug, Default)]
pub struct Woken {
    /// Jobs an enqueue started on this worker's offers, read from its inboxes: running already.
    pub handed: Vec<StartedJob>,
    /// A ready stream holds an entry: claim next.
    pub ready: bool,
}

impl Consumer {
    /// Blocks (on a dedicated connection without response timeout) until any of the worker's
    /// claimable ready streams holds an entry, or `timeout` passes. A ready stream holds only
    /// unclaimed entries (the claim deletes what it takes), so reading from `0-0` returns at once
    /// while work is waiting and blocks while there is none: no entry can slip in between a
    /// claim and the wait. Disabled tools and tools whose breaker refused are left out (their
    /// entries would wake the worker for nothing), and so are the raw lanes on a worker that is
    /// not raw-capable (it never claims from them).
    ///
    /// Where one node holds every key and no replica must confirm a claim, the worker first
    /// offers itself, in the home partition of up to `free` of those tools (`free`: its free
    /// slots, less those its standing offers keep), to take a job
    /// directly (docs/queue.md "Direct start"), and the same read waits on its inboxes: a job an
    /// enqueue started on an offer ends the wait and comes back here, already running.
    pub async fn wait_for_work(&self, timeout: Duration, free: usize) -> Woken {
        let tools: Vec<&ToolQueue> = {
            let disabled = self.disabled.lock().expect("disabled lock");
            self.tools
                .iter()
                .filter(|t| {
                    !disabled.contains(&t.name) && self.open.is_open(t.name.as_str()).is_none()
                })
                .collect()
        };
        let streams: Vec<String> = tools
            .iter()
            .flat_map(|t| {
                t.parts
                    .iter()
                    .flat_map(|p| p.claimable_streams(self.capabilities.raw_sockets))
            })
            .collect();
        if streams.is_empty() {
            tokio::time::sleep(timeout).await;
            return Woken::default();
        }
        let offering: Vec<&ToolQueue> = if self.pool.is_cluster() || self.replicas.0 > 0 {
            Vec::new()
        } else {
            let standing = self.offers.lock().expect("offers lock");
            tools
                .into_iter()
                .filter(|t| !standing.contains(&t.name))
                .take(free)
                .collect()
        };
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
            let mut all = streams;
            all.extend(self.record_offers(&offering));
            vec![all]
        };
        let mut guard = self.blocking.lock().await;
        while guard.len() < groups.len() {
            match self.pool.dedicated().await {
                Ok(con) => guard.push(con),
                Err(_) => {
                    tokio::time::sleep(timeout.min(Duration::from_millis(500))).await;
                    return Woken::default();
                }
            }
        }
        // The offers go in the same round trip, just before the read.
        let life_ms = timeout.as_millis() as u64 + OFFER_SLACK_MS;
        let offers: Vec<redis::ScriptInvocation<'_>> = offering
            .iter()
            .map(|t| {
                self.scripts
                    .offer_invocation(&t.parts[0], &self.id, life_ms)
            })
            .collect();
        let reads = groups.iter().zip(guard.iter()).map(|(streams, con)| {
            let mut con = con.clone();
            let mut pipe = redis::pipe();
            for inv in &offers {
                pipe.invoke_script(inv).ignore();
            }
            let cmd = pipe
                .cmd("XREAD")
                .arg("BLOCK")
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
            Box::pin(async move {
                pipe.query_async::<(Option<StreamReadReply>,)>(&mut con)
                    .await
            })
        });
        let (res, _, _) = futures::future::select_all(reads).await;
        match res {
            Ok((Some(reply),)) => self.woken(reply),
            Ok((None,)) => Woken::default(),
            Err(err) => {
                if err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) {
                    // A restarted Redis: the next claim loads the scripts again.
                    tracing::debug!("Offer script not loaded; waiting without offers once");
                }
                guard.clear();
                Woken::default()
            }
        }
    }

    /// Records the offers about to be made (each then keeps a slot until settled); returns the
    /// inboxes of every offer that may stand, these and those still standing from before.
    fn record_offers(&self, offering: &[&ToolQueue]) -> Vec<String> {
        let mut standing = self.offers.lock().expect("offers lock");
        for t in offering {
            standing.insert(t.name.clone());
        }
        self.tools
            .iter()
            .filter(|t| standing.contains(&t.name))
            .map(|t| t.parts[0].inbox(&self.id))
            .collect()
    }

    /// What a read that returned brought: the jobs in this worker's inboxes (their offers are
    /// settled), and whether a ready stream holds an entry.
    fn woken(&self, reply: StreamReadReply) -> Woken {
        let mut out = Woken::default();
        for key in reply.keys {
            let Some(t) = self
                .tools
                .iter()
                .find(|t| t.parts[0].inbox(&self.id) == key.key)
            else {
                out.ready = true;
                continue;
            };
            self.offers.lock().expect("offers lock").remove(&t.name);
            for entry in key.ids {
                let job = entry
                    .get::<String>("job")
                    .ok_or_else(|| "no `job` field".to_owned())
                    .and_then(|j| crate::scripts::inbox_job(&j).map_err(|e| e.to_string()));
                match job {
                    Ok(job) => self.collect(t, vec![job], &mut out.handed),
                    Err(why) => {
                        tracing::error!(inbox = %key.key, error = %why, "Unreadable inbox entry; the job returns when its lease lapses");
                    }
                }
            }
        }
        out
    }

    /// How many offers of this worker may stand (each keeps a slot free).
    pub fn offers_standing(&self) -> usize {
        self.offers.lock().expect("offers lock").len()
    }

    /// Takes `tool`'s offer off the standing ones; true when there was one (the claim then
    /// settles it).
    pub(super) fn take_offer(&self, tool: &ToolName) -> bool {
        self.offers.lock().expect("offers lock").remove(tool)
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
