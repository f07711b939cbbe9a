//! Extractors that give bad requests the same problem+json shape as everything else.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use scanq::domain::{CorrelationId, TenantId};
use scanq::validate::ValidationError;
use serde::de::DeserializeOwned;

use crate::auth::{Scope, Scopes, Token};
use crate::error::AppError;
use crate::state::AppState;

/// A JSON body: 415 unless it is sent as JSON ([`require_json`]), 413 past the size limit
/// (before parsing), 400 when it is not JSON or an object in it names a key twice (no parser
/// differentials: see `scanq::request::strict`).
pub struct JsonBody(pub serde_json::Value);

impl FromRequest<AppState> for JsonBody {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        require_json(req.headers())?;
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::TooLarge(state.inner.cfg.max_body_bytes)
            } else {
                AppError::Malformed(e.body_text())
            }
        })?;
        scanq::request::strict::parse(&bytes)
            .map(JsonBody)
            .map_err(AppError::from)
    }
}

/// An optional JSON body: none when the request has no body at all, else a [`JsonBody`] (the
/// same 415, 413 and 400).
pub struct OptionalJsonBody(pub Option<serde_json::Value>);

impl FromRequest<AppState> for OptionalJsonBody {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::TooLarge(state.inner.cfg.max_body_bytes)
            } else {
                AppError::Malformed(e.body_text())
            }
        })?;
        if bytes.is_empty() && !headers.contains_key(header::CONTENT_TYPE) {
            return Ok(Self(None));
        }
        require_json(&headers)?;
        scanq::request::strict::parse(&bytes)
            .map(|v| Self(Some(v)))
            .map_err(AppError::from)
    }
}

/// `Ok` when the body is declared as JSON: `Content-Type: application/json` or
/// `application/<something>+json`, parameters allowed; anything else, or none, is 415. A web
/// page can send `text/plain` or a form across sites without a CORS preflight, but not JSON.
pub fn require_json(headers: &HeaderMap) -> Result<(), AppError> {
    let declared = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let essence = declared
        .as_deref()
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some("application/json") => Ok(()),
        Some(t) if t.starts_with("application/") && t.ends_with("+json") => Ok(()),
        _ => Err(AppError::UnsupportedMediaType(
            declared.map_or_else(|| "none".into(), |d| format!("`{}`", d.trim())),
        )),
    }
}

/// Query parameters, typed. A refusal names the parameter (422 problem+json), where axum's own
/// `Query` answers `400 text/plain`.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Params)
            .map_err(|e| {
                let field = match e.path().to_string() {
                    p if p == "." => "query".to_owned(),
                    p => p,
                };
                AppError::Validation(ValidationError::new(
                    &field,
                    e.inner().to_string(),
                    "see this route's parameters in GET /openapi.json",
                ))
            })
    }
}

/// Path segments, typed; a segment that is not valid percent-encoded UTF-8 is refused as
/// problem+json naming the path.
pub struct PathParams<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParams<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| PathParams(v))
            .map_err(|e| {
                AppError::Validation(ValidationError::new(
                    "path",
                    e.body_text(),
                    "percent-encoded UTF-8 path segments",
                ))
            })
    }
}

/// The correlation ID from the path; an impossible ID is simply not found.
pub struct JobId(pub CorrelationId);

impl FromRequestParts<AppState> for JobId {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(params) =
            axum::extract::Path::<Vec<(String, String)>>::from_request_parts(parts, state)
                .await
                .map_err(|_| AppError::NotFound)?;
        let id = params
            .iter()
            .find(|(k, _)| k == "id")
            .map(|(_, v)| v.as_str())
            .ok_or(AppError::NotFound)?;
        CorrelationId::parse(id)
            .map(JobId)
            .map_err(|_| AppError::NotFound)
    }
}

/// Who is calling: the tenant whose jobs they may see, and what they may do. Filled in by the
/// auth middleware (`authorize`); in open mode (no tokens, loopback only) everyone is the
/// `default` tenant with every scope.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: TenantId,
    /// The token's name (`open` in open mode); logged, never the token.
    pub name: String,
    pub admin: bool,
    pub scopes: Scopes,
    /// The token that authenticated the request (none in open mode), for streams that
    /// re-check it after a reload (`Auth::still_grants`).
    pub token: Option<Token>,
}

impl Caller {
    /// What the tokens file narrows for this caller (DESIGN §14): its tenant's and token's
    /// `allowed_targets` and `require_engagement`.
    pub fn scope(&self, state: &AppState) -> scanq::request::CallerScope {
        state
            .inner
            .auth
            .caller_scope(&self.tenant, self.token.as_ref())
    }

    /// The caller of open mode.
    pub fn open() -> Self {
        Self {
            tenant: TenantId::default_tenant(),
            name: "open".into(),
            admin: true,
            scopes: Scopes::all(),
            token: None,
        }
    }

    /// Whether the caller holds `scope` (admin holds every scope).
    pub fn can(&self, scope: Scope) -> bool {
        self.scopes.allows(scope)
    }

    /// `Ok` when the caller holds `scope`, else the 403 to answer.
    pub fn require(&self, scope: Scope) -> Result<(), AppError> {
        if self.can(scope) {
            Ok(())
        } else {
            Err(AppError::MissingScope {
                token: self.name.clone(),
                scope: scope.as_str(),
            })
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Caller>() {
            Some(c) => Ok(c.clone()),
            // A route the auth layer does not cover gets no one in auth mode.
            None if state.inner.auth.is_open() => Ok(Caller::open()),
            None => Err(AppError::Unauthorized),
        }
    }
}
