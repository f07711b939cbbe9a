//! Domain types shared by the API and the workers: identifiers, job states, priorities, error
//! kinds and the public job document. Every string that crosses Redis or HTTP has exactly one
//! mapping here (`as_str` / `FromStr`), and the Lua scripts receive those same strings as arguments.

pub mod approval;
mod capabilities;
mod chunks;
mod ids;
mod job;
mod job_id;
mod outcome;
mod replies;
mod summary;
mod version;
mod zone;

pub use approval::{Approval, ApprovalInfo, Decision};
pub use capabilities::{Capabilities, Need, WaitingFor};
pub use chunks::{CHUNK_SEPARATOR, ChunkTally, chunk_id, chunk_index, parent_of};
pub use ids::{CorrelationId, EngagementId, IdError, TenantId, ToolName};
pub(crate) use job::string_enum;
pub use job::{
    Confinement, ErrorInfo, ErrorType, JobDocument, JobResult, JobState, Priority, ProgressInfo,
    STORED_DEFAULT_MAX_ATTEMPTS, STORED_DEFAULT_TIMEOUT_SEC, UnknownVariant, rfc3339,
};
pub use job_id::{JobId, MAX_PARTITIONS, ref_of as job_id_ref};
pub use outcome::{FailureKind, Outcome, StopReason, Verdict};
pub use replies::{CancelReply, ChunkList, JobList};
pub use summary::JobSummary;
pub use version::{ETag, Tagger};
pub use zone::{MAX_ZONE_LEN, Zone};
