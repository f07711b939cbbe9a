//! Decoding of script replies into typed outcomes.

use redis::{ErrorKind, RedisError, RedisResult, Value};

use crate::domain::{JobState, Verdict};

fn bad(what: &str) -> RedisError {
    RedisError::from((
        ErrorKind::UnexpectedReturnType,
        "unexpected script reply",
        what.to_owned(),
    ))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn array(v: Value) -> RedisResult<Vec<Value>> {
    match v {
        Value::Array(a) => Ok(a),
        Value::Nil => Ok(vec![]),
        _ => Err(bad("expected an array")),
    }
}

fn strings(v: Value) -> RedisResult<Vec<String>> {
    array(v)?
        .iter()
        .map(|x| text(x).ok_or_else(|| bad("expected strings")))
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnqueueOutcome {
    Created { state: String, created_ms: u64 },
    Exists { state: String },
    Conflict { state: String },
    Full { depth: u64 },
}

pub fn enqueue(v: Value) -> RedisResult<EnqueueOutcome> {
    let s = strings(v)?;
    let second = s.get(1).cloned().unwrap_or_default();
    Ok(match s.first().map(String::as_str) {
        Some("created") => EnqueueOutcome::Created {
            state: second,
            created_ms: s.get(2).and_then(|c| c.parse().ok()).unwrap_or(0),
        },
        Some("exists") => EnqueueOutcome::Exists { state: second },
        Some("conflict") => EnqueueOutcome::Conflict { state: second },
        Some("full") => EnqueueOutcome::Full {
            depth: second.parse().unwrap_or(0),
        },
        _ => return Err(bad("enqueue")),
    })
}

/// The reply of an enqueue that claims its ID in the listing: `None` when the listing held it.
pub fn enqueue_listed(v: Value) -> RedisResult<Option<EnqueueOutcome>> {
    if let Value::Array(items) = &v
        && items.len() == 1
        && text(&items[0]).as_deref() == Some("listed")
    {
        return Ok(None);
    }
    enqueue(v).map(Some)
}

/// A job handed to a worker by `claim.lua`: only what the worker needs to run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    pub job_ref: String,
    pub fence: u64,
    /// This attempt's number (1 for the first).
    pub attempt: u64,
    pub queue_wait_ms: u64,
    pub target: String,
    pub template: String,
    pub args_raw: String,
    pub intrusive: bool,
    /// A hash that leaves it out holds the stored default (`STORED_DEFAULT_TIMEOUT_SEC`),
    /// which the claim hands on; `None` when the claim gave none (the tool's default applies).
    pub timeout_sec: Option<u64>,
    /// The job needs raw sockets (only a raw-capable worker claims it).
    pub needs_raw: bool,
    /// A chunk of a big scan: its parent's correlation ID ('' otherwise).
    pub parent: String,
    /// The engagement it runs under ('' when none): the worker judges its window again.
    pub engagement: String,
}

#[derive(Debug, Clone, Default)]
pub struct Claimed {
    pub jobs: Vec<ClaimedJob>,
    /// > 0 when the tool's breaker refused: do not ask again before this many ms.
    pub retry_after_ms: u64,
    /// Breaker transitions made by the claim (JSON of `breaker::Transition`).
    pub transitions: Vec<String>,
    /// Jobs the claim parked because their target group was at its cap (politeness).
    pub parked: u64,
    /// The streams the claim read are known to be empty after it: claiming again at once would
    /// find nothing (the worker waits on them instead).
    pub drained: bool,
    /// The breaker after an ungated claim (the tool's home partition).
    pub home: Option<HomeBreaker>,
    /// How many of `jobs` (the last ones) an enqueue started on this worker's offer.
    pub handed: usize,
}

/// The tool's breaker as the home partition's claim left it; what a partitioned tool's other
/// partitions follow (docs/scaling.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeBreaker {
    pub state: String,
    pub generation: u64,
    /// Closed with no failure streak: a success would change nothing.
    pub clean: bool,
}

/// What `complete.lua` made of one attempt's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompleteStatus {
    /// The job's new state (a retry is `scheduled`, a hand-back `queued`).
    Moved(JobState),
    /// The fence no longer matched: another worker owns the job; nothing was written.
    Stale,
}

impl CompleteStatus {
    fn parse(s: &str) -> RedisResult<Self> {
        if s == "stale" {
            return Ok(Self::Stale);
        }
        s.parse::<JobState>()
            .map(Self::Moved)
            .map_err(|e| bad(&format!("complete status: {e}")))
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Moved(s) if s.is_terminal())
    }
}

/// What `complete.lua` did with a batch.
#[derive(Debug, Clone, Default)]
pub struct Completed {
    /// Per job, in the order sent.
    pub states: Vec<CompleteStatus>,
    /// Per job: what the breaker recorded (`None` when stale).
    pub breaker: Vec<Option<Verdict>>,
    /// Breaker transitions made (JSON).
    pub transitions: Vec<String>,
    /// Without breaker settings (a partition other than the home): per job, the generation
    /// and probe to report to the home breaker (`None` when stale).
    pub owed: Vec<Option<(u64, String)>>,
}

pub fn completed(v: Value, n: usize) -> RedisResult<Completed> {
    let mut parts = array(v)?.into_iter();
    let states = strings(parts.next().unwrap_or(Value::Nil))?
        .iter()
        .map(|s| CompleteStatus::parse(s))
        .collect::<RedisResult<Vec<_>>>()?;
    let breaker = strings(parts.next().unwrap_or(Value::Nil))?
        .iter()
        .map(|s| match s.as_str() {
            "" => Ok(None),
            v => v
                .parse::<Verdict>()
                .map(Some)
                .map_err(|e| bad(&format!("breaker verdict: {e}"))),
        })
        .collect::<RedisResult<Vec<_>>>()?;
    if states.len() != n || breaker.len() != n {
        return Err(bad("complete: one status per job"));
    }
    let transitions = strings(parts.next().unwrap_or(Value::Nil))?;
    let mut owed = Vec::new();
    if let Some(list) = parts.next() {
        for item in array(list)? {
            let s = strings(item)?;
            owed.push(match s.as_slice() {
                [generation, probe] => Some((
                    generation.parse().map_err(|_| bad("owed generation"))?,
                    probe.clone(),
                )),
                _ => None,
            });
        }
    }
    Ok(Completed {
        states,
        breaker,
        transitions,
        owed,
    })
}

pub fn claimed(v: Value) -> RedisResult<Claimed> {
    let mut parts = array(v)?.into_iter();
    let jobs = array(parts.next().ok_or_else(|| bad("claim"))?)?;
    let retry_after_ms = parts
        .next()
        .and_then(|v| text(&v))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let transitions = strings(parts.next().unwrap_or(Value::Nil))?;
    let parked = parts
        .next()
        .and_then(|v| text(&v))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("claim: parked count"))?;
    let drained = parts
        .next()
        .and_then(|v| text(&v))
        .ok_or_else(|| bad("claim: drained"))?
        == "1";
    let mut out = Vec::with_capacity(jobs.len());
    for j in jobs {
        out.push(claimed_job(strings(j)?)?);
    }
    let home = match (parts.next(), parts.next(), parts.next()) {
        (Some(state), Some(generation), Some(clean)) => Some(HomeBreaker {
            state: text(&state).ok_or_else(|| bad("claim: breaker state"))?,
            generation: text(&generation)
                .and_then(|g| g.parse().ok())
                .ok_or_else(|| bad("claim: breaker generation"))?,
            clean: text(&clean).as_deref() == Some("1"),
        }),
        _ => None,
    };
    let handed = parts
        .next()
        .and_then(|v| text(&v))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok(Claimed {
        jobs: out,
        retry_after_ms,
        transitions,
        parked,
        drained,
        home,
        handed,
    })
}

/// One job as claim.lua (or an inbox entry) gives it: 12 fields, or the first 5 when the job
/// has none of the other seven (`start_job` in common.lua: each element of a claim's reply
/// costs Redis ~1,000 instructions, BENCHMARKS.md "Engine v8").
fn claimed_job(mut s: Vec<String>) -> RedisResult<ClaimedJob> {
    if s.len() == 5 {
        let timeout = crate::domain::STORED_DEFAULT_TIMEOUT_SEC.to_string();
        for v in ["", "", "0", &timeout, "0", "", ""] {
            s.push(v.to_owned());
        }
    }
    let [
        job_ref,
        fence,
        attempt,
        wait,
        target,
        template,
        args_raw,
        intrusive,
        timeout,
        needs_raw,
        parent,
        engagement,
    ] = <[String; 12]>::try_from(s).map_err(|_| bad("claim job: 5 or 12 fields"))?;
    let num = |v: &str, what: &str| v.parse::<u64>().map_err(|_| bad(what));
    Ok(ClaimedJob {
        fence: num(&fence, "fence")?,
        attempt: num(&attempt, "attempt")?,
        queue_wait_ms: num(&wait, "queue wait")?,
        timeout_sec: timeout.parse().ok(),
        intrusive: intrusive == "1",
        needs_raw: needs_raw == "1",
        parent,
        engagement,
        job_ref,
        target,
        template,
        args_raw,
    })
}

/// A job of a worker's inbox (enqueue.lua's direct start): its entry's `job` field, the
/// fields of a claimed job as a JSON array.
pub fn inbox_job(json: &str) -> RedisResult<ClaimedJob> {
    let fields: Vec<serde_json::Value> =
        serde_json::from_str(json).map_err(|_| bad("inbox job: JSON array"))?;
    claimed_job(
        fields
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            })
            .collect(),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewStatus {
    Ok,
    /// A cancel was requested: kill the tool and report `cancelled`.
    Cancel,
    /// The attempt is no longer this worker's: kill the tool and drop its result.
    Lost,
    /// The fleet stopped it at its engagement's window end (`stop_reason` = `window_closed`):
    /// kill the tool and report `cancelled` with `window_closed`.
    WindowClosed,
}

impl RenewStatus {
    /// An unknown reply is an error, never silently `Lost`.
    pub fn parse(s: &str) -> RedisResult<Self> {
        match s {
            "ok" => Ok(Self::Ok),
            "cancel" => Ok(Self::Cancel),
            "lost" => Ok(Self::Lost),
            s if s == crate::domain::StopReason::WindowClosed.as_str() => Ok(Self::WindowClosed),
            other => Err(bad(&format!("renew status `{other}`"))),
        }
    }
}

pub fn renewed(v: &[String], n: usize) -> RedisResult<Vec<RenewStatus>> {
    if v.len() != n {
        return Err(bad("renew: one status per job"));
    }
    v.iter().map(|s| RenewStatus::parse(s)).collect()
}

#[derive(Debug, Clone, Default)]
pub struct ReapReport {
    pub promoted: u64,
    /// (ref, new state) of every job taken over from a lapsed lease.
    pub taken_over: Vec<(String, String)>,
    /// (ref, parent cid) of the chunks of big scans among them.
    pub chunks: Vec<(String, String)>,
}

pub fn reaped(v: Value) -> RedisResult<ReapReport> {
    let mut parts = array(v)?.into_iter();
    let promoted = parts
        .next()
        .and_then(|p| text(&p))
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let mut taken_over = vec![];
    let mut chunks = vec![];
    for pair in array(parts.next().unwrap_or(Value::Nil))? {
        let s = strings(pair)?;
        if let [r, st, parent] = s.as_slice() {
            taken_over.push((r.clone(), st.clone()));
            if !parent.is_empty() {
                chunks.push((r.clone(), parent.clone()));
            }
        }
    }
    Ok(ReapReport {
        promoted,
        taken_over,
        chunks,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    Cancelled,
    Requested,
    Final { state: String },
    Missing,
}

pub fn cancelled(v: Value) -> RedisResult<CancelOutcome> {
    let s = strings(v)?;
    Ok(match s.first().map(String::as_str) {
        Some("cancelled") => CancelOutcome::Cancelled,
        Some("requested") => CancelOutcome::Requested,
        Some("final") => CancelOutcome::Final {
            state: s.get(1).cloned().unwrap_or_default(),
        },
        Some("missing") => CancelOutcome::Missing,
        _ => return Err(bad("cancel")),
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryOutcome {
    Queued,
    /// A job that needs approval and was not approved went back to `awaiting_approval`.
    Awaiting,
    NotRetryable {
        state: String,
    },
    Missing,
    /// The tool's queue is at `SCANQ_MAX_QUEUE_LEN`.
    Full {
        depth: u64,
    },
}

pub fn retried(v: Value) -> RedisResult<RetryOutcome> {
    let s = strings(v)?;
    Ok(match s.first().map(String::as_str) {
        Some("queued") => RetryOutcome::Queued,
        Some("awaiting") => RetryOutcome::Awaiting,
        Some("not_retryable") => RetryOutcome::NotRetryable {
            state: s.get(1).cloned().unwrap_or_default(),
        },
        Some("missing") => RetryOutcome::Missing,
        Some("full") => RetryOutcome::Full {
            depth: s.get(1).and_then(|d| d.parse().ok()).unwrap_or(0),
        },
        _ => return Err(bad("retry")),
    })
}

/// What `decide.lua` did with a person's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecideOutcome {
    /// Approved: admitted, now `queued` or `scheduled` (its time has not come).
    Queued {
        state: crate::domain::JobState,
    },
    /// Rejected: `cancelled`.
    Rejected,
    /// The job is not awaiting approval.
    NotAwaiting {
        state: String,
    },
    Missing,
    /// The tool's queue is at `SCANQ_MAX_QUEUE_LEN` (the job still awaits approval).
    Full {
        depth: u64,
    },
}

pub fn decided(v: Value) -> RedisResult<DecideOutcome> {
    let s = strings(v)?;
    let second = s.get(1).cloned().unwrap_or_default();
    Ok(match s.first().map(String::as_str) {
        Some("queued") => DecideOutcome::Queued {
            state: second.parse().map_err(|_| bad("decide"))?,
        },
        Some("rejected") => DecideOutcome::Rejected,
        Some("not_awaiting") => DecideOutcome::NotAwaiting { state: second },
        Some("missing") => DecideOutcome::Missing,
        Some("full") => DecideOutcome::Full {
            depth: second.parse().unwrap_or(0),
        },
        _ => return Err(bad("decide")),
    })
}

#[cfg(test)]
mod tests;
