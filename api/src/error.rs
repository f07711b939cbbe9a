//! One error type for the API and its one mapping to a [`Problem`]: the RFC 9457
//! `application/problem+json` body of a REST refusal (`type`, `title`, `status`, `detail`,
//! `error_type`, and `field`/`hint` where they help), and the same fields in the `isError`
//! result of an MCP tool call (`mcp::reply`). Internal causes are logged, never sent.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use scanq::queue::QueueError;
use scanq::request::RequestError;
use scanq::request::strict::StrictJsonError;
use scanq::validate::ValidationError;
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("malformed request: {0}")]
    Malformed(String),
    /// A JSON object names `key` twice (`detail` says where); refused so that every reader
    /// of the request sees the same one.
    #[error("{detail}")]
    DuplicateKey { key: String, detail: String },
    #[error("{0}")]
    Validation(ValidationError),
    #[error("unknown tool `{0}`")]
    UnknownTool(String),
    #[error("job not found")]
    NotFound,
    #[error("no route {method} {path}")]
    NoRoute { method: String, path: String },
    #[error("{0}")]
    Conflict(String),
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    /// A body not declared as JSON (`Content-Type`, as sent, or `none`).
    #[error("the body must be sent as Content-Type: application/json (got {0})")]
    UnsupportedMediaType(String),
    #[error("queue full")]
    QueueFull { retry_after: u64 },
    #[error("rate limited")]
    RateLimited { retry_after: u64, detail: String },
    #[error("missing or unknown bearer token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    /// The caller's token lacks a scope (`auth::Scope::as_str`; kept as text so this module
    /// does not depend on `auth`, which depends on it).
    #[error("token `{token}` lacks the `{scope}` scope")]
    MissingScope { token: String, scope: &'static str },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("circuit breaker open for {tool}")]
    BreakerOpen { tool: String, retry_after: u64 },
    #[error("request URI longer than {0} bytes")]
    UriTooLong(usize),
    #[error("request headers larger than {0} bytes")]
    HeadersTooLarge(usize),
    #[error("the request took longer than {0} s")]
    TimedOut(u64),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<QueueError> for AppError {
    fn from(err: QueueError) -> Self {
        match err {
            QueueError::Conflict { state } => Self::Conflict(format!(
                "correlation_id already names a different request (that job is {state}); use another correlation_id"
            )),
            QueueError::Full { depth } => {
                tracing::warn!(depth, "Queue full; refusing submit");
                Self::QueueFull { retry_after: 5 }
            }
            QueueError::TenantFull { queued, cap } => Self::RateLimited {
                retry_after: 2,
                detail: format!(
                    "your tenant has {queued} jobs waiting, its cap is {cap}; retry when some have started"
                ),
            },
            QueueError::NotFound => Self::NotFound,
            QueueError::ToolDisabled { tool } => Self::Unavailable(format!(
                "tool {tool} is disabled by an operator; retry later or set queue_if_unavailable"
            )),
            QueueError::BreakerOpen {
                tool,
                retry_after_sec,
            } => Self::BreakerOpen {
                tool,
                retry_after: retry_after_sec,
            },
            QueueError::Final { state } => Self::Conflict(format!("job is already {state}")),
            QueueError::Refused(e) => Self::Validation(e),
            QueueError::SelfDecision => Self::Forbidden(
                "a job cannot be approved by the token that submitted it: ask a person with \
                 another token holding the `approve` scope"
                    .into(),
            ),
            e @ QueueError::NotReplicated { .. } => {
                tracing::warn!(error = %e, "Submit not acknowledged by enough replicas; taken back");
                Self::Unavailable(format!(
                    "the queue store could not confirm the job on enough replicas ({e}); nothing was queued, retry shortly"
                ))
            }
            e @ (QueueError::Redis(_) | QueueError::Pool(_)) => {
                tracing::error!(error = %e, "Redis unavailable");
                Self::Unavailable("the queue store is unreachable; retry shortly".into())
            }
        }
    }
}

impl From<StrictJsonError> for AppError {
    fn from(err: StrictJsonError) -> Self {
        match err {
            StrictJsonError::DuplicateKey { ref key, .. } => Self::DuplicateKey {
                key: key.clone(),
                detail: err.to_string(),
            },
            StrictJsonError::Syntax(e) => Self::Malformed(format!("body is not valid JSON: {e}")),
        }
    }
}

impl From<ValidationError> for AppError {
    fn from(err: ValidationError) -> Self {
        Self::Validation(err)
    }
}

impl From<RequestError> for AppError {
    fn from(err: RequestError) -> Self {
        match err {
            RequestError::UnknownTool(t) => Self::UnknownTool(t),
            RequestError::Invalid(v) => Self::Validation(v),
        }
    }
}

impl AppError {
    /// A cancel the queue refused; a job that already finished is a 409 that says which jobs
    /// can be cancelled.
    pub fn from_cancel(err: QueueError) -> Self {
        match err {
            QueueError::Final { state } => Self::Conflict(format!(
                "job is already {state}; only queued, scheduled or running jobs can be cancelled"
            )),
            other => other.into(),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::Malformed(_) | Self::DuplicateKey { .. } => (
                StatusCode::BAD_REQUEST,
                "validation_error",
                "Malformed request",
            ),
            Self::Validation(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_error",
                "Invalid field",
            ),
            Self::UnknownTool(_) => (StatusCode::NOT_FOUND, "not_found", "Unknown tool"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found", "Not found"),
            Self::NoRoute { .. } => (StatusCode::NOT_FOUND, "not_found", "No such route"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "validation_error", "Conflict"),
            Self::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "validation_error",
                "Unsupported media type",
            ),
            Self::TooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "validation_error",
                "Request body too large",
            ),
            Self::QueueFull { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "resource_exhausted",
                "Queue full",
            ),
            Self::RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "resource_exhausted",
                "Rate limited",
            ),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "validation_error", "Unauthorized"),
            Self::Forbidden(_) | Self::MissingScope { .. } => {
                (StatusCode::FORBIDDEN, "validation_error", "Forbidden")
            }
            Self::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unknown",
                "Service unavailable",
            ),
            Self::BreakerOpen { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "circuit_breaker_open",
                "Circuit breaker open",
            ),
            Self::UriTooLong(_) => (StatusCode::URI_TOO_LONG, "validation_error", "URI too long"),
            Self::HeadersTooLarge(_) => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "validation_error",
                "Request headers too large",
            ),
            Self::TimedOut(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "Request timed out",
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "unknown",
                "Internal error",
            ),
        }
    }
}

/// What a client is told about a refusal, whichever front door it came through.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub status: StatusCode,
    /// One of DESIGN §2's error types (`validation_error`, `not_found`, …).
    pub error_type: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// The request field that was refused.
    pub field: Option<String>,
    /// What would be accepted instead, or what to do next.
    pub hint: Option<String>,
    /// Seconds after which a retry may succeed (`Retry-After`, `retry_after_sec`).
    pub retry_after: Option<u64>,
    /// The job-level suggestion, for refusals that share a job error type (open breaker).
    pub recovery_suggestion: Option<&'static str>,
}

/// The problem+json body as documented in `/openapi.json` ([`Problem::body`] writes it).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub struct ProblemBody {
    /// `urn:scanq:problem:<error_type>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// One of DESIGN §2's error types.
    pub error_type: scanq::domain::ErrorType,
    /// The request field, path or query parameter that was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What would be accepted instead, or what to do next.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_suggestion: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_sec: Option<u64>,
}

impl Problem {
    /// The problem+json body. MCP's `isError` tool results carry the same object.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "type": format!("urn:scanq:problem:{}", self.error_type),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
            "error_type": self.error_type,
        });
        if let Some(field) = &self.field {
            body["field"] = json!(field);
        }
        if let Some(hint) = &self.hint {
            body["hint"] = json!(hint);
        }
        if let Some(suggestion) = self.recovery_suggestion {
            body["recovery_suggestion"] = json!(suggestion);
            body["retry_after_sec"] = json!(self.retry_after);
        }
        body
    }
}

impl AppError {
    /// The one mapping from an error to what the client is told. Logs an internal cause,
    /// which never reaches the client.
    pub fn problem(&self) -> Problem {
        let (status, error_type, title) = self.parts();
        let mut p = Problem {
            status,
            error_type,
            title,
            detail: self.to_string(),
            field: None,
            hint: None,
            retry_after: None,
            recovery_suggestion: None,
        };
        match self {
            Self::Validation(v) => {
                p.field = Some(v.field.clone());
                p.hint = Some(v.hint.clone());
                p.detail = format!("{}: {}", v.field, v.message);
            }
            Self::Malformed(_) => {
                p.field = Some("body".into());
                p.hint = Some(
                    "send a JSON object, e.g. {\"tool\":\"nmap\",\"target\":\"10.0.0.5\"}".into(),
                );
            }
            Self::UnsupportedMediaType(_) => {
                p.field = Some("Content-Type".into());
                p.hint = Some("send the JSON body with Content-Type: application/json".into());
            }
            Self::DuplicateKey { key, .. } => {
                p.field = Some(key.clone());
                p.hint = Some(format!("send `{key}` once, with the one value you mean"));
            }
            Self::UnknownTool(_) => {
                p.field = Some("tool".into());
                p.hint = Some("GET /v1/tools lists the tools".into());
            }
            Self::NotFound => {
                p.hint = Some(
                    "check the correlation_id: a job is visible only to its own tenant, and \
                     finished jobs expire after a while"
                        .into(),
                );
            }
            Self::NoRoute { .. } => {
                p.hint = Some("GET /openapi.json lists every route and its methods".into());
            }
            Self::MissingScope { scope, .. } => {
                p.hint = Some(format!("use a token that holds the `{scope}` scope"));
            }
            Self::QueueFull { retry_after: r } => {
                p.retry_after = Some(*r);
                p.hint = Some(format!("retry in {r} s"));
            }
            Self::RateLimited {
                retry_after: r,
                detail,
            } => {
                p.retry_after = Some(*r);
                p.detail = detail.clone();
            }
            Self::Unavailable(_) => p.retry_after = Some(2),
            Self::TimedOut(_) => p.retry_after = Some(1),
            Self::BreakerOpen { retry_after: r, .. } => {
                p.retry_after = Some(*r);
                p.hint = Some(format!("retry in {r} s"));
                p.recovery_suggestion =
                    Some(scanq::domain::ErrorType::CircuitBreakerOpen.recovery_suggestion());
            }
            Self::Internal(err) => tracing::error!(error = %err, "Internal error"),
            _ => {}
        }
        p
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        let mut resp = (problem.status, Json(problem.body())).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(r) = problem.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(r));
        }
        if matches!(self, Self::Unauthorized) {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
