//! What both front doors (REST `/v1/schedules`, MCP `schedule_*`) do with schedules: one call
//! each, returning typed documents. Reads never load a run's result: a run's state and times
//! are read field by field, and its change summary is the one stored when it finished
//! (`change` on the job, written once by the finished-job handler), never recomputed here.

use serde::Serialize;
use serde_json::Value;

use super::fire::refusal;
use super::store::{Put, ScheduleView, StoreError};
use super::{ScheduleBody, ScheduleDef, Scheduler, rfc3339};
use crate::domain::{CorrelationId, JobState, TenantId};
use crate::queue::QueueError;
use crate::reload::Live;
use crate::request::{CallerScope, RequestError};
use crate::scripts::TenantCaps;
use crate::validate::ValidationError;

/// The longest schedule id: a run's correlation ID is `<id>.<slot seconds>`, at most 64.
pub const MAX_ID: usize = 48;
/// The longest id of a schedule whose runs are big scans (its template is split into chunks):
/// its longest run ID, `<id>.t<13-digit ms>` (a trigger), must stay within
/// [`crate::request::MAX_PARENT_ID`] so that chunk IDs `<run>:<n>` fit.
pub const MAX_BIG_SCAN_ID: usize = crate::request::MAX_PARENT_ID - ".t".len() - 13;
/// How many recent runs a document looks at for its last run and last change.
const RECENT: usize = 20;

/// Why a schedule call was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// A field of the request (422), or an unknown tool (404).
    #[error("{0:?}")]
    Invalid(RequestError),
    #[error("no such schedule")]
    NotFound,
    /// Creating one more would pass `SCANQ_TENANT_MAX_SCHEDULES`.
    #[error("your tenant has {cap} schedules, its cap; delete one or replace an existing one")]
    AtCap { cap: u64 },
    /// The schedule's template (or stored entry) is not accepted now (409).
    #[error("{0}")]
    Refused(String),
    /// The queue refused a triggered run (tenant cap, queue length) or is unreachable.
    #[error("{0}")]
    Queue(#[from] QueueError),
    /// The schedule store is unreachable.
    #[error("{0}")]
    Store(StoreError),
}

impl From<StoreError> for ScheduleError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Queue(q) => Self::Queue(q),
            e => Self::Store(e),
        }
    }
}

impl From<RequestError> for ScheduleError {
    fn from(e: RequestError) -> Self {
        Self::Invalid(e)
    }
}

impl From<ValidationError> for ScheduleError {
    fn from(e: ValidationError) -> Self {
        Self::Invalid(RequestError::Invalid(e))
    }
}

/// A schedule id: the correlation-ID alphabet, at most [`MAX_ID`] characters.
pub fn schedule_id(id: &str) -> Result<String, ValidationError> {
    let hint = format!("[A-Za-z0-9._:-]{{1,{MAX_ID}}}");
    let cid =
        CorrelationId::parse(id).map_err(|e| ValidationError::new("id", e.0, hint.clone()))?;
    if id.len() > MAX_ID {
        return Err(ValidationError::new(
            "id",
            format!("is {} characters long; the maximum is {MAX_ID}", id.len()),
            hint,
        ));
    }
    Ok(cid.to_string())
}

/// Whether a schedule fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleState {
    /// It fires at `next_run_at`.
    Active,
    /// Paused by its owner.
    Paused,
    /// Taken out of firing by the scheduler (`parked_reason`); a replace or resume restores it.
    Parked,
    /// No slot is left (`end_at` passed).
    Ended,
}

/// A schedule's newest run.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LastRun {
    pub correlation_id: String,
    /// None once the job has expired.
    pub state: Option<JobState>,
}

/// A schedule's public document: its definition, state, next slot, last run and last change.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ScheduleDocument {
    pub id: String,
    /// The definition (absent when the stored one is unreadable: the schedule is then parked).
    #[serde(flatten)]
    pub def: Option<ScheduleDef>,
    pub state: ScheduleState,
    pub paused: bool,
    /// Why the scheduler parked it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parked_reason: Option<String>,
    pub next_run_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub last_run: Option<LastRun>,
    /// The change summary stored with the newest run that has one (`run`, `against`,
    /// `changed`, `summary`), computed once when that run finished.
    #[schema(value_type = Option<Object>)]
    pub last_change: Option<Value>,
}

/// One run of a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RunEntry {
    pub correlation_id: String,
    pub slot_at: String,
    /// None once the job has expired.
    pub state: Option<JobState>,
    pub finished_at: Option<String>,
}

/// What a create-or-replace did.
#[derive(Debug, Clone)]
pub struct Upserted {
    pub created: bool,
    pub document: ScheduleDocument,
}

impl Upserted {
    /// The audit action of an upsert: `schedule.create` or `schedule.replace`, and
    /// `schedule.put` when it was refused.
    pub fn audit_action<E>(r: &Result<Self, E>) -> &'static str {
        match r {
            Ok(u) if u.created => "schedule.create",
            Ok(_) => "schedule.replace",
            Err(_) => "schedule.put",
        }
    }
}

/// The audit action of a pause (`true`) or resume.
pub fn pause_action(paused: bool) -> &'static str {
    if paused {
        "schedule.pause"
    } else {
        "schedule.resume"
    }
}

fn state_of(fields: &std::collections::HashMap<String, String>) -> Option<JobState> {
    fields.get("state").and_then(|s| s.parse().ok())
}

impl Scheduler {
    async fn found(&self, tenant: &TenantId, id: &str) -> Result<ScheduleView, ScheduleError> {
        let id = schedule_id(id)?;
        self.store
            .get(tenant, &id)
            .await?
            .ok_or(ScheduleError::NotFound)
    }

    /// Creates or replaces a schedule from a request body (the submit's template fields plus
    /// the schedule's own), judged against `live` and the minimum interval; a tenant at
    /// `SCANQ_TENANT_MAX_SCHEDULES` creates no more.
    pub async fn upsert(
        &self,
        live: &Live,
        narrow: &CallerScope,
        tenant: &TenantId,
        id: &str,
        body: &Value,
    ) -> Result<Upserted, ScheduleError> {
        let id = schedule_id(id)?;
        let def = ScheduleDef::try_from(ScheduleBody::from_json(body)?)?;
        let now = self.store.now_ms().await?;
        let scope = narrow.scope(&live.targets);
        let policy = narrow.policy(live.policy(), &scope);
        def.admit(&id, &policy, self.min_every_sec, now)?;
        self.engaged(&policy, tenant, &def).await?;
        let next = Self::next_due(&def, &id, now, now)
            .map_err(|e| ValidationError::new("every_sec", e.0, "a shorter cadence"))?;
        let created = match self
            .store
            .put(tenant, &id, &def, now, next, self.max_per_tenant)
            .await?
        {
            Put::AtCap { cap } => return Err(ScheduleError::AtCap { cap }),
            Put::Created => true,
            Put::Replaced => false,
        };
        Ok(Upserted {
            created,
            document: self.read(tenant, &id).await?,
        })
    }

    /// A template naming an engagement is judged against it now (DESIGN §14): an unknown or
    /// expired engagement, or a tool, template or target outside it, is refused naming which.
    async fn engaged(
        &self,
        policy: &crate::request::Policy<'_>,
        tenant: &TenantId,
        def: &ScheduleDef,
    ) -> Result<(), ScheduleError> {
        let spec = crate::request::JobSpec::from_json(&def.template, policy)?;
        if let Some(e) = &spec.engagement {
            self.queue
                .engage(tenant, &spec, e)
                .await
                .map_err(|err| match err {
                    QueueError::Refused(v) => ScheduleError::from(v),
                    other => ScheduleError::Queue(other),
                })?;
        }
        Ok(())
    }

    /// The schedule's document.
    pub async fn read(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<ScheduleDocument, ScheduleError> {
        let v = self.found(tenant, id).await?;
        self.document(tenant, v).await
    }

    /// The tenant's schedules, oldest first.
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<ScheduleDocument>, ScheduleError> {
        let mut out = Vec::new();
        for v in self.store.list(tenant).await? {
            out.push(self.document(tenant, v).await?);
        }
        Ok(out)
    }

    /// Deletes a schedule and its run list (the runs' jobs stay).
    pub async fn delete(&self, tenant: &TenantId, id: &str) -> Result<(), ScheduleError> {
        let id = schedule_id(id)?;
        if !self.store.delete(tenant, &id).await? {
            return Err(ScheduleError::NotFound);
        }
        Ok(())
    }

    /// Pauses or resumes a schedule; a resumed (or parked) schedule continues at its first
    /// slot after now (slots missed meanwhile are not fired), unless it cannot be fired.
    pub async fn set_paused(
        &self,
        tenant: &TenantId,
        id: &str,
        paused: bool,
    ) -> Result<ScheduleDocument, ScheduleError> {
        let v = self.found(tenant, id).await?;
        let next = if paused {
            None
        } else {
            let Some(def) = &v.def else {
                return Err(ScheduleError::Refused(
                    "the stored schedule is unreadable; replace it (PUT) instead".into(),
                ));
            };
            let now = self.store.now_ms().await?;
            Self::next_due(def, &v.id, now, v.anchor_ms).map_err(|e| {
                ScheduleError::Refused(format!("the schedule cannot be resumed: {e}; replace it"))
            })?
        };
        if paused || next.is_some() {
            self.store.set_paused(tenant, &v.id, next).await?;
        }
        self.read(tenant, &v.id).await
    }

    /// Enqueues a run now, outside the cadence, judged against `live` and under the caller's
    /// tenant caps; the run's correlation ID.
    pub async fn trigger(
        &self,
        live: &Live,
        narrow: &CallerScope,
        tenant: &TenantId,
        caps: Option<TenantCaps>,
        id: &str,
    ) -> Result<String, ScheduleError> {
        let v = self.found(tenant, id).await?;
        let Some(def) = &v.def else {
            return Err(ScheduleError::Refused(
                "the stored schedule is unreadable; replace it (PUT)".into(),
            ));
        };
        let now = self.store.now_ms().await?;
        let run = format!("{}.t{now}", v.id);
        let cid = CorrelationId::parse(&run).map_err(|e| StoreError::Corrupt(e.0))?;
        let scope = narrow.scope(&live.targets);
        let policy = narrow.policy(live.policy(), &scope);
        let mut spec = def.run_spec(&policy, &cid).map_err(|e| {
            ScheduleError::Refused(format!(
                "the schedule's template was refused: {}",
                refusal(&e)
            ))
        })?;
        spec.schedule_id = Some(v.id.clone());
        spec.submitted_by = Some(format!("schedule:{}", v.id));
        let s = self.queue.admit(tenant, &spec, caps).await?;
        if let (true, Some(events)) = (s.created, &self.events) {
            // Held for a person: told like a fired run (only a held job is announced).
            events.awaiting_approval(tenant, &s.document);
        }
        self.store.record_run(tenant, &v.id, &run, now).await?;
        Ok(run)
    }

    /// The schedule's runs, newest first (at most [`super::KEEP_RUNS`] are kept), each with
    /// its job's state and finish time (two fields read, not the document).
    pub async fn runs(
        &self,
        tenant: &TenantId,
        id: &str,
        limit: usize,
    ) -> Result<Vec<RunEntry>, ScheduleError> {
        let v = self.found(tenant, id).await?;
        let mut out = Vec::new();
        for (cid, slot) in self.store.runs(tenant, &v.id, limit).await? {
            let fields = match CorrelationId::parse(&cid) {
                Ok(c) => {
                    self.queue
                        .job_fields(tenant, &c, &["state", "finished_ms"])
                        .await?
                }
                Err(_) => None,
            };
            out.push(RunEntry {
                correlation_id: cid,
                slot_at: rfc3339(slot),
                state: fields.as_ref().and_then(state_of),
                finished_at: fields
                    .as_ref()
                    .and_then(|f| f.get("finished_ms"))
                    .and_then(|ms| ms.parse().ok())
                    .map(rfc3339),
            });
        }
        Ok(out)
    }

    /// The run of `schedule` that succeeded last before `cid` (the default `against` of a
    /// diff); None when there is none or `cid` is not one of its runs.
    pub async fn previous_succeeded_run(
        &self,
        tenant: &TenantId,
        schedule: &str,
        cid: &str,
    ) -> Result<Option<CorrelationId>, ScheduleError> {
        let recent = self.store.runs(tenant, schedule, super::KEEP_RUNS).await?;
        let Some(pos) = recent.iter().position(|(c, _)| c == cid) else {
            return Ok(None);
        };
        for (c, _) in &recent[pos + 1..] {
            let Ok(c) = CorrelationId::parse(c) else {
                continue;
            };
            let fields = self.queue.job_fields(tenant, &c, &["state"]).await?;
            if fields.as_ref().and_then(state_of) == Some(JobState::Succeeded) {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    /// The document of a stored schedule.
    pub async fn document(
        &self,
        tenant: &TenantId,
        v: ScheduleView,
    ) -> Result<ScheduleDocument, ScheduleError> {
        let mut last_run = None;
        let mut last_change = None;
        for (i, (cid, _)) in self
            .store
            .runs(tenant, &v.id, RECENT)
            .await?
            .into_iter()
            .enumerate()
        {
            let Ok(c) = CorrelationId::parse(&cid) else {
                continue;
            };
            let fields = self
                .queue
                .job_fields(tenant, &c, &["state", "change"])
                .await?;
            if i == 0 {
                last_run = Some(LastRun {
                    correlation_id: cid.clone(),
                    state: fields.as_ref().and_then(state_of),
                });
            }
            if let Some(mut change) = fields
                .as_ref()
                .and_then(|f| f.get("change"))
                .and_then(|c| serde_json::from_str::<Value>(c).ok())
                .filter(Value::is_object)
            {
                change["run"] = Value::String(cid);
                last_change = Some(change);
                break;
            }
        }
        let state = match (&v.parked, v.paused, v.next_slot) {
            (Some(_), _, _) => ScheduleState::Parked,
            (None, true, _) => ScheduleState::Paused,
            (None, false, None) => ScheduleState::Ended,
            (None, false, Some(_)) => ScheduleState::Active,
        };
        Ok(ScheduleDocument {
            next_run_at: v
                .next_slot
                .filter(|_| state == ScheduleState::Active)
                .map(rfc3339),
            id: v.id,
            def: v.def,
            state,
            paused: v.paused,
            parked_reason: v.parked,
            created_at: rfc3339(v.created_ms),
            updated_at: rfc3339(v.updated_ms),
            last_run,
            last_change,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::chunk_id;
    use crate::request::MAX_PARENT_ID;

    #[test]
    fn a_big_scan_schedule_s_longest_runs_leave_room_for_chunk_numbers() {
        let id = "s".repeat(MAX_BIG_SCAN_ID);
        // Slots up to the year 2200 (the bound of start_at/end_at), triggers up to 13-digit ms.
        let slot = super::super::run_id(&id, 7_258_118_400_000);
        let trigger = format!("{id}.t{}", 9_999_999_999_999u64);
        for run in [slot, trigger] {
            assert!(run.len() <= MAX_PARENT_ID, "{run}");
            let run = CorrelationId::parse(&run).unwrap();
            // The largest chunk number of a big scan (65,536 hosts by 1) still parses.
            assert!(chunk_id(&run, 65_535).as_str().len() <= 64);
        }
        assert!(schedule_id(&id).is_ok());
    }
}
