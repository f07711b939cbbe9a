//! The checks behind `GET /health` (DESIGN §7). They run concurrently, each under its own
//! timeout, and each carries a priority: a failed *critical* check makes the service unhealthy
//! (503), a failed *important* one degraded (200), and an *informational* one only reports.
//!
//! | check | priority | passes when |
//! |---|---|---|
//! | `redis` | critical | Redis answers `PING` and the scripts are loaded |
//! | `workers` | important | at least one worker's heartbeat is live (the detail counts the raw-capable ones; an admin token, or an API without tokens, also gets each worker's `capabilities` in `workers`) |
//! | `tool_binaries` | important | every enabled catalog tool is present on some live worker |
//! | `zones` | important | no zone holds queued jobs without a live worker (the detail names each such zone) |
//! | `cpu`, `memory`, `disk` | informational | use is at or under `health_*_percent` |

use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::state::AppState;

/// How long any one check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Critical,
    Important,
    Informational,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Healthy,
    Degraded,
    Unhealthy,
}

/// One check's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub priority: Priority,
    /// `pass` or `fail`.
    pub status: &'static str,
    pub duration_ms: u64,
    pub detail: String,
    /// The measured value, for checks against a threshold (percent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// The `workers` check, for admins only: each live worker's id, confinement and
    /// capabilities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<serde_json::Value>,
}

/// Every check and the verdict drawn from them.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub status: Status,
    pub checks: Vec<Check>,
}

/// What a check found: passed or not, a sentence, and optionally a measured value.
struct Finding {
    ok: bool,
    detail: String,
    observed: Option<(f64, f64)>,
    workers: Option<serde_json::Value>,
}

impl Finding {
    fn new(ok: bool, detail: impl Into<String>) -> Self {
        Self {
            ok,
            detail: detail.into(),
            observed: None,
            workers: None,
        }
    }

    fn into_check(self, name: &'static str, priority: Priority, duration_ms: u64) -> Check {
        Check {
            name,
            priority,
            status: if self.ok { "pass" } else { "fail" },
            duration_ms,
            detail: self.detail,
            observed: self.observed.map(|(v, _)| (v * 10.0).round() / 10.0),
            threshold: self.observed.map(|(_, t)| t),
            workers: self.workers,
        }
    }
}

async fn timed(
    name: &'static str,
    priority: Priority,
    check: impl Future<Output = Finding>,
) -> Check {
    let start = Instant::now();
    let finding = tokio::time::timeout(CHECK_TIMEOUT, check)
        .await
        .unwrap_or_else(|_| {
            Finding::new(
                false,
                format!("no answer within {} ms", CHECK_TIMEOUT.as_millis()),
            )
        });
    finding.into_check(name, priority, start.elapsed().as_millis() as u64)
}

/// Runs every check concurrently; `admin` callers also get each worker's details.
pub async fn run(state: &AppState, admin: bool) -> Report {
    let (redis, workers, binaries, zones, system) = tokio::join!(
        timed("redis", Priority::Critical, redis(state)),
        timed("workers", Priority::Important, workers(state, admin)),
        timed("tool_binaries", Priority::Important, binaries(state)),
        timed("zones", Priority::Important, zones(state)),
        system(state),
    );
    let mut checks = vec![redis, workers, binaries, zones];
    checks.extend(system);
    let failed = |p: Priority| checks.iter().any(|c| c.priority == p && c.status == "fail");
    let status = if failed(Priority::Critical) {
        Status::Unhealthy
    } else if failed(Priority::Important) {
        Status::Degraded
    } else {
        Status::Healthy
    };
    Report { status, checks }
}

async fn redis(state: &AppState) -> Finding {
    let mode = state.queue().pool().mode();
    match state.queue().ready().await {
        Ok(true) => Finding::new(true, format!("{mode}: reachable, scripts loaded")),
        Ok(false) => Finding::new(
            false,
            format!("{mode}: reachable, but the scripts are not loaded"),
        ),
        Err(err) => {
            tracing::warn!(error = %err, "Health: Redis unreachable");
            Finding::new(false, format!("{mode}: unreachable"))
        }
    }
}

async fn workers(state: &AppState, admin: bool) -> Finding {
    match state.inner.stats.workers().await {
        Ok(w) if w.is_empty() => Finding::new(
            false,
            "no live worker: submitted jobs wait until a worker starts",
        ),
        Ok(w) => {
            let modes: Vec<String> = w
                .iter()
                .map(|w| format!("{}: {}", w.id, or_unknown(&w.confinement)))
                .collect();
            let raw = w.iter().filter(|w| w.capabilities.raw_sockets).count();
            let mut found = Finding::new(
                true,
                format!(
                    "{} live ({raw} raw-capable); egress confinement {}",
                    w.len(),
                    modes.join(", ")
                ),
            );
            found.workers = admin.then(|| {
                w.iter()
                    .map(|w| {
                        serde_json::json!({
                            "id": w.id,
                            "confinement": or_unknown(&w.confinement),
                            "capabilities": w.capabilities,
                        })
                    })
                    .collect()
            });
            found
        }
        Err(_) => Finding::new(false, "cannot read heartbeats: Redis unreachable"),
    }
}

fn or_unknown(mode: &str) -> &str {
    if mode.is_empty() { "unknown" } else { mode }
}

async fn binaries(state: &AppState) -> Finding {
    let workers = match state.inner.stats.workers().await {
        Ok(w) => w,
        Err(_) => return Finding::new(false, "cannot read heartbeats: Redis unreachable"),
    };
    let live = state.live();
    let missing: Vec<&str> = live
        .catalog
        .tools()
        .filter(|(_, spec)| spec.enabled)
        .map(|(name, _)| name.as_str())
        .filter(|name| {
            !workers
                .iter()
                .any(|w| w.tools.get(*name).copied().unwrap_or(false))
        })
        .collect();
    if missing.is_empty() {
        Finding::new(true, "every tool is present on a live worker")
    } else {
        Finding::new(
            false,
            format!("no live worker can run: {}", missing.join(", ")),
        )
    }
}

/// Zones (DESIGN §13) whose queued jobs no live worker can take: each is named with its count.
async fn zones(state: &AppState) -> Finding {
    let views = match state.zone_views(false).await {
        Ok(v) => v,
        Err(_) => return Finding::new(false, "cannot read the zones: Redis unreachable"),
    };
    let stranded: Vec<String> = views
        .iter()
        .filter(|z| z.stranded())
        .map(|z| format!("zone {} has {} queued and no live worker", z.name, z.queued))
        .collect();
    if stranded.is_empty() {
        Finding::new(
            true,
            format!(
                "every zone with queued jobs has a live worker ({} zones)",
                views.len()
            ),
        )
    } else {
        Finding::new(false, stranded.join("; "))
    }
}

/// CPU, memory and disk, measured together on a blocking thread.
async fn system(state: &AppState) -> Vec<Check> {
    let cfg = &state.inner.cfg;
    let limits = [
        ("cpu", f64::from(cfg.health_cpu_percent)),
        ("memory", f64::from(cfg.health_memory_percent)),
        ("disk", f64::from(cfg.health_disk_percent)),
    ];
    let start = Instant::now();
    let probe = state.clone();
    let sample = tokio::time::timeout(
        CHECK_TIMEOUT,
        tokio::task::spawn_blocking(move || probe.inner.system.sample()),
    )
    .await;
    let duration_ms = start.elapsed().as_millis() as u64;
    let values: [Result<(f64, String), String>; 3] = match sample {
        Ok(Ok(s)) => [
            Ok((s.cpu_percent, "CPU use over the last interval".into())),
            Ok((s.memory_percent, "memory in use".into())),
            s.disk_percent
                .map(|(p, mount)| (p, format!("disk of {mount} in use")))
                .ok_or_else(|| "no disk found for the temporary directory".to_owned()),
        ],
        _ => std::array::from_fn(|_| Err("system probe did not answer in time".to_owned())),
    };
    limits
        .into_iter()
        .zip(values)
        .map(|((name, limit), value)| {
            let finding = match value {
                Ok((v, what)) => Finding {
                    ok: v <= limit,
                    detail: format!("{what}: {v:.1}% (threshold {limit}%)"),
                    observed: Some((v, limit)),
                    workers: None,
                },
                Err(e) => Finding::new(false, e),
            };
            finding.into_check(name, Priority::Informational, duration_ms)
        })
        .collect()
}
