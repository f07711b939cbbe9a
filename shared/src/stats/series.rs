//! The last hour of each tool, minute by minute, for the dashboard's charts: how many jobs
//! finished (counted by `complete.lua` into `done:<minute>` of the partition's series hash), and
//! the queue depth and wait/run p95 as one API process sampled them in that minute (`HSETNX`:
//! the first sampler of a minute wins, so any number of APIs keep one series). Fields older
//! than an hour are trimmed by the samplers. A partitioned tool has a series per partition;
//! reading adds the finished counts and depths and keeps the highest p95.

use std::collections::HashMap;

use redis::AsyncCommands;
use serde::Serialize;

use super::Stats;
use crate::domain::{ToolName, Zone};
use crate::queue::QueueError;

/// Minutes kept and shown.
pub const MINUTES: u64 = 60;

/// One minute of a tool's last hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeriesPoint {
    /// Start of the minute (ms since the epoch).
    pub minute_ms: u64,
    /// Jobs that finished in that minute (succeeded, failed or cancelled by a worker).
    pub finished: i64,
    /// Queued + scheduled jobs when the minute was sampled (`None`: no API sampled it).
    pub depth: Option<i64>,
    pub wait_p95_ms: Option<u64>,
    pub run_p95_ms: Option<u64>,
}

fn minute_of(ms: u64) -> u64 {
    ms / 60_000
}

impl Stats {
    /// Samples this minute's depth and p95s of every tool (if no API did yet) and trims what is
    /// older than the hour. Called by every API about every 20 s.
    pub async fn sample_series(&self, places: &[(ToolName, Zone)]) -> Result<(), QueueError> {
        let stats = self.tools(places).await?;
        let mut con = self.connection().await?;
        let now = Self::now_ms(&mut con).await?;
        let minute = minute_of(now);
        for t in &stats {
            let (Ok(tool), Ok(zone)) = (ToolName::parse(&t.tool), Zone::parse(&t.zone)) else {
                continue;
            };
            let home = self.keys.home(&tool, &zone).series();
            let mut pipe = redis::pipe();
            pipe.hset_nx(&home, format!("depth:{minute}"), t.queue_depth)
                .ignore();
            if let Some(w) = t.queue_wait.p95_ms {
                pipe.hset_nx(&home, format!("wait95:{minute}"), w).ignore();
            }
            if let Some(r) = t.run_time.p95_ms {
                pipe.hset_nx(&home, format!("run95:{minute}"), r).ignore();
            }
            let () = pipe.query_async(&mut con).await?;
            for part in self.keys.partitions_of(&tool, &zone) {
                let key = part.series();
                let all: HashMap<String, String> = con.hgetall(&key).await?;
                let old: Vec<&String> = all
                    .keys()
                    .filter(|f| {
                        f.split_once(':')
                            .and_then(|(_, m)| m.parse::<u64>().ok())
                            .is_some_and(|m| m + MINUTES < minute)
                    })
                    .collect();
                if !old.is_empty() {
                    let _: i64 = con.hdel(&key, old).await?;
                }
            }
        }
        Ok(())
    }

    /// The last hour of `tool` in `zone`, oldest minute first (every minute present).
    pub(super) async fn series(
        &self,
        con: &mut crate::queue::Connection,
        (tool, zone): &(ToolName, Zone),
        now_ms: u64,
    ) -> Result<Vec<SeriesPoint>, QueueError> {
        let mut pipe = redis::pipe();
        for part in self.keys.partitions_of(tool, zone) {
            pipe.hgetall(part.series());
        }
        let parts: Vec<HashMap<String, i64>> = pipe.query_async(con).await?;
        let mut by_minute: HashMap<u64, SeriesPoint> = HashMap::new();
        let last = minute_of(now_ms);
        for (field, v) in parts.into_iter().flatten() {
            let Some((kind, m)) = field.split_once(':') else {
                continue;
            };
            let Ok(m) = m.parse::<u64>() else { continue };
            if m + MINUTES <= last || m > last {
                continue;
            }
            let p = by_minute.entry(m).or_insert_with(|| point(m));
            match kind {
                "done" => p.finished += v,
                "depth" => *p.depth.get_or_insert(0) += v,
                "wait95" => p.wait_p95_ms = p.wait_p95_ms.max(Some(v.max(0) as u64)),
                "run95" => p.run_p95_ms = p.run_p95_ms.max(Some(v.max(0) as u64)),
                _ => {}
            }
        }
        Ok((last + 1 - MINUTES..=last)
            .map(|m| by_minute.remove(&m).unwrap_or_else(|| point(m)))
            .collect())
    }
}

fn point(minute: u64) -> SeriesPoint {
    SeriesPoint {
        minute_ms: minute * 60_000,
        finished: 0,
        depth: None,
        wait_p95_ms: None,
        run_p95_ms: None,
    }
}
