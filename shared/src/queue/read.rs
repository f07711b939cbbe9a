//! Reading jobs: finding which tool holds an ID (this process's cache, else the listing),
//! reading or watching a job, the long-poll, and the stored events.

use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncCommands;

use super::{JobEvent, LOCATE_CACHE, Listener, Place, Queue, QueueError, Tagged, WATCH_MS};
use crate::domain::{CorrelationId, JobDocument, JobId, TenantId, ToolName};
use crate::scripts::WatchMode;

/// What a long-poll ([`Queue::wait_terminal`]) ended with: the job as last read (final, or as
/// it was when the wait ended) and the hash it was read from.
#[derive(Debug, Clone)]
pub struct Waited {
    hash: HashMap<String, String>,
    doc: JobDocument,
}

impl Waited {
    pub fn document(&self) -> &JobDocument {
        &self.doc
    }

    pub fn into_document(self) -> JobDocument {
        self.doc
    }

    /// The document and its tag, as a plain read ([`Queue::get_unless`]) gives them for the same
    /// hash.
    pub fn tagged(self, tenant: &TenantId) -> Tagged<JobDocument> {
        Tagged {
            etag: super::versions::job_tag("j", tenant, &self.hash, &self.doc),
            value: self.doc,
        }
    }
}

impl Queue {
    fn cached_tool(&self, tenant: &TenantId, cid: &CorrelationId) -> Option<Place> {
        self.located
            .lock()
            .expect("located lock")
            .get(&crate::keys::job_ref(tenant, cid))
            .cloned()
    }

    pub(super) fn remember(&self, id: &JobId) {
        let mut map = self.located.lock().expect("located lock");
        if map.len() >= LOCATE_CACHE {
            map.clear();
        }
        map.insert(id.job_ref(), (id.tool.clone(), id.zone.clone()));
    }

    /// Which queue (tool, zone) holds this tenant's correlation ID (from the tenant's listing).
    pub async fn locate(
        &self,
        tenant: &TenantId,
        cid: &CorrelationId,
    ) -> Result<Option<Place>, QueueError> {
        let mut place = self.indexed(tenant, cid).await?;
        if place.is_none()
            && let Some(parent) = crate::domain::parent_of(cid)
        {
            // A chunk of a big scan is not listed; it lives under its parent's tool, in the
            // zone its parent's plan gives it.
            if let Some((tool, zone)) = self.indexed(tenant, &parent).await? {
                let pid = JobId::new(tool, zone, tenant.clone(), parent);
                place = Some((pid.tool.clone(), self.chunk_zone(&pid, cid).await?));
            }
        }
        if let Some((t, z)) = &place {
            self.remember(&JobId::new(
                t.clone(),
                z.clone(),
                tenant.clone(),
                cid.clone(),
            ));
        }
        Ok(place)
    }

    /// `id` in the zone the tenant's listing places it in (a chunk's mark of its parent names
    /// the chunk's zone; a parent spanning zones lives in its first one). `id` as given when
    /// the listing does not know it or Redis does not answer.
    pub async fn placed(&self, id: JobId) -> JobId {
        match self.tool_of(&id.tenant, &id.cid).await {
            Ok(Some((tool, zone))) if tool == id.tool && zone != id.zone => {
                JobId::new(tool, zone, id.tenant, id.cid)
            }
            _ => id,
        }
    }

    /// Reads a job through `read` (a plain read or a watch registration), trying the cached tool
    /// first; a cached tool whose job is gone is looked up again.
    async fn find<F, Fut>(
        &self,
        tenant: &TenantId,
        cid: &CorrelationId,
        read: F,
    ) -> Result<Option<(ToolName, JobDocument)>, QueueError>
    where
        F: Fn(JobId) -> Fut,
        Fut: std::future::Future<Output = Result<HashMap<String, String>, QueueError>>,
    {
        Ok(self
            .find_raw(tenant, cid, read)
            .await?
            .map(|(tool, _, doc)| (tool, doc)))
    }

    /// [`Queue::find`], with the hash (or the fields of it) that `read` returned.
    pub(super) async fn find_raw<F, Fut>(
        &self,
        tenant: &TenantId,
        cid: &CorrelationId,
        read: F,
    ) -> Result<Option<(ToolName, HashMap<String, String>, JobDocument)>, QueueError>
    where
        F: Fn(JobId) -> Fut,
        Fut: std::future::Future<Output = Result<HashMap<String, String>, QueueError>>,
    {
        let Some((id, h)) = self.find_hash(tenant, cid, read).await? else {
            return Ok(None);
        };
        let Some(doc) = JobDocument::from_job(&id, &h) else {
            return Ok(None);
        };
        let mut docs = [doc];
        self.explain_waits(&mut docs).await;
        let [doc] = docs;
        Ok(Some((id.tool, h, doc)))
    }

    /// Which job, and its hash (or the fields of it that `read` returned; `state` among them),
    /// trying the cached queue first: a cached queue whose job is gone is looked up again.
    pub(super) async fn find_hash<F, Fut>(
        &self,
        tenant: &TenantId,
        cid: &CorrelationId,
        read: F,
    ) -> Result<Option<(JobId, HashMap<String, String>)>, QueueError>
    where
        F: Fn(JobId) -> Fut,
        Fut: std::future::Future<Output = Result<HashMap<String, String>, QueueError>>,
    {
        let exists = |h: &HashMap<String, String>| {
            h.get("state")
                .is_some_and(|s| s.parse::<crate::domain::JobState>().is_ok())
        };
        if let Some((tool, zone)) = self.cached_tool(tenant, cid) {
            let id = JobId::new(tool, zone, tenant.clone(), cid.clone());
            let h = read(id.clone()).await?;
            if exists(&h) {
                return Ok(Some((id, h)));
            }
        }
        let Some((tool, zone)) = self.locate(tenant, cid).await? else {
            return Ok(None);
        };
        let id = JobId::new(tool, zone, tenant.clone(), cid.clone());
        let h = read(id.clone()).await?;
        Ok(exists(&h).then_some((id, h)))
    }

    /// The job document, or None (also for another tenant's ID).
    pub async fn get(
        &self,
        tenant: &TenantId,
        cid: &CorrelationId,
    ) -> Result<Option<(ToolName, JobDocument)>, QueueError> {
        self.find(tenant, cid, |id| async move {
            let mut con = self.connection().await?;
            Ok(con.hgetall(self.keys.job(&id)).await?)
        })
        .await
    }

    /// Registers a watcher (for about a minute; call again to extend) and reads the job: from
    /// now on its changes are published, and with [`WatchMode::Stream`] its events are stored.
    /// Subscribe to the job's tag *before* calling this, so no change can slip in between.
    pub async fn watch(
        &self,
        tenant: &TenantId,
        cid: &CorrelationId,
        mode: WatchMode,
    ) -> Result<Option<(ToolName, JobDocument)>, QueueError> {
        Ok(self
            .watch_raw(tenant, cid, mode)
            .await?
            .map(|(tool, _, doc)| (tool, doc)))
    }

    /// [`Queue::watch`], with the hash the document was read from.
    async fn watch_raw(
        &self,
        tenant: &TenantId,
        cid: &CorrelationId,
        mode: WatchMode,
    ) -> Result<Option<(ToolName, HashMap<String, String>, JobDocument)>, QueueError> {
        self.find_raw(tenant, cid, |id| async move {
            let mut con = self.connection().await?;
            let tk = self.keys.job_keys(&id);
            Ok(self
                .scripts
                .watch(
                    &mut con,
                    &tk,
                    &id.job_ref(),
                    id.tool.as_str(),
                    WATCH_MS,
                    mode,
                )
                .await?)
        })
        .await
    }

    /// Stores a scheduled run's change summary on its job (computed once, when the run
    /// finished; reads never diff again).
    pub async fn record_change(
        &self,
        tenant: &TenantId,
        tool: &ToolName,
        cid: &CorrelationId,
        change: &str,
    ) -> Result<(), QueueError> {
        let zone = match self.tool_of(tenant, cid).await? {
            Some((t, z)) if &t == tool => z,
            _ => return Ok(()),
        };
        let id = JobId::new(tool.clone(), zone, tenant.clone(), cid.clone());
        let mut con = self.connection().await?;
        let () = redis::cmd("HSET")
            .arg(self.keys.job(&id))
            .arg("change")
            .arg(change)
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    /// A few fields of a job (`HMGET`, never the whole document with its result): None when
    /// there is no such job. Absent fields are absent from the map.
    pub async fn job_fields(
        &self,
        tenant: &TenantId,
        cid: &CorrelationId,
        fields: &[&str],
    ) -> Result<Option<HashMap<String, String>>, QueueError> {
        let Some((tool, zone)) = self.tool_of(tenant, cid).await? else {
            return Ok(None);
        };
        let id = JobId::new(tool, zone, tenant.clone(), cid.clone());
        let mut con = self.connection().await?;
        let values: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.keys.job(&id))
            .arg(fields)
            .query_async(&mut con)
            .await?;
        if values.iter().all(Option::is_none) {
            return Ok(None);
        }
        Ok(Some(
            fields
                .iter()
                .zip(values)
                .filter_map(|(k, v)| v.map(|v| ((*k).to_owned(), v)))
                .collect(),
        ))
    }

    /// The notify tag of a job (what [`Listener::subscribe`] takes).
    pub fn tag(tool: &ToolName, tenant: &TenantId, cid: &CorrelationId) -> String {
        // The tag does not name the zone: a tenant's ID is one job whatever its zone.
        JobId::new(
            tool.clone(),
            Default::default(),
            tenant.clone(),
            cid.clone(),
        )
        .tag()
    }

    /// The queue that holds a correlation ID: this process's cache, else Redis's index.
    pub(super) async fn tool_of(
        &self,
        tenant: &TenantId,
        cid: &CorrelationId,
    ) -> Result<Option<Place>, QueueError> {
        match self.cached_tool(tenant, cid) {
            Some(t) => Ok(Some(t)),
            None => self.locate(tenant, cid).await,
        }
    }

    /// Long-poll: the document once terminal, or as it is when `timeout` passes. One round trip
    /// per read: subscribe locally, then register and read in one script. The last read is the
    /// answer (with the hash it came from, for its tag): nothing is read again after it. The
    /// job's end, published with its hash ([`super::Subscription::end_after`]), is such a read.
    pub async fn wait_terminal(
        &self,
        listener: &Listener,
        tenant: &TenantId,
        cid: &CorrelationId,
        timeout: Duration,
    ) -> Result<Option<Waited>, QueueError> {
        let plain = |tenant, cid| {
            self.find_raw(tenant, cid, |id| async move {
                let mut con = self.connection().await?;
                Ok(con.hgetall(self.keys.job(&id)).await?)
            })
        };
        if timeout.is_zero() {
            let found = plain(tenant, cid).await?;
            return Ok(found.map(|(_, hash, doc)| Waited { hash, doc }));
        }
        let Some((mut tool, _)) = self.tool_of(tenant, cid).await? else {
            return Ok(None);
        };
        let mut sub = listener.subscribe(&Self::tag(&tool, tenant, cid));
        let deadline = tokio::time::Instant::now() + timeout;
        // While the registration is young, a re-read is a plain `HGETALL` (no script).
        let mut registered: Option<tokio::time::Instant> = None;
        let young = Duration::from_millis(WATCH_MS / 2);
        loop {
            let read = match registered {
                Some(at) if at.elapsed() < young => plain(tenant, cid).await?,
                _ => {
                    let at = tokio::time::Instant::now();
                    let read = self.watch_raw(tenant, cid, WatchMode::Notify).await?;
                    registered = Some(at);
                    read
                }
            };
            let Some((found, hash, doc)) = read else {
                return Ok(None);
            };
            if found != tool {
                // The ID now belongs to another tool's job (the cached one expired): follow it.
                sub = listener.subscribe(&Self::tag(&found, tenant, cid));
                tool = found;
                registered = None;
                continue;
            }
            if !hash.contains_key("watch") {
                // A new job under this ID (the registered one expired): register on it.
                registered = None;
                continue;
            }
            let now = tokio::time::Instant::now();
            if doc.state.is_terminal() || now >= deadline {
                return Ok(Some(Waited { hash, doc }));
            }
            // Re-read at least every 5 s even without a message (belt and braces).
            let wait = (deadline - now).min(Duration::from_secs(5));
            sub.wait(wait).await;
            // The end as published is the answer, with no read after it.
            if let Some(end) = sub.end_after(super::listen::event_position(&hash)) {
                let id = JobId::new(tool.clone(), doc.zone.clone(), tenant.clone(), cid.clone());
                if let Some(doc) = JobDocument::from_job(&id, &end) {
                    return Ok(Some(Waited { hash: end, doc }));
                }
            }
        }
    }

    /// Stored events after position `after`, at most `max` (a job's stream exists only once it
    /// had a progress/output event or an SSE watcher: see [`Queue::watch`]).
    pub async fn events(
        &self,
        tool: &ToolName,
        tenant: &TenantId,
        cid: &CorrelationId,
        after: u64,
        max: usize,
    ) -> Result<Vec<JobEvent>, QueueError> {
        let zone = match self.tool_of(tenant, cid).await? {
            Some((t, z)) if &t == tool => z,
            _ => return Ok(Vec::new()),
        };
        let mut con = self.connection().await?;
        let id = JobId::new(tool.clone(), zone, tenant.clone(), cid.clone());
        let key = self.keys.job_keys(&id).events(&id.job_ref());
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&key)
            .arg(format!("(0-{after}"))
            .arg("+")
            .arg("COUNT")
            .arg(max)
            .query_async(&mut con)
            .await?;
        Ok(reply
            .ids
            .into_iter()
            .filter_map(|e| {
                let position = e.id.strip_prefix("0-")?.parse().ok()?;
                let kind: String = e.get("type")?;
                let data: String = e.get("data")?;
                Some(JobEvent {
                    position,
                    kind,
                    data,
                })
            })
            .collect())
    }
}
