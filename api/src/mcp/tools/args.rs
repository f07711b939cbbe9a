//! A tool call's `arguments` object, read with the same field helpers as a REST submit body
//! (`scanq::request::fields`), so a bad value is refused in the same words on both doors.

use std::sync::OnceLock;

use scanq::domain::CorrelationId;
use scanq::request::fields;
use scanq::validate::ValidationError;
use serde_json::{Map, Value};

use crate::error::AppError;
use crate::mcp::MAX_WAIT_SEC;

const ID_HINT: &str = "the correlation_id a scan tool returned";

/// The arguments object (absent = empty), refusing fields the tool does not take.
pub fn arguments<'a>(
    params: &'a Value,
    accepted: &[&str],
) -> Result<&'a Map<String, Value>, ValidationError> {
    static EMPTY: OnceLock<Map<String, Value>> = OnceLock::new();
    let args = match params.get("arguments") {
        None | Some(Value::Null) => EMPTY.get_or_init(Map::new),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(ValidationError::new(
                "arguments",
                "must be an object",
                "{\"target\": \"…\"}",
            ));
        }
    };
    fields::only(args, accepted)?;
    Ok(args)
}

/// The required `correlation_id`; one that cannot exist is simply not found, as on REST.
pub fn correlation_id(args: &Map<String, Value>) -> Result<CorrelationId, AppError> {
    let text = fields::string(args, "correlation_id", ID_HINT)?
        .ok_or_else(|| ValidationError::new("correlation_id", "is required", ID_HINT))?;
    CorrelationId::parse(text).map_err(|_| AppError::NotFound)
}

/// `wait_sec` (0 to [`MAX_WAIT_SEC`], default 0).
pub fn wait_sec(args: &Map<String, Value>) -> Result<u64, ValidationError> {
    Ok(fields::uint(args, "wait_sec", 0, MAX_WAIT_SEC)?.unwrap_or(0))
}
