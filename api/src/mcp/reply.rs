//! What a tool call answers. A result is `structuredContent` plus a short text; a refusal is
//! the REST problem document ([`AppError::problem`]) as an `isError` result, or, where the
//! protocol wants a JSON-RPC error instead (`tasks/*`, a task-augmented call that never
//! became a job), as -32602 carrying the same document in `data`. This is the one place an
//! `AppError` becomes MCP.

use scanq::domain::{JobDocument, JobState};
use serde_json::{Value, json};

use super::protocol::RpcError;
use super::view;
use crate::error::AppError;

/// A `tools/call` result.
pub fn tool_result(structured: Value, text: String, is_error: bool) -> Value {
    json!({
        "content": [{"type": "text", "text": text}],
        "structuredContent": structured,
        "isError": is_error,
    })
}

/// A refusal as an `isError` tool result: the problem document as `structuredContent`, and a
/// text that names the field and the hint so a model can correct itself.
pub fn refusal(err: &AppError) -> Value {
    let problem = err.problem();
    let mut text = format!("Refused ({}): {}.", problem.title, problem.detail);
    if let Some(hint) = &problem.hint {
        text.push_str(&format!(" Hint: {hint}."));
    }
    if let Some(field) = &problem.field {
        text.push_str(&format!(" Fix `{field}` and call the tool again."));
    }
    tool_result(problem.body(), text, true)
}

/// A refusal as a JSON-RPC invalid-params error whose `data` is the problem document.
pub fn rpc_refusal(err: &AppError) -> RpcError {
    let problem = err.problem();
    RpcError::invalid_params(problem.detail.clone()).with_data(problem.body())
}

/// A scan tool's answer: the job view, plus the first result page once it is finished. The text
/// stays short; `job_result` serves the output itself.
pub fn finished_or_status(doc: &JobDocument) -> Value {
    let mut structured = view::job_view(doc);
    structured["result"] = match view::result_page(doc, None, 1) {
        Ok((page, _)) if doc.state.is_terminal() => page,
        _ => Value::Null,
    };
    let failed = matches!(doc.state, JobState::Failed | JobState::Cancelled);
    tool_result(structured, view::job_text(doc), failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use scanq::validate::ValidationError;

    #[test]
    fn a_validation_refusal_carries_the_rest_problem_and_names_the_field_in_its_text() {
        let err = AppError::Validation(ValidationError::new("target", "not allowed", "10.0.0.0/8"));
        let r = refusal(&err);
        assert_eq!(r["isError"], true);
        let s = &r["structuredContent"];
        assert_eq!(*s, err.problem().body());
        assert_eq!(s["status"], 422);
        assert_eq!(s["error_type"], "validation_error");
        assert_eq!(s["field"], "target");
        assert_eq!(s["hint"], "10.0.0.0/8");
        let text = r["content"][0]["text"].as_str().unwrap();
        assert!(text.contains("target: not allowed"), "{text}");
        assert!(text.contains("Hint: 10.0.0.0/8"), "{text}");
    }

    #[test]
    fn queue_and_gate_refusals_keep_their_status_type_and_retry_time() {
        let full = refusal(&AppError::QueueFull { retry_after: 5 });
        assert_eq!(full["structuredContent"]["status"], 429);
        assert_eq!(
            full["structuredContent"]["error_type"],
            "resource_exhausted"
        );
        let open = refusal(&AppError::BreakerOpen {
            tool: "nmap".into(),
            retry_after: 7,
        });
        assert_eq!(open["structuredContent"]["status"], 503);
        assert_eq!(
            open["structuredContent"]["error_type"],
            "circuit_breaker_open"
        );
        assert_eq!(open["structuredContent"]["retry_after_sec"], 7);
        let gone = refusal(&AppError::NotFound);
        assert_eq!(gone["structuredContent"]["error_type"], "not_found");
        assert!(gone["structuredContent"]["hint"].is_string());
    }

    #[test]
    fn an_rpc_refusal_carries_the_same_document() {
        let err = AppError::Validation(ValidationError::new("ports", "bad", "e.g. 22"));
        let rpc = rpc_refusal(&err);
        assert_eq!(rpc.code, super::super::protocol::INVALID_PARAMS);
        assert_eq!(rpc.data, Some(err.problem().body()));
    }
}
