//! `Origin` and `Host` checks for `/mcp` (the spec's DNS-rebinding defence): a browser page on
//! another site must not drive a local scanner.
//!
//! - `Origin`: absent (non-browser clients) or a loopback origin (`http(s)://localhost`,
//!   `127.0.0.1`, `[::1]`, any port) is allowed; anything else must be listed in
//!   `mcp_allowed_origins` (`*` allows all). `Origin: null` is refused.
//! - `Host`: an IP literal or `localhost` is allowed (a rebinding attack needs a *name* that
//!   resolves to us); any other name must be listed in `mcp_allowed_hosts` (`*` allows all).
//!
//! A refusal is 403 problem+json.

use std::net::IpAddr;

use axum::http::{HeaderMap, header};
use scanq::config::Config;

use crate::error::AppError;

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

fn origin_allowed(cfg: &Config, origin: &str) -> bool {
    let origin = origin.trim().trim_end_matches('/');
    if listed(&cfg.mcp_allowed_origins, origin) {
        return true;
    }
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https") && loopback_name(host_part(authority))
}

fn host_allowed(cfg: &Config, host: &str) -> bool {
    let name = host_part(host.trim());
    name.parse::<IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || listed(&cfg.mcp_allowed_hosts, host.trim())
        || listed(&cfg.mcp_allowed_hosts, name)
}

/// Refuses a request whose `Origin` or `Host` is not allowed.
pub fn check(cfg: &Config, headers: &HeaderMap) -> Result<(), AppError> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !origin_allowed(cfg, origin) {
            tracing::warn!(origin = %origin, "MCP request from a disallowed Origin");
            return Err(AppError::Forbidden(format!(
                "Origin `{origin}` is not allowed on /mcp (set SCANQ_MCP_ALLOWED_ORIGINS)"
            )));
        }
    }
    if let Some(host) = headers.get(header::HOST) {
        let host = host.to_str().unwrap_or("");
        if !host_allowed(cfg, host) {
            tracing::warn!(host = %host, "MCP request for a disallowed Host");
            return Err(AppError::Forbidden(format!(
                "Host `{host}` is not allowed on /mcp (set SCANQ_MCP_ALLOWED_HOSTS)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(origins: &str, hosts: &str) -> Config {
        Config {
            mcp_allowed_origins: origins.into(),
            mcp_allowed_hosts: hosts.into(),
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
            assert!(origin_allowed(&c, ok), "{ok}");
        }
        for bad in [
            "http://evil.example",
            "null",
            "http://localhost.evil.example",
            "http://127.0.0.1.evil.example",
            "file://localhost",
        ] {
            assert!(!origin_allowed(&c, bad), "{bad}");
        }
        let c = cfg("https://app.example.com, http://x.test:3000", "");
        assert!(origin_allowed(&c, "https://app.example.com"));
        assert!(origin_allowed(&c, "http://x.test:3000"));
        assert!(!origin_allowed(&c, "http://x.test:3001"));
        assert!(origin_allowed(&cfg("*", ""), "http://anything"));
    }

    #[test]
    fn hosts_must_be_ip_literals_localhost_or_listed() {
        let c = cfg("", "scanq.lab.internal, api:8080");
        for ok in [
            "127.0.0.1:8080",
            "localhost",
            "[::1]:80",
            "10.0.0.5:8080",
            "scanq.lab.internal",
            "scanq.lab.internal:443",
            "api:8080",
        ] {
            assert!(host_allowed(&c, ok), "{ok}");
        }
        for bad in ["evil.example", "evil.example:8080", "api:9999"] {
            assert!(!host_allowed(&c, bad), "{bad}");
        }
    }
}
