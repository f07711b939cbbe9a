//! A job's summary: what a list shows (`GET /v1/jobs`, `?view=summary` of one job; DESIGN §15).
//! Everything of the job document that is small — state, tool, zone, target, progress (until
//! the job succeeded), times,
//! error type, `parent`, `schedule_id`, `chunks`, `waiting_for`, `needs` — and no `result`
//! (nor its output) unless asked for (`?include=result`). Absent fields are unset.

use serde::{Deserialize, Serialize};

use super::{
    ChunkTally, ErrorType, JobDocument, JobResult, JobState, Need, Priority, ProgressInfo, Zone,
};

/// One job in a list: the job document without its result (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobSummary {
    pub correlation_id: String,
    pub tool: String,
    #[serde(default)]
    #[schema(value_type = String)]
    pub zone: Zone,
    /// A big scan spanning zones: the zones of its chunks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub zones: Vec<Zone>,
    pub target: String,
    pub state: JobState,
    pub attempt: u32,
    pub max_attempts: u32,
    pub priority: Priority,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_wait_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// The last progress, while the job is not `succeeded` (a succeeded job is at 100 %; its
    /// document keeps the last line). A big scan keeps its counts of hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<ProgressInfo>,
    /// `error.type` of the document (read the job for its message and advice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<ErrorType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<ChunkTally>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<Need>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub waiting_for: Option<super::WaitingFor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_group: Option<String>,
    /// The token that submitted the job (DESIGN §14).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_by: Option<String>,
    /// Only with `?include=result` (and once the job has one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<JobResult>,
}

impl From<JobDocument> for JobSummary {
    fn from(d: JobDocument) -> Self {
        Self {
            correlation_id: d.correlation_id,
            tool: d.tool,
            zone: d.zone,
            zones: d.zones,
            target: d.target,
            state: d.state,
            attempt: d.attempt,
            max_attempts: d.max_attempts,
            priority: d.priority,
            created_at: d.created_at,
            started_at: d.started_at,
            finished_at: d.finished_at,
            retry_at: d.retry_at,
            queue_wait_ms: d.queue_wait_ms,
            duration_ms: d.duration_ms,
            worker: d.worker,
            // A succeeded job is done: its last progress line says nothing a list needs (the
            // document keeps it). A big scan's counts of hosts stay.
            progress: d
                .progress
                .filter(|p| d.state != JobState::Succeeded || p.hosts_total.is_some()),
            error_type: d.error.map(|e| e.kind),
            schedule_id: d.schedule_id,
            parent: d.parent,
            chunks: d.chunks,
            needs: d.needs,
            waiting_for: d.waiting_for,
            target_group: d.target_group,
            submitted_by: d.submitted_by,
            result: d.result,
        }
    }
}
