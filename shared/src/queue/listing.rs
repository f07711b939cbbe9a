//! The tenant's listing, which is also its correlation-ID index: one sorted set per tenant,
//! `P:jobs:<tenant>`, member = correlation ID, score = `created_ms × 1024 + tool number`.
//! - listing: newest first by score (the tool number only breaks ties within a millisecond);
//! - index: `ZSCORE` tells which queue holds an ID (`score mod 1024`), and `ZADD NX` claims an
//!   ID for a queue atomically at submit (a second tool under the same ID gets 409);
//! - the numbers come from `P:tools:no` (queue → number, assigned once, fleet-wide, at most
//!   [`MAX_TOOLS`]); a queue is a tool in a zone, named by [`crate::keys::queue_tag`] (`nmap`,
//!   `nmap@dmz`), so the score also says the job's zone; `created_ms × 1024 + n` stays an exact
//!   double until the year 2248.
//!
//! One member per job, instead of a listing entry *and* an index key, saves ~180 bytes per job
//! and two commands per job (no index `SET`, no index `PEXPIRE` when the job finishes). Jobs
//! expire on their own TTLs (a minute to a week), so the sweeper walks every listing oldest-first
//! in bounded steps and removes the members whose job is gone: a listing shrinks with the jobs it
//! points to, whatever their TTL.

use std::collections::HashMap;

use redis::AsyncCommands;

use super::Place;
use super::versions::{
    JobPage, JobVersion, LIST_VERSION_FIELDS, SUMMARY_FIELDS, SUMMARY_WITH_RESULT,
};
use super::{Queue, QueueError};
use crate::domain::{
    CorrelationId, JobDocument, JobId, JobState, Tagger, TenantId, ToolName, Zone,
};

/// Queues (tool in a zone) a deployment can number (the score keeps 10 bits for the queue).
pub const MAX_TOOLS: u64 = 1024;

/// The listing score of a job created at `created_ms` by tool number `no`.
pub(super) fn score(created_ms: u64, no: u64) -> u64 {
    created_ms * MAX_TOOLS + no
}

fn tool_no_of(score: u64) -> u64 {
    score % MAX_TOOLS
}

/// Queue ↔ number, as assigned in `P:tools:no` (cached; assignments never change).
#[derive(Debug, Default)]
pub(super) struct ToolNumbers {
    by_tool: HashMap<Place, u64>,
    by_no: HashMap<u64, Place>,
}

/// The queue a `P:tools:no` field names (`nmap`, `nmap@dmz`).
fn place_of(tag: &str) -> Option<Place> {
    let (tool, zone) = match tag.split_once('@') {
        Some((t, z)) => (t, Zone::parse(z).ok()?),
        None => (tag, Zone::default()),
    };
    Some((ToolName::parse(tool).ok()?, zone))
}

pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Where the sweeper is: the SSCAN cursor over the tenant registry, and the position in the current one.
#[derive(Debug, Default)]
pub(super) struct SweepCursor {
    scan: u64,
    lists: Vec<String>,
    /// Score after which the current list (`lists[0]`) continues.
    after: Option<f64>,
}

/// What one sweep step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub checked: usize,
    pub removed: usize,
}

impl Queue {
    /// The number of `tool`'s queue in `zone` (assigned on first use, fleet-wide).
    pub(super) async fn tool_no(&self, tool: &ToolName, zone: &Zone) -> Result<u64, QueueError> {
        let place = (tool.clone(), zone.clone());
        if let Some(n) = self
            .numbers
            .lock()
            .expect("numbers lock")
            .by_tool
            .get(&place)
        {
            return Ok(*n);
        }
        let key = self.keys.tool_numbers();
        let tag = crate::keys::queue_tag(tool, zone);
        let mut con = self.connection().await?;
        let mut n: Option<u64> = con.hget(&key, &tag).await?;
        if n.is_none() {
            // `#next` counts assignments; a lost race only skips a number.
            let next: u64 = con.hincr(&key, "#next", 1).await?;
            if next >= MAX_TOOLS {
                return Err(QueueError::Redis(redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "more than 1024 queues (tool, zone) numbered in this keyspace",
                ))));
            }
            let _: bool = con.hset_nx(&key, &tag, next).await?;
            n = con.hget(&key, &tag).await?;
        }
        let n = n.unwrap_or(0);
        let mut map = self.numbers.lock().expect("numbers lock");
        map.by_tool.insert(place.clone(), n);
        map.by_no.insert(n, place);
        Ok(n)
    }

    /// The queue with number `no` (reloading the numbers once when it is not known yet).
    pub(super) async fn tool_by_no(&self, no: u64) -> Result<Option<Place>, QueueError> {
        if let Some(t) = self.numbers.lock().expect("numbers lock").by_no.get(&no) {
            return Ok(Some(t.clone()));
        }
        let mut con = self.connection().await?;
        let all: HashMap<String, u64> = con.hgetall(self.keys.tool_numbers()).await?;
        let mut map = self.numbers.lock().expect("numbers lock");
        for (t, n) in all {
            if let Some(place) = place_of(&t) {
                map.by_tool.insert(place.clone(), n);
                map.by_no.insert(n, place);
            }
        }
        Ok(map.by_no.get(&no).cloned())
    }

    /// Which queue (tool, zone) holds this tenant's correlation ID (the listing's score), if any.
    pub(super) async fn indexed(
        &self,
        tenant: &TenantId,
        cid: &CorrelationId,
    ) -> Result<Option<Place>, QueueError> {
        let mut con = self.connection().await?;
        let s: Option<f64> = con
            .zscore(self.keys.tenant_jobs(tenant), cid.as_str())
            .await?;
        match s {
            Some(s) => self.tool_by_no(tool_no_of(s as u64)).await,
            None => Ok(None),
        }
    }

    /// The tenant's jobs, newest first. `cursor` is the created-ms bound of the previous page.
    /// Each job is read with one `HMGET` of its summary fields (DESIGN §15; and its result only
    /// `with_result`), pipelined: a page costs one `ZRANGE` and one pipeline whatever its
    /// length (more only when filters skip jobs). The page's tag is folded from its jobs'
    /// versions (`versions.rs`).
    pub async fn list(
        &self,
        tenant: &TenantId,
        state: Option<JobState>,
        tool: Option<&ToolName>,
        limit: usize,
        cursor: Option<u64>,
        with_result: bool,
    ) -> Result<JobPage, QueueError> {
        let fields = if with_result {
            SUMMARY_WITH_RESULT
        } else {
            SUMMARY_FIELDS
        };
        let rows = self
            .list_page(tenant, state, tool, limit, cursor, fields)
            .await?;
        Ok(self.tagged_page(tenant, rows, with_result).await)
    }

    /// Only the tag [`Queue::list`] would give, from the same members' version fields (6 a job
    /// instead of the summary's 23): what an `If-None-Match` is checked against first.
    pub async fn list_tag(
        &self,
        tenant: &TenantId,
        state: Option<JobState>,
        tool: Option<&ToolName>,
        limit: usize,
        cursor: Option<u64>,
        with_result: bool,
    ) -> Result<crate::domain::ETag, QueueError> {
        let rows = self
            .list_page(tenant, state, tool, limit, cursor, LIST_VERSION_FIELDS)
            .await?;
        Ok(self.tagged_page(tenant, rows, with_result).await.etag)
    }

    async fn tagged_page(
        &self,
        tenant: &TenantId,
        (rows, next): (Vec<(JobDocument, JobVersion)>, Option<u64>),
        with_result: bool,
    ) -> JobPage {
        let (mut jobs, versions): (Vec<JobDocument>, Vec<JobVersion>) = rows.into_iter().unzip();
        self.explain_waits(&mut jobs).await;
        let mut t = Tagger::new(if with_result { "L" } else { "l" });
        t.str(tenant.as_str());
        for (doc, v) in jobs.iter().zip(&versions) {
            v.fold(&mut t, doc);
        }
        t.num(next.map_or(0, |n| n + 1));
        JobPage {
            jobs,
            next_cursor: next,
            etag: t.finish(),
        }
    }

    async fn list_page(
        &self,
        tenant: &TenantId,
        state: Option<JobState>,
        tool: Option<&ToolName>,
        limit: usize,
        cursor: Option<u64>,
        fields: &[&str],
    ) -> Result<(Vec<(JobDocument, JobVersion)>, Option<u64>), QueueError> {
        let mut con = self.connection().await?;
        let list = self.keys.tenant_jobs(tenant);
        let mut out = Vec::new();
        let mut max = cursor.map_or("+inf".to_owned(), |c| format!("({c}"));
        // Without a filter every member read fills the page: read just enough.
        let want = if state.is_none() && tool.is_none() {
            limit
        } else {
            limit * 2
        };
        // Filters are applied after reading; read in pages until the page is full.
        for _ in 0..20 {
            let page: Vec<(String, f64)> = redis::cmd("ZRANGE")
                .arg(&list)
                .arg(&max)
                .arg("-inf")
                .arg("BYSCORE")
                .arg("REV")
                .arg("LIMIT")
                .arg(0)
                .arg(want)
                .arg("WITHSCORES")
                .query_async(&mut con)
                .await?;
            if page.is_empty() {
                return Ok((out, None));
            }
            let mut pipe = redis::pipe();
            let mut refs = Vec::new();
            for (member, score) in &page {
                let Some(id) = self.listed(tenant, member, *score).await? else {
                    continue;
                };
                pipe.cmd("HMGET").arg(self.keys.job(&id)).arg(fields);
                refs.push((member.clone(), *score, id));
            }
            let replies: Vec<Vec<Option<String>>> = pipe.query_async(&mut con).await?;
            let young = self.youngest_expirable() as f64;
            let mut gone = Vec::new();
            for (values, (member, score, id)) in replies.into_iter().zip(refs) {
                max = format!("({score}");
                let h = super::versions::field_map(fields, values);
                let Some(doc) = JobDocument::from_job(&id, &h) else {
                    // A member younger than any retention is a job being submitted (its
                    // listing entry is written before its hash): skipped, never removed.
                    if score < young {
                        gone.push((member, score as u64));
                    }
                    continue;
                };
                if state.is_some_and(|s| s != doc.state)
                    || tool.is_some_and(|t| t.as_str() != doc.tool)
                {
                    continue;
                }
                out.push((doc, JobVersion::of(&h)));
                if out.len() == limit {
                    break;
                }
            }
            if !gone.is_empty() {
                // Only while unchanged: a resubmit may have listed the ID anew meanwhile.
                self.scripts.listing_drop(&mut con, &list, &gone).await?;
            }
            if out.len() == limit {
                let last = max.trim_start_matches('(').parse::<f64>().unwrap_or(0.0);
                return Ok((out, Some(last as u64)));
            }
            if page.len() < want {
                // The listing has no more members below this one.
                return Ok((out, None));
            }
        }
        Ok((out, None))
    }

    /// One bounded step of the listing sweeper: checks up to `budget` listing members, oldest
    /// first, and removes those whose job has expired. Any number of API processes may run it.
    pub async fn sweep_listings(&self, budget: usize) -> Result<Swept, QueueError> {
        let mut con = self.connection().await?;
        let mut done = Swept::default();
        let mut cur = std::mem::take(&mut *self.sweep.lock().expect("sweep lock"));
        let res = async {
            while done.checked < budget {
                if cur.lists.is_empty() {
                    // The registry of tenants, not a keyspace SCAN: one key, so it reads the
                    // same on one server and across a cluster's nodes.
                    let (next, tenants): (u64, Vec<String>) = redis::cmd("SSCAN")
                        .arg(self.keys.tenants())
                        .arg(cur.scan)
                        .arg("COUNT")
                        .arg(100)
                        .query_async(&mut con)
                        .await?;
                    cur.scan = next;
                    cur.lists = tenants
                        .iter()
                        .filter_map(|t| TenantId::parse(t).ok())
                        .map(|t| self.keys.tenant_jobs(&t))
                        .collect();
                    cur.after = None;
                    if cur.lists.is_empty() {
                        if next == 0 {
                            break; // a whole pass done
                        }
                        continue;
                    }
                }
                let list = cur.lists[0].clone();
                let tenant = list
                    .strip_prefix(&self.keys.tenant_jobs_pattern().replace('*', ""))
                    .and_then(|t| TenantId::parse(t).ok());
                let Some(tenant) = tenant else {
                    cur.lists.remove(0);
                    continue;
                };
                // (No member is dropped by its age alone: a retried job lives on past any
                // bound from its creation, and the submit trusts a member it did not find to
                // mean that no job lives under the ID; see `Listed::Fresh`.)
                let from = cur.after.map_or("-inf".to_owned(), |a| format!("({a}"));
                // No job can have expired before the shortest retention has passed since its
                // creation: younger members are not checked at all.
                let young = self.youngest_expirable();
                let step = (budget - done.checked).clamp(1, 500);
                let page: Vec<(String, f64)> = redis::cmd("ZRANGE")
                    .arg(&list)
                    .arg(&from)
                    .arg(format!("({young}"))
                    .arg("BYSCORE")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(step)
                    .arg("WITHSCORES")
                    .query_async(&mut con)
                    .await?;
                let mut pipe = redis::pipe();
                let mut gone: Vec<(String, u64)> = Vec::new();
                let mut asked: Vec<(String, u64)> = Vec::new();
                for (member, score) in &page {
                    let entry = (member.clone(), *score as u64);
                    match self.listed(&tenant, member, *score).await? {
                        Some(id) => {
                            pipe.exists(self.keys.job(&id));
                            asked.push(entry);
                        }
                        None => gone.push(entry),
                    }
                }
                let alive: Vec<i64> = pipe.query_async(&mut con).await?;
                gone.extend(
                    asked
                        .into_iter()
                        .zip(&alive)
                        .filter(|(_, a)| **a == 0)
                        .map(|(m, _)| m),
                );
                done.checked += page.len();
                if !gone.is_empty() {
                    // Only while unchanged: a submit reusing an expired job's ID lists it anew
                    // between the EXISTS above and here.
                    done.removed +=
                        self.scripts.listing_drop(&mut con, &list, &gone).await? as usize;
                }
                if page.len() < step {
                    cur.lists.remove(0);
                    cur.after = None;
                } else {
                    cur.after = page.last().map(|(_, s)| *s);
                }
            }
            Ok::<_, QueueError>(())
        }
        .await;
        *self.sweep.lock().expect("sweep lock") = cur;
        res.map(|_| done)
    }

    /// The listing score below which a member's job may have expired: no job expires before
    /// the shortest retention has passed since its creation.
    fn youngest_expirable(&self) -> u64 {
        let shortest = self
            .settings
            .result_ttl_ms
            .min(self.settings.dead_ttl_ms)
            .min(self.job_ttl_ms);
        score(now_ms().saturating_sub(shortest), 0)
    }

    /// The job a listing member names (its tool from the score).
    pub(super) async fn listed(
        &self,
        tenant: &TenantId,
        member: &str,
        score: f64,
    ) -> Result<Option<JobId>, QueueError> {
        let Ok(cid) = CorrelationId::parse(member) else {
            return Ok(None);
        };
        Ok(self
            .tool_by_no(tool_no_of(score as u64))
            .await?
            .map(|(tool, zone)| JobId::new(tool, zone, tenant.clone(), cid)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_score_keeps_time_order_and_the_tool_exactly() {
        let now = 1_800_000_000_000u64;
        for no in [0, 1, 7, MAX_TOOLS - 1] {
            let s = score(now, no);
            assert_eq!((s as f64) as u64, s, "exact as a double");
            assert_eq!(tool_no_of((s as f64) as u64), no);
            assert!(score(now + 1, 0) > s);
        }
        // Year 2248 still fits in a double's 53 bits.
        assert!(score(8_796_093_022_207, MAX_TOOLS - 1) < (1u64 << 53));
    }
}
