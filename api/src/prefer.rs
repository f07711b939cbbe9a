//! The `Prefer` request header (RFC 7240) as far as scanq honours it: `wait=N` on
//! `POST /v1/jobs` (a submit that answers once its job is terminal, or after N seconds).
//!
//! What RFC 7240 §2 asks of a server, and is done here: a preference it does not know (e.g.
//! `respond-async`, `handling=strict`) is ignored, so is a `wait` whose value is not a whole
//! number of seconds (or is above 86400, the same bound as `?wait=`); of a preference given more
//! than once only the first counts; names are case-insensitive, parameters after `;` are
//! ignored. An honoured wait is capped at the server's `max_wait_sec` and named in the answer's
//! `Preference-Applied: wait=<seconds>`.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue};

use crate::state::AppState;

/// The request header.
pub const PREFER: HeaderName = HeaderName::from_static("prefer");
/// The answer's header naming the preference honoured.
pub const PREFERENCE_APPLIED: HeaderName = HeaderName::from_static("preference-applied");

/// The largest `wait` taken (as for `GET /v1/jobs/{id}?wait=`).
const MAX_WAIT: u64 = 86_400;

/// The `wait` preference of a request's `Prefer` headers, in seconds, when it is well formed.
pub fn wait(headers: &HeaderMap) -> Option<u64> {
    for value in headers.get_all(PREFER) {
        let Ok(text) = value.to_str() else {
            continue;
        };
        for pref in text.split(',') {
            // `name[=value]` followed by `;`-parameters (ignored).
            let head = pref.split(';').next().unwrap_or_default();
            let (name, value) = match head.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (head.trim(), None),
            };
            if !name.eq_ignore_ascii_case("wait") {
                continue;
            }
            // Only the first instance of a preference counts (RFC 7240 §2).
            return value.map(|v| v.trim_matches('"')).and_then(seconds);
        }
    }
    None
}

/// Delta-seconds (`1*DIGIT`) up to [`MAX_WAIT`].
fn seconds(v: &str) -> Option<u64> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok().filter(|n| *n <= MAX_WAIT)
}

/// A request's honoured `wait` preference, capped at the server's `max_wait_sec`: None when the
/// request has none (or an ill-formed one, ignored).
pub struct PreferWait(pub Option<u64>);

impl FromRequestParts<AppState> for PreferWait {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        Ok(Self(
            wait(&parts.headers).map(|w| w.min(state.inner.cfg.max_wait_sec)),
        ))
    }
}

impl PreferWait {
    /// `Preference-Applied` for the honoured wait, if any.
    pub fn applied(&self) -> Option<(HeaderName, HeaderValue)> {
        let w = self.0?;
        let v = HeaderValue::from_str(&format!("wait={w}")).ok()?;
        Some((PREFERENCE_APPLIED, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(values: &[&str]) -> Option<u64> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(PREFER, HeaderValue::from_str(v).unwrap());
        }
        wait(&h)
    }

    #[test]
    fn a_wait_is_read_among_other_preferences() {
        assert_eq!(of(&["wait=5"]), Some(5));
        assert_eq!(of(&["WAIT = 7"]), Some(7));
        assert_eq!(of(&["respond-async, wait=3"]), Some(3));
        assert_eq!(of(&["handling=lenient", "wait=2; x=y"]), Some(2));
        assert_eq!(of(&["wait=\"4\""]), Some(4));
        assert_eq!(of(&["wait=0"]), Some(0));
        assert_eq!(of(&["wait=86400"]), Some(86_400));
    }

    #[test]
    fn an_ill_formed_wait_or_none_is_ignored() {
        assert_eq!(of(&[]), None);
        assert_eq!(of(&["respond-async"]), None);
        assert_eq!(of(&["wait"]), None);
        assert_eq!(of(&["wait="]), None);
        assert_eq!(of(&["wait=soon"]), None);
        assert_eq!(of(&["wait=-1"]), None);
        assert_eq!(of(&["wait=1.5"]), None);
        assert_eq!(of(&["wait=86401"]), None);
        assert_eq!(of(&["wait=99999999999999999999999"]), None);
        assert_eq!(of(&["waiting=5"]), None);
    }

    #[test]
    fn only_the_first_wait_counts() {
        assert_eq!(of(&["wait=soon, wait=5"]), None);
        assert_eq!(of(&["wait=2", "wait=9"]), Some(2));
    }
}
