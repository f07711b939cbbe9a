//! Where a big scan's chunks are ([`ChunkSet`]: their number and zones) and reading them
//! (DESIGN §12; the model is in `parent.rs`): their fields in chunk order, one pipelined HMGET
//! per chunk grouped by partition, and the page of documents `GET /v1/jobs/{id}/chunks` serves.

use std::collections::HashMap;

use super::{Queue, QueueError};
use crate::domain::{CorrelationId, JobDocument, JobId, TenantId, Zone, chunk_id};
use crate::request::ZonePlan;
use crate::validate::TargetList;

/// Where a parent's chunks are: how many, and each one's zone (the parent's, or from the zone
/// plan of a big scan spanning zones, stored as `zplan`).
#[derive(Debug, Clone)]
pub(super) struct ChunkSet {
    pub total: u64,
    chunk_hosts: u64,
    plan: Option<ZonePlan>,
}

/// The parent fields [`ChunkSet::from_fields`] reads.
pub(super) const CHUNK_SET_FIELDS: [&str; 3] = ["chunks", "chunk_hosts", "zplan"];

impl ChunkSet {
    pub fn from_fields(h: &HashMap<String, String>) -> Self {
        let num = |k: &str| h.get(k).and_then(|n| n.parse::<u64>().ok());
        Self {
            total: num("chunks").unwrap_or(0),
            chunk_hosts: num("chunk_hosts").unwrap_or(1).max(1),
            plan: h.get("zplan").and_then(|p| p.parse().ok()),
        }
    }

    /// Chunk `n` of `parent`, in its zone.
    pub fn id(&self, parent: &JobId, n: u64) -> JobId {
        let zone = self
            .plan
            .as_ref()
            .and_then(|p| p.zone_of_chunk(n, self.chunk_hosts))
            .unwrap_or(&parent.zone);
        parent.sibling(zone.clone(), chunk_id(&parent.cid, n))
    }

    /// Every chunk's zone and target, in chunk order, cut from the parent's `target`.
    pub fn pieces(&self, parent: &JobId, target: &TargetList) -> Vec<(Zone, TargetList)> {
        match &self.plan {
            Some(plan) => plan.chunks(self.chunk_hosts),
            None => target
                .chunks(self.chunk_hosts)
                .into_iter()
                .map(|c| (parent.zone.clone(), c))
                .collect(),
        }
    }

    /// The zones the chunks live in (the parent's alone without a plan).
    pub fn zones(&self, parent: &JobId) -> Vec<Zone> {
        match &self.plan {
            Some(p) => p.zones(),
            None => vec![parent.zone.clone()],
        }
    }
}

impl Queue {
    /// The zone chunk `chunk` of parent `parent` lives in (the parent's, unless the parent's
    /// zone plan puts it elsewhere).
    pub(super) async fn chunk_zone(
        &self,
        parent: &JobId,
        chunk: &CorrelationId,
    ) -> Result<Zone, QueueError> {
        let n = crate::domain::chunk_index(chunk);
        Ok(match (n, self.parent_fields(parent, &[]).await?) {
            (Some(n), Some(h)) => ChunkSet::from_fields(&h).id(parent, n).zone,
            _ => parent.zone.clone(),
        })
    }

    /// `fields` of every chunk of parent `id`, in chunk order (`None` for a chunk that does
    /// not exist): one pipelined HMGET per chunk, grouped by partition.
    pub(super) async fn chunk_fields(
        &self,
        id: &JobId,
        fields: &[&str],
    ) -> Result<Vec<Option<HashMap<String, String>>>, QueueError> {
        let Some(h) = self.parent_fields(id, &[]).await? else {
            return Err(QueueError::NotFound);
        };
        let set = ChunkSet::from_fields(&h);
        self.chunk_fields_range(id, &set, 0..set.total, fields)
            .await
    }

    pub(super) async fn chunk_fields_range(
        &self,
        id: &JobId,
        set: &ChunkSet,
        range: std::ops::Range<u64>,
        fields: &[&str],
    ) -> Result<Vec<Option<HashMap<String, String>>>, QueueError> {
        let mut by_partition: HashMap<(Zone, u16), Vec<(usize, String)>> = HashMap::new();
        let start = range.start;
        for n in range.clone() {
            let chunk = set.id(id, n);
            by_partition
                .entry((chunk.zone.clone(), self.keys.partition_of(&chunk)))
                .or_default()
                .push(((n - start) as usize, self.keys.job(&chunk)));
        }
        let mut out = vec![None; (range.end - range.start) as usize];
        let mut con = self.connection().await?;
        for (_, keys) in by_partition {
            let mut pipe = redis::pipe();
            for (_, key) in &keys {
                pipe.cmd("HMGET").arg(key).arg(fields);
            }
            let replies: Vec<Vec<Option<String>>> = pipe.query_async(&mut con).await?;
            for ((i, _), values) in keys.iter().zip(replies) {
                if values.iter().any(Option::is_some) {
                    out[*i] = Some(
                        fields
                            .iter()
                            .zip(values)
                            .filter_map(|(k, v)| v.map(|v| ((*k).to_owned(), v)))
                            .collect(),
                    );
                }
            }
        }
        Ok(out)
    }

    /// A page of parent `cid`'s chunks (`GET /v1/jobs/{id}/chunks`): their documents from chunk
    /// `offset`, at most `limit`, and the parent's chunk count; `None` when `cid` is no parent.
    pub async fn chunks(
        &self,
        tenant: &TenantId,
        cid: &CorrelationId,
        offset: u64,
        limit: u64,
    ) -> Result<Option<(u64, Vec<JobDocument>)>, QueueError> {
        let Some((tool, zone)) = self.locate(tenant, cid).await? else {
            return Ok(None);
        };
        let id = JobId::new(tool, zone, tenant.clone(), cid.clone());
        let Some(h) = self.parent_fields(&id, &[]).await? else {
            return Ok(None);
        };
        let set = ChunkSet::from_fields(&h);
        let total = set.total;
        let end = offset.saturating_add(limit).min(total);
        let start = offset.min(end);
        let mut docs = Vec::new();
        for (i, fields) in self
            .chunk_fields_range(&id, &set, start..end, CHUNK_DOC_FIELDS)
            .await?
            .into_iter()
            .enumerate()
        {
            let chunk = set.id(&id, start + i as u64);
            if let Some(doc) = fields.and_then(|f| JobDocument::from_job(&chunk, &f)) {
                docs.push(doc);
            }
        }
        self.explain_waits(&mut docs).await;
        Ok(Some((total, docs)))
    }
}

/// What a chunk listing shows of each chunk: its document without result or output.
const CHUNK_DOC_FIELDS: &[&str] = &[
    "state",
    "target",
    "args",
    "template",
    "attempt",
    "max_attempts",
    "priority",
    "timeout_sec",
    "created_ms",
    "started_ms",
    "finished_ms",
    "retry_at_ms",
    "updated_ms",
    "ready_ms",
    "queue_wait_ms",
    "duration_ms",
    "worker",
    "progress",
    "error",
    "needs_raw",
    "parent",
];
