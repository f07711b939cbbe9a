//! Conditional reads (DESIGN §15): the `If-None-Match` extractor and the answer that carries
//! an `ETag`, or is `304 Not Modified` with no body when the client's copy is current. The tags
//! come from `scanq` (version counters, never a hash of the body).

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use scanq::domain::ETag;

/// The request's `If-None-Match`, if any.
pub struct IfNoneMatch(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .headers
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        ))
    }
}

impl IfNoneMatch {
    /// Whether the client's copy has this tag.
    pub fn is_current(&self, etag: &ETag) -> bool {
        self.0.as_deref().is_some_and(|v| etag.matches(v))
    }
}

/// `304` with the tag and no body.
pub fn not_modified(etag: &ETag) -> Response {
    with_tag(StatusCode::NOT_MODIFIED.into_response(), etag)
}

/// `304` when the client's copy is current, else `200` with the answer's encoded JSON body.
pub fn answer(inm: &IfNoneMatch, a: &crate::reads::Answer) -> Response {
    if inm.is_current(&a.etag) {
        return not_modified(&a.etag);
    }
    let resp = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        a.body.clone(),
    )
        .into_response();
    with_tag(resp, &a.etag)
}

fn with_tag(mut resp: Response, etag: &ETag) -> Response {
    if let Ok(v) = HeaderValue::from_str(etag.as_str()) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    // The answer depends on the caller's token (its tenant): caches must keep them apart.
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("authorization"));
    resp
}
