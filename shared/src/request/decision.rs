//! The optional body of a person's decision on a job held for approval (DESIGN §14).

use serde::Deserialize;

use crate::domain::approval::Reason;
use crate::validate::ValidationError;

/// The optional body of `POST /v1/jobs/{id}/approve` and `/reject`.
#[derive(Debug, Default, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// Why (one line, at most 500 characters): kept on the job and in the audit log; a
    /// rejected job's error message carries it.
    #[schema(
        max_length = 500,
        example = "outside the change window agreed with the client"
    )]
    pub reason: Option<String>,
}

impl DecisionBody {
    /// The reason of a body (`None` for no body): every refusal names its field.
    pub fn reason_of(body: Option<&serde_json::Value>) -> Result<Option<Reason>, ValidationError> {
        let Some(body) = body else {
            return Ok(None);
        };
        let b: Self = serde_path_to_error::deserialize(body).map_err(|e| {
            let field = match e.path().to_string() {
                p if p == "." => "body".to_owned(),
                p => p,
            };
            ValidationError::new(
                &field,
                e.inner().to_string(),
                r#"{"reason": "one line of at most 500 characters"} or no body"#,
            )
        })?;
        match b.reason {
            Some(r) => {
                Reason::parse(&r).map_err(|e| ValidationError::new("reason", e.message(), e.hint()))
            }
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_names_the_field_it_refuses() {
        let ok = serde_json::json!({"reason": "fine"});
        assert_eq!(
            DecisionBody::reason_of(Some(&ok))
                .unwrap()
                .unwrap()
                .as_str(),
            "fine"
        );
        assert_eq!(DecisionBody::reason_of(None).unwrap(), None);
        let bad = serde_json::json!({"reason": 5});
        assert_eq!(
            DecisionBody::reason_of(Some(&bad)).unwrap_err().field,
            "reason"
        );
        let other = serde_json::json!({"why": "x"});
        assert_eq!(
            DecisionBody::reason_of(Some(&other)).unwrap_err().field,
            "why"
        );
        let not_an_object = serde_json::json!("yes");
        assert_eq!(
            DecisionBody::reason_of(Some(&not_an_object))
                .unwrap_err()
                .field,
            "body"
        );
    }
}
