//! Fleet-wide limits, kept in Redis so that every API instance shares them: the per-token
//! request bucket and the per-tenant cap on queued jobs (DESIGN §2: 429 with `Retry-After`).
//!
//! The tenant's queued set (`keys::tenant_queued`) holds the job keys of its waiting jobs. The
//! API adds a job when it admits it and removes it when a submit creates nothing or a waiting job
//! is cancelled; `tenant_admit.lua` drops entries whose job has moved on whenever the tenant
//! looks full, so the count heals even where a script does not keep it. Workers keep the running
//! set (`keys::tenant_running`) in their claim and completion scripts.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::AsyncCommands;

use super::{Queue, QueueError, Submitted};
use crate::domain::{CorrelationId, JobId, TenantId};
use crate::request::{CallerScope, JobSpec};
use crate::scripts::{AdmitOutcome, LimitScripts, Rate, RateDecision, TenantCaps};

static SCRIPTS: LazyLock<LimitScripts> = LazyLock::new(LimitScripts::new);

/// How often each API publishes its tenants' caps ([`Queue::publish_caps`]).
pub const CAPS_PUBLISH_EVERY: Duration = Duration::from_secs(30);

/// A tenant's standing in the fleet, as the APIs last published it ([`Queue::publish_fleet`]):
/// what a process without a tokens file (a worker firing a schedule, delivering a webhook) goes
/// by before it acts for a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The fleet runs without a tokens file (open mode): no caps.
    Open,
    /// The tenant is in the tokens file, with these caps.
    Active(TenantCaps),
    /// The fleet has a tokens file and the tenant is not in it (removed, or never there).
    Revoked,
    /// Nothing readable was published (no API has started yet, or the entries expired): act
    /// as if refused (fail closed), but do not treat the tenant as gone.
    Unknown,
}

/// What the fleet's published tenant list says of one tenant (see [`Standing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Membership {
    Open,
    Member,
    Gone,
    Unknown,
}

/// The auth mode an API publishes: `open` or `tokens`.
const MODE_OPEN: &str = "open";
const MODE_TOKENS: &str = "tokens";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Queue {
    /// Takes one request from the bucket of the token named `token`.
    pub async fn take_request(&self, token: &str, rate: Rate) -> Result<RateDecision, QueueError> {
        let mut con = self.connection().await?;
        Ok(SCRIPTS
            .take(&mut con, &self.keys.rate_limit(token), rate, None)
            .await?)
    }

    /// [`Queue::submit`] under the tenant's caps, if it has any (open mode has none): a tenant
    /// with `max_queued` jobs waiting gets [`QueueError::TenantFull`]. Every submit goes through
    /// here, from a request or from a schedule.
    pub(super) async fn submit_within(
        &self,
        tenant: &TenantId,
        spec: &JobSpec,
        caps: Option<TenantCaps>,
    ) -> Result<Submitted, QueueError> {
        let Some(caps) = caps else {
            return self.submit(tenant, spec).await;
        };
        if spec.needs_approval {
            // Awaiting a person, it holds no place under `max_queued` until it is approved
            // (`Queue::decide` reserves one then).
            return self.submit_capped(tenant, spec, caps.max_running).await;
        }
        let mut spec = spec.clone();
        let cid = spec
            .correlation_id
            .get_or_insert_with(CorrelationId::generate)
            .clone();
        let id = JobId::new(
            spec.tool.clone(),
            spec.zone.clone(),
            tenant.clone(),
            cid.clone(),
        );
        let added = self.reserve_place(tenant, &id, caps).await?;
        let out = self.submit_capped(tenant, &spec, caps.max_running).await;
        let created = matches!(out, Ok(Submitted { created: true, .. }));
        if added && !created {
            // Nothing new waits: give the place back.
            if let Err(err) = self.forget_queued(&id).await {
                tracing::warn!(correlation_id = %cid, error = %err, "Could not release a tenant queue place");
            }
        }
        out
    }

    /// Reserves a place for `id` under its tenant's `max_queued`, fleet-wide: true when the
    /// place is new (the caller gives it back if the job is then not queued), false when the job
    /// already held one; [`QueueError::TenantFull`] at the cap.
    pub(super) async fn reserve_place(
        &self,
        tenant: &TenantId,
        id: &JobId,
        caps: TenantCaps,
    ) -> Result<bool, QueueError> {
        let mut con = self.connection().await?;
        let admitted = SCRIPTS
            .admit(
                &mut con,
                &self.keys.tenant_queued(tenant),
                &self.keys.tenant_running(tenant),
                &self.keys.tenant_limits(tenant),
                &self.keys.job(id),
                self.job_ttl_ms,
                caps,
            )
            .await?;
        match admitted {
            AdmitOutcome::Full { queued } => Err(QueueError::TenantFull {
                queued,
                cap: caps.max_queued,
            }),
            AdmitOutcome::Admitted { added, .. } => Ok(added),
        }
    }

    /// Removes a job from its tenant's queued set (it was cancelled or never made).
    pub async fn forget_queued(&self, id: &JobId) -> Result<(), QueueError> {
        let mut con = self.connection().await?;
        let job_key = self.keys.job(id);
        let _: i64 = con
            .zrem(self.keys.tenant_queued(&id.tenant), job_key)
            .await?;
        Ok(())
    }

    /// Counts a job in its tenant's queued set again (a retry queued it).
    pub async fn note_queued(&self, id: &JobId) -> Result<(), QueueError> {
        let mut con = self.connection().await?;
        let job_key = self.keys.job(id);
        let stale_after = now_ms() + self.job_ttl_ms;
        let _: i64 = con
            .zadd(self.keys.tenant_queued(&id.tenant), job_key, stale_after)
            .await?;
        Ok(())
    }

    /// Publishes tenants' caps (`max_queued`, `max_running`) for the processes that enqueue
    /// without a request: scheduled runs, which any worker may fire and a worker has no tokens
    /// file. The APIs publish every tenant of their tokens file at start, on reload and every
    /// [`CAPS_PUBLISH_EVERY`]; each admit writes its tenant's caps too. They last as long as a
    /// job, so a fleet whose APIs are all down keeps the last caps it was given.
    pub async fn publish_caps(&self, caps: &[(TenantId, TenantCaps)]) -> Result<(), QueueError> {
        if caps.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (tenant, c) in caps {
            let key = self.keys.tenant_limits(tenant);
            // HSET with several fields (HMSET is not among the ACL's commands).
            pipe.cmd("HSET")
                .arg(&key)
                .arg("max_queued")
                .arg(c.max_queued)
                .arg("max_running")
                .arg(c.max_running)
                .ignore()
                .pexpire(&key, self.job_ttl_ms as i64)
                .ignore();
        }
        let mut con = self.connection().await?;
        let () = pipe.query_async(&mut con).await?;
        Ok(())
    }

    /// Publishes the fleet's auth mode (`open`: no tokens file), the set of current tenants and
    /// their caps, so that [`Queue::tenant_standing`] can tell a revoked tenant from an active
    /// one. The APIs call it at start, on reload and every [`CAPS_PUBLISH_EVERY`]; the entries
    /// last as long as a job.
    pub async fn publish_fleet(
        &self,
        open: bool,
        caps: &[(TenantId, TenantCaps)],
    ) -> Result<(), QueueError> {
        self.publish_caps(caps).await?;
        let ttl = self.job_ttl_ms as i64;
        let (mode_key, set_key) = (self.keys.fleet_auth(), self.keys.fleet_tenants());
        let mut pipe = redis::pipe();
        pipe.atomic().del(&set_key).ignore();
        if !caps.is_empty() {
            // A hash (tenant → 1) rather than a set: HGET is among the ACL's commands.
            let mut hset = redis::cmd("HSET");
            hset.arg(&set_key);
            for (t, _) in caps {
                hset.arg(t.as_str()).arg(1);
            }
            pipe.add_command(hset)
                .ignore()
                .pexpire(&set_key, ttl)
                .ignore();
        }
        pipe.cmd("SET")
            .arg(&mode_key)
            .arg(if open { MODE_OPEN } else { MODE_TOKENS })
            .arg("PX")
            .arg(ttl)
            .ignore();
        let mut con = self.connection().await?;
        let () = pipe.query_async(&mut con).await?;
        Ok(())
    }

    /// Publishes each tenant's scope from the tokens file (`allowed_targets` as comma-separated
    /// entries, absent = not narrowed; `require_engagement`) next to its caps, for the
    /// scheduled runs any process may enqueue ([`Queue::tenant_scope`]).
    pub async fn publish_scopes(
        &self,
        scopes: &[(TenantId, Option<String>, bool)],
    ) -> Result<(), QueueError> {
        if scopes.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (tenant, allowed, require) in scopes {
            let key = self.keys.tenant_limits(tenant);
            match allowed {
                Some(text) => pipe.hset(&key, "allowed_targets", text).ignore(),
                None => pipe.hdel(&key, "allowed_targets").ignore(),
            };
            pipe.hset(&key, "require_engagement", u8::from(*require))
                .ignore()
                .pexpire(&key, self.job_ttl_ms as i64)
                .ignore();
        }
        let mut con = self.connection().await?;
        let () = pipe.query_async(&mut con).await?;
        Ok(())
    }

    /// The tenant's scope as the APIs last published it ([`Queue::publish_scopes`]).
    pub async fn tenant_scope(&self, tenant: &TenantId) -> Result<CallerScope, QueueError> {
        let mut con = self.connection().await?;
        let (allowed, require): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.keys.tenant_limits(tenant))
            .arg("allowed_targets")
            .arg("require_engagement")
            .query_async(&mut con)
            .await?;
        Ok(CallerScope::published(
            tenant.as_str(),
            allowed.as_deref(),
            require.as_deref() == Some("1"),
        ))
    }

    /// The tenant's standing as the APIs last published it ([`Standing`]). One query for
    /// every process that acts for a tenant without a request (the scheduler; the webhook
    /// dispatcher). It fails closed: a fleet with a tokens file whose caps for the tenant
    /// cannot be read is [`Standing::Unknown`], never "no caps".
    pub async fn tenant_standing(&self, tenant: &TenantId) -> Result<Standing, QueueError> {
        Ok(match self.tenant_membership(tenant).await? {
            Membership::Open => Standing::Open,
            Membership::Gone => Standing::Revoked,
            Membership::Unknown => Standing::Unknown,
            Membership::Member => match self.published_caps(tenant).await? {
                Some(caps) => Standing::Active(caps),
                None => Standing::Unknown,
            },
        })
    }

    /// Whether the fleet's tokens file no longer names `tenant` (one round trip, no caps read):
    /// what a webhook delivery checks before each attempt.
    pub async fn tenant_revoked(&self, tenant: &TenantId) -> Result<bool, QueueError> {
        Ok(self.tenant_membership(tenant).await? == Membership::Gone)
    }

    /// The auth mode and the tenant's membership, as the APIs last published them.
    async fn tenant_membership(&self, tenant: &TenantId) -> Result<Membership, QueueError> {
        let mut con = self.connection().await?;
        let (mode, member): (Option<String>, Option<String>) = redis::pipe()
            .get(self.keys.fleet_auth())
            .hget(self.keys.fleet_tenants(), tenant.as_str())
            .query_async(&mut con)
            .await?;
        Ok(match (mode.as_deref(), member) {
            (Some(MODE_OPEN), _) => Membership::Open,
            (Some(MODE_TOKENS), None) => Membership::Gone,
            (Some(MODE_TOKENS), Some(_)) => Membership::Member,
            _ => Membership::Unknown,
        })
    }

    /// The caps last published for a tenant ([`Queue::publish_caps`]); None when none were (open
    /// mode: no caps).
    pub async fn published_caps(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<TenantCaps>, QueueError> {
        let mut con = self.connection().await?;
        let (queued, running): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
            .arg(self.keys.tenant_limits(tenant))
            .arg("max_queued")
            .arg("max_running")
            .query_async(&mut con)
            .await?;
        Ok(queued.map(|max_queued| TenantCaps {
            max_queued,
            max_running: running.unwrap_or(0),
        }))
    }

    /// How many of the tenant's jobs the queued set counts now (stats, tests).
    pub async fn tenant_queued(&self, tenant: &TenantId) -> Result<u64, QueueError> {
        let mut con = self.connection().await?;
        let key = self.keys.tenant_queued(tenant);
        let _: i64 = con.zrembyscore(&key, "-inf", now_ms()).await?;
        Ok(con.zcard(&key).await?)
    }
}

/// Seconds to put in `Retry-After` for a refused request (at least 1).
pub fn retry_after_secs(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000).max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
