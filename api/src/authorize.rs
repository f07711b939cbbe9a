//! The auth middleware. For every request it decides what access the route needs
//! ([`access`]), then: authenticates the bearer token (401), checks the scope (403), takes one
//! request from the token's fleet-wide bucket (429), and inserts the [`Caller`]. An admin may act
//! for another tenant with `?tenant=<id>`; anyone else naming another tenant gets 403.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use scanq::domain::TenantId;
use scanq::queue::retry_after_secs;
use scanq::scripts::RateDecision;
use serde::Deserialize;

use crate::auth::Scope;
use crate::error::AppError;
use crate::extract::Caller;
use crate::state::AppState;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Health, readiness, the dashboard, OpenAPI: no token.
    Open,
    /// `/metrics`: open to loopback peers when `metrics_open`, else a token with `read`.
    Metrics,
    /// A valid token; `Some(scope)` also needs that scope. `/mcp` checks scopes per MCP tool.
    Token(Option<Scope>),
}

/// The access rule of a route. Everything under `/v1` needs a token: reads need `read`;
/// `POST /v1/jobs` and `POST /v1/jobs/{id}/retry` need `submit`; `DELETE /v1/jobs/{id}` needs
/// `cancel`; `POST /v1/jobs/{id}/approve` and `/reject` need `approve`; schedules are as jobs: `PUT /v1/schedules/{id}` and its `pause`, `resume` and
/// `trigger` need `submit`, `DELETE` needs `cancel`; webhooks likewise (`POST /v1/webhooks`
/// and `PUT /v1/webhooks/{id}` `submit`, `DELETE /v1/webhooks/{id}` `cancel`) and engagements
/// (`PUT /v1/engagements/{id}` `submit`, `DELETE` `cancel`); any other change (breakers, tool
/// enable/disable, …) needs `admin`.
pub fn access(method: &Method, path: &str) -> Access {
    if path == "/metrics" {
        return Access::Metrics;
    }
    if path == "/mcp" || path.starts_with("/mcp/") {
        return Access::Token(None);
    }
    if !(path == "/v1" || path.starts_with("/v1/")) {
        return Access::Open;
    }
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let scope = match (method, parts.as_slice()) {
        (&Method::GET | &Method::HEAD, _) => Scope::Read,
        (&Method::POST, ["v1", "jobs"]) | (&Method::POST, ["v1", "jobs", _, "retry"]) => {
            Scope::Submit
        }
        (&Method::DELETE, ["v1", "jobs", _]) => Scope::Cancel,
        (&Method::POST, ["v1", "jobs", _, "approve" | "reject"]) => Scope::Approve,
        (&Method::PUT, ["v1", "schedules", _])
        | (&Method::POST, ["v1", "schedules", _, "pause" | "resume" | "trigger"]) => Scope::Submit,
        (&Method::DELETE, ["v1", "schedules", _]) => Scope::Cancel,
        (&Method::POST, ["v1", "webhooks"]) | (&Method::PUT, ["v1", "webhooks", _]) => {
            Scope::Submit
        }
        (&Method::DELETE, ["v1", "webhooks", _]) => Scope::Cancel,
        (&Method::PUT, ["v1", "engagements", _]) => Scope::Submit,
        (&Method::DELETE, ["v1", "engagements", _]) => Scope::Cancel,
        _ => Scope::Admin,
    };
    Access::Token(Some(scope))
}

#[derive(Debug, Deserialize)]
struct TenantParam {
    tenant: Option<String>,
}

/// The middleware (installed by `router`).
pub async fn authorize(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    match authorize_parts(&state, &mut req).await {
        Ok(()) => next.run(req).await,
        Err(err) => err.into_response(),
    }
}

fn peer_is_loopback(req: &Request) -> bool {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(a)| a.ip().to_canonical().is_loopback())
}

/// Whether a request to an open route carries a valid admin token, or the API runs without
/// tokens (everyone is admin then): what decides if `/health` lists worker details.
pub(crate) fn admin_bearer(state: &AppState, headers: &axum::http::HeaderMap) -> bool {
    let auth = &state.inner.auth;
    if auth.is_open() {
        return true;
    }
    let set = auth.current();
    bearer_of(headers)
        .and_then(|t| set.find(t))
        .is_some_and(|token| token.scopes.is_admin())
}

fn bearer(req: &Request) -> Option<&str> {
    bearer_of(req.headers())
}

fn bearer_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= 512)
        .then_some(token)
}

async fn authorize_parts(state: &AppState, req: &mut Request) -> Result<(), AppError> {
    let rule = access(req.method(), req.uri().path());
    let auth = &state.inner.auth;
    let cfg = &state.inner.cfg;
    let caller = match rule {
        Access::Open => return Ok(()),
        _ if auth.is_open() => Caller::open(),
        Access::Metrics if cfg.metrics_open && peer_is_loopback(req) && bearer(req).is_none() => {
            return Ok(());
        }
        _ => {
            let set = auth.current();
            let Some(token) = bearer(req).and_then(|t| set.find(t)) else {
                tracing::info!(method = %req.method(), path = %req.uri().path(), "Refused: missing or unknown token");
                return Err(AppError::Unauthorized);
            };
            let needed = match rule {
                Access::Metrics => Some(Scope::Read),
                Access::Token(scope) => scope,
                Access::Open => None,
            };
            let caller = Caller {
                tenant: token.tenant.clone(),
                name: token.name.clone(),
                admin: token.scopes.is_admin(),
                scopes: token.scopes,
                token: Some(token.clone()),
            };
            if let Some(scope) = needed
                && let Err(err) = caller.require(scope)
            {
                tracing::info!(token = %caller.name, tenant = %caller.tenant, method = %req.method(), path = %req.uri().path(), scope = %scope, "Refused: missing scope");
                return Err(err);
            }
            if let Some(rate) = auth.rate_for(token, cfg) {
                match state.queue().take_request(&token.name, rate).await {
                    Ok(RateDecision::Allowed { .. }) => {}
                    Ok(RateDecision::Limited { retry_after }) => {
                        tracing::info!(token = %caller.name, tenant = %caller.tenant, "Refused: request rate");
                        return Err(AppError::RateLimited {
                            retry_after: retry_after_secs(retry_after),
                            detail: format!(
                                "token `{}` is over its request rate ({}/s, burst {}); retry after the Retry-After header's seconds",
                                caller.name, rate.per_sec, rate.burst
                            ),
                        });
                    }
                    // Redis unreachable: the request itself will say so (503); don't mask it.
                    Err(err) => tracing::warn!(error = %err, "Rate limit check failed"),
                }
            }
            caller
        }
    };
    let caller = act_for_tenant(caller, req)?;
    req.extensions_mut().insert(caller);
    Ok(())
}

/// Applies `?tenant=`: admins act for that tenant; others may only name their own.
fn act_for_tenant(mut caller: Caller, req: &Request) -> Result<Caller, AppError> {
    let Ok(axum::extract::Query(TenantParam {
        tenant: Some(wanted),
    })) = axum::extract::Query::<TenantParam>::try_from_uri(req.uri())
    else {
        return Ok(caller);
    };
    if wanted.is_empty() || wanted == caller.tenant.as_str() {
        return Ok(caller);
    }
    if !caller.admin {
        return Err(AppError::Forbidden(
            "only an admin token may name another tenant".into(),
        ));
    }
    caller.tenant = TenantId::parse(&wanted).map_err(|e| {
        AppError::Validation(scanq::validate::ValidationError::new(
            "tenant",
            e.0,
            "a tenant id: 1-64 characters from A-Z a-z 0-9 _ -",
        ))
    })?;
    Ok(caller)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_the_access_rule_of_its_kind() {
        let t = |s| Access::Token(Some(s));
        let cases = [
            (Method::GET, "/healthz", Access::Open),
            (Method::GET, "/readyz", Access::Open),
            (Method::GET, "/", Access::Open),
            (Method::GET, "/metrics", Access::Metrics),
            (Method::POST, "/mcp", Access::Token(None)),
            (Method::GET, "/v1/jobs", t(Scope::Read)),
            (Method::GET, "/v1/jobs/a", t(Scope::Read)),
            (Method::GET, "/v1/jobs/a/events", t(Scope::Read)),
            (Method::GET, "/v1/tools", t(Scope::Read)),
            (Method::POST, "/v1/jobs", t(Scope::Submit)),
            (Method::POST, "/v1/jobs/", t(Scope::Submit)),
            (Method::POST, "/v1/jobs/a/retry", t(Scope::Submit)),
            (Method::DELETE, "/v1/jobs/a", t(Scope::Cancel)),
            (Method::POST, "/v1/jobs/a/approve", t(Scope::Approve)),
            (Method::POST, "/v1/jobs/a/reject", t(Scope::Approve)),
            (Method::DELETE, "/v1/jobs", t(Scope::Admin)),
            (Method::POST, "/v1/breakers/nmap/open", t(Scope::Admin)),
            (Method::POST, "/v1/tools/nmap/disable", t(Scope::Admin)),
            (Method::PUT, "/v1/jobs/a", t(Scope::Admin)),
            (Method::PUT, "/v1/schedules/a", t(Scope::Submit)),
            (Method::POST, "/v1/schedules/a/trigger", t(Scope::Submit)),
            (Method::DELETE, "/v1/schedules/a", t(Scope::Cancel)),
            (Method::GET, "/v1/schedules/a/runs", t(Scope::Read)),
            (Method::GET, "/v1/engagements", t(Scope::Read)),
            (Method::GET, "/v1/engagements/q4", t(Scope::Read)),
            (Method::PUT, "/v1/engagements/q4", t(Scope::Submit)),
            (Method::DELETE, "/v1/engagements/q4", t(Scope::Cancel)),
            (Method::POST, "/v1/engagements", t(Scope::Admin)),
            (Method::POST, "/v1/anything-new", t(Scope::Admin)),
        ];
        for (m, p, want) in cases {
            assert_eq!(access(&m, p), want, "{m} {p}");
        }
    }
}
