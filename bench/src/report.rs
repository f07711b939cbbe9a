//! The results of a run: a table for people and one JSON line for scripts, each measurement next
//! to its target (issue 2) and to where the CPU time and the memory went.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::drain::DrainResult;
use crate::e2e::E2eResult;
use crate::memory::MemoryResult;
use crate::submit::SubmitResult;
use crate::usage::CpuSplit;

/// Targets on the reference 2-core machine (not asserted; recorded in BENCHMARKS.md).
pub const DRAIN_TARGET: f64 = 20_000.0;
pub const SUBMIT_TARGET: f64 = 15_000.0;
pub const E2E_P50_TARGET_MS: f64 = 1.0;
pub const E2E_P99_TARGET_MS: f64 = 3.0;

/// How one phase used the machine.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub cpu: CpuSplit,
    /// (command, calls, µs) between the start and the end of the timed part, busiest first.
    pub commands: Vec<(String, u64, u64)>,
}

impl Usage {
    fn lines(&self, jobs: u64) -> Vec<String> {
        let mut out = vec![format!("cpu: {}", self.cpu.line())];
        let top: Vec<String> = self
            .commands
            .iter()
            .take(6)
            .map(|(name, calls, usec)| {
                format!(
                    "{name} {calls}× {:.1} µs/job",
                    *usec as f64 / jobs.max(1) as f64
                )
            })
            .collect();
        if !top.is_empty() {
            out.push(format!("redis time: {}", top.join(", ")));
        }
        out
    }

    fn json(&self, jobs: u64) -> Value {
        let mut v = self.cpu.json();
        let cmds: serde_json::Map<String, Value> = self
            .commands
            .iter()
            .map(|(n, calls, usec)| {
                (
                    n.clone(),
                    json!({
                        "calls": calls,
                        "calls_per_job": round(*calls as f64 / jobs.max(1) as f64, 3),
                        "usec_per_job": round(*usec as f64 / jobs.max(1) as f64, 2),
                    }),
                )
            })
            .collect();
        v["redis_commands"] = Value::Object(cmds);
        v
    }
}

/// Resident memory (`VmRSS`, `VmHWM`) of the scanq processes, KiB; None when not measured.
#[derive(Debug, Clone, Default)]
pub struct RssSummary {
    /// The API after start-up, no load (memory phase).
    pub api_idle_kib: Option<u64>,
    /// One worker after it registered, empty queue (memory phase).
    pub worker_idle_kib: Option<u64>,
    /// The API's peak over the submit phase.
    pub api_peak_submit_kib: Option<u64>,
    /// The biggest worker's peak over the drain phase.
    pub worker_peak_drain_kib: Option<u64>,
}

impl RssSummary {
    fn line(&self) -> Option<String> {
        let parts: Vec<String> = [
            ("API idle", self.api_idle_kib),
            ("worker idle", self.worker_idle_kib),
            ("API peak in (a)", self.api_peak_submit_kib),
            ("worker peak in (b)", self.worker_peak_drain_kib),
        ]
        .into_iter()
        .filter_map(|(what, kib)| Some(format!("{what} {:.1} MiB", kib? as f64 / 1024.0)))
        .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    }

    fn json(&self) -> Value {
        json!({
            "api_idle": self.api_idle_kib, "worker_idle": self.worker_idle_kib,
            "api_peak_submit": self.api_peak_submit_kib,
            "worker_peak_drain": self.worker_peak_drain_kib,
        })
    }
}

/// Redis commands per job over its whole life: the submit phase's per accepted submit plus the
/// drain phase's per drained job (script calls and the commands the scripts run alike).
#[derive(Debug, Clone)]
pub struct Lifecycle {
    /// Calls and µs per job, by command, busiest first.
    pub by_command: Vec<(String, f64, f64)>,
    /// The bench's own progress polls in the drain, per job (included above).
    pub bench_polls_per_job: f64,
}

impl Lifecycle {
    pub fn new(submit: &(SubmitResult, Usage), drain: &(DrainResult, f64, Usage)) -> Self {
        let mut by: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
        for (jobs, usage) in [(submit.0.jobs, &submit.1), (drain.0.jobs, &drain.2)] {
            for (name, calls, usec) in &usage.commands {
                let e = by.entry(name).or_default();
                e.0 += *calls as f64 / jobs.max(1) as f64;
                e.1 += *usec as f64 / jobs.max(1) as f64;
            }
        }
        let mut by_command: Vec<(String, f64, f64)> = by
            .into_iter()
            .map(|(n, (c, u))| (n.to_owned(), c, u))
            .collect();
        by_command.sort_by(|a, b| b.1.total_cmp(&a.1));
        Self {
            by_command,
            bench_polls_per_job: drain.0.polls as f64 / drain.0.jobs.max(1) as f64,
        }
    }

    pub fn calls(&self) -> f64 {
        self.by_command.iter().map(|c| c.1).sum()
    }

    pub fn usec(&self) -> f64 {
        self.by_command.iter().map(|c| c.2).sum()
    }

    fn json(&self) -> Value {
        let by: serde_json::Map<String, Value> = self
            .by_command
            .iter()
            .map(|(n, c, u)| {
                (
                    n.clone(),
                    json!({"calls": round(*c, 3), "usec": round(*u, 2)}),
                )
            })
            .collect();
        json!({
            "calls": round(self.calls(), 3), "usec": round(self.usec(), 1),
            "bench_polls_per_job": round(self.bench_polls_per_job, 3), "by_command": by,
        })
    }
}

/// Everything one run measured.
#[derive(Debug, Default)]
pub struct Report {
    pub header: String,
    pub settings: Value,
    pub submit: Option<(SubmitResult, Usage)>,
    pub drain: Option<(DrainResult, f64, Usage)>,
    pub e2e: Option<(E2eResult, Usage)>,
    pub memory: Option<MemoryResult>,
    pub rss: RssSummary,
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x.abs());
    let mut out = String::from(if x <= -0.5 { "-" } else { "" });
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Report {
    pub fn table(&self) -> String {
        let mut t = vec![self.header.clone(), String::new()];
        let row = |what: String, result: String, target: String, ok: bool| {
            format!("{what:<52} {result:>16}   {target:<16} {}", verdict(ok))
        };
        if let Some((r, u)) = &self.submit {
            t.push(row(
                format!("(a) HTTP submit, {} clients, {} jobs", r.clients, r.jobs),
                format!("{} jobs/s", thousands(r.jobs_per_sec)),
                format!("≥ {} jobs/s", thousands(SUBMIT_TARGET)),
                r.jobs_per_sec >= SUBMIT_TARGET,
            ));
            t.push(format!(
                "    per request p50 {:.2} ms, p99 {:.2} ms; {:.2} s",
                r.p50_ms, r.p99_ms, r.secs
            ));
            t.extend(u.lines(r.jobs).into_iter().map(|l| format!("    {l}")));
        }
        if let Some((r, prefill, u)) = &self.drain {
            t.push(row(
                format!("(b) drain, {} noop jobs, {} worker(s)", r.jobs, r.workers),
                format!("{} jobs/s", thousands(r.jobs_per_sec)),
                format!("≥ {} jobs/s", thousands(DRAIN_TARGET)),
                r.jobs_per_sec >= DRAIN_TARGET,
            ));
            t.push(format!(
                "    {:.2} s from first claim to last result ({:.2} s with worker start-up); pre-fill via Queue::submit {} jobs/s",
                r.secs,
                r.with_startup_secs,
                thousands(*prefill)
            ));
            t.extend(u.lines(r.jobs).into_iter().map(|l| format!("    {l}")));
        }
        if let Some((r, u)) = &self.e2e {
            // A client path's p50 and p99 rows against the targets.
            let latency = |label: &str, p50: f64, p99: f64| {
                [
                    row(
                        format!("(c) end-to-end, {label}, p50"),
                        format!("{p50:.3} ms"),
                        format!("≤ {E2E_P50_TARGET_MS} ms"),
                        p50 <= E2E_P50_TARGET_MS,
                    ),
                    row(
                        "                                                p99".into(),
                        format!("{p99:.3} ms"),
                        format!("≤ {E2E_P99_TARGET_MS} ms"),
                        p99 <= E2E_P99_TARGET_MS,
                    ),
                ]
            };
            t.extend(latency("one request (Prefer: wait)", r.p50_ms, r.p99_ms));
            t.push(format!(
                "    {} sequential jobs each way, alternately; max {:.3} ms; {} answers not final (a GET ?wait=5 followed)",
                r.jobs, r.max_ms, r.followed
            ));
            t.extend(latency(
                "two requests (POST + GET ?wait)",
                r.two_p50_ms,
                r.two_p99_ms,
            ));
            t.push(format!(
                "    max {:.3} ms; the POST alone: p50 {:.3} ms, p99 {:.3} ms; both ways: mean enqueue → claim {:.2} ms, claim → result {:.2} ms",
                r.two_max_ms, r.post_p50_ms, r.post_p99_ms, r.queue_wait_mean_ms, r.run_mean_ms
            ));
            t.extend(
                u.lines(r.total_jobs())
                    .into_iter()
                    .map(|l| format!("    {l}")),
            );
        }
        if let Some(m) = &self.memory {
            t.push(format!(
                "{:<52} {:>16}   (lower is better)",
                format!("(d) Redis memory per queued job, {} jobs", m.jobs),
                format!("{} B/job", thousands(m.bytes_per_job)),
            ));
            t.push(format!(
                "    used_memory {} → {} bytes; by key kind (MEMORY USAGE, amortised over {} jobs):",
                thousands(m.used_memory_before as f64),
                thousands(m.used_memory_after as f64),
                m.jobs_in_redis
            ));
            for k in m.kinds.iter().filter(|k| k.bytes_per_job >= 0.5) {
                let what = if k.label.is_empty() {
                    k.redis_type.clone()
                } else {
                    format!("{} ({})", k.label, k.redis_type)
                };
                t.push(format!(
                    "      {:>7.0} B/job  {what:<30} {} ({} keys)",
                    k.bytes_per_job, k.pattern, k.keys
                ));
            }
            t.push(format!(
                "      {:>7.0} B/job  rest of the delta (expiry table, allocator; < 0: MEMORY USAGE over-counts)",
                m.unattributed_per_job()
            ));
        }
        if let Some(line) = self.rss.line() {
            t.push(format!("(e) resident memory (VmRSS / peak VmHWM): {line}"));
        }
        if let Some(l) = self.lifecycle() {
            let top: Vec<String> = l
                .by_command
                .iter()
                .take(10)
                .map(|(n, c, _)| format!("{} {c:.2}", n.to_uppercase()))
                .collect();
            t.push(format!(
                "(f) Redis commands per job, submit (a) + drain (b): {:.1} calls, {:.0} µs of Redis time",
                l.calls(),
                l.usec()
            ));
            t.push(format!("    {}", top.join(", ")));
            t.push(format!(
                "    (script calls and the commands inside scripts alike; includes the bench's drain polls, {:.2} per job)",
                l.bench_polls_per_job
            ));
        }
        t.join("\n")
    }

    /// Commands per job over submit + drain, when both ran.
    pub fn lifecycle(&self) -> Option<Lifecycle> {
        Some(Lifecycle::new(self.submit.as_ref()?, self.drain.as_ref()?))
    }

    /// One line; the four headline keys are always present (null when the phase did not run).
    pub fn json(&self) -> Value {
        let mut v = json!({
            "drain_jobs_per_sec": self.drain.as_ref().map(|(r, _, _)| round(r.jobs_per_sec, 0)),
            "submit_jobs_per_sec": self.submit.as_ref().map(|(r, _)| round(r.jobs_per_sec, 0)),
            "e2e_p50_ms": self.e2e.as_ref().map(|(r, _)| round(r.p50_ms, 3)),
            "e2e_p99_ms": self.e2e.as_ref().map(|(r, _)| round(r.p99_ms, 3)),
            "e2e_two_requests_p50_ms": self.e2e.as_ref().map(|(r, _)| round(r.two_p50_ms, 3)),
            "e2e_two_requests_p99_ms": self.e2e.as_ref().map(|(r, _)| round(r.two_p99_ms, 3)),
            "memory_bytes_per_job": self.memory.as_ref().map(|m| round(m.bytes_per_job, 0)),
            "rss_kib": self.rss.json(),
            "settings": self.settings,
        });
        if let Some((r, u)) = &self.submit {
            v["submit"] = json!({
                "jobs": r.jobs, "clients": r.clients, "secs": round(r.secs, 3),
                "p50_ms": round(r.p50_ms, 3), "p99_ms": round(r.p99_ms, 3),
                "usage": u.json(r.jobs),
            });
        }
        if let Some((r, prefill, u)) = &self.drain {
            v["drain"] = json!({
                "jobs": r.jobs, "workers": r.workers, "secs": round(r.secs, 3),
                "with_startup_secs": round(r.with_startup_secs, 3),
                "prefill_jobs_per_sec": round(*prefill, 0),
                "usage": u.json(r.jobs),
            });
        }
        if let Some((r, u)) = &self.e2e {
            v["e2e"] = json!({
                "jobs": r.jobs, "max_ms": round(r.max_ms, 3), "followed_by_get": r.followed,
                "two_requests_max_ms": round(r.two_max_ms, 3),
                "post_p50_ms": round(r.post_p50_ms, 3), "post_p99_ms": round(r.post_p99_ms, 3),
                "queue_wait_mean_ms": round(r.queue_wait_mean_ms, 3),
                "run_mean_ms": round(r.run_mean_ms, 3),
                "usage": u.json(r.total_jobs()),
            });
        }
        if let Some((r, _, _)) = &self.drain {
            v["drain"]["bench_polls"] = json!(r.polls);
        }
        if let Some(m) = &self.memory {
            let kinds: Vec<Value> = m
                .kinds
                .iter()
                .map(|k| {
                    json!({
                        "pattern": k.pattern, "label": k.label, "type": k.redis_type,
                        "keys": k.keys, "sampled": k.sampled, "mean_bytes": round(k.mean_bytes, 1),
                        "bytes_per_job": round(k.bytes_per_job, 1),
                    })
                })
                .collect();
            v["memory"] = json!({
                "jobs": m.jobs, "jobs_in_redis": m.jobs_in_redis,
                "used_memory_before": m.used_memory_before, "used_memory_after": m.used_memory_after,
                "dataset_before": m.dataset_before, "dataset_after": m.dataset_after,
                "bytes_per_job": round(m.bytes_per_job, 1),
                "unattributed_bytes_per_job": round(m.unattributed_per_job(), 1),
                "kinds": kinds,
            });
        }
        if let Some(l) = self.lifecycle() {
            v["commands_per_job"] = l.json();
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated_and_signs_kept() {
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(-1_234.0), "-1,234");
        assert_eq!(thousands(0.2), "0");
    }
}
