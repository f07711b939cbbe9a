//! Where a webhook may go: the operator's allow-list (`SCANQ_WEBHOOK_ALLOWED_URLS`, empty by
//! default), a subscription's URL ([`WebhookUrl`]), and the check of the addresses a delivery
//! connects to ([`AllowedUrls::pin`]).
//!
//! An entry is `scheme://host[:port][/path]`: scheme, host and port (the scheme's default when
//! absent) must equal the URL's, and the path is a prefix on segment boundaries (`/hooks`
//! admits `/hooks` and `/hooks/x`, not `/hooksevil`). The host is a name or an IP literal
//! (named *explicitly*), `*.example.com` (any name under it, not `example.com` itself) or `*`
//! (any host). At delivery the host is resolved once and every address classified
//! ([`classify`]): loopback, private, link-local and other internal addresses are refused unless
//! the matching entry named the host explicitly; unspecified, multicast, broadcast and reserved
//! addresses always. The request then connects to exactly the checked addresses
//! ([`Pinned`]): no second lookup, so a name cannot be re-pointed between check and connect.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;

use crate::validate::Resolver;

/// The longest webhook URL accepted, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// How long a delivery's lookup may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// A subscription URL that passed the syntax rules: at most [`MAX_URL_BYTES`], printable
/// ASCII only (no control characters, spaces or raw Unicode: percent-encode or punycode
/// them), `http` or `https`, no user info, no fragment. Held in the parser's normalized form,
/// which is what the allow-list judges and what delivery requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(Url);

impl WebhookUrl {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() > MAX_URL_BYTES {
            return Err(format!(
                "is {} bytes; at most {MAX_URL_BYTES} are accepted",
                text.len()
            ));
        }
        if let Some(c) = text.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(format!(
                "holds {c:?}: only printable ASCII is accepted (percent-encode or punycode the rest)"
            ));
        }
        let url = Url::parse(text).map_err(|e| format!("is not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("has scheme `{}`; http or https", url.scheme()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("holds user info (`user@`); none is accepted".into());
        }
        if url.fragment().is_some() {
            return Err("holds a fragment (`#…`); none is accepted".into());
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("has no host".into());
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    fn host(&self) -> &str {
        self.0.host_str().unwrap_or_default()
    }

    fn port(&self) -> u16 {
        self.0.port_or_known_default().unwrap_or(0)
    }

    /// The host as an IP address, when it is a literal.
    fn ip(&self) -> Option<IpAddr> {
        self.host().trim_matches(['[', ']']).parse().ok()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// A name or an IP literal, as the URL parser normalizes it.
    Exact(String),
    /// `*.example.com`: held as `.example.com`.
    Under(String),
    /// `*`
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    text: String,
    scheme: String,
    host: HostPattern,
    port: u16,
    /// Without a trailing `/`; empty = any path.
    path: String,
}

impl Entry {
    fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "`{text}` {why}; accepted: scheme://host[:port][/path] with host a name, an IP, *.domain or *"
            )
        };
        let (scheme, rest) = text.split_once("://").ok_or_else(|| bad("has no scheme"))?;
        let (wild, concrete) = if let Some(r) = rest.strip_prefix("*.") {
            (Some(false), format!("{scheme}://{r}"))
        } else if let Some(r) = rest
            .strip_prefix('*')
            .filter(|r| r.is_empty() || r.starts_with([':', '/']))
        {
            (Some(true), format!("{scheme}://wildcard.invalid{r}"))
        } else {
            (None, text.to_owned())
        };
        if concrete.contains('*') {
            return Err(bad("holds `*` elsewhere than as the first label"));
        }
        let url = WebhookUrl::parse(&concrete).map_err(|e| bad(&e))?;
        if url.0.query().is_some() {
            return Err(bad("holds a query"));
        }
        let host = match wild {
            None => HostPattern::Exact(url.host().to_owned()),
            Some(true) => HostPattern::Any,
            Some(false) if url.ip().is_some() || !url.host().contains('.') => {
                return Err(bad("has a wildcard over an IP or a top-level domain"));
            }
            Some(false) => HostPattern::Under(format!(".{}", url.host())),
        };
        Ok(Self {
            text: text.to_owned(),
            scheme: url.0.scheme().to_owned(),
            host,
            port: url.port(),
            path: url.0.path().trim_end_matches('/').to_owned(),
        })
    }

    /// `Some(explicit)` when the entry admits `url`.
    fn admits(&self, url: &WebhookUrl) -> Option<bool> {
        let path = url.0.path();
        let path_ok = self.path.is_empty()
            || path == self.path
            || path
                .strip_prefix(self.path.as_str())
                .is_some_and(|rest| rest.starts_with('/'));
        if url.0.scheme() != self.scheme || url.port() != self.port || !path_ok {
            return None;
        }
        match &self.host {
            HostPattern::Exact(h) => (h == url.host()).then_some(true),
            HostPattern::Under(suffix) => {
                (url.ip().is_none() && url.host().ends_with(suffix.as_str())).then_some(false)
            }
            HostPattern::Any => Some(false),
        }
    }
}

/// The operator's allow-list, parsed once; empty (the default) admits nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedUrls(Vec<Entry>);

/// Why an address is not a public one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrClass {
    Public,
    /// Reachable only inside a network (loopback, private, link-local…): allowed only when the
    /// entry named the host explicitly.
    Internal(&'static str),
    /// Never a receiver (unspecified, multicast, broadcast, reserved).
    Never(&'static str),
}

/// The addresses a delivery may connect to, and the name they belong to (none for an IP
/// literal, which needs no lookup).
#[derive(Debug, Clone)]
pub struct Pinned {
    pub name: Option<String>,
    pub addrs: Vec<SocketAddr>,
}

impl AllowedUrls {
    /// Parses `SCANQ_WEBHOOK_ALLOWED_URLS` (comma-separated entries); a malformed entry is an
    /// error naming it.
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Entry::parse)
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Some(explicit)` when an entry admits `url`; explicit when one names its host exactly.
    pub fn admits(&self, url: &WebhookUrl) -> Option<bool> {
        self.0.iter().filter_map(|e| e.admits(url)).max()
    }

    /// What a refusal of a URL tells the caller.
    pub fn hint(&self) -> String {
        if self.0.is_empty() {
            return "no webhook receiver is allowed yet: the operator lists them in SCANQ_WEBHOOK_ALLOWED_URLS (docs/webhooks.md)".into();
        }
        let list: Vec<&str> = self.0.iter().map(|e| e.text.as_str()).collect();
        format!(
            "a URL admitted by SCANQ_WEBHOOK_ALLOWED_URLS: {}",
            list.join(", ")
        )
    }

    /// Resolves `url`'s host once and checks every address; the answer is what the delivery
    /// connects to. The reason of a refusal never depends on whether anything listens there.
    pub async fn pin(&self, url: &WebhookUrl, resolver: &dyn Resolver) -> Result<Pinned, String> {
        let explicit = self
            .admits(url)
            .ok_or("the URL is no longer allowed by SCANQ_WEBHOOK_ALLOWED_URLS")?;
        let (name, ips) = match url.ip() {
            Some(ip) => (None, vec![ip]),
            None => {
                let ips = tokio::time::timeout(RESOLVE_TIMEOUT, resolver.resolve(url.host()))
                    .await
                    .map_err(|_| "the host's lookup timed out".to_owned())?
                    .map_err(|_| "the host did not resolve".to_owned())?;
                (Some(url.host().to_owned()), ips)
            }
        };
        if ips.is_empty() {
            return Err("the host did not resolve".into());
        }
        for ip in &ips {
            match classify(*ip) {
                AddrClass::Public => {}
                AddrClass::Internal(_) if explicit => {}
                AddrClass::Internal(what) => {
                    return Err(format!(
                        "the host resolves to a {what} address, allowed only when SCANQ_WEBHOOK_ALLOWED_URLS names the host itself"
                    ));
                }
                AddrClass::Never(what) => {
                    return Err(format!("the host resolves to a {what} address"));
                }
            }
        }
        let port = url.port();
        Ok(Pinned {
            name,
            addrs: ips
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect(),
        })
    }
}

/// What kind of address `ip` is (IPv4 inside IPv6 — mapped, NAT64, 6to4 — as its IPv4).
pub fn classify(ip: IpAddr) -> AddrClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddrClass {
    use AddrClass::{Internal, Never, Public};
    let o = ip.octets();
    match o {
        [0, ..] => Never("unspecified"),
        [255, 255, 255, 255] => Never("broadcast"),
        [224..=239, ..] => Never("multicast"),
        [240..=255, ..] => Never("reserved"),
        [127, ..] => Internal("loopback"),
        [10, ..] | [172, 16..=31, ..] | [192, 168, ..] => Internal("private"),
        [169, 254, ..] => Internal("link-local"),
        [100, 64..=127, ..] => Internal("shared (CGNAT)"),
        [192, 0, 0, _] => Internal("IETF protocol"),
        [198, 18..=19, ..] => Internal("benchmarking"),
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => Internal("documentation"),
        _ => Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddrClass {
    use AddrClass::{Internal, Never, Public};
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| {
        classify_v4(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        ))
    };
    match s {
        [0, 0, 0, 0, 0, 0, 0, 0] => Never("unspecified"),
        [0, 0, 0, 0, 0, 0, 0, 1] => Internal("loopback"),
        [0, 0, 0, 0, 0, 0xffff, hi, lo] | [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => embedded(hi, lo),
        [0, 0, 0, 0, 0, 0, _, _] => Never("IPv4-compatible (deprecated)"),
        [0x2002, hi, lo, ..] => embedded(hi, lo),
        [0x2001, 0xdb8, ..] => Internal("documentation"),
        [0x2001, 0, ..] => Internal("Teredo"),
        [0x100, 0, 0, 0, ..] => Internal("discard"),
        [a, ..] if a & 0xff00 == 0xff00 => Never("multicast"),
        [a, ..] if a & 0xffc0 == 0xfe80 => Internal("link-local"),
        [a, ..] if a & 0xffc0 == 0xfec0 => Internal("site-local"),
        [a, ..] if a & 0xfe00 == 0xfc00 => Internal("unique-local"),
        _ => Public,
    }
}

/// A `reqwest` resolver that answers only the pinned name, with the checked addresses: the
/// connection goes where the check looked, and any other name fails (no second lookup).
impl reqwest::dns::Resolve for Pinned {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let answer = if self.name.as_deref() == Some(name.as_str()) {
            Ok(Box::new(self.addrs.clone().into_iter()) as reqwest::dns::Addrs)
        } else {
            Err("name not pinned by the webhook check".into())
        };
        Box::pin(std::future::ready(answer))
    }
}

#[cfg(test)]
mod tests;
