//! The submit: a validated job into its queue, idempotent per correlation ID — the tenant's
//! listing claims the ID (in the enqueue script itself where one node holds every key), the
//! enqueue script writes the job and its place (stream, backlog or schedule), replicas confirm
//! where the fleet asks for them, and the answer is the job's document.

use std::collections::HashMap;

use redis::AsyncCommands;

use super::job_fields::job_fields;
use super::{Connection, Queue, QueueError, Submitted, listing};
use crate::domain::{CorrelationId, JobDocument, JobId, TenantId};
use crate::keys::ToolKeys;
use crate::request::JobSpec;
use crate::scripts::{EnqueueOutcome, Listed};

impl Queue {
    /// Enqueues a validated job for `tenant` (idempotent per correlation ID).
    pub async fn submit(&self, tenant: &TenantId, spec: &JobSpec) -> Result<Submitted, QueueError> {
        self.submit_capped(tenant, spec, 0).await
    }

    /// [`Queue::submit`] for a tenant that may run at most `max_running` jobs of this tool at
    /// once (0 = no cap); the workers' claim enforces it.
    ///
    /// One round trip where one node holds every key: the enqueue script claims a new ID in the
    /// tenant's listing itself. Two in a cluster, or for an ID the listing holds already: its
    /// `ZADD NX` (and, for a listed ID, whose job it is), then the enqueue script.
    #[tracing::instrument(skip_all, fields(tool = %spec.tool))]
    pub async fn submit_capped(
        &self,
        tenant: &TenantId,
        spec: &JobSpec,
        max_running: u64,
    ) -> Result<Submitted, QueueError> {
        let cid = spec
            .correlation_id
            .clone()
            .unwrap_or_else(CorrelationId::generate);
        let id = JobId::new(spec.tool.clone(), spec.zone.clone(), tenant.clone(), cid);
        let r = id.job_ref();
        let tk = self.keys.job_keys(&id);
        let no = self.tool_no(&spec.tool, &spec.zone).await?;
        let list = self.keys.tenant_jobs(tenant);
        let mut con = self.connection().await?;
        if !self
            .registered
            .lock()
            .expect("registry lock")
            .contains(tenant)
        {
            let _: () = con.sadd(self.keys.tenants(), tenant.as_str()).await?;
            self.registered
                .lock()
                .expect("registry lock")
                .insert(tenant.clone());
        }
        // Claim the correlation ID for this tool in the tenant's listing (its index).
        let now = listing::now_ms();
        let listed_at = listing::score(now, no);
        let mut fields = job_fields(spec, max_running);
        let group = self.target_groups.of(&spec.tool, spec.target.first());
        if let Some(g) = group.clone() {
            // Politeness: the claim caps running jobs per group (absent when not capped).
            fields.push(("tgroup", g));
        }
        // Where one node holds every key (not a cluster), the enqueue script claims a new ID in
        // the listing itself: one round trip. An ID listed already takes the two steps below.
        let one_trip = if self.pool.is_cluster() {
            None
        } else {
            let claim = Listed::Claim {
                listing: list.clone(),
                score: listed_at,
                at_ms: now,
                packed: id.cid.packed(),
            };
            // A job with nothing to wait for may start at once on an idle worker's offer
            // (docs/queue.md "Direct start"): not where a claim must be confirmed by replicas,
            // and only in the tool's home partition (its breaker's).
            let direct = (self.replicas.0 == 0
                && self.keys.partition_of(&id) == 0
                && starts_directly(spec, max_running, group.is_some()))
            .then(|| spec.tool.as_str());
            self.enqueue(&mut con, &tk, &r, spec, &fields, (claim, direct))
                .await?
        };
        // The script took the member back itself if the queue was full.
        let by_script = one_trip.is_some();
        let (fresh, outcome) = match one_trip {
            Some(outcome) => (true, outcome),
            None => {
                let added: i64 = redis::cmd("ZADD")
                    .arg(&list)
                    .arg("NX")
                    .arg(listed_at)
                    .arg(id.cid.as_str())
                    .query_async(&mut con)
                    .await?;
                let fresh = added == 1;
                if !fresh {
                    self.owned_elsewhere(&mut con, tenant, &id).await?;
                }
                // A member just added means no job lives under the ID: the script skips its
                // idempotency read (members are removed only once their job is gone).
                let listed = if fresh {
                    Listed::Fresh {
                        at_ms: now,
                        packed: id.cid.packed(),
                    }
                } else {
                    Listed::Known { at_ms: now }
                };
                let outcome = Listed::answered(
                    self.enqueue(&mut con, &tk, &r, spec, &fields, (listed, None))
                        .await?,
                )?;
                (fresh, outcome)
            }
        };
        if let EnqueueOutcome::Created { .. } = &outcome
            && self.replicas.0 > 0
        {
            let (wanted, wait_ms) = self.replicas;
            let acked = con.wait_replicas(&tk.job(&r), wanted, wait_ms).await?;
            if acked < wanted
                && self
                    .scripts
                    .withdraw(&mut con, &tk, &r, &spec.request_hash)
                    .await?
            {
                if fresh {
                    let _: () = con.zrem(&list, id.cid.as_str()).await?;
                }
                return Err(QueueError::NotReplicated { acked, wanted });
            }
        }
        match &outcome {
            EnqueueOutcome::Created { .. } if !fresh => {
                // An expired job's ID reused: list it as new, under this tool (added again if
                // the listing sweep dropped the expired entry meanwhile).
                let _: () = redis::cmd("ZADD")
                    .arg(&list)
                    .arg(listed_at)
                    .arg(id.cid.as_str())
                    .query_async(&mut con)
                    .await?;
            }
            EnqueueOutcome::Full { .. } if fresh && !by_script => {
                let _: () = con.zrem(&list, id.cid.as_str()).await?;
            }
            _ => {}
        }
        let created = match outcome {
            EnqueueOutcome::Created { state, created_ms } => {
                self.remember(&id);
                let h: HashMap<String, String> = fields
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.clone()))
                    .chain([
                        ("state".to_owned(), state),
                        ("created_ms".to_owned(), created_ms.to_string()),
                    ])
                    .collect();
                let mut docs = [JobDocument::from_job(&id, &h).ok_or(QueueError::NotFound)?];
                self.explain_waits(&mut docs).await;
                let [document] = docs;
                return Ok(Submitted {
                    created: true,
                    document,
                });
            }
            EnqueueOutcome::Exists { .. } => false,
            EnqueueOutcome::Conflict { state } => return Err(QueueError::Conflict { state }),
            EnqueueOutcome::Full { depth } => return Err(QueueError::Full { depth }),
        };
        let h: HashMap<String, String> = con.hgetall(tk.job(&r)).await?;
        let mut docs = [JobDocument::from_job(&id, &h).ok_or(QueueError::NotFound)?];
        self.explain_waits(&mut docs).await;
        let [document] = docs;
        Ok(Submitted { created, document })
    }

    /// The enqueue script for `spec` as `listed` says; `None` only for [`Listed::Claim`] when the
    /// listing held the ID already (nothing was written).
    async fn enqueue(
        &self,
        con: &mut Connection,
        tk: &ToolKeys,
        r: &str,
        spec: &JobSpec,
        fields: &[(&str, String)],
        (listed, direct): (Listed, Option<&str>),
    ) -> Result<Option<EnqueueOutcome>, QueueError> {
        Ok(self
            .scripts
            .enqueue_listed(
                con,
                tk,
                &self.settings,
                r,
                &spec.request_hash,
                (spec.priority, spec.needs_raw),
                (spec.delay_ms, spec.needs_approval),
                listed,
                direct,
                fields,
            )
            .await?)
    }

    /// An ID the tenant's listing holds already: a conflict while another tool's (or zone's)
    /// job lives under it; an expired one's ID may be reused.
    pub(super) async fn owned_elsewhere(
        &self,
        con: &mut Connection,
        tenant: &TenantId,
        id: &JobId,
    ) -> Result<(), QueueError> {
        match self.indexed(tenant, &id.cid).await? {
            Some((t, z)) if t == id.tool && z == id.zone => Ok(()),
            Some((t, z)) => {
                let other = JobId::new(t, z, tenant.clone(), id.cid.clone());
                let exists: bool = con.exists(self.keys.job(&other)).await?;
                if exists {
                    return Err(QueueError::Conflict {
                        state: "owned by another tool".into(),
                    });
                }
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// Whether a job may start at once on a worker's standing offer (docs/queue.md "Direct start"):
/// one that would go straight onto its ready stream and that the claim would start without a
/// check of its own — no delay, no approval, no raw sockets (the offering worker may not have
/// them), no cap of its tenant's (`max_running`) or of its target group's (`grouped`), no
/// engagement window. (A big scan's chunks are enqueued elsewhere, never directly.)
fn starts_directly(spec: &JobSpec, max_running: u64, grouped: bool) -> bool {
    spec.delay_ms == 0
        && !spec.needs_approval
        && !spec.needs_raw
        && max_running == 0
        && !grouped
        && spec.engagement.is_none()
        && !spec.waits_for_window
}
