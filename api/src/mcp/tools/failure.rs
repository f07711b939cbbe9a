//! Why a tool call gave no result: a refusal for the caller (an [`AppError`], answered through
//! the REST problem mapping in `mcp::reply`) or a failure of the call itself (a JSON-RPC
//! error). The `From` impls let the tool modules use `?` on validation, queue and gate errors.

use scanq::queue::QueueError;
use scanq::validate::ValidationError;
use serde_json::Value;

use crate::error::AppError;
use crate::mcp::protocol::RpcError;

/// Why a tool did not give its result.
#[derive(Debug)]
pub enum Failure {
    /// Refused for the caller: an `isError` result (or -32602 for a task-augmented scan).
    Refused(AppError),
    /// The call itself failed (the queue store is unreachable): a JSON-RPC error.
    Rpc(RpcError),
}

impl From<AppError> for Failure {
    fn from(e: AppError) -> Self {
        Self::Refused(e)
    }
}

impl From<ValidationError> for Failure {
    fn from(e: ValidationError) -> Self {
        Self::Refused(AppError::Validation(e))
    }
}

impl From<RpcError> for Failure {
    fn from(e: RpcError) -> Self {
        Self::Rpc(e)
    }
}

/// Redis down stays a JSON-RPC error ("retry shortly"); every other queue refusal is the
/// caller's, mapped like REST (conflict 409, queue full 429, not found 404…).
impl From<QueueError> for Failure {
    fn from(e: QueueError) -> Self {
        if e.is_unavailable() {
            Self::Rpc(e.into())
        } else {
            Self::Refused(e.into())
        }
    }
}

/// What a tool module returns.
pub type Outcome = Result<Value, Failure>;
