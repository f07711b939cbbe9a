//! The one refusal type of the validation layer: which request field was refused, why, and what
//! would be accepted instead. The API maps it to a 422 problem+json (`field`, `detail`, `hint`)
//! and MCP to a tool result with `isError: true`.

/// A refusal that names the field and what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The request field that was refused (`target` or `args`).
    pub field: String,
    /// What is wrong with the value, in words a client can act on.
    pub message: String,
    /// What would be accepted instead.
    pub hint: String,
}

impl ValidationError {
    pub fn new(
        field: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            hint: hint.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_field_then_the_message() {
        let err = ValidationError::new("target", "is empty", "give an IPv4 address");
        assert_eq!(err.to_string(), "target: is empty");
        assert_eq!(err.hint, "give an IPv4 address");
    }
}
