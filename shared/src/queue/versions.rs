//! Reads at dashboard scale (DESIGN §15): a job's summary read with one `HMGET` of the summary
//! fields (its result never read unless asked), a job read that decodes nothing while its tag
//! is the reader's ([`Queue::get_unless`]), and the tags (`ETag`) of a job and of a page of
//! jobs, folded from version counters ([`crate::domain::Tagger`]), never from the body.
//!
//! What a job's tag covers, and why that is every change a reader can see:
//! - `created_ms`: a correlation ID used again after its job expired is a new job;
//! - `evseq`: every state change and every event (progress, output, a parent's settle) bumps it
//!   in the same script (`save` in `scripts/lua/common.lua`), and the document's fields change
//!   only with one (claim, complete, reap, retry, cancel, event, parent settle);
//! - `waiting` (a claim parks a job for its target group without an event) and, for the
//!   document, `change` (a scheduled run's change summary, written once by the API);
//! - `waiting_for` as the API decided it from the live heartbeats (`waiting.rs`).

use std::collections::HashMap;

use super::{Queue, QueueError};
use crate::domain::{
    CorrelationId, ETag, JobDocument, JobId, JobState, JobSummary, Tagger, TenantId, WaitingFor,
};

/// The job hash fields a summary is built from (plus `evseq` and `waiting` for its tag),
/// followed by `$extra`.
macro_rules! summary_fields {
    ($($extra:literal),*) => {
        &[
            "state", "zplan", "target", "attempt", "max_attempts", "priority", "created_ms",
            "started_ms", "finished_ms", "retry_at_ms", "updated_ms", "ready_ms",
            "queue_wait_ms", "duration_ms", "worker", "progress", "error", "schedule_id",
            "needs_raw", "parent", "tally", "waiting", "tgroup", "submitted_by", "evseq",
            $($extra),*
        ]
    };
}

/// The job hash fields a summary is built from (plus `evseq` and `waiting` for its tag).
pub(super) const SUMMARY_FIELDS: &[&str] = summary_fields!();

/// [`SUMMARY_FIELDS`] and the result (`?include=result`).
pub(super) const SUMMARY_WITH_RESULT: &[&str] = summary_fields!("result");

/// What a list's tag is folded from, per job (and what filters and `waiting_for` need).
pub(super) const LIST_VERSION_FIELDS: &[&str] = &[
    "state",
    "created_ms",
    "evseq",
    "waiting",
    "needs_raw",
    "tally",
];

/// A read and its tag.
#[derive(Debug, Clone)]
pub struct Tagged<T> {
    pub value: T,
    pub etag: ETag,
}

/// A read that may find the reader's copy current ([`Queue::get_unless`]).
#[derive(Debug, Clone)]
pub enum Fresh<T> {
    /// The job's tag is the one given: nothing was decoded.
    Same,
    New(Tagged<T>),
}

/// One page of jobs (`Queue::list`): documents without their result unless it was asked for,
/// the next page's cursor, and the page's tag.
#[derive(Debug, Clone)]
pub struct JobPage {
    pub jobs: Vec<JobDocument>,
    pub next_cursor: Option<u64>,
    pub etag: ETag,
}

/// The version parts of one job hash (see the module doc).
#[derive(Debug, Clone, Default)]
pub(super) struct JobVersion {
    created: String,
    evseq: String,
    waiting: String,
    change: usize,
}

impl JobVersion {
    pub(super) fn of(h: &HashMap<String, String>) -> Self {
        let get = |k: &str| h.get(k).cloned().unwrap_or_default();
        Self {
            created: get("created_ms"),
            // Absent until the job's second event: its creation is event 1.
            evseq: h.get("evseq").cloned().unwrap_or_else(|| "1".into()),
            waiting: get("waiting"),
            change: h.get("change").map_or(0, String::len),
        }
    }

    /// Folds this version and the document's `waiting_for` (decided by the API) into `t`.
    pub(super) fn fold(&self, t: &mut Tagger, doc: &JobDocument) {
        self.fold_parts(t, &doc.correlation_id, doc.waiting_for.as_ref());
    }

    fn fold_parts(&self, t: &mut Tagger, cid: &str, waiting_for: Option<&WaitingFor>) {
        t.str(cid)
            .str(&self.created)
            .str(&self.evseq)
            .str(&self.waiting)
            .num(self.change as u64)
            .str(&waiting_for.map(|w| w.as_str()).unwrap_or_default());
    }
}

/// `fields` zipped with an `HMGET` reply: the fields the hash has.
pub(super) fn field_map(fields: &[&str], values: Vec<Option<String>>) -> HashMap<String, String> {
    fields
        .iter()
        .zip(values)
        .filter_map(|(k, v)| v.map(|v| ((*k).to_owned(), v)))
        .collect()
}

pub(super) fn job_tag(
    kind: &'static str,
    tenant: &TenantId,
    h: &HashMap<String, String>,
    doc: &JobDocument,
) -> ETag {
    let mut t = Tagger::new(kind);
    t.str(tenant.as_str());
    JobVersion::of(h).fold(&mut t, doc);
    t.finish()
}

impl Queue {
    async fn hmget(
        &self,
        id: &JobId,
        fields: &[&str],
    ) -> Result<HashMap<String, String>, QueueError> {
        let mut con = self.connection().await?;
        let values: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.keys.job(id))
            .arg(fields)
            .query_async(&mut con)
            .await?;
        Ok(field_map(fields, values))
    }

    /// The job document and its tag, unless its tag is `kept` ([`Fresh::Same`]): one `HGETALL`
    /// either way, and a job whose tag is `kept` is not decoded (its result is the bulk of
    /// it). What a reader holding the last answer (`scanq-api`'s kept answers) reads.
    pub async fn get_unless(
        &self,
        tenant: &TenantId,
        cid: &CorrelationId,
        kept: Option<&ETag>,
    ) -> Result<Option<Fresh<JobDocument>>, QueueError> {
        let found = self
            .find_hash(tenant, cid, |id| async move {
                let mut con = self.connection().await?;
                Ok(redis::AsyncCommands::hgetall(&mut con, self.keys.job(&id)).await?)
            })
            .await?;
        let Some((id, h)) = found else {
            return Ok(None);
        };
        // Only a queued job's tag depends on what the API decides (`waiting_for`).
        let queued = h.get("state").map(String::as_str) == Some(JobState::Queued.as_str());
        if let Some(kept) = kept.filter(|_| !queued) {
            let mut t = Tagger::new("j");
            t.str(tenant.as_str());
            JobVersion::of(&h).fold_parts(&mut t, cid.as_str(), None);
            if &t.finish() == kept {
                return Ok(Some(Fresh::Same));
            }
        }
        let Some(doc) = JobDocument::from_job(&id, &h) else {
            return Ok(None);
        };
        let mut docs = [doc];
        self.explain_waits(&mut docs).await;
        let [doc] = docs;
        Ok(Some(Fresh::New(Tagged {
            etag: job_tag("j", tenant, &h, &doc),
            value: doc,
        })))
    }

    /// A job's summary and its tag (`?view=summary`): one `HMGET` of the summary fields; the
    /// result is neither read nor decoded.
    pub async fn summary(
        &self,
        tenant: &TenantId,
        cid: &CorrelationId,
    ) -> Result<Option<Tagged<JobSummary>>, QueueError> {
        let found = self
            .find_raw(tenant, cid, |id| async move {
                self.hmget(&id, SUMMARY_FIELDS).await
            })
            .await?;
        Ok(found.map(|(_, h, doc)| Tagged {
            etag: job_tag("s", tenant, &h, &doc),
            value: doc.into(),
        }))
    }
}
