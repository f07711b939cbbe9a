//! Reads at dashboard scale (DESIGN §15, docs/reads.md): many clients polling the same job or
//! the same page of jobs cost one read at a time, not one each, and an unchanged answer is not
//! built again.
//!
//! - **Shared, never stale.** Requests for the same answer ([`ReadKey`]: the tenant, the job or
//!   the page and its filters, the view) share one read, but only a read that *started after
//!   they arrived* (`flight.rs`): every answer reflects the store at a moment between its
//!   request and its reply, exactly what a lone client would have read. (A plain
//!   `singleflight` shares a read already running, which can answer with what was true before
//!   the request was sent: a client that cancelled a job and then read it could see it
//!   running.)
//! - **Kept by tag.** The last answer is kept as encoded bytes with its tag. A read first reads
//!   the answer's version (a few fields per job, `scanq::queue::versions`); while the tag is
//!   the kept one, the body is neither read nor encoded again.
//! - **Bounded.** See `flight.rs`: at most [`flight::MAX_KEPT`] answers and
//!   [`flight::MAX_KEPT_BYTES`] bytes are kept.
//!
//! Lists, job documents and job summaries are read here; the route files only extract, call
//! and map.

mod flight;

use std::sync::Arc;

use axum::body::Bytes;
use scanq::domain::{CorrelationId, ETag, JobList, JobState, JobSummary, TenantId, ToolName};
use scanq::queue::{Fresh, Queue, QueueError};

use crate::error::AppError;
use serde::Serialize;

pub use flight::Reads;

/// What identifies one answer: two requests with the same key get the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReadKey {
    /// `GET /v1/jobs/{id}` (`summary`: `?view=summary`).
    Job {
        tenant: TenantId,
        id: CorrelationId,
        summary: bool,
    },
    /// `GET /v1/jobs` with its filters.
    List { tenant: TenantId, page: PageQuery },
    /// `GET /v1/stats`: the fleet's view (`None`, admins) or one tenant's.
    Stats { tenant: Option<TenantId> },
}

/// A page of a tenant's jobs, as `GET /v1/jobs` asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageQuery {
    pub state: Option<JobState>,
    pub tool: Option<ToolName>,
    pub limit: usize,
    pub cursor: Option<u64>,
    pub with_result: bool,
}

/// One encoded answer and its tag.
#[derive(Debug)]
pub struct Answer {
    pub etag: ETag,
    pub body: Bytes,
}

impl Answer {
    /// `value` encoded, with its tag.
    pub fn json<T: Serialize>(etag: ETag, value: &T) -> Result<Arc<Self>, ReadError> {
        let body = serde_json::to_vec(value).map_err(|e| ReadError::Encode(Arc::new(e)))?;
        Ok(Arc::new(Self {
            etag,
            body: Bytes::from(body),
        }))
    }
}

/// Why a shared read failed (every request that shared it gets the same error).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Store(Arc<QueueError>),
    #[error("encoding the answer: {0}")]
    Encode(Arc<serde_json::Error>),
    /// Building the answer was refused (the stats' numbers).
    #[error("{0}")]
    App(Arc<AppError>),
}

impl From<ReadError> for AppError {
    fn from(err: ReadError) -> Self {
        match err {
            ReadError::Store(e) => match Arc::try_unwrap(e) {
                Ok(e) => e.into(),
                // Shared by several requests: only the store's own failures reach here.
                Err(e) => match &*e {
                    QueueError::Redis(_) | QueueError::Pool(_) => {
                        tracing::error!(error = %e, "Redis unavailable");
                        Self::Unavailable("the queue store is unreachable; retry shortly".into())
                    }
                    _ => Self::Internal(anyhow::anyhow!("{e}")),
                },
            },
            ReadError::Encode(e) => Self::Internal(anyhow::anyhow!("{e}")),
            ReadError::App(e) => match Arc::try_unwrap(e) {
                Ok(e) => e,
                Err(e) => match &*e {
                    Self::Unavailable(m) => Self::Unavailable(m.clone()),
                    _ => Self::Internal(anyhow::anyhow!("{e}")),
                },
            },
        }
    }
}

impl From<AppError> for ReadError {
    fn from(e: AppError) -> Self {
        Self::App(Arc::new(e))
    }
}

impl From<QueueError> for ReadError {
    fn from(e: QueueError) -> Self {
        Self::Store(Arc::new(e))
    }
}

/// A read's outcome: the answer, or `None` when there is no such job.
pub type Read = Result<Option<Arc<Answer>>, ReadError>;

impl Reads {
    /// A job's document, or its summary: shared with the requests that arrived with it, and
    /// built again only when the job's tag moved since the kept answer.
    pub async fn job(
        &self,
        queue: &Queue,
        tenant: &TenantId,
        id: &CorrelationId,
        summary: bool,
    ) -> Read {
        let key = ReadKey::Job {
            tenant: tenant.clone(),
            id: id.clone(),
            summary,
        };
        let (queue, tenant, id) = (queue.clone(), tenant.clone(), id.clone());
        self.read(key, move |kept| async move {
            if summary {
                // One HMGET whatever happens: only the encoding is saved when unchanged.
                let Some(t) = queue.summary(&tenant, &id).await? else {
                    return Ok(None);
                };
                return match kept.filter(|k| k.etag == t.etag) {
                    Some(k) => Ok(Some(k)),
                    None => Answer::json(t.etag, &t.value).map(Some),
                };
            }
            // One HGETALL: a job whose tag is the kept one is neither decoded nor encoded.
            match queue
                .get_unless(&tenant, &id, kept.as_ref().map(|k| &k.etag))
                .await?
            {
                None => Ok(None),
                Some(Fresh::Same) => Ok(kept),
                Some(Fresh::New(t)) => Answer::json(t.etag, &t.value).map(Some),
            }
        })
        .await
    }

    /// The stats (`routes::stats` builds them): shared, and `read` is given the kept answer
    /// to reuse while the stats' tag holds.
    pub async fn stats<F, Fut>(&self, tenant: Option<TenantId>, read: F) -> Read
    where
        F: FnOnce(Option<Arc<Answer>>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Read> + Send + 'static,
    {
        self.read(ReadKey::Stats { tenant }, read).await
    }

    /// A page of the tenant's jobs: shared, and built again only when its tag (its members'
    /// versions) moved since the kept answer.
    pub async fn list(&self, queue: &Queue, tenant: &TenantId, page: PageQuery) -> Read {
        let key = ReadKey::List {
            tenant: tenant.clone(),
            page: page.clone(),
        };
        let (queue, tenant) = (queue.clone(), tenant.clone());
        self.read(key, move |kept| async move {
            let p = &page;
            if let Some(k) = kept {
                let tag = queue
                    .list_tag(
                        &tenant,
                        p.state,
                        p.tool.as_ref(),
                        p.limit,
                        p.cursor,
                        p.with_result,
                    )
                    .await?;
                if tag == k.etag {
                    return Ok(Some(k));
                }
            }
            let got = queue
                .list(
                    &tenant,
                    p.state,
                    p.tool.as_ref(),
                    p.limit,
                    p.cursor,
                    p.with_result,
                )
                .await?;
            let list = JobList {
                jobs: got.jobs.into_iter().map(JobSummary::from).collect(),
                next_cursor: got.next_cursor,
            };
            Answer::json(got.etag, &list).map(Some)
        })
        .await
    }
}
