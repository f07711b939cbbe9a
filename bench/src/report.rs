//! The results of a run: a table for people and one JSON line for scripts, each measurement next
//! to its target (issue 2) and to where the CPU time went.

use serde_json::{Value, json};

use crate::drain::DrainResult;
use crate::e2e::E2eResult;
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
                    json!({"calls": calls, "usec_per_job": round(*usec as f64 / jobs.max(1) as f64, 2)}),
                )
            })
            .collect();
        v["redis_commands"] = Value::Object(cmds);
        v
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
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x);
    let mut out = String::new();
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
            t.push(row(
                format!("(c) end-to-end latency, {} sequential jobs, p50", r.jobs),
                format!("{:.3} ms", r.p50_ms),
                format!("≤ {E2E_P50_TARGET_MS} ms"),
                r.p50_ms <= E2E_P50_TARGET_MS,
            ));
            t.push(row(
                "                                                p99".into(),
                format!("{:.3} ms", r.p99_ms),
                format!("≤ {E2E_P99_TARGET_MS} ms"),
                r.p99_ms <= E2E_P99_TARGET_MS,
            ));
            t.push(format!(
                "    max {:.3} ms; the POST alone: p50 {:.3} ms, p99 {:.3} ms; mean enqueue → claim {:.2} ms, claim → result {:.2} ms",
                r.max_ms, r.post_p50_ms, r.post_p99_ms, r.queue_wait_mean_ms, r.run_mean_ms
            ));
            t.extend(u.lines(r.jobs).into_iter().map(|l| format!("    {l}")));
        }
        t.join("\n")
    }

    /// One line; the four headline keys are always present (null when the phase did not run).
    pub fn json(&self) -> Value {
        let mut v = json!({
            "drain_jobs_per_sec": self.drain.as_ref().map(|(r, _, _)| round(r.jobs_per_sec, 0)),
            "submit_jobs_per_sec": self.submit.as_ref().map(|(r, _)| round(r.jobs_per_sec, 0)),
            "e2e_p50_ms": self.e2e.as_ref().map(|(r, _)| round(r.p50_ms, 3)),
            "e2e_p99_ms": self.e2e.as_ref().map(|(r, _)| round(r.p99_ms, 3)),
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
                "jobs": r.jobs, "max_ms": round(r.max_ms, 3),
                "post_p50_ms": round(r.post_p50_ms, 3), "post_p99_ms": round(r.post_p99_ms, 3),
                "queue_wait_mean_ms": round(r.queue_wait_mean_ms, 3),
                "run_mean_ms": round(r.run_mean_ms, 3),
                "usage": u.json(r.jobs),
            });
        }
        v
    }
}
