//! Domain types shared by the API and the workers: identifiers, job states, priorities, error
//! kinds and the public job document. Every string that crosses Redis or HTTP has exactly one
//! mapping here (`as_str` / `FromStr`), and the Lua scripts receive those same strings as arguments.

mod ids;
mod job;

pub use ids::{CorrelationId, IdError, TenantId, ToolName};
pub use job::{
    ErrorInfo, ErrorType, JobDocument, JobResult, JobState, Priority, ProgressInfo, UnknownVariant,
};
