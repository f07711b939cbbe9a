//! A submit that waits for its job's end (`Prefer: wait=N` on `POST /v1/jobs`, RFC 7240): one
//! request instead of a submit and a long-poll, and no registration round trip for the wait.
//!
//! The wait is ready before the job exists: the caller's task subscribes to the job's notify tag
//! on the process's [`Listener`] (a local registration: the listener's channel subscription is
//! already open, in every Redis mode), and the job is created registered for watchers — its
//! `watch` field (the time until which its changes are published, see `emit` in
//! `scripts/lua/common.lua`) is among its creation fields ([`JobSpec::watch_until_ms`]) — so
//! `watch.lua` is not needed. The job's end arrives with its hash (`publish_end` in `common.lua`,
//! [`Subscription::end_after`]): that is the answer, with no read after it. Any other wake-up
//! (a tag alone: an end too big to be sent, a reconnect) re-reads the hash with a plain
//! `HGETALL`, as [`Queue::wait_terminal`] does while its registration is young, until the job is
//! terminal or the deadline passes; past half the registration's lifetime the wait becomes
//! [`Queue::wait_terminal`]'s (which registers again).
//!
//! An idempotent repeat (the job existed, registered or not) and a big scan (a parent and its
//! chunks) wait as `GET /v1/jobs/{id}?wait=` does: [`Queue::wait_terminal`] from the start.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use redis::AsyncCommands;
use tokio::time::Instant;

use super::listen::event_position;
use super::{Listener, Queue, QueueError, Submitted, Subscription, WATCH_MS};
use crate::domain::{CorrelationId, JobDocument, JobId, JobState, TenantId};
use crate::request::JobSpec;

impl Queue {
    /// Submits `spec` through `submit` (the caller's admission path: its checks, audit and
    /// counts) and waits up to `timeout` for the job to reach a terminal state: the job as it
    /// is then (still `queued`, `running`, `scheduled`, `awaiting_approval`… when the wait
    /// ended first). A refused submit is the error it was; once the job is created a failing
    /// wait (Redis gone meanwhile) answers with the job as the submit left it, since the job
    /// exists and the client must learn its ID.
    pub async fn submit_and_wait<F, Fut>(
        &self,
        listener: &Listener,
        tenant: &TenantId,
        spec: &JobSpec,
        timeout: Duration,
        submit: F,
    ) -> Result<Submitted, QueueError>
    where
        F: FnOnce(JobSpec) -> Fut,
        Fut: Future<Output = Result<Submitted, QueueError>>,
    {
        let start = Instant::now();
        let deadline = start + timeout;
        let mut spec = spec.clone();
        let cid = spec
            .correlation_id
            .get_or_insert_with(CorrelationId::generate)
            .clone();
        let tool = spec.tool.clone();
        // A big scan's parent waits as a GET does (its chunks are not registered).
        let single = spec.chunk_hosts.is_none() && spec.zone_plan.is_none();
        let sub = (single && !timeout.is_zero()).then(|| {
            spec.watch_until_ms = Some(super::listing::now_ms() + WATCH_MS);
            listener.subscribe(&Self::tag(&tool, tenant, &cid))
        });
        let submitted = submit(spec).await?;
        if timeout.is_zero() || submitted.document.state.is_terminal() {
            return Ok(submitted);
        }
        let waited = match sub {
            Some(sub) if submitted.created => {
                let created = Created {
                    id: JobId::new(
                        tool.clone(),
                        submitted.document.zone.clone(),
                        tenant.clone(),
                        cid.clone(),
                    ),
                    registered: start,
                    deadline,
                };
                self.follow_created(listener, created, sub, submitted.document.clone())
                    .await
            }
            _ => {
                let left = deadline.saturating_duration_since(Instant::now());
                self.wait_terminal(listener, tenant, &cid, left)
                    .await
                    .map(|w| w.map(super::Waited::into_document))
            }
        };
        match waited {
            Ok(Some(document)) => Ok(Submitted {
                created: submitted.created,
                document,
            }),
            // Gone meanwhile (expired, or its ID taken by another tool's job): as submitted.
            Ok(None) => Ok(submitted),
            Err(err) => {
                tracing::warn!(correlation_id = %cid, error = %err, "A submit's wait failed; answering with the job as submitted");
                Ok(submitted)
            }
        }
    }

    /// The wait for a job this request created registered, subscribed before its creation: the
    /// end as published, or else a plain `HGETALL` per wake-up, no script, and the document
    /// decoded only from the last read (a wake-up for `running` costs the read, not a decode);
    /// `doc` is the job as the submit left it. None when the job is gone.
    async fn follow_created(
        &self,
        listener: &Listener,
        job: Created,
        mut sub: Subscription,
        doc: JobDocument,
    ) -> Result<Option<JobDocument>, QueueError> {
        // The creation's registration is used while young, like `wait_terminal`'s own.
        let young = job.registered + Duration::from_millis(WATCH_MS / 2);
        let mut last: Option<(JobId, HashMap<String, String>)> = None;
        loop {
            let now = Instant::now();
            let ended = last
                .as_ref()
                .and_then(|(_, h)| h.get("state"))
                .and_then(|s| s.parse::<JobState>().ok())
                .is_some_and(|s| s.is_terminal());
            if ended || now >= job.deadline {
                return Ok(match last {
                    Some((id, hash)) => self.decoded(&id, &hash).await,
                    None => Some(doc),
                });
            }
            if now >= young {
                // A long wait outlives the creation's registration: the long-poll's from here.
                drop(sub);
                let left = job.deadline - now;
                return Ok(self
                    .wait_terminal(listener, &job.id.tenant, &job.id.cid, left)
                    .await?
                    .map(super::Waited::into_document));
            }
            // Re-read at least every 5 s even without a message (belt and braces).
            let wait = (job.deadline.min(young) - now).min(Duration::from_secs(5));
            sub.wait(wait).await;
            let seen = last.as_ref().map_or(0, |(_, h)| event_position(h));
            if let Some(hash) = sub.end_after(seen) {
                last = Some((job.id.clone(), hash));
                continue;
            }
            let read = self
                .find_hash(&job.id.tenant, &job.id.cid, |id| async move {
                    let mut con = self.connection().await?;
                    Ok(con.hgetall(self.keys.job(&id)).await?)
                })
                .await?;
            match read {
                Some((id, hash)) if id.tool == job.id.tool => last = Some((id, hash)),
                _ => return Ok(None),
            }
        }
    }

    /// The document of a hash read (as [`Queue::get`] gives it).
    async fn decoded(&self, id: &JobId, hash: &HashMap<String, String>) -> Option<JobDocument> {
        let mut docs = [JobDocument::from_job(id, hash)?];
        self.explain_waits(&mut docs).await;
        let [doc] = docs;
        Some(doc)
    }
}

/// The job a waiting submit created, and its wait's times.
struct Created {
    id: JobId,
    /// When its registration started (at most: taken before the submit).
    registered: Instant,
    deadline: Instant,
}
