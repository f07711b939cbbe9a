//! Decoding of script replies into typed outcomes.

use std::collections::HashMap;

use redis::{ErrorKind, RedisError, RedisResult, Value};

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

/// A job handed to a worker by `claim.lua`.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub job_ref: String,
    pub fence: u64,
    pub fields: HashMap<String, String>,
}

#[derive(Debug, Clone, Default)]
pub struct Claimed {
    pub jobs: Vec<ClaimedJob>,
    /// Last id generated on each priority stream (high, normal, low) when fewer jobs than asked
    /// for were found; the worker blocks on them.
    pub last_ids: Vec<String>,
    /// > 0 when the tool's breaker refused: do not ask again before this many ms.
    pub retry_after_ms: u64,
    /// Breaker transitions made by the claim (JSON of `breaker::Transition`).
    pub transitions: Vec<String>,
}

/// What `complete.lua` did with a batch.
#[derive(Debug, Clone, Default)]
pub struct Completed {
    /// Per job: the new state, or `stale` when fenced out.
    pub states: Vec<String>,
    /// Per job: what the breaker recorded (`success` | `failure` | `ignored`, '' when stale).
    pub breaker: Vec<String>,
    /// Breaker transitions made (JSON).
    pub transitions: Vec<String>,
}

pub fn completed(v: Value) -> RedisResult<Completed> {
    let mut parts = array(v)?.into_iter();
    Ok(Completed {
        states: strings(parts.next().unwrap_or(Value::Nil))?,
        breaker: strings(parts.next().unwrap_or(Value::Nil))?,
        transitions: strings(parts.next().unwrap_or(Value::Nil))?,
    })
}

pub fn claimed(v: Value) -> RedisResult<Claimed> {
    let mut parts = array(v)?.into_iter();
    let jobs = array(parts.next().ok_or_else(|| bad("claim"))?)?;
    let last_ids = strings(parts.next().unwrap_or(Value::Nil))?;
    let retry_after_ms = parts
        .next()
        .and_then(|v| text(&v))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let transitions = strings(parts.next().unwrap_or(Value::Nil))?;
    let mut out = Vec::with_capacity(jobs.len());
    for j in jobs {
        let s = strings(j)?;
        if s.len() < 2 {
            return Err(bad("claim job"));
        }
        let mut it = s.into_iter();
        let job_ref = it.next().unwrap_or_default();
        let fence = it
            .next()
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| bad("fence"))?;
        let mut fields = HashMap::new();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            fields.insert(k, v);
        }
        out.push(ClaimedJob {
            job_ref,
            fence,
            fields,
        });
    }
    Ok(Claimed {
        jobs: out,
        last_ids,
        retry_after_ms,
        transitions,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewStatus {
    Ok,
    /// A cancel was requested: kill the tool and report `cancelled`.
    Cancel,
    /// The attempt is no longer this worker's: kill the tool and drop its result.
    Lost,
}

impl RenewStatus {
    pub fn from_reply(s: &str) -> Self {
        match s {
            "ok" => Self::Ok,
            "cancel" => Self::Cancel,
            _ => Self::Lost,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ReapReport {
    pub promoted: u64,
    /// (ref, new state) of every job taken over from a lapsed lease.
    pub taken_over: Vec<(String, String)>,
}

pub fn reaped(v: Value) -> RedisResult<ReapReport> {
    let mut parts = array(v)?.into_iter();
    let promoted = parts
        .next()
        .and_then(|p| text(&p))
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let mut taken_over = vec![];
    for pair in array(parts.next().unwrap_or(Value::Nil))? {
        let s = strings(pair)?;
        if let [r, st] = s.as_slice() {
            taken_over.push((r.clone(), st.clone()));
        }
    }
    Ok(ReapReport {
        promoted,
        taken_over,
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
    NotRetryable { state: String },
    Missing,
}

pub fn retried(v: Value) -> RedisResult<RetryOutcome> {
    let s = strings(v)?;
    Ok(match s.first().map(String::as_str) {
        Some("queued") => RetryOutcome::Queued,
        Some("not_retryable") => RetryOutcome::NotRetryable {
            state: s.get(1).cloned().unwrap_or_default(),
        },
        Some("missing") => RetryOutcome::Missing,
        _ => return Err(bad("retry")),
    })
}
