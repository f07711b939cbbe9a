//! Reading a big scan's chunks (DESIGN §12; the model is in `parent.rs`): their fields in chunk
//! order, one pipelined HMGET per chunk grouped by partition, and the page of documents
//! `GET /v1/jobs/{id}/chunks` serves.

use std::collections::HashMap;

use super::parent::ChunkSet;
use super::{Queue, QueueError};
use crate::domain::{CorrelationId, JobDocument, JobId, TenantId, Zone};

impl Queue {
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
    "queue_wait_ms",
    "duration_ms",
    "worker",
    "progress",
    "error",
    "needs_raw",
    "parent",
];
