//! Where the time and memory go: CPU seconds and resident memory of each process of a phase
//! (from `/proc/<pid>/stat` and `/proc/<pid>/status`), Redis's own accounting of the commands it
//! ran (`INFO commandstats`) and of its memory (`INFO memory`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// Clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// User + system CPU seconds of a process so far (None if it is gone or not on this host).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after `) `.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SEC)
}

/// Resident memory of a process, in KiB, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rss {
    /// `VmRSS`: resident now.
    pub now_kib: u64,
    /// `VmHWM`: the peak resident size over the process's life so far.
    pub peak_kib: u64,
}

/// The resident memory of `pid` (None if it is gone or not on this host).
pub fn rss(pid: u32) -> Option<Rss> {
    parse_rss(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

fn parse_rss(status: &str) -> Option<Rss> {
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some(Rss {
        now_kib: field("VmRSS")?,
        peak_kib: field("VmHWM")?,
    })
}

/// The processes watched during a phase, by role (`redis`, `api`, `workers`, `bench`).
#[derive(Debug, Default, Clone)]
pub struct Watch {
    procs: Vec<(&'static str, u32)>,
}

impl Watch {
    pub fn add(&mut self, role: &'static str, pid: u32) {
        self.procs.push((role, pid));
    }

    /// CPU seconds per role now.
    pub fn sample(&self) -> BTreeMap<&'static str, f64> {
        let mut out = BTreeMap::new();
        for (role, pid) in &self.procs {
            if let Some(s) = cpu_seconds(*pid) {
                *out.entry(*role).or_insert(0.0) += s;
            }
        }
        out
    }
}

/// CPU used per role between two samples, over `wall` seconds.
#[derive(Debug, Clone, Default)]
pub struct CpuSplit {
    pub wall_sec: f64,
    pub by_role: BTreeMap<&'static str, f64>,
}

impl CpuSplit {
    pub fn between(
        before: &BTreeMap<&'static str, f64>,
        after: &BTreeMap<&'static str, f64>,
        wall_sec: f64,
    ) -> Self {
        let by_role = after
            .iter()
            .map(|(role, s)| (*role, s - before.get(role).copied().unwrap_or(0.0)))
            .collect();
        Self { wall_sec, by_role }
    }

    /// `redis 1.20 s (60 %), workers 0.70 s (35 %), …` — percent of one core over the wall time.
    pub fn line(&self) -> String {
        self.by_role
            .iter()
            .map(|(role, s)| {
                let pct = if self.wall_sec > 0.0 {
                    100.0 * s / self.wall_sec
                } else {
                    0.0
                };
                format!("{role} {s:.2} s ({pct:.0} % of a core)")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn json(&self) -> Value {
        let roles: serde_json::Map<String, Value> = self
            .by_role
            .iter()
            .map(|(r, s)| ((*r).to_owned(), json!((s * 1000.0).round() / 1000.0)))
            .collect();
        json!({"wall_sec": (self.wall_sec * 1000.0).round() / 1000.0, "cpu_sec": roles})
    }
}

/// Calls and microseconds per command, from `INFO commandstats`.
pub type CommandStats = BTreeMap<String, (u64, u64)>;

pub async fn command_stats(
    con: &mut redis::aio::MultiplexedConnection,
) -> anyhow::Result<CommandStats> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(con)
        .await?;
    Ok(parse_command_stats(&info))
}

/// Parses lines like `cmdstat_evalsha:calls=3,usec=120,usec_per_call=40.00,…`.
fn parse_command_stats(info: &str) -> CommandStats {
    let mut out = BTreeMap::new();
    for line in info.lines() {
        let Some((name, rest)) = line
            .strip_prefix("cmdstat_")
            .and_then(|l| l.split_once(':'))
        else {
            continue;
        };
        let mut calls = 0;
        let mut usec = 0;
        for kv in rest.split(',') {
            match kv.split_once('=') {
                Some(("calls", v)) => calls = v.trim().parse().unwrap_or(0),
                Some(("usec", v)) => usec = v.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
        out.insert(name.to_owned(), (calls, usec));
    }
    out
}

/// The commands that took most of Redis's time between two readings, busiest first.
pub fn command_delta(before: &CommandStats, after: &CommandStats) -> Vec<(String, u64, u64)> {
    let mut d: Vec<(String, u64, u64)> = after
        .iter()
        .map(|(name, (calls, usec))| {
            let (c0, u0) = before.get(name).copied().unwrap_or((0, 0));
            (
                name.clone(),
                calls.saturating_sub(c0),
                usec.saturating_sub(u0),
            )
        })
        .filter(|(_, calls, _)| *calls > 0)
        .collect();
    d.sort_by_key(|e| std::cmp::Reverse(e.2));
    d
}

/// Integer fields of `INFO memory` (`used_memory`, `used_memory_dataset`, …).
pub async fn memory_info(
    con: &mut redis::aio::MultiplexedConnection,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(con).await?;
    Ok(info
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.to_owned(), v.trim().parse().ok()?))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commandstats_lines_are_parsed_into_calls_and_microseconds() {
        let info = "# Commandstats\r\ncmdstat_evalsha:calls=3,usec=120,usec_per_call=40.00,rejected_calls=0,failed_calls=0\r\ncmdstat_ping:calls=1,usec=1,usec_per_call=1.00\r\n";

        let stats = parse_command_stats(info);

        assert_eq!(stats["evalsha"], (3, 120));
        assert_eq!(stats["ping"], (1, 1));
    }

    #[test]
    fn status_lines_give_resident_and_peak_memory() {
        let status =
            "Name:\tscanq-worker\nVmPeak:\t  900000 kB\nVmHWM:\t    9000 kB\nVmRSS:\t    8000 kB\n";

        assert_eq!(
            parse_rss(status),
            Some(Rss {
                now_kib: 8000,
                peak_kib: 9000
            })
        );
    }

    #[test]
    fn this_process_has_a_cpu_time_and_a_resident_size() {
        assert!(rss(std::process::id()).is_some_and(|r| r.now_kib > 0));
        assert!(cpu_seconds(std::process::id()).is_some());
    }
}
