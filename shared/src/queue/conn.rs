//! One connection type for the three Redis modes, so that every query in the queue is written
//! once. The cluster variant is redis-rs's own cluster client (it follows MOVED/ASK, learns the
//! topology and reconnects after a failover); the only thing added here is that a pipeline
//! whose commands live in several slots is sent as one sub-pipeline per slot, concurrently, and
//! its replies put back in order — redis-rs refuses such a pipeline, and scanq pipelines across
//! tools and tenants (lease renewals, reads of several jobs).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// A connection to the fleet's Redis, whatever its mode. Cheap to clone (all variants are
/// multiplexed handles).
#[derive(Clone)]
pub enum Conn {
    /// Standalone: reconnects by itself.
    Managed(ConnectionManager),
    /// A plain multiplexed connection (a dedicated blocking connection, or the current
    /// Sentinel primary). `stale` is raised when the server went away or stopped being a
    /// primary, so the owner connects anew (for Sentinel: asks the Sentinels again).
    Plain(MultiplexedConnection, Arc<AtomicBool>),
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Managed(_) => "Conn::Managed",
            Self::Plain(..) => "Conn::Plain",
            Self::Cluster(_) => "Conn::Cluster",
        })
    }
}

impl Conn {
    pub(crate) fn plain(con: MultiplexedConnection) -> Self {
        Self::Plain(con, Arc::default())
    }

    /// Whether this connection should be replaced (its server is gone or demoted).
    pub(crate) fn is_stale(&self) -> bool {
        matches!(self, Self::Plain(_, stale) if stale.load(Ordering::Relaxed))
    }

    fn note<T>(&self, res: &redis::RedisResult<T>) {
        if let (Self::Plain(_, stale), Err(e)) = (self, res)
            && (e.is_io_error()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_unrecoverable_error()
                || matches!(
                    e.kind(),
                    redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
                ))
        {
            stale.store(true, Ordering::Relaxed);
        }
    }
}

impl Conn {
    /// Waits until `replicas` replicas acknowledged this connection's writes so far to the
    /// server that holds `key` (`WAIT`), at most `timeout_ms`; how many did.
    pub async fn wait_replicas(
        &mut self,
        key: &str,
        replicas: u32,
        timeout_ms: u64,
    ) -> redis::RedisResult<u32> {
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(replicas).arg(timeout_ms);
        match self {
            Self::Cluster(c) => {
                use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::new(slot(key.as_bytes()), SlotAddr::Master),
                ));
                let v = c.route_command(cmd, route).await?;
                Ok(redis::from_redis_value(v)?)
            }
            _ => cmd.query_async(self).await,
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let res = match self {
                Self::Managed(c) => c.req_packed_command(cmd).await,
                Self::Plain(c, _) => c.req_packed_command(cmd).await,
                Self::Cluster(c) => c.req_packed_command(cmd).await,
            };
            self.note(&res);
            res
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let res = match self {
                Self::Managed(c) => c.req_packed_commands(pipeline, offset, count).await,
                Self::Plain(c, _) => c.req_packed_commands(pipeline, offset, count).await,
                Self::Cluster(c) => cluster_pipeline(c, pipeline, offset, count).await,
            };
            self.note(&res);
            res
        })
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Managed(c) => c.get_db(),
            Self::Plain(c, _) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// Sends a pipeline over a cluster: as it is when all its keyed commands share a slot (or it is
/// a transaction, which must), else one sub-pipeline per slot, concurrently.
async fn cluster_pipeline(
    con: &mut ClusterConnection,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> redis::RedisResult<Vec<Value>> {
    let slots: Vec<Option<u16>> = pipeline.cmd_iter().map(command_slot).collect();
    let mut distinct: Vec<u16> = slots.iter().flatten().copied().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if pipeline.is_transaction() || distinct.len() <= 1 {
        return con.req_packed_commands(pipeline, offset, count).await;
    }
    // Commands without a key (TIME, PING) ride with the first group.
    let mut groups: Vec<(u16, Pipeline, Vec<usize>)> = distinct
        .iter()
        .map(|&s| (s, redis::pipe(), Vec::new()))
        .collect();
    for (i, (cmd, slot)) in pipeline.cmd_iter().zip(&slots).enumerate() {
        let g = match slot {
            Some(s) => groups.iter().position(|(gs, _, _)| gs == s).unwrap_or(0),
            None => 0,
        };
        groups[g].1.add_command(cmd.clone());
        groups[g].2.push(i);
    }
    let replies = futures::future::join_all(groups.iter().map(|(_, p, _)| {
        let mut c = con.clone();
        async move { p.query_async::<Vec<Value>>(&mut c).await }
    }))
    .await;
    let mut out = vec![Value::Nil; slots.len()];
    for ((_, _, idx), reply) in groups.iter().zip(replies) {
        for (&i, v) in idx.iter().zip(reply?) {
            out[i] = v;
        }
    }
    Ok(out.into_iter().skip(offset).take(count).collect())
}

/// The slot of a command's first key, if it has one: `EVAL`/`EVALSHA` name their keys after the
/// key count; every other command scanq pipelines has its key first.
fn command_slot(cmd: &Cmd) -> Option<u16> {
    let args: Vec<&[u8]> = cmd
        .args_iter()
        .filter_map(|a| match a {
            redis::Arg::Simple(b) => Some(b),
            _ => None,
        })
        .collect();
    let name = args.first()?.to_ascii_uppercase();
    let key = match name.as_slice() {
        b"EVAL" | b"EVALSHA" | b"EVAL_RO" | b"EVALSHA_RO" | b"FCALL" => {
            let n: usize = std::str::from_utf8(args.get(2)?).ok()?.parse().ok()?;
            if n == 0 {
                return None;
            }
            args.get(3)?
        }
        b"TIME" | b"PING" | b"SCRIPT" | b"INFO" | b"WAIT" => return None,
        _ => args.get(1)?,
    };
    Some(slot(key))
}

pub use crate::keys::slot;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from `CLUSTER KEYSLOT`.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bar"), 5061);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"));
        assert_eq!(slot(b"123456789"), 0x31C3);
    }

    #[test]
    fn commands_are_slotted_by_their_first_key() {
        let mut c = redis::cmd("EVALSHA");
        c.arg("abc").arg(2).arg("x:{nmap}:q").arg("y");
        assert_eq!(command_slot(&c), Some(slot(b"nmap")));
        let mut c = redis::cmd("HGET");
        c.arg("k").arg("f");
        assert_eq!(command_slot(&c), Some(slot(b"k")));
        assert_eq!(command_slot(&redis::cmd("TIME")), None);
    }
}
