//! Wrappers of the two fleet-wide limit scripts: the per-token request bucket
//! (`lua/ratelimit.lua`) and the per-tenant queued cap (`lua/tenant_admit.lua`).

use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{ErrorKind, RedisError, RedisResult, Script};

/// A token bucket: `burst` requests at once, refilled at `per_sec`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_sec: f64,
    pub burst: u32,
}

/// What the bucket said about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    Allowed { remaining: u64 },
    Limited { retry_after: Duration },
}

/// What the tenant's cap said about a new job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmitOutcome {
    /// `added`: false when the job was already counted (a resubmit of a waiting job).
    Admitted {
        queued: u64,
        added: bool,
    },
    Full {
        queued: u64,
    },
}

/// Caps of one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantCaps {
    pub max_queued: u64,
    /// Stored for the workers' claim step; 0 = no cap.
    pub max_running: u64,
}

#[derive(Debug)]
pub struct LimitScripts {
    rate: Script,
    admit: Script,
}

impl Default for LimitScripts {
    fn default() -> Self {
        Self::new()
    }
}

fn bad(what: &str) -> RedisError {
    RedisError::from((
        ErrorKind::UnexpectedReturnType,
        "unexpected script reply",
        what.to_owned(),
    ))
}

impl LimitScripts {
    pub fn new() -> Self {
        Self {
            rate: super::build(include_str!("lua/ratelimit.lua")),
            admit: super::build(include_str!("lua/tenant_admit.lua")),
        }
    }

    pub(super) fn all(&self) -> [&Script; 2] {
        [&self.rate, &self.admit]
    }

    /// Takes one request from the bucket at `key`; `now_ms` overrides Redis's clock (tests).
    pub async fn take(
        &self,
        con: &mut impl ConnectionLike,
        key: &str,
        rate: Rate,
        now_ms: Option<u64>,
    ) -> RedisResult<RateDecision> {
        let (allowed, left, retry_ms): (i64, i64, i64) = self
            .rate
            .prepare_invoke()
            .key(key)
            .arg(rate.per_sec)
            .arg(rate.burst)
            .arg(1)
            .arg(now_ms.map(|n| n.to_string()).unwrap_or_default())
            .invoke_async(con)
            .await?;
        Ok(if allowed == 1 {
            RateDecision::Allowed {
                remaining: left.max(0) as u64,
            }
        } else {
            RateDecision::Limited {
                retry_after: Duration::from_millis(retry_ms.max(1) as u64),
            }
        })
    }

    /// Reserves a queued place for `job_key` under the tenant's cap. When the tenant looks full
    /// the entries are checked against their jobs (read here, outside the script: they live in
    /// other slots) and those that moved on are dropped in a second call.
    #[allow(clippy::too_many_arguments)]
    pub async fn admit(
        &self,
        con: &mut impl ConnectionLike,
        queued_key: &str,
        running_key: &str,
        caps_key: &str,
        job_key: &str,
        life_ms: u64,
        caps: TenantCaps,
    ) -> RedisResult<AdmitOutcome> {
        let mut moved: Vec<(String, String)> = Vec::new();
        for _ in 0..2 {
            let mut inv = self.admit.prepare_invoke();
            inv.key(queued_key)
                .key(running_key)
                .key(caps_key)
                .arg(job_key)
                .arg(life_ms)
                .arg(caps.max_queued)
                .arg(caps.max_running);
            for (k, state) in &moved {
                inv.arg(k).arg(state);
            }
            let reply: Vec<redis::Value> = inv.invoke_async(con).await?;
            let word: String = reply
                .first()
                .map(redis::from_redis_value_ref)
                .transpose()?
                .ok_or_else(|| bad("tenant_admit"))?;
            let num = |i: usize| -> RedisResult<u64> {
                Ok(reply
                    .get(i)
                    .map(redis::from_redis_value_ref)
                    .transpose()?
                    .unwrap_or(0))
            };
            match word.as_str() {
                "admitted" => {
                    return Ok(AdmitOutcome::Admitted {
                        queued: num(1)?,
                        added: num(2)? == 1,
                    });
                }
                "full" => return Ok(AdmitOutcome::Full { queued: num(1)? }),
                "check" => {
                    let keys: Vec<String> = reply[3..]
                        .iter()
                        .map(redis::from_redis_value_ref)
                        .collect::<Result<_, _>>()?;
                    let mut pipe = redis::pipe();
                    for k in &keys {
                        pipe.hget(k, "state");
                    }
                    let states: Vec<Option<String>> = pipe.query_async(con).await?;
                    moved = keys
                        .into_iter()
                        .zip(states)
                        .filter(|(_, s)| !matches!(s.as_deref(), Some("queued" | "scheduled")))
                        .map(|(k, s)| (k, s.unwrap_or_default()))
                        .collect();
                    if moved.is_empty() {
                        return Ok(AdmitOutcome::Full { queued: num(1)? });
                    }
                }
                _ => return Err(bad("tenant_admit")),
            }
        }
        Err(bad("tenant_admit"))
    }
}
