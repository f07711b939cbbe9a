//! A person's decision on a job awaiting approval (DESIGN §14). A job that needs approval is
//! created `awaiting_approval` by the same enqueue as any job (idempotency, listing, request
//! hash), but on no stream and in no schedule: it holds no queue slot, no lease and no place
//! under its tenant's `max_queued`. [`Queue::decide`] then either admits it — the rest of the
//! one admission path (`admission.rs`): the gate, the tenant's caps, and `decide.lua` for the
//! queue length and fair share, or the schedule when its time (a delay, a window) has not come —
//! or rejects it (`cancelled`, the reason in its error). The token that submitted a job may not
//! decide on it.

use super::{Queue, QueueError};
use crate::domain::approval::{Reason, decision_fields, rejected_error};
use crate::domain::{CorrelationId, Decision, JobDocument, JobId, JobState, TenantId};
use crate::scripts::{DecideOutcome, TenantCaps};

impl Queue {
    /// Decides on job `cid` of `tenant` for the token named `by`; returns the job as it is now.
    /// [`QueueError::Final`] when it is not awaiting approval, [`QueueError::SelfDecision`]
    /// when `by` submitted it.
    pub async fn decide(
        &self,
        tenant: &TenantId,
        cid: &CorrelationId,
        decision: Decision,
        by: &str,
        reason: Option<&Reason>,
        caps: Option<TenantCaps>,
    ) -> Result<JobDocument, QueueError> {
        let Some((tool, zone)) = self.locate(tenant, cid).await? else {
            return Err(QueueError::NotFound);
        };
        let id = JobId::new(tool, zone, tenant.clone(), cid.clone());
        let fields = self
            .job_fields(
                tenant,
                cid,
                &["state", "submitted_by", "chunks", "retry_at_ms"],
            )
            .await?
            .ok_or(QueueError::NotFound)?;
        let state = fields.get("state").ok_or(QueueError::NotFound)?;
        if state != JobState::AwaitingApproval.as_str() {
            return Err(QueueError::Final {
                state: state.clone(),
            });
        }
        if fields.get("submitted_by").is_some_and(|s| s == by) {
            return Err(QueueError::SelfDecision);
        }
        if fields.contains_key("chunks") {
            let hold_until = fields
                .get("retry_at_ms")
                .and_then(|v| v.parse::<u64>().ok());
            return self
                .decide_parent(&id, decision, by, reason, caps, hold_until)
                .await;
        }
        let added = match decision {
            Decision::Approved => {
                self.check_gate(&id.tool, &id.zone, false).await?;
                match caps {
                    Some(caps) => self.reserve_place(tenant, &id, caps).await?,
                    None => false,
                }
            }
            Decision::Rejected => false,
        };
        let out = self.run_decide(&id, decision, by, reason).await;
        let queued = matches!(out, Ok(DecideOutcome::Queued { .. }));
        if added && !queued {
            // Nothing new waits: give the place back.
            if let Err(err) = self.forget_queued(&id).await {
                tracing::warn!(correlation_id = %cid, error = %err, "Could not release a tenant queue place");
            }
        }
        match out? {
            DecideOutcome::Queued { .. } | DecideOutcome::Rejected => {}
            DecideOutcome::NotAwaiting { state } => return Err(QueueError::Final { state }),
            DecideOutcome::Missing => return Err(QueueError::NotFound),
            DecideOutcome::Full { depth } => return Err(QueueError::Full { depth }),
        }
        self.get(tenant, cid)
            .await?
            .map(|(_, d)| d)
            .ok_or(QueueError::NotFound)
    }

    /// [`Queue::decide`] of a big scan's parent: approved, its chunks are queued then (all or
    /// nothing, as at submit, with what is left of its delay); rejected, it is cancelled.
    async fn decide_parent(
        &self,
        id: &JobId,
        decision: Decision,
        by: &str,
        reason: Option<&Reason>,
        caps: Option<TenantCaps>,
        hold_until: Option<u64>,
    ) -> Result<JobDocument, QueueError> {
        if decision == Decision::Approved {
            self.check_gate(&id.tool, &id.zone, false).await?;
        }
        let error = serde_json::to_string(&rejected_error(by, reason)).expect("serializable");
        let mut con = self.connection().await?;
        let out = self
            .scripts
            .parent_decide(
                &mut con,
                &self.keys.job_keys(id),
                &self.settings,
                &id.job_ref(),
                id.tool.as_str(),
                decision,
                (super::settle::CHECK_EVERY_MS, &error),
                &decision_fields(decision, by, reason),
            )
            .await?;
        match out.first().map(String::as_str) {
            Some("queued") => {
                let now = super::listing::now_ms();
                let delay = hold_until.map_or(0, |t| t.saturating_sub(now));
                self.spawn_and_settle(id, delay, caps).await?;
            }
            Some("rejected") => {}
            Some("not_awaiting") => {
                return Err(QueueError::Final {
                    state: out.get(1).cloned().unwrap_or_default(),
                });
            }
            _ => return Err(QueueError::NotFound),
        }
        self.parent_document(id).await
    }

    async fn run_decide(
        &self,
        id: &JobId,
        decision: Decision,
        by: &str,
        reason: Option<&Reason>,
    ) -> Result<DecideOutcome, QueueError> {
        let error = serde_json::to_string(&rejected_error(by, reason)).expect("serializable");
        let mut con = self.connection().await?;
        Ok(self
            .scripts
            .decide(
                &mut con,
                &self.keys.job_keys(id),
                &self.settings,
                &id.job_ref(),
                id.tool.as_str(),
                decision,
                &error,
                &decision_fields(decision, by, reason),
            )
            .await?)
    }
}
