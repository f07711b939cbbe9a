//! The job's life cycle and its public document.
//!
//! ```text
//! queued ──claim──▶ running ──▶ succeeded | failed | cancelled
//!   ▲                 │
//!   └── scheduled ◀───┘ (retry back-off, delay, open breaker)
//! ```
//! The full state machine is drawn in `docs/job-states.md`.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The `max_attempts` a job hash leaves out (the configuration's default): a queued job's
/// bytes are paid for as long as it waits. Hashes written before this was left out store it,
/// and read the same.
pub const STORED_DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// The `timeout_sec` a job hash leaves out (the catalog's built-in default), likewise; the
/// claim hands it to the worker when the hash has none.
pub const STORED_DEFAULT_TIMEOUT_SEC: u64 = 600;

/// A string that names no variant; the message lists the accepted ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not one of: {accepted}")]
pub struct UnknownVariant {
    pub value: String,
    pub accepted: &'static str,
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub const ACCEPTED: &'static str = concat!($($text, " "),+);

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownVariant { value: s.to_owned(), accepted: Self::ACCEPTED.trim_ascii_end() }),
                }
            }
        }
    };
}

pub(crate) use string_enum;

string_enum!(
    /// Where a job is in its life. `scheduled` waits for a retry back-off, a delay or an open
    /// breaker; `awaiting_approval` for a person's yes (DESIGN §14).
    JobState {
        Queued => "queued",
        Scheduled => "scheduled",
        /// Waits for a person's approval (DESIGN §14): no queue slot, no lease.
        AwaitingApproval => "awaiting_approval",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

impl JobState {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

string_enum!(
    /// Queue priority. Workers read `high` first but give `normal` and `low` a share of every
    /// round, so no priority starves (see `scripts/lua/claim.lua`).
    Priority {
        High => "high",
        Normal => "normal",
        Low => "low",
    }
);

string_enum!(
    /// The public error kinds of DESIGN §2.
    ErrorType {
        ValidationError => "validation_error",
        NotFound => "not_found",
        Timeout => "timeout",
        ExecutionError => "execution_error",
        ResourceExhausted => "resource_exhausted",
        CircuitBreakerOpen => "circuit_breaker_open",
        Cancelled => "cancelled",
        WorkerLost => "worker_lost",
        /// Stopped at the end of its engagement's window (`stop_at_window_end`, DESIGN §14).
        WindowClosed => "window_closed",
        Unknown => "unknown",
    }
);

impl ErrorType {
    /// What a person can do about it.
    pub fn recovery_suggestion(self) -> &'static str {
        match self {
            Self::ValidationError => "Fix the field named in the error and submit again.",
            Self::NotFound => {
                "The tool binary is missing on the worker: install it or disable the tool."
            }
            Self::Timeout => "Narrow the scan (fewer ports or hosts) or raise timeout_sec.",
            Self::ExecutionError => "Read result.stderr; check the arguments and the target.",
            Self::ResourceExhausted => {
                "The tool hit a sandbox limit: narrow the scan or ask an operator to raise the limit."
            }
            Self::CircuitBreakerOpen => {
                "The tool is failing fleet-wide; retry after retry_after_sec or check GET /v1/breakers."
            }
            Self::Cancelled => "The job was cancelled; submit it again if it is still needed.",
            Self::WorkerLost => {
                "The worker running the job died repeatedly; retry with POST /v1/jobs/{id}/retry."
            }
            Self::WindowClosed => {
                "The engagement's window closed while the job ran; its partial result is kept. \
                 Retry it in the next window (POST /v1/jobs/{id}/retry)."
            }
            Self::Unknown => {
                "Retry later; if it persists, report the correlation ID to an operator."
            }
        }
    }
}

/// Live progress of a running job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProgressInfo {
    pub percent: f64,
    pub eta_sec: Option<u64>,
    pub phase: Option<String>,
    /// A big scan's parent: hosts in finished chunks, and in all (DESIGN §12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts_done: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts_total: Option<u64>,
}

/// What the tool produced.
///
/// Answers show every field; Redis holds the [`stored`](Self::stored) form, which leaves out
/// empty output and false flags (read back as such: `#[serde(default)]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobResult {
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub stdout: String,
    #[serde(default)]
    pub stderr: String,
    #[serde(default)]
    pub truncated_stdout: bool,
    #[serde(default)]
    pub truncated_stderr: bool,
    #[serde(default)]
    pub timed_out: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parsed: Option<serde_json::Value>,
    /// The exact argv that ran, program first (after templates, policy, output flags and the
    /// resolved address): what to run again to reproduce the scan. Empty for in-process tools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// How the kernel confined the run's traffic, when it did (egress confinement).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confinement: Option<Confinement>,
    /// A big scan's merged result that lacks the hosts of a chunk that did not succeed
    /// (`scanq::nmap::merge_chunks`, docs/merged-results.md); what the other chunks found is
    /// still here and exportable. Absent (false) for every ordinary job.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

impl JobResult {
    /// The fields [`stored`](Self::stored) leaves out at their defaults.
    const DEFAULTED: [&'static str; 5] = [
        "stdout",
        "stderr",
        "truncated_stdout",
        "truncated_stderr",
        "timed_out",
    ];

    /// The JSON a job's hash holds: without empty output and false flags. A result of up to
    /// 64 bytes keeps the job's hash in Redis' compact encoding (`hash-max-listpack-value`);
    /// the full form of a quick tool's result (~105 bytes) made Redis convert every finished
    /// job's hash to a table, ~5 % of its time in a drain (BENCHMARKS.md "Engine v8").
    pub fn stored(&self) -> String {
        let mut v = serde_json::to_value(self).expect("serializable");
        if let Some(map) = v.as_object_mut() {
            map.retain(|k, v| {
                !(Self::DEFAULTED.contains(&k.as_str())
                    && (v.as_str() == Some("") || v.as_bool() == Some(false)))
            });
        }
        v.to_string()
    }
}

/// A confined run's record: what it could reach and how often it tried to go elsewhere.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Confinement {
    /// `nftables`.
    pub mode: String,
    /// The run's own uid, which the rules matched.
    pub uid: u32,
    /// The addresses (or CIDR) the tool could reach.
    pub allowed: Vec<String>,
    /// Packets to anywhere else, refused by the kernel (a refused TCP connect is one).
    pub refused_attempts: u64,
}

/// Why a job failed (or is waiting), with advice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorInfo {
    #[serde(rename = "type")]
    pub kind: ErrorType,
    pub message: String,
    pub recovery_suggestion: String,
    pub retry_after_sec: Option<u64>,
}

impl ErrorInfo {
    pub fn new(kind: ErrorType, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            recovery_suggestion: kind.recovery_suggestion().to_owned(),
            retry_after_sec: None,
        }
    }
}

/// The job document of DESIGN §2, as served by `GET /v1/jobs/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobDocument {
    pub correlation_id: String,
    pub tool: String,
    /// The zone the job runs in (DESIGN §13): only workers of this zone claim it.
    #[serde(default)]
    #[schema(value_type = String)]
    pub zone: super::Zone,
    /// A big scan spanning zones: the zones of its chunks, in order (absent otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub zones: Vec<super::Zone>,
    pub target: String,
    pub args: Vec<String>,
    pub template: Option<String>,
    pub state: JobState,
    pub attempt: u32,
    pub max_attempts: u32,
    pub priority: Priority,
    pub timeout_sec: u64,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub retry_at: Option<String>,
    pub queue_wait_ms: Option<u64>,
    pub duration_ms: Option<u64>,
    pub worker: Option<String>,
    pub progress: Option<ProgressInfo>,
    pub result: Option<JobResult>,
    pub error: Option<ErrorInfo>,
    /// The schedule that started this run (`/v1/schedules/{id}`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_id: Option<String>,
    /// For a scheduled run that succeeded: what changed since the schedule's previous
    /// succeeded run (`against`, `changed`, `summary` counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<serde_json::Value>,
    /// What the job needs of the worker that claims it (`["raw_sockets"]`); absent when nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<super::Need>,
    /// Why a queued job is not claimed although it is ready (`raw_capable_worker`: no live
    /// raw-capable worker serves its tool, set by the API from the live heartbeats;
    /// `target_group`: parked by a claim while its group ran its cap, from the job hash), or
    /// why a scheduled one waits (`window`: its engagement's next window, at `retry_at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub waiting_for: Option<super::WaitingFor>,
    /// A chunk of a big scan: its parent's correlation ID (DESIGN §12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// A big scan's parent: its chunks by state (`GET /v1/jobs/{id}/chunks` lists them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<super::ChunkTally>,
    /// The target group the job counts in when its tool caps running jobs per group
    /// (`127.2.0.0/24`, or a hostname; politeness, docs/queue.md); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_group: Option<String>,
    /// Why the fleet stopped the job while it ran (`window_closed`: its engagement's window
    /// ended and the engagement says `stop_at_window_end`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// The name of the token that submitted the job (`schedule:<id>` for a schedule's run,
    /// `open` without tokens): the one token that may not approve it (DESIGN §14).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_by: Option<String>,
    /// A job that needs a person's approval: `pending`, or the decision, its author, reason
    /// and time. Absent for a job that never needed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<super::ApprovalInfo>,
}

/// RFC 3339 (UTC, milliseconds) of a time in ms since the epoch.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let millis = ms % 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm), valid for the Unix era.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
}

impl JobDocument {
    /// Builds the document from the job hash as the scripts write it (field names in
    /// `scripts/lua/*.lua`). Returns `None` when the hash is empty or not a job.
    /// The document of job `id` from its hash, which leaves out what its key already says
    /// (tool, correlation ID).
    pub fn from_job(id: &super::JobId, h: &HashMap<String, String>) -> Option<Self> {
        let mut doc = Self::from_hash_parts(h, Some(id))?;
        doc.tool = id.tool.to_string();
        doc.correlation_id = id.cid.to_string();
        Some(doc)
    }

    /// The document from a hash that names its tool and correlation ID itself.
    pub fn from_hash(h: &HashMap<String, String>) -> Option<Self> {
        Self::from_hash_parts(h, None)
    }

    fn from_hash_parts(h: &HashMap<String, String>, id: Option<&super::JobId>) -> Option<Self> {
        let get = |k: &str| h.get(k).filter(|v| !v.is_empty());
        let num = |k: &str| get(k).and_then(|v| v.parse::<u64>().ok());
        fn json<T: serde::de::DeserializeOwned>(h: &HashMap<String, String>, k: &str) -> Option<T> {
            h.get(k)
                .filter(|v| !v.is_empty())
                .and_then(|v| serde_json::from_str(v).ok())
        }
        let mut error: Option<ErrorInfo> = json(h, "error");
        let state: JobState = get("state")?.parse().ok()?;
        if let (Some(e), Some(retry_at), Some(now)) =
            (error.as_mut(), num("retry_at_ms"), num("updated_ms"))
            && state == JobState::Scheduled
        {
            e.retry_after_sec = Some(retry_at.saturating_sub(now).div_ceil(1000));
        }
        // Stored by the fleet's sweep; a worker that stopped the job on its own timer says it
        // in the error alone.
        let stop_reason = get("stop_reason").cloned().or_else(|| {
            (state == JobState::Cancelled
                && error
                    .as_ref()
                    .is_some_and(|e| e.kind == ErrorType::WindowClosed))
            .then(|| super::StopReason::WindowClosed.as_str().to_owned())
        });
        Some(Self {
            correlation_id: match id {
                Some(id) => id.cid.to_string(),
                None => get("cid")?.clone(),
            },
            tool: match id {
                Some(id) => id.tool.to_string(),
                None => get("tool")?.clone(),
            },
            zone: match id {
                Some(id) => id.zone.clone(),
                None => get("zone")
                    .and_then(|z| super::Zone::parse(z).ok())
                    .unwrap_or_default(),
            },
            // `<zone>=<targets>;…` (request::ZonePlan): only its zones are shown.
            zones: get("zplan")
                .map(|p| {
                    p.split(';')
                        .filter_map(|part| super::Zone::parse(part.split_once('=')?.0).ok())
                        .collect()
                })
                .unwrap_or_default(),
            target: get("target").cloned().unwrap_or_default(),
            args: json(h, "args").unwrap_or_default(),
            template: get("template").cloned(),
            state,
            attempt: num("attempt").unwrap_or(0) as u32,
            max_attempts: num("max_attempts").map_or(STORED_DEFAULT_MAX_ATTEMPTS, |n| n as u32),
            priority: get("priority")
                .and_then(|p| p.parse().ok())
                .unwrap_or(Priority::Normal),
            timeout_sec: num("timeout_sec").unwrap_or(STORED_DEFAULT_TIMEOUT_SEC),
            created_at: rfc3339(num("created_ms").unwrap_or(0)),
            started_at: num("started_ms").map(rfc3339),
            finished_at: num("finished_ms").map(rfc3339),
            retry_at: num("retry_at_ms")
                .filter(|_| state == JobState::Scheduled)
                .map(rfc3339),
            // Not stored by this release (`start_job` in common.lua): the start less the time
            // the job became ready, while the hash holds the start of the current attempt.
            queue_wait_ms: num("started_ms")
                .and_then(|s| s.checked_sub(num("ready_ms").or(num("created_ms"))?))
                .or(num("queue_wait_ms")),
            // Stored only when it is not the end less the start ('' for none: an end that
            // did not come from a run; `finish` in common.lua).
            duration_ms: match h.get("duration_ms") {
                Some(d) => d.parse().ok(),
                None => num("finished_ms").and_then(|f| f.checked_sub(num("started_ms")?)),
            },
            worker: get("worker").cloned(),
            progress: json(h, "progress"),
            result: json(h, "result"),
            error,
            schedule_id: get("schedule_id").cloned(),
            change: json(h, "change"),
            needs: if get("needs_raw").is_some_and(|v| v == "1") {
                vec![super::Need::RawSockets]
            } else {
                Vec::new()
            },
            parent: get("parent").cloned(),
            chunks: json(h, "tally"),
            waiting_for: match (state, get("waiting").map(String::as_str)) {
                (JobState::Queued, Some("target_group")) => Some(super::WaitingFor::TargetGroup),
                (JobState::Scheduled, Some("window")) => Some(super::WaitingFor::Window),
                _ => None,
            },
            target_group: get("tgroup").cloned(),
            stop_reason,
            submitted_by: get("submitted_by").cloned(),
            approval: super::ApprovalInfo::from_hash(h),
        })
    }
}

#[cfg(test)]
mod tests;
