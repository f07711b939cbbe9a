//! The circuit breaker: one per tool, shared by the whole fleet, its state in Redis and changed
//! only by Lua scripts that use Redis's clock (DESIGN §6).
//!
//! This module owns the breaker's Lua library (`lua/lib.lua`, prepended to every script that
//! touches a breaker, including the job claim and completion scripts), the four admin/test
//! scripts built from it, their typed Rust wrapper [`Breaker`], the per-tool
//! [`BreakerSettings`], and the worker-side [`OpenCache`]. Key names come from the key schema
//! through [`BreakerKeys`]; this module builds none. The state machine is drawn in
//! `docs/breaker.md`.

mod cache;
mod settings;
mod state;

pub use cache::{MAX_REMEMBERED, OpenCache};
pub use settings::{BreakerSettings, TripMode};
pub use state::{
    Admission, BreakerState, FailureNote, ForceAction, Outcome, Snapshot, Transition, UnknownName,
};

use std::collections::HashMap;

use redis::aio::ConnectionLike;
use redis::{ErrorKind, RedisError, Script};

/// The breaker's Lua functions (`breaker_now`, `breaker_admit`, `breaker_record`,
/// `breaker_force`, `breaker_snapshot`, `breaker_transition_json`), to be prepended to a body.
pub const LIB_LUA: &str = include_str!("lua/lib.lua");
/// `lib.lua .. admit.lua`: see the header of `lua/admit.lua`.
pub const ADMIT_LUA: &str = concat!(include_str!("lua/lib.lua"), include_str!("lua/admit.lua"));
/// `lib.lua .. record.lua`: see the header of `lua/record.lua`.
pub const RECORD_LUA: &str = concat!(include_str!("lua/lib.lua"), include_str!("lua/record.lua"));
/// `lib.lua .. force.lua`: see the header of `lua/force.lua`.
pub const FORCE_LUA: &str = concat!(include_str!("lua/lib.lua"), include_str!("lua/force.lua"));
/// `lib.lua .. get.lua`: see the header of `lua/get.lua`.
pub const GET_LUA: &str = concat!(include_str!("lua/lib.lua"), include_str!("lua/get.lua"));

/// The four keys of one tool's breaker, built by the key schema. All four must share one hash
/// tag (e.g. `<prefix>:{<tool>}:breaker`, `…:breaker:hist`, `…:breaker:probes`, `…:breaker:window`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakerKeys {
    /// Hash: state, generation, counts, open period, last errors.
    pub state: String,
    /// List: transitions as JSON, newest first, at most 100.
    pub hist: String,
    /// Sorted set: probe id → lease expiry (ms).
    pub probes: String,
    /// Sorted set: the rate window's calls, or the failing workers of the current streak.
    pub window: String,
}

impl BreakerKeys {
    fn all(&self) -> [&str; 4] {
        [&self.state, &self.hist, &self.probes, &self.window]
    }
}

/// The loaded scripts. Build once and share; every method is one atomic script call.
#[derive(Debug)]
pub struct Breaker {
    admit: Script,
    record: Script,
    force: Script,
    get: Script,
}

impl Default for Breaker {
    fn default() -> Self {
        Self::new()
    }
}

fn now_arg(now_ms: Option<u64>) -> String {
    now_ms.map(|n| n.to_string()).unwrap_or_default()
}

fn bad_reply(detail: String) -> RedisError {
    RedisError::from((
        ErrorKind::UnexpectedReturnType,
        "unexpected breaker script reply",
        detail,
    ))
}

fn parse_transition(json: &str) -> Result<Option<Transition>, RedisError> {
    if json.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(json)
        .map(Some)
        .map_err(|e| bad_reply(format!("transition {json:?}: {e}")))
}

impl Breaker {
    pub fn new() -> Self {
        Self {
            admit: Script::new(ADMIT_LUA),
            record: Script::new(RECORD_LUA),
            force: Script::new(FORCE_LUA),
            get: Script::new(GET_LUA),
        }
    }

    /// May a job start now? `probe_id` must be unique per job attempt: it holds the probe
    /// slot when the answer is [`Admission::Probe`]. `now_ms: None` uses Redis TIME.
    pub async fn admit(
        &self,
        con: &mut impl ConnectionLike,
        keys: &BreakerKeys,
        settings: &BreakerSettings,
        now_ms: Option<u64>,
        worker_id: &str,
        probe_id: &str,
    ) -> Result<Admission, RedisError> {
        let (admission, _) = self
            .admit_traced(con, keys, settings, now_ms, worker_id, probe_id)
            .await?;
        Ok(admission)
    }

    /// [`Breaker::admit`], plus the open → half-open transition the call made, if any (for
    /// the transition metric and log line).
    pub async fn admit_traced(
        &self,
        con: &mut impl ConnectionLike,
        keys: &BreakerKeys,
        settings: &BreakerSettings,
        now_ms: Option<u64>,
        worker_id: &str,
        probe_id: &str,
    ) -> Result<(Admission, Option<Transition>), RedisError> {
        let (decision, generation, retry_after_ms, transition): (String, u64, i64, String) = self
            .admit
            .key(&keys.all()[..])
            .arg(settings.to_json())
            .arg(now_arg(now_ms))
            .arg(worker_id)
            .arg(probe_id)
            .invoke_async(con)
            .await?;
        let admission = match decision.as_str() {
            "allow" => Admission::Allow { generation },
            "probe" => Admission::Probe { generation },
            "reject" => Admission::Reject {
                retry_after_ms: retry_after_ms.max(1) as u64,
            },
            other => return Err(bad_reply(format!("admit decision {other:?}"))),
        };
        Ok((admission, parse_transition(&transition)?))
    }

    /// Records the outcome of a job admitted at `generation`, releasing `probe_id`'s slot
    /// (pass "" for none). Returns the outcome as counted ([`Outcome::Ignored`] for a stale
    /// generation) and the transition it caused.
    #[allow(clippy::too_many_arguments)]
    pub async fn record(
        &self,
        con: &mut impl ConnectionLike,
        keys: &BreakerKeys,
        settings: &BreakerSettings,
        now_ms: Option<u64>,
        generation: u64,
        outcome: Outcome,
        worker_id: &str,
        probe_id: &str,
        reason: &str,
    ) -> Result<(Outcome, Option<Transition>), RedisError> {
        let (label, transition): (String, String) = self
            .record
            .key(&keys.all()[..])
            .arg(settings.to_json())
            .arg(now_arg(now_ms))
            .arg(generation)
            .arg(outcome.as_str())
            .arg(worker_id)
            .arg(probe_id)
            .arg(reason)
            .invoke_async(con)
            .await?;
        let recorded = label
            .parse::<Outcome>()
            .map_err(|e| bad_reply(e.to_string()))?;
        Ok((recorded, parse_transition(&transition)?))
    }

    /// Admin action. Returns the transition, or `None` when the breaker was already there.
    pub async fn force(
        &self,
        con: &mut impl ConnectionLike,
        keys: &BreakerKeys,
        settings: &BreakerSettings,
        now_ms: Option<u64>,
        action: ForceAction,
    ) -> Result<Option<Transition>, RedisError> {
        let transition: String = self
            .force
            .key(&keys.all()[..])
            .arg(settings.to_json())
            .arg(now_arg(now_ms))
            .arg(action.as_str())
            .invoke_async(con)
            .await?;
        parse_transition(&transition)
    }

    /// Everything about one breaker, for dashboards and `GET /v1/breakers`. Moves an open
    /// breaker whose period has passed to half-open first (recorded in its history).
    pub async fn snapshot(
        &self,
        con: &mut impl ConnectionLike,
        keys: &BreakerKeys,
        now_ms: Option<u64>,
    ) -> Result<Snapshot, RedisError> {
        let flat: Vec<String> = self
            .get
            .key(&keys.all()[..])
            .arg(now_arg(now_ms))
            .invoke_async(con)
            .await?;
        snapshot_from_pairs(flat)
    }
}

fn snapshot_from_pairs(flat: Vec<String>) -> Result<Snapshot, RedisError> {
    let mut it = flat.into_iter();
    let mut map = HashMap::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        map.insert(k, v);
    }
    let text = |k: &str| {
        map.get(k)
            .map(String::as_str)
            .ok_or_else(|| bad_reply(format!("snapshot lacks {k}")))
    };
    let num = |k: &str| -> Result<u64, RedisError> {
        let v = text(k)?;
        // Negative values cannot occur; read them as 0 rather than fail a dashboard.
        v.parse::<i64>()
            .map(|n| n.max(0) as u64)
            .map_err(|e| bad_reply(format!("snapshot {k}={v:?}: {e}")))
    };
    let opt = |k: &str| num(k).map(|n| (n > 0).then_some(n));
    let json = |k: &str| -> Result<serde_json::Value, RedisError> {
        let v = text(k)?;
        serde_json::from_str(v).map_err(|e| bad_reply(format!("snapshot {k}: {e}")))
    };
    let state = text("state")?
        .parse::<BreakerState>()
        .map_err(|e| bad_reply(e.to_string()))?;
    // cjson encodes an empty table as `{}`: treat any non-array as empty.
    let list = |k: &str| -> Result<Vec<serde_json::Value>, RedisError> {
        Ok(match json(k)? {
            serde_json::Value::Array(items) => items,
            _ => Vec::new(),
        })
    };
    let last_errors = list("last_errors")?
        .into_iter()
        .map(serde_json::from_value)
        .collect::<Result<Vec<FailureNote>, _>>()
        .map_err(|e| bad_reply(format!("snapshot last_errors: {e}")))?;
    let history = list("history")?
        .into_iter()
        .map(serde_json::from_value)
        .collect::<Result<Vec<Transition>, _>>()
        .map_err(|e| bad_reply(format!("snapshot history: {e}")))?;
    Ok(Snapshot {
        state,
        generation: num("generation")?,
        consecutive_failures: num("consecutive_failures")?,
        window_calls: num("window_calls")?,
        window_failures: num("window_failures")?,
        probe_successes: num("probe_successes")?,
        probes_in_flight: num("probes_in_flight")?,
        re_trips: num("re_trips")?,
        retry_after_ms: num("retry_after_ms")?,
        opened_at_ms: opt("opened_at_ms")?,
        open_until_ms: opt("open_until_ms")?,
        open_period_ms: opt("open_period_ms")?,
        now_ms: num("now_ms")?,
        last_errors,
        history,
    })
}
