//! One error type for the API, rendered as RFC 9457 `application/problem+json` with a stable
//! body (`type`, `title`, `status`, `detail`, `error_type`, and `field`/`hint` for validation).
//! Internal causes are logged, never sent.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use scanq::queue::QueueError;
use scanq::request::RequestError;
use scanq::validate::ValidationError;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("{0}")]
    Validation(ValidationError),
    #[error("unknown tool `{0}`")]
    UnknownTool(String),
    #[error("job not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    #[error("queue full")]
    QueueFull { retry_after: u64 },
    #[error("rate limited")]
    RateLimited { retry_after: u64, detail: String },
    #[error("missing or unknown bearer token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
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
            QueueError::Final { state } => Self::Conflict(format!("job is already {state}")),
            e @ (QueueError::Redis(_) | QueueError::Pool(_)) => {
                tracing::error!(error = %e, "Redis unavailable");
                Self::Unavailable("the queue store is unreachable; retry shortly".into())
            }
        }
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
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::Malformed(_) => (
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
            Self::Conflict(_) => (StatusCode::CONFLICT, "validation_error", "Conflict"),
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
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "validation_error", "Forbidden"),
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

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, error_type, title) = self.parts();
        let mut body = json!({
            "type": format!("urn:scanq:problem:{error_type}"),
            "title": title,
            "status": status.as_u16(),
            "detail": self.to_string(),
            "error_type": error_type,
        });
        let mut retry_after = None;
        match &self {
            Self::Validation(v) => {
                body["field"] = json!(v.field);
                body["hint"] = json!(v.hint);
                body["detail"] = json!(format!("{}: {}", v.field, v.message));
            }
            Self::Malformed(_) => {
                body["field"] = json!("body");
                body["hint"] =
                    json!("send a JSON object, e.g. {\"tool\":\"nmap\",\"target\":\"10.0.0.5\"}");
            }
            Self::UnknownTool(_) => {
                body["field"] = json!("tool");
                body["hint"] = json!("GET /v1/tools lists the tools");
            }
            Self::QueueFull { retry_after: r } => retry_after = Some(*r),
            Self::RateLimited {
                retry_after: r,
                detail,
            } => {
                retry_after = Some(*r);
                body["detail"] = json!(detail);
            }
            Self::Unavailable(_) => retry_after = Some(2),
            Self::TimedOut(_) => retry_after = Some(1),
            Self::BreakerOpen { retry_after: r, .. } => {
                retry_after = Some(*r);
                body["recovery_suggestion"] =
                    json!(scanq::domain::ErrorType::CircuitBreakerOpen.recovery_suggestion());
                body["retry_after_sec"] = json!(r);
            }
            Self::Internal(err) => tracing::error!(error = %err, "Internal error"),
            _ => {}
        }
        let mut resp = (status, Json(body)).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(r) = retry_after {
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
