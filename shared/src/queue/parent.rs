//! Big scans (DESIGN §12): one submit, one **parent** job, many **chunks**.
//!
//! - The parent is a job hash like any other (same key schema, listing, events, TTLs) that
//!   never runs a tool: it holds the request, `chunks` (how many), `hosts`, `chunk_hosts`, and,
//!   as its chunks move, `tally` (chunks by state), `progress` (hosts done / total) and at the
//!   end the merged `result`. `parent.lua` writes it.
//! - Chunk `n` is an ordinary job `<parent>:<n>` (same tool and tenant, its own partition by its
//!   ID) with `parent` and `hosts` fields, admitted by `enqueue.lua` like any job (queue length,
//!   fair share, the tenant's caps); it is not in the tenant's listing (the parent is).
//! - Each chunk's own scripts count it in its parent's **tally** in the chunk's partition
//!   (`count` in common.lua), atomically with its state change. Reading a parent's state is
//!   therefore one HGETALL per partition, whatever its number of chunks ([`Queue::settle_parent`]).
//! - Who writes the parent: whoever moved a chunk (the worker's settler, the API's cancel and
//!   retry) calls [`Queue::settle_parent`]; the parent's final state and merged result are
//!   written once, by the first settle that finds every chunk finished. A settle that was
//!   lost (a crash) is made up by the reconciler ([`Queue::reconcile_parents`]), which also
//!   queues the chunks of a parent whose submit stopped half-way.

use std::collections::HashMap;

use redis::AsyncCommands;

use super::chunks::{CHUNK_SET_FIELDS, ChunkSet};
use super::{Queue, QueueError, Submitted, job_fields, listing};
use crate::domain::{
    ChunkTally, CorrelationId, JobDocument, JobId, JobState, Priority, TenantId, Zone, chunk_id,
};
use crate::keys::ToolKeys;
use crate::request::JobSpec;
use crate::scripts::{CancelOutcome, ChunkEnqueue, EnqueueOutcome, TenantCaps};
use crate::validate::TargetList;

/// The request fields a chunk takes from its parent (the target is its own).
const INHERITED: &[&str] = &[
    "timeout_sec",
    "max_attempts",
    "args",
    "args_raw",
    "priority",
    "template",
    "intrusive",
    "needs_raw",
    "max_running",
    // The engagement the parent was admitted under (DESIGN §14): the worker judges each chunk's
    // timing against it again, and a retried chunk is judged against it.
    "engagement",
    // A parent waiting for its engagement's window: its chunks, spawned with its delay, say
    // `waiting_for: "window"` while they are scheduled (only then is it shown).
    "waiting",
];

/// A job's hash fields, as the enqueue script takes them.
type Fields<'a> = Vec<(&'a str, String)>;

/// Chunks queued per pipeline (one round trip each).
const ENQUEUE_BATCH: usize = 1024;

/// Tenant places reserved at once while a big scan's chunks are queued.
const RESERVE_IN_FLIGHT: usize = 16;

/// How long a parent's submit may take before the reconciler queues its missing chunks.
pub(super) const SPAWN_GRACE_MS: u64 = 60_000;

/// What queuing a parent's chunks did.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Spawned {
    created: u64,
    /// Chunks refused because their partition's queue was full.
    full: u64,
    depth: u64,
}

impl Queue {
    /// Admits a big scan: the parent's hash and listing entry, then its chunks. Idempotent
    /// like any submit: the same request with the same correlation ID is the same parent (and
    /// a submit that stopped half-way queues the rest).
    pub(super) async fn admit_parent(
        &self,
        tenant: &TenantId,
        spec: &JobSpec,
        caps: Option<TenantCaps>,
    ) -> Result<Submitted, QueueError> {
        let chunk_hosts = spec.chunk_hosts.unwrap_or(1).max(1);
        let cid = spec
            .correlation_id
            .clone()
            .unwrap_or_else(CorrelationId::generate);
        let id = JobId::new(
            spec.tool.clone(),
            spec.zone.clone(),
            tenant.clone(),
            cid.clone(),
        );
        let hosts = spec.target.hosts();
        let chunks = match &spec.zone_plan {
            Some(plan) => plan.chunks(chunk_hosts).len() as u64,
            None => hosts.div_ceil(chunk_hosts).max(1),
        };
        let tally = ChunkTally {
            total: chunks,
            ..Default::default()
        };
        let mut fields = job_fields(spec, caps.map(|c| c.max_running).unwrap_or(0));
        fields.extend([
            ("chunks", chunks.to_string()),
            ("hosts", hosts.to_string()),
            ("chunk_hosts", chunk_hosts.to_string()),
            (
                "tally",
                serde_json::to_string(&tally).expect("serializable"),
            ),
            ("progress", progress_json(&tally, 0, hosts)),
        ]);
        if let Some(plan) = &spec.zone_plan {
            fields.push(("zplan", plan.to_string()));
        }
        if spec.needs_approval && spec.delay_ms > 0 {
            // Held for a person (DESIGN §14): its chunks are queued at approval, with what is
            // left of its delay (or window wait) then.
            fields.push((
                "retry_at_ms",
                (listing::now_ms() + spec.delay_ms).to_string(),
            ));
        }
        self.claim_listing(tenant, &id).await?;
        let tk = self.keys.job_keys(&id);
        let mut con = self.connection().await?;
        let opened = self
            .scripts
            .parent_open(
                &mut con,
                &tk,
                &self.settings,
                &id.job_ref(),
                id.tool.as_str(),
                &spec.request_hash,
                &fields,
            )
            .await?;
        let (created, state) = match opened {
            EnqueueOutcome::Created { state, .. } => (true, state),
            EnqueueOutcome::Exists { state } => (false, state),
            EnqueueOutcome::Conflict { state } => return Err(QueueError::Conflict { state }),
            EnqueueOutcome::Full { depth } => return Err(QueueError::Full { depth }),
        };
        self.remember(&id);
        if state == JobState::AwaitingApproval.as_str() {
            // No chunk is queued before a person approves (`Queue::decide`).
            let document = self.parent_document(&id).await?;
            return Ok(Submitted { created, document });
        }
        self.spawn_and_settle(&id, spec.delay_ms, caps).await?;
        let document = self.parent_document(&id).await?;
        Ok(Submitted { created, document })
    }

    /// Queues parent `id`'s chunks, all or nothing: when the queue cannot take them all, the
    /// parent is marked cancelled (the reconciler never queues the rest), what was queued is
    /// cancelled, and the caller hears the queue is full. Then the parent is settled.
    pub(super) async fn spawn_and_settle(
        &self,
        id: &JobId,
        delay_ms: u64,
        caps: Option<TenantCaps>,
    ) -> Result<(), QueueError> {
        let id = id.clone();
        let spawned = self.spawn_chunks(&id, delay_ms, caps).await?;
        if spawned.full > 0 {
            // All or nothing: the parent is marked cancelled (the reconciler never queues the
            // rest), what was queued is cancelled, and the client hears the queue is full.
            self.mark_parent(&id, "cancel").await?;
            self.cancel_chunks(&id).await?;
            self.settle_parent(&id).await?;
            return Err(QueueError::Full {
                depth: spawned.depth,
            });
        }
        self.settle_parent(&id).await?;
        Ok(())
    }

    /// Puts `id`'s correlation ID in its tenant's listing (a conflict when another tool's live
    /// job holds it), as a submit does.
    async fn claim_listing(&self, tenant: &TenantId, id: &JobId) -> Result<(), QueueError> {
        let no = self.tool_no(&id.tool, &id.zone).await?;
        let mut con = self.connection().await?;
        let _: () = con.sadd(self.keys.tenants(), tenant.as_str()).await?;
        let added: i64 = redis::cmd("ZADD")
            .arg(self.keys.tenant_jobs(tenant))
            .arg("NX")
            .arg(listing::score(listing::now_ms(), no))
            .arg(id.cid.as_str())
            .query_async(&mut con)
            .await?;
        if added == 0 {
            self.owned_elsewhere(&mut con, tenant, id).await?;
        }
        Ok(())
    }

    pub(super) async fn parent_document(&self, id: &JobId) -> Result<JobDocument, QueueError> {
        let mut con = self.connection().await?;
        let h: HashMap<String, String> = con.hgetall(self.keys.job(id)).await?;
        JobDocument::from_job(id, &h).ok_or(QueueError::NotFound)
    }

    /// `fields` of parent `id` (with those of its [`ChunkSet`]: `chunks` first), or `None`
    /// when `id` is no parent (or gone).
    pub(super) async fn parent_fields(
        &self,
        id: &JobId,
        fields: &[&str],
    ) -> Result<Option<HashMap<String, String>>, QueueError> {
        let mut con = self.connection().await?;
        let mut names = CHUNK_SET_FIELDS.to_vec();
        names.extend_from_slice(fields);
        let values: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.keys.job(id))
            .arg(&names)
            .query_async(&mut con)
            .await?;
        if values[0].is_none() {
            return Ok(None);
        }
        Ok(Some(
            names
                .iter()
                .zip(values)
                .filter_map(|(k, v)| v.map(|v| ((*k).to_owned(), v)))
                .collect(),
        ))
    }

    /// The parent's hash, or `None` when `id` is no parent (or gone).
    pub(super) async fn parent_hash(
        &self,
        id: &JobId,
    ) -> Result<Option<HashMap<String, String>>, QueueError> {
        let mut con = self.connection().await?;
        let h: HashMap<String, String> = con.hgetall(self.keys.job(id)).await?;
        Ok(h.contains_key("chunks").then_some(h))
    }

    /// Queues every chunk of parent `id` that does not exist yet (idempotent: a chunk that
    /// exists answers `exists`), under the tenant's queued cap when it has one.
    pub(super) async fn spawn_chunks(
        &self,
        id: &JobId,
        delay_ms: u64,
        caps: Option<TenantCaps>,
    ) -> Result<Spawned, QueueError> {
        let Some(h) = self.parent_hash(id).await? else {
            return Err(QueueError::NotFound);
        };
        let target: TargetList = h
            .get("target")
            .and_then(|t| t.parse().ok())
            .ok_or(QueueError::NotFound)?;
        let set = ChunkSet::from_fields(&h);
        let pieces = set.pieces(id, &target);
        let req_hash = h.get("req_hash").cloned().unwrap_or_default();
        let priority: Priority = h
            .get("priority")
            .and_then(|p| p.parse().ok())
            .unwrap_or(Priority::Normal);
        let needs_raw = h.get("needs_raw").is_some_and(|v| v == "1");
        let inherited: Vec<(&str, String)> = INHERITED
            .iter()
            .filter_map(|k| h.get(*k).map(|v| (*k, v.clone())))
            .collect();
        // Fields per chunk, grouped by the zone and partition each chunk lives in.
        let mut by_partition: HashMap<(Zone, u16), Vec<(JobId, Fields<'_>)>> = HashMap::new();
        for (n, (zone, piece)) in pieces.iter().enumerate() {
            let chunk = id.sibling(zone.clone(), chunk_id(&id.cid, n as u64));
            let mut fields = vec![
                ("target", piece.to_string()),
                ("parent", id.cid.to_string()),
                ("hosts", piece.hosts().to_string()),
            ];
            fields.extend(inherited.iter().cloned());
            if !zone.is_default() {
                fields.push(("zone", zone.to_string()));
            }
            if let Some(g) = self.target_groups.of(&id.tool, piece.first()) {
                // Politeness: each chunk counts in its own target group.
                fields.push(("tgroup", g));
            }
            by_partition
                .entry((zone.clone(), self.keys.partition_of(&chunk)))
                .or_default()
                .push((chunk, fields));
        }
        let mut out = Spawned::default();
        for ((zone, p), chunks) in by_partition {
            let tk = self.keys.partition(&id.tool, &zone, p);
            if let Some(caps) = caps {
                // One place per chunk under the tenant's `max_queued`, several in flight.
                use futures::TryStreamExt;
                futures::stream::iter(chunks.iter().map(Ok))
                    .try_for_each_concurrent(RESERVE_IN_FLIGHT, |(chunk, _)| async move {
                        self.reserve_place(&id.tenant, chunk, caps)
                            .await
                            .map(|_| ())
                    })
                    .await?;
            }
            let items: Vec<ChunkEnqueue<'_>> = chunks
                .iter()
                .map(|(chunk, fields)| ChunkEnqueue {
                    job_ref: chunk.job_ref(),
                    request_hash: format!("{req_hash}:{}", chunk.cid),
                    lane: (priority, needs_raw),
                    delay_ms,
                    fields,
                })
                .collect();
            let mut con = self.connection().await?;
            let mut outcomes = Vec::with_capacity(items.len());
            // Bounded pipelines: a 65,536-chunk submit never holds Redis for one long burst.
            for batch in items.chunks(ENQUEUE_BATCH) {
                outcomes.extend(
                    self.scripts
                        .enqueue_chunks(&mut con, &tk, &self.settings, batch)
                        .await?,
                );
            }
            for ((chunk, _), outcome) in chunks.iter().zip(outcomes) {
                match outcome {
                    EnqueueOutcome::Created { .. } => out.created += 1,
                    EnqueueOutcome::Exists { .. } | EnqueueOutcome::Conflict { .. } => {}
                    EnqueueOutcome::Full { depth } => {
                        out.full += 1;
                        out.depth = out.depth.max(depth);
                        if caps.is_some() {
                            self.forget_queued(chunk).await?;
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Cancels every chunk of parent `id` (queued ones at once, running ones at their next
    /// check). Returns whether some chunk was still running.
    async fn cancel_chunks(&self, id: &JobId) -> Result<bool, QueueError> {
        let Some(h) = self.parent_fields(id, &[]).await? else {
            return Err(QueueError::NotFound);
        };
        let set = ChunkSet::from_fields(&h);
        let mut running = false;
        let err = super::cancelled_error();
        let mut con = self.connection().await?;
        for n in 0..set.total {
            let chunk = set.id(id, n);
            let out = self
                .scripts
                .cancel(
                    &mut con,
                    &self.keys.job_keys(&chunk),
                    &self.settings,
                    &chunk.job_ref(),
                    id.tool.as_str(),
                    &err,
                )
                .await?;
            match out {
                CancelOutcome::Requested => running = true,
                CancelOutcome::Cancelled => self.forget_queued(&chunk).await?,
                _ => {}
            }
        }
        Ok(running)
    }

    /// `parent.lua`'s `cancel` (marks the parent) or `reopen` (a retry); the script's reply.
    async fn mark_parent(&self, id: &JobId, op: &str) -> Result<Vec<String>, QueueError> {
        let mut con = self.connection().await?;
        Ok(self
            .scripts
            .parent_mark(
                &mut con,
                &self.keys.job_keys(id),
                &self.settings,
                op,
                &id.job_ref(),
                id.tool.as_str(),
                super::settle::CHECK_EVERY_MS,
            )
            .await?)
    }

    /// Cancels a parent: marked, then every chunk cancelled; the parent is `cancelled` once
    /// the running ones stopped.
    pub(super) async fn cancel_parent(&self, id: &JobId) -> Result<CancelOutcome, QueueError> {
        let marked = self.mark_parent(id, "cancel").await?;
        match marked.first().map(String::as_str) {
            Some("requested") => {}
            Some("final") => {
                return Err(QueueError::Final {
                    state: marked.get(1).cloned().unwrap_or_default(),
                });
            }
            _ => return Err(QueueError::NotFound),
        }
        let running = self.cancel_chunks(id).await?;
        self.settle_parent(id).await?;
        Ok(if running {
            CancelOutcome::Requested
        } else {
            CancelOutcome::Cancelled
        })
    }

    /// Retries a failed or cancelled parent: reopened, then only its chunks that did not
    /// succeed are admitted again (each through the gate, the caps and the queue length of
    /// [`Queue::admit_retry`]); chunks that were never queued are queued.
    pub(super) async fn retry_parent(
        &self,
        id: &JobId,
        caps: Option<TenantCaps>,
    ) -> Result<JobDocument, QueueError> {
        self.check_gate(&id.tool, &id.zone, false).await?;
        let reopened = self.mark_parent(id, "reopen").await?;
        match reopened.first().map(String::as_str) {
            Some("reopened") => {}
            // Not approved before: back before the person, no chunk queued (DESIGN §14).
            Some("awaiting") => return self.parent_document(id).await,
            Some("not_retryable") => {
                return Err(QueueError::Final {
                    state: reopened.get(1).cloned().unwrap_or_default(),
                });
            }
            _ => return Err(QueueError::NotFound),
        }
        let Some(h) = self.parent_fields(id, &[]).await? else {
            return Err(QueueError::NotFound);
        };
        let set = ChunkSet::from_fields(&h);
        let states = self.chunk_fields(id, &["state"]).await?;
        for (n, fields) in states.iter().enumerate() {
            let state = fields.as_ref().and_then(|f| f.get("state"));
            if matches!(state.map(String::as_str), Some("failed" | "cancelled")) {
                let chunk = set.id(id, n as u64);
                match self.retry_one(&chunk, caps).await {
                    Ok(_) | Err(QueueError::Final { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.spawn_chunks(id, 0, caps).await?;
        self.settle_parent(id).await?;
        self.parent_document(id).await
    }
}

/// The parent's `progress`: hosts of finished chunks over all hosts.
pub(super) fn progress_json(tally: &ChunkTally, hosts_done: u64, hosts: u64) -> String {
    let percent = if hosts == 0 {
        0.0
    } else {
        (hosts_done as f64 * 100.0 / hosts as f64 * 10.0).round() / 10.0
    };
    serde_json::json!({
        "percent": percent,
        "eta_sec": null,
        "phase": format!(
            "{} of {} chunks done, {} running",
            tally.succeeded + tally.failed + tally.cancelled,
            tally.total,
            tally.running
        ),
        "hosts_done": hosts_done,
        "hosts_total": hosts,
        "chunks": tally,
    })
    .to_string()
}

/// The tally key of `id`'s chunks in partition `tk`.
pub(super) fn tally_key(tk: &ToolKeys, id: &JobId) -> String {
    tk.chunk_tally(&id.job_ref())
}
