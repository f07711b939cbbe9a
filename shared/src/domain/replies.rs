//! The answers of the job routes that are not a job document: one page of jobs and a cancel's
//! outcome. The API sends them and the `scanq` CLI reads them, as the same types.

use serde::{Deserialize, Serialize};

use super::{JobDocument, JobSummary};

/// One page of jobs, newest first (`GET /v1/jobs`): summaries (DESIGN §15), with their
/// `result` only when asked (`?include=result`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobSummary>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<u64>,
}

/// A page of a big scan's chunks (`GET /v1/jobs/{id}/chunks`), in chunk order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChunkList {
    /// The parent's number of chunks.
    pub total: u64,
    /// The chunks' documents (without result or output: read a chunk by its ID for those).
    pub chunks: Vec<JobDocument>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<u64>,
}

/// What a cancel did (`DELETE /v1/jobs/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CancelReply {
    /// `cancelled` (it will never run) or `cancel_requested` (its worker stops it).
    pub outcome: String,
    pub job: Option<JobDocument>,
}
