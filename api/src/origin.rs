//! The browser guard on every route: a web page the operator visits must not drive the API
//! (cross-site requests, CSRF) nor read from it after pointing a name of its own at it (DNS
//! rebinding). Non-browser clients (CLI, SDKs, probes) send no `Origin` and are not affected.
//!
//! - `Origin`, when sent, must be a loopback origin (`http(s)://localhost`, `127.0.0.1`,
//!   `[::1]`, any port), the page's own origin (its authority equals an allowed `Host`), or be
//!   listed in `api_allowed_origins`, `mcp_allowed_origins` (the older name) or `cors_origins`
//!   (`*` allows all). `Origin: null` (sandboxed frames, `file:` pages) is refused.
//! - `Host` (or the HTTP/2 authority) must be an IP literal or `localhost` (a rebinding attack
//!   needs a *name* that resolves to us), or listed in `api_allowed_hosts` / `mcp_allowed_hosts`
//!   (`name` or `name:port`, `*` allows all). Only `GET`/`HEAD` of `/healthz` and `/readyz` skip
//!   the `Host` check, so a probe with any `Host` works; they answer nothing worth stealing.
//!
//! A refusal is 403 problem+json naming the setting to change.

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use scanq::config::Config;

use crate::error::AppError;
use crate::state::AppState;

/// The middleware (installed by `router`, outside authentication).
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match check(&state.inner.cfg, req.method(), req.uri(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(err) => err.into_response(),
    }
}

/// Refuses a request whose `Host` or `Origin` is not allowed.
pub fn check(
    cfg: &Config,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), AppError> {
    let host = match headers.get(header::HOST) {
        Some(h) => Some(h.to_str().unwrap_or("")),
        None => uri.authority().map(|a| a.as_str()),
    };
    if let Some(host) = host
        && !probe(method, uri.path())
        && !host_allowed(cfg, host)
    {
        tracing::warn!(host = %host, path = %uri.path(), "Refused: disallowed Host");
        return Err(AppError::Forbidden(format!(
            "Host `{host}` is not allowed (DNS-rebinding guard); list the names clients use to \
             reach the API in SCANQ_API_ALLOWED_HOSTS"
        )));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !origin_allowed(cfg, origin, host) {
            tracing::warn!(origin = %origin, path = %uri.path(), "Refused: disallowed Origin");
            return Err(AppError::Forbidden(format!(
                "Origin `{origin}` is not allowed (a page of another site may not call the API); \
                 list browser apps in SCANQ_API_ALLOWED_ORIGINS or SCANQ_CORS_ORIGINS"
            )));
        }
    }
    Ok(())
}

/// The probes that answer any `Host`.
fn probe(method: &Method, path: &str) -> bool {
    matches!(*method, Method::GET | Method::HEAD) && matches!(path, "/healthz" | "/readyz")
}

fn listed(list: &str, value: &str) -> bool {
    list.split(',')
        .map(|s| s.trim().trim_end_matches('/'))
        .any(|s| s == "*" || (!s.is_empty() && s.eq_ignore_ascii_case(value)))
}

/// Splits `host[:port]` / `[v6][:port]` and returns the host part.
fn host_part(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

fn loopback_name(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn origin_allowed(cfg: &Config, origin: &str, host: Option<&str>) -> bool {
    let origin = origin.trim().trim_end_matches('/');
    if [
        &cfg.api_allowed_origins,
        &cfg.mcp_allowed_origins,
        &cfg.cors_origins,
    ]
    .iter()
    .any(|list| listed(list, origin))
    {
        return true;
    }
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && (loopback_name(host_part(authority))
            || host.is_some_and(|h| !h.is_empty() && h.trim().eq_ignore_ascii_case(authority)))
}

fn host_allowed(cfg: &Config, host: &str) -> bool {
    let host = host.trim();
    let name = host_part(host);
    name.parse::<IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || [&cfg.api_allowed_hosts, &cfg.mcp_allowed_hosts]
            .iter()
            .any(|list| listed(list, host) || listed(list, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(origins: &str, hosts: &str) -> Config {
        Config {
            api_allowed_origins: origins.into(),
            api_allowed_hosts: hosts.into(),
            ..Config::default()
        }
    }

    #[test]
    fn loopback_origins_are_allowed_and_others_only_when_listed() {
        let c = cfg("", "");
        for ok in [
            "http://localhost",
            "http://localhost:6274",
            "http://127.0.0.1:8080",
            "https://[::1]:9",
        ] {
            assert!(origin_allowed(&c, ok, None), "{ok}");
        }
        for bad in [
            "http://evil.example",
            "null",
            "",
            "http://localhost.evil.example",
            "http://127.0.0.1.evil.example",
            "file://localhost",
        ] {
            assert!(!origin_allowed(&c, bad, None), "{bad}");
        }
        let c = cfg("https://app.example.com, http://x.test:3000", "");
        assert!(origin_allowed(&c, "https://app.example.com", None));
        assert!(origin_allowed(&c, "http://x.test:3000", None));
        assert!(!origin_allowed(&c, "http://x.test:3001", None));
        assert!(origin_allowed(&cfg("*", ""), "http://anything", None));
    }

    #[test]
    fn the_older_mcp_names_and_cors_origins_count_as_allowed_origins() {
        let c = Config {
            mcp_allowed_origins: "https://console.lab.internal".into(),
            cors_origins: "https://dash.example".into(),
            ..Config::default()
        };
        assert!(origin_allowed(&c, "https://console.lab.internal", None));
        assert!(origin_allowed(&c, "https://dash.example", None));
        assert!(!origin_allowed(&c, "https://other.example", None));
        let c = Config {
            mcp_allowed_hosts: "scanq.lab.internal".into(),
            ..Config::default()
        };
        assert!(host_allowed(&c, "scanq.lab.internal:8080"));
    }

    #[test]
    fn a_page_of_the_api_itself_is_same_origin() {
        let c = cfg("", "scanq.example.com");
        assert!(origin_allowed(
            &c,
            "https://scanq.example.com",
            Some("scanq.example.com")
        ));
        assert!(!origin_allowed(
            &c,
            "https://scanq.example.com:444",
            Some("scanq.example.com")
        ));
        assert!(!origin_allowed(&c, "https://evil.example", Some("")));
    }

    #[test]
    fn hosts_must_be_ip_literals_localhost_or_listed() {
        let c = cfg("", "scanq.lab.internal, api:8080, scanq-api.scanq.svc");
        for ok in [
            "127.0.0.1:8080",
            "localhost",
            "[::1]:80",
            "10.0.0.5:8080",
            "scanq.lab.internal",
            "scanq.lab.internal:443",
            "api:8080",
            "scanq-api.scanq.svc:8080",
        ] {
            assert!(host_allowed(&c, ok), "{ok}");
        }
        for bad in ["evil.example", "evil.example:8080", "api:9999", ""] {
            assert!(!host_allowed(&c, bad), "{bad}");
        }
    }

    #[test]
    fn only_probe_reads_skip_the_host_check() {
        let c = cfg("", "");
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "rebind.evil.example".parse().unwrap());
        let get = |p: &str| check(&c, &Method::GET, &p.parse().unwrap(), &h);
        assert!(get("/healthz").is_ok());
        assert!(get("/readyz").is_ok());
        assert!(get("/metrics").is_err());
        assert!(get("/v1/jobs/x/result.xml").is_err());
        assert!(check(&c, &Method::POST, &"/healthz".parse().unwrap(), &h).is_err());
    }
}
