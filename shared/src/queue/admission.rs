//! The one admission path: every way a job enters the queue — a submit (REST or MCP), a retry, a
//! schedule's run, each chunk of a big scan (`parent.rs`) — passes the same checks, in the same
//! order:
//!
//! 0. the job's **engagement**, when it names one (DESIGN §14): its target, tool and template must
//!    be inside it and it must be in force (else 422 naming which); it decides whether the job
//!    waits for a window and whether a person must approve it first. A retry is judged again
//!    against the engagement stored on the job (deleted or expired: 422 naming `engagement`);
//!    a big scan's chunks carry their parent's engagement;
//! 1. the **gate**: the tool is not switched off by an operator and its breaker takes new work
//!    (unless a new job says `queue_if_unavailable`);
//! 2. the tenant's **caps** (`max_queued`, and `max_running` carried by the job), fleet-wide;
//! 3. the tool's **queue length** (`SCANQ_MAX_QUEUE_LEN`) and the tenant's **fair-share window**,
//!    checked by the script that queues the job (`enqueue.lua`, `retry.lua`), atomically.
//!
//! A refusal at any step takes back what an earlier step reserved, so a refused job costs its
//! tenant nothing. The gate reads the breaker and the tool switch at most once a second per
//! process ([`Gate`]): a submit costs no extra Redis round trip.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Queue, QueueError, Submitted};
use crate::breaker::BreakerState;
use crate::domain::{
    CorrelationId, EngagementId, JobDocument, JobId, JobState, TenantId, ToolName, Zone,
};
use crate::engagement::Ask;
use crate::request::JobSpec;
use crate::scripts::{RetryOutcome, TenantCaps};
use crate::validate::{TargetList, ValidationError};

/// How long a process trusts what it read of a tool's breaker and switch.
const FRESH: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Seen {
    at: Instant,
    open: bool,
    retry_after_sec: u64,
    disabled: bool,
}

/// The per-process cache behind the gate (shared by every clone of a [`Queue`]).
#[derive(Debug, Default)]
pub struct Gate {
    seen: Mutex<HashMap<String, Seen>>,
}

impl Gate {
    /// Forgets what was read of `tool` in every zone (an operator just changed its breaker or
    /// switch).
    pub fn forget(&self, tool: &str) {
        let zoned = format!("{tool}@");
        self.seen
            .lock()
            .expect("gate lock")
            .retain(|k, _| k != tool && !k.starts_with(&zoned));
    }

    fn cached(&self, queue: &str) -> Option<Seen> {
        self.seen
            .lock()
            .expect("gate lock")
            .get(queue)
            .copied()
            .filter(|s| s.at.elapsed() < FRESH)
    }
}

impl Queue {
    /// The gate's cache, for an operator action that must take effect at once.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// Step 1: refuses new work for a tool that is switched off or whose breaker in `zone` is
    /// open, unless the job may wait for it (`queue_if_unavailable`).
    pub async fn check_gate(
        &self,
        tool: &ToolName,
        zone: &Zone,
        queue_if_unavailable: bool,
    ) -> Result<(), QueueError> {
        let queue = crate::keys::queue_tag(tool, zone);
        let seen = match self.gate.cached(&queue) {
            Some(s) => s,
            None => {
                let snap = self.breaker_snapshot(tool, zone).await?;
                let s = Seen {
                    at: Instant::now(),
                    open: matches!(snap.state, BreakerState::Open | BreakerState::ForcedOpen),
                    retry_after_sec: snap.retry_after_ms.div_ceil(1000).max(1),
                    disabled: self.tool_disabled(tool).await?,
                };
                self.gate.seen.lock().expect("gate lock").insert(queue, s);
                s
            }
        };
        if queue_if_unavailable {
            return Ok(());
        }
        if seen.disabled {
            return Err(QueueError::ToolDisabled {
                tool: tool.to_string(),
            });
        }
        if seen.open {
            return Err(QueueError::BreakerOpen {
                tool: tool.to_string(),
                retry_after_sec: seen.retry_after_sec,
            });
        }
        Ok(())
    }

    /// Admits a new job: the gate, then the tenant's caps, then the enqueue (queue length and
    /// fair share). The path of `POST /v1/jobs`, the MCP scan tools and scheduled runs.
    pub async fn admit(
        &self,
        tenant: &TenantId,
        spec: &JobSpec,
        caps: Option<TenantCaps>,
    ) -> Result<Submitted, QueueError> {
        let engaged;
        let spec = match &spec.engagement {
            Some(e) => {
                engaged = self.engage(tenant, spec, e).await?;
                &engaged
            }
            None => spec,
        };
        let zones = match &spec.zone_plan {
            Some(plan) => plan.zones(),
            None => vec![spec.zone.clone()],
        };
        for zone in &zones {
            self.check_gate(&spec.tool, zone, spec.queue_if_unavailable)
                .await?;
        }
        if spec.chunk_hosts.is_some() {
            // A big scan: a parent, and its chunks through the same caps and enqueue.
            return self.admit_parent(tenant, spec, caps).await;
        }
        self.submit_within(tenant, spec, caps).await
    }

    /// Step 0: judges `spec` against the tenant's engagement `id` now, and returns it with what
    /// the engagement decides (a wait for its window, a person's approval).
    pub async fn engage(
        &self,
        tenant: &TenantId,
        spec: &JobSpec,
        id: &EngagementId,
    ) -> Result<JobSpec, QueueError> {
        let Some(stored) = self.engagement(tenant, id).await? else {
            return Err(QueueError::Refused(ValidationError::new(
                "engagement",
                format!("your tenant has no engagement {id}"),
                "an engagement id from GET /v1/engagements",
            )));
        };
        let now = super::listing::now_ms();
        let ask = Ask {
            tool: &spec.tool,
            template: spec.template.as_deref(),
            target: &spec.target,
            intrusive: spec.intrusive,
        };
        let admission = stored
            .engagement
            .judge(ask, now)
            .map_err(QueueError::Refused)?;
        let mut spec = spec.clone();
        spec.needs_approval |= admission.needs_approval;
        if let Some(opens) = admission.opens_ms {
            let wait = opens.saturating_sub(now);
            if wait > spec.delay_ms {
                spec.delay_ms = wait;
                spec.waits_for_window = true;
            }
        }
        Ok(spec)
    }

    /// Admits a failed or cancelled job again (`POST /v1/jobs/{id}/retry`): the same gate,
    /// caps, queue length and fair-share window as a new job. Returns the job as queued.
    pub async fn admit_retry(
        &self,
        tenant: &TenantId,
        cid: &CorrelationId,
        caps: Option<TenantCaps>,
    ) -> Result<JobDocument, QueueError> {
        // Its state only (the script checks it again, atomically): a job that cannot be
        // retried is a conflict before any place is reserved for it.
        let Some((tool, zone)) = self.locate(tenant, cid).await? else {
            return Err(QueueError::NotFound);
        };
        let id = JobId::new(tool, zone, tenant.clone(), cid.clone());
        let fields = self
            .job_fields(
                tenant,
                cid,
                &[
                    "state",
                    "chunks",
                    "engagement",
                    "target",
                    "template",
                    "intrusive",
                ],
            )
            .await?;
        let state = fields
            .as_ref()
            .and_then(|f| f.get("state"))
            .ok_or(QueueError::NotFound)?;
        if state != JobState::Failed.as_str() && state != JobState::Cancelled.as_str() {
            return Err(QueueError::Final {
                state: state.clone(),
            });
        }
        if let Some(f) = &fields {
            self.rejudge(tenant, &id.tool, f).await?;
        }
        if fields.as_ref().is_some_and(|f| f.contains_key("chunks")) {
            // A big scan: only the chunks that did not succeed run again.
            return self.retry_parent(&id, caps).await;
        }
        self.retry_one(&id, caps).await
    }

    /// Step 0 of a retry: a job admitted under an engagement is judged against it again, now.
    /// A deleted or expired engagement refuses it (naming `engagement`), and so does a tool,
    /// template or target the engagement no longer allows. (The wait for a window and the
    /// approval are decided at submit; a retry is queued at once.)
    async fn rejudge(
        &self,
        tenant: &TenantId,
        tool: &ToolName,
        fields: &HashMap<String, String>,
    ) -> Result<(), QueueError> {
        let Some(name) = fields.get("engagement") else {
            return Ok(());
        };
        let refused = |message: String| {
            QueueError::Refused(ValidationError::new(
                "engagement",
                message,
                "submit a new job under an engagement in force (GET /v1/engagements)",
            ))
        };
        let id = EngagementId::parse(name)
            .map_err(|_| refused(format!("the job names an unreadable engagement `{name}`")))?;
        let Some(stored) = self.engagement(tenant, &id).await? else {
            return Err(refused(format!(
                "the job was admitted under engagement {id}, which no longer exists"
            )));
        };
        let target: TargetList = fields
            .get("target")
            .and_then(|t| t.parse().ok())
            .ok_or(QueueError::NotFound)?;
        let ask = Ask {
            tool,
            template: fields.get("template").map(String::as_str),
            target: &target,
            intrusive: fields.get("intrusive").is_some_and(|v| v == "1"),
        };
        stored
            .engagement
            .judge(ask, super::listing::now_ms())
            .map_err(QueueError::Refused)?;
        Ok(())
    }

    /// [`Queue::admit_retry`] of one failed or cancelled job that is no parent (also each chunk
    /// of a retried parent): the gate, the caps, then `retry.lua`.
    pub(super) async fn retry_one(
        &self,
        id: &JobId,
        caps: Option<TenantCaps>,
    ) -> Result<JobDocument, QueueError> {
        let (tenant, tool, cid) = (&id.tenant, &id.tool, &id.cid);
        self.check_gate(tool, &id.zone, false).await?;
        let added = match caps {
            Some(caps) => self.reserve_place(tenant, id, caps).await?,
            None => false,
        };
        let out = self.requeue(id).await;
        let queued = matches!(out, Ok(RetryOutcome::Queued));
        if !queued && added {
            // Nothing new waits (or it waits for a person, outside the queue): give the place
            // back.
            if let Err(err) = self.forget_queued(id).await {
                tracing::warn!(correlation_id = %cid, error = %err, "Could not release a tenant queue place");
            }
        }
        out?;
        if queued && !added {
            self.note_queued(id).await?;
        }
        self.get(tenant, cid)
            .await?
            .map(|(_, d)| d)
            .ok_or(QueueError::NotFound)
    }

    /// Step 3 of a retry: `retry.lua` queues the job again under the queue length and the
    /// tenant's fair-share window (or, a job that needs approval and was not approved, puts it
    /// back before the person: [`RetryOutcome::Awaiting`]).
    async fn requeue(&self, id: &JobId) -> Result<RetryOutcome, QueueError> {
        let mut con = self.connection().await?;
        match self
            .scripts
            .retry(
                &mut con,
                &self.keys.job_keys(id),
                &self.settings,
                &id.job_ref(),
                id.tool.as_str(),
            )
            .await?
        {
            o @ (RetryOutcome::Queued | RetryOutcome::Awaiting) => Ok(o),
            RetryOutcome::NotRetryable { state } => Err(QueueError::Final { state }),
            RetryOutcome::Missing => Err(QueueError::NotFound),
            RetryOutcome::Full { depth } => Err(QueueError::Full { depth }),
        }
    }
}
