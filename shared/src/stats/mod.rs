//! Fleet-wide numbers read from Redis: per-tool counts by state, queue depth, the age of the
//! oldest ready job, percentiles of recent queue waits and run times (`GET /v1/stats`; a
//! tenant's token sees its own counts instead, [`ToolStats::for_tenant`]), the
//! gauges the API sets when `/metrics` is scraped, the live workers (`GET /v1/workers`) and the
//! zones with their workers and queued work (`GET /v1/zones`, `zones.rs`).
//!
//! Everything here only reads, and every read is O(1) or bounded: the scripts keep the counts
//! hash exact, the sample lists bounded (the newest 1000 read; `claim.lua` pushes queue waits, `complete.lua`
//! run times), and the oldest ready job is the first entry of each priority stream (claimed
//! entries are deleted by `claim.lua`, so the first entry is the oldest one not yet taken).
//! Clocks are Redis's (`TIME`), the same clock that stamps stream ids and heartbeats.

use std::collections::BTreeMap;

use crate::queue::Pool;
use redis::streams::StreamRangeReply;
use serde::{Deserialize, Serialize};

use crate::domain::{JobState, ToolName, Zone};
use crate::keys::{Keys, ToolKeys};
use crate::queue::QueueError;

/// Percentiles of one capped sample list, in milliseconds (`None` without samples).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    /// How many samples the percentiles were taken over (at most 1000, the newest).
    pub samples: usize,
    pub p50_ms: Option<u64>,
    pub p95_ms: Option<u64>,
    pub p99_ms: Option<u64>,
}

impl Percentiles {
    /// Nearest-rank percentiles: the smallest sample with at least q·n samples at or below it.
    pub fn of(mut samples: Vec<u64>) -> Self {
        samples.sort_unstable();
        let n = samples.len();
        let rank = |q: f64| -> Option<u64> {
            if n == 0 {
                return None;
            }
            let idx = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
            Some(samples[idx])
        };
        Self {
            samples: n,
            p50_ms: rank(0.50),
            p95_ms: rank(0.95),
            p99_ms: rank(0.99),
        }
    }
}

/// Queue depth and the age of the oldest ready job of one tool (what `/metrics` exports).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueGauge {
    pub tool: String,
    /// The zone of this queue (DESIGN §13): each tool has one queue per zone.
    pub zone: String,
    /// Jobs queued or scheduled (the number the queue-length limit is checked against).
    pub depth: i64,
    /// Age of the oldest job ready to run, in ms; `None` when nothing is queued.
    pub oldest_age_ms: Option<u64>,
}

/// Everything `GET /v1/stats` says about one tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolStats {
    pub tool: String,
    /// The zone these numbers are for (DESIGN §13): one entry per tool and zone.
    pub zone: String,
    /// Jobs per state; every state is present. Terminal states are running totals (job records
    /// expire, their count does not; a retried job leaves `failed`).
    pub counts: BTreeMap<String, i64>,
    pub queue_depth: i64,
    pub oldest_queued_age_ms: Option<u64>,
    /// Time from ready to claimed, over the most recent claims.
    pub queue_wait: Percentiles,
    /// Time from claimed to finished, over the most recent finished attempts.
    pub run_time: Percentiles,
    /// The last hour, minute by minute, oldest first (fleet view only; `series.rs`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<series::SeriesPoint>,
    /// Queued jobs parked because their target group runs its cap (politeness, docs/queue.md;
    /// fleet view only: the `group_waiting` count `claim.lua` keeps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_for_group: Option<i64>,
}

impl ToolStats {
    /// The same numbers for one tenant: its own counts, depth and oldest queued age in this
    /// tool's queue of this zone (from `tally`), next to the fleet's queue-wait and run-time percentiles, which are the service
    /// level every tenant gets and name no job.
    pub fn for_tenant(self, tally: &crate::queue::TenantTally, now_ms: u64) -> Self {
        let own = tally.tools.get(&(self.tool.clone(), self.zone.clone()));
        let count = |s: JobState| {
            own.and_then(|t| t.counts.get(s.as_str()).copied())
                .unwrap_or(0)
        };
        Self {
            counts: JobState::ALL
                .iter()
                .map(|s| (s.as_str().to_owned(), count(*s)))
                .collect(),
            queue_depth: count(JobState::Queued) + count(JobState::Scheduled),
            oldest_queued_age_ms: own
                .and_then(|t| t.oldest_queued_ms)
                .map(|ms| now_ms.saturating_sub(ms)),
            // The fleet's throughput and depth are not a tenant's to see.
            series: Vec::new(),
            waiting_for_group: None,
            ..self
        }
    }
}

/// A live worker as it describes itself in its heartbeat (`worker/src/runner.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub id: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub pid: u32,
    #[serde(default)]
    pub started_ms: u64,
    #[serde(default)]
    pub concurrency: u32,
    /// The zone whose jobs it claims (DESIGN §13; `default` for a worker that predates zones).
    #[serde(default)]
    pub zone: Zone,
    /// Egress confinement of its tool runs (`nftables`, `unconfined`, `off`).
    #[serde(default)]
    pub confinement: String,
    /// Jobs it runs, as `<tool>/<tenant>/<correlation id>`.
    #[serde(default)]
    pub running: Vec<String>,
    /// Each catalog tool of the worker and whether its binary is present there.
    #[serde(default)]
    pub tools: BTreeMap<String, bool>,
    /// What it can do (absent from an older worker's heartbeat: nothing).
    #[serde(default)]
    pub capabilities: crate::domain::Capabilities,
    /// When its heartbeat lapses unless renewed (Redis clock, ms).
    #[serde(default)]
    pub heartbeat_expires_ms: u64,
}

/// Reads the fleet's numbers; cheap to clone.
#[derive(Debug, Clone)]
pub struct Stats {
    pub(crate) pool: Pool,
    pub(crate) keys: Keys,
}

/// One tool's raw reads: counts, the first entry of each priority (the older of its plain and
/// raw lanes' first entries), and optionally the two sample lists.
type ToolReply = (
    BTreeMap<String, i64>,
    StreamRangeReply,
    StreamRangeReply,
    StreamRangeReply,
    Vec<u64>,
    Vec<u64>,
);

/// [`ToolReply`] as read: the first entry of each of the six streams (plain lane, raw lane).
type LanesReply = (
    BTreeMap<String, i64>,
    StreamRangeReply,
    StreamRangeReply,
    StreamRangeReply,
    StreamRangeReply,
    StreamRangeReply,
    StreamRangeReply,
    Vec<u64>,
    Vec<u64>,
);

/// Of two streams' first entries, the older one's reply (the lanes of a priority, the
/// partitions of a tool).
fn older(mine: StreamRangeReply, theirs: StreamRangeReply) -> StreamRangeReply {
    let theirs_older = match (mine.ids.first(), theirs.ids.first()) {
        (None, Some(_)) => true,
        (Some(a), Some(b)) => id_ms(&b.id) < id_ms(&a.id),
        _ => false,
    };
    if theirs_older { theirs } else { mine }
}

/// The ms part of a stream entry id (`<ms>-<seq>`).
fn id_ms(id: &str) -> Option<u64> {
    id.split_once('-').and_then(|(ms, _)| ms.parse().ok())
}

fn counted(counts: &BTreeMap<String, i64>, state: JobState) -> i64 {
    counts.get(state.as_str()).copied().unwrap_or(0)
}

mod series;
mod version;
mod zones;
pub use series::SeriesPoint;
pub use zones::ZoneView;

impl Stats {
    pub fn new(pool: Pool, keys: Keys) -> Self {
        Self { pool, keys }
    }

    pub(crate) async fn connection(&self) -> Result<crate::queue::Connection, QueueError> {
        Ok(self.pool.get().await?)
    }

    /// Redis's clock in ms.
    pub(crate) async fn now_ms(con: &mut crate::queue::Connection) -> Result<u64, QueueError> {
        let (s, us): (u64, u64) = redis::cmd("TIME").query_async(con).await?;
        Ok(s * 1000 + us / 1000)
    }

    /// One round trip per tool; `samples` adds the two sample lists (up to 1000 each).
    async fn read(
        &self,
        con: &mut crate::queue::Connection,
        tk: &ToolKeys,
        samples: bool,
    ) -> Result<ToolReply, QueueError> {
        // LRANGE 1 0 is an empty range: the reply keeps its shape without reading the lists.
        let (first, last) = if samples { (0, 999) } else { (1, 0) };
        let mut pipe = redis::pipe();
        pipe.hgetall(tk.counts());
        for s in tk.claimable_streams(true) {
            pipe.cmd("XRANGE")
                .arg(s)
                .arg("-")
                .arg("+")
                .arg("COUNT")
                .arg(1);
        }
        pipe.lrange(tk.wait_samples(), first, last)
            .lrange(tk.run_samples(), first, last);
        let (counts, high, normal, low, raw_high, raw_normal, raw_low, wait, run): LanesReply =
            pipe.query_async(con).await?;
        Ok((
            counts,
            older(high, raw_high),
            older(normal, raw_normal),
            older(low, raw_low),
            wait,
            run,
        ))
    }

    /// [`Stats::read`] over every partition of `tool`'s queue, merged: counts added, the
    /// oldest entry of each priority kept, samples joined.
    async fn read_tool(
        &self,
        con: &mut crate::queue::Connection,
        (tool, zone): &(ToolName, Zone),
        samples: bool,
    ) -> Result<ToolReply, QueueError> {
        let mut parts = self.keys.partitions_of(tool, zone).into_iter();
        let home = parts.next().expect("a home partition");
        let mut acc = self.read(con, &home, samples).await?;
        for tk in parts {
            let (counts, high, normal, low, wait, run) = self.read(con, &tk, samples).await?;
            for (k, v) in counts {
                *acc.0.entry(k).or_default() += v;
            }
            for (mine, theirs) in [(&mut acc.1, high), (&mut acc.2, normal), (&mut acc.3, low)] {
                *mine = older(std::mem::take(mine), theirs);
            }
            acc.4.extend(wait);
            acc.5.extend(run);
        }
        Ok(acc)
    }

    fn gauge((tool, zone): &(ToolName, Zone), now: u64, reply: &ToolReply) -> QueueGauge {
        let (counts, high, normal, low, _, _) = reply;
        let queued = counted(counts, JobState::Queued);
        // Entries of jobs cancelled while queued stay in the stream until a worker skips them,
        // so with no job queued there is no oldest one, whatever the streams hold.
        let oldest = (queued > 0)
            .then(|| {
                [high, normal, low]
                    .into_iter()
                    .filter_map(|r| r.ids.first().and_then(|e| id_ms(&e.id)))
                    .min()
            })
            .flatten();
        QueueGauge {
            tool: tool.to_string(),
            zone: zone.to_string(),
            depth: queued + counted(counts, JobState::Scheduled),
            oldest_age_ms: oldest.map(|ms| now.saturating_sub(ms)),
        }
    }

    /// The queues (tool, zone) to report for `tools`: each tool in zone `default` and in each
    /// of `zones` (the zone map's), and in any other zone that ever held one of its jobs (a
    /// numbered queue, `P:tools:no`: a zone dropped from the map may still hold jobs). Sorted.
    pub async fn places(
        &self,
        tools: &[ToolName],
        zones: &[Zone],
    ) -> Result<Vec<(ToolName, Zone)>, QueueError> {
        let mut con = self.connection().await?;
        // HGETALL, not HKEYS: the ACL users of docs/security.md are given the former.
        let numbered: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.tool_numbers())
            .query_async(&mut con)
            .await?;
        let mut out = std::collections::BTreeSet::new();
        for tool in tools {
            out.insert((tool.clone(), Zone::default()));
            for z in zones {
                out.insert((tool.clone(), z.clone()));
            }
        }
        for tag in numbered.keys() {
            if let Some((t, z)) = tag.split_once('@')
                && let (Ok(t), Ok(z)) = (ToolName::parse(t), Zone::parse(z))
                && tools.contains(&t)
            {
                out.insert((t, z));
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Depth and oldest age of each queue (no samples read: cheap enough per scrape).
    pub async fn queues(&self, places: &[(ToolName, Zone)]) -> Result<Vec<QueueGauge>, QueueError> {
        let mut con = self.connection().await?;
        let now = Self::now_ms(&mut con).await?;
        let mut out = Vec::with_capacity(places.len());
        for place in places {
            let reply = self.read_tool(&mut con, place, false).await?;
            out.push(Self::gauge(place, now, &reply));
        }
        Ok(out)
    }

    /// Counts, depth, oldest age and percentiles of each queue (tool, zone).
    pub async fn tools(&self, places: &[(ToolName, Zone)]) -> Result<Vec<ToolStats>, QueueError> {
        let mut con = self.connection().await?;
        let now = Self::now_ms(&mut con).await?;
        let mut out = Vec::with_capacity(places.len());
        for place in places {
            let reply = self.read_tool(&mut con, place, true).await?;
            let gauge = Self::gauge(place, now, &reply);
            let series = self.series(&mut con, place, now).await?;
            let (raw, _, _, _, wait, run) = reply;
            let waiting_for_group = raw.get("group_waiting").copied().unwrap_or(0).max(0);
            let counts = JobState::ALL
                .iter()
                .map(|s| (s.as_str().to_owned(), counted(&raw, *s)))
                .collect();
            out.push(ToolStats {
                tool: gauge.tool,
                zone: gauge.zone,
                counts,
                queue_depth: gauge.depth,
                oldest_queued_age_ms: gauge.oldest_age_ms,
                queue_wait: Percentiles::of(wait),
                run_time: Percentiles::of(run),
                series,
                waiting_for_group: Some(waiting_for_group),
            });
        }
        Ok(out)
    }

    /// Workers whose heartbeat has not lapsed.
    pub async fn workers_alive(&self) -> Result<u64, QueueError> {
        let mut con = self.connection().await?;
        let now = Self::now_ms(&mut con).await?;
        let n: u64 = redis::cmd("ZCOUNT")
            .arg(self.keys.workers())
            .arg(format!("({now}"))
            .arg("+inf")
            .query_async(&mut con)
            .await?;
        Ok(n)
    }

    /// Live workers with their self-descriptions, by id. A worker whose description has
    /// already expired (it lapses with the heartbeat) is left out.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, QueueError> {
        let mut con = self.connection().await?;
        let mut out: Vec<WorkerInfo> = crate::queue::live_heartbeats(&mut con, &self.keys)
            .await?
            .into_iter()
            .filter_map(|(id, expires, doc)| {
                let mut info: WorkerInfo = match serde_json::from_str(&doc) {
                    Ok(info) => info,
                    Err(err) => {
                        tracing::warn!(worker = %id, error = %err, "Unreadable worker heartbeat");
                        return None;
                    }
                };
                info.heartbeat_expires_ms = expires;
                Some(info)
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let p = Percentiles::of((1..=100).rev().collect());
        assert_eq!(p.samples, 100);
        assert_eq!(
            (p.p50_ms, p.p95_ms, p.p99_ms),
            (Some(50), Some(95), Some(99))
        );

        let p = Percentiles::of(vec![300, 100, 200]);
        assert_eq!(
            (p.p50_ms, p.p95_ms, p.p99_ms),
            (Some(200), Some(300), Some(300))
        );

        let one = Percentiles::of(vec![7]);
        assert_eq!((one.p50_ms, one.p99_ms), (Some(7), Some(7)));
    }

    #[test]
    fn no_samples_give_no_percentiles() {
        assert_eq!(Percentiles::of(vec![]), Percentiles::default());
    }

    #[test]
    fn a_tenant_row_counts_only_its_jobs_of_that_zone() {
        let row = |zone: &str| ToolStats {
            tool: "noop".into(),
            zone: zone.into(),
            counts: BTreeMap::new(),
            queue_depth: 9,
            oldest_queued_age_ms: Some(1),
            queue_wait: Percentiles::default(),
            run_time: Percentiles::default(),
            series: Vec::new(),
            waiting_for_group: Some(0),
        };
        let mut tally = crate::queue::TenantTally::default();
        let a = tally.tools.entry(("noop".into(), "a".into())).or_default();
        a.counts.insert("queued".into(), 2);
        a.counts.insert("succeeded".into(), 5);
        a.oldest_queued_ms = Some(1_000);

        let in_a = row("a").for_tenant(&tally, 4_000);
        let in_default = row("default").for_tenant(&tally, 4_000);

        assert_eq!((in_a.counts["queued"], in_a.counts["succeeded"]), (2, 5));
        assert_eq!(in_a.queue_depth, 2);
        assert_eq!(in_a.oldest_queued_age_ms, Some(3_000));
        assert!(in_default.counts.values().all(|n| *n == 0));
        assert_eq!(
            (in_default.queue_depth, in_default.oldest_queued_age_ms),
            (0, None)
        );
    }

    #[test]
    fn a_stream_id_gives_its_milliseconds() {
        assert_eq!(id_ms("1700000000123-4"), Some(1_700_000_000_123));
        assert_eq!(id_ms("garbage"), None);
    }
}
