//! What a scan may be pointed at, parsed once from the request's `target` string: a canonical
//! dotted-quad IPv4 address, an IPv4 CIDR whose address is its network address, or an RFC 1123
//! hostname. Everything else (other IPv4 spellings, IPv6, URLs, ports, look-alike characters) is
//! refused here, before any scope policy looks at it. Whether the target is *allowed* is the job
//! of [`super::scope`].

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::ValidationError;

/// Longest target text accepted (the longest DNS name).
pub const MAX_TARGET_LEN: usize = 253;

const FIELD: &str = "target";
const ACCEPTED: &str = "give a dotted-quad IPv4 address (10.0.0.5), an IPv4 CIDR (10.0.0.0/24) \
                        or a hostname (db1.lab.internal)";

/// A scan target in canonical form.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Target {
    Ip(Ipv4Addr),
    Cidr(Ipv4Net),
    Host(Hostname),
}

/// A lower-cased RFC 1123 hostname: ASCII labels of letters, digits and inner hyphens, 1–63
/// bytes each, at most 253 bytes in all, no trailing dot, and not numeric-looking.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hostname(String);

impl Hostname {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Hostname {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.parse::<Target>()? {
            Target::Host(host) => Ok(host),
            other => Err(refuse(
                format!("`{other}` is an address, not a hostname"),
                "give a hostname such as db1.lab.internal",
            )),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Ip(ip) => ip.fmt(f),
            Target::Cidr(net) => net.fmt(f),
            Target::Host(host) => host.fmt(f),
        }
    }
}

impl From<Target> for String {
    fn from(target: Target) -> Self {
        target.to_string()
    }
}

impl TryFrom<String> for Target {
    type Error = ValidationError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl FromStr for Target {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        check_characters(s)?;
        if s.contains('/') {
            return parse_cidr(s).map(Target::Cidr);
        }
        if looks_numeric(s) {
            return parse_canonical_ipv4(s).map(Target::Ip);
        }
        parse_hostname(s).map(Target::Host)
    }
}

fn refuse(message: impl Into<String>, hint: impl Into<String>) -> ValidationError {
    ValidationError::new(FIELD, message, hint)
}

/// Refuses, with a specific message, every character that cannot be part of an accepted form.
fn check_characters(s: &str) -> Result<(), ValidationError> {
    if s.is_empty() {
        return Err(refuse("target is empty", ACCEPTED));
    }
    if s.len() > MAX_TARGET_LEN {
        return Err(refuse(
            format!(
                "target is {} bytes long; at most {MAX_TARGET_LEN} are accepted",
                s.len()
            ),
            ACCEPTED,
        ));
    }
    if let Some(c) = s.chars().find(|c| !c.is_ascii()) {
        return Err(refuse(
            format!(
                "target contains the non-ASCII character U+{:04X}; look-alike and \
                 internationalised characters are refused",
                c as u32
            ),
            format!("{ACCEPTED}, in plain ASCII (IDN names in punycode xn-- form)"),
        ));
    }
    if let Some(c) = s.chars().find(|c| c.is_ascii_control()) {
        return Err(refuse(
            format!("target contains the control character U+{:04X}", c as u32),
            ACCEPTED,
        ));
    }
    if s.contains(' ') {
        return Err(refuse("target contains whitespace", ACCEPTED));
    }
    if s.contains("://") {
        return Err(refuse(
            "target looks like a URL; schemes are not accepted",
            format!("{ACCEPTED}; no scheme, port or path"),
        ));
    }
    if s.contains('@') {
        return Err(refuse(
            "target contains `@` (userinfo); only the host is accepted",
            ACCEPTED,
        ));
    }
    if s.contains('%') {
        return Err(refuse(
            "target contains `%` (percent-encoding or an IPv6 zone id); neither is accepted",
            ACCEPTED,
        ));
    }
    if s.contains('[') || s.contains(']') || s.matches(':').count() > 1 {
        return Err(refuse(
            "IPv6 targets (including IPv4-mapped ::ffff:a.b.c.d) are refused: this policy has \
             no IPv6 ranges",
            ACCEPTED,
        ));
    }
    if s.contains(':') {
        return Err(refuse(
            "target contains `:` (a port?); ports go in args, e.g. `-p 80`",
            ACCEPTED,
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '/')))
    {
        return Err(refuse(
            format!("target contains the character `{c}`, which is not accepted"),
            ACCEPTED,
        ));
    }
    Ok(())
}

/// True when the text is an attempt at an address rather than a name: the last label of a
/// hostname never starts with a digit (top-level domains are alphabetic), while every IPv4
/// spelling resolvers accept (`167772161`, `10.1`, `0x0a.0.0.1`, `012.0.0.1`) ends in one.
fn looks_numeric(s: &str) -> bool {
    s.rsplit('.')
        .next()
        .is_some_and(|last| last.starts_with(|c: char| c.is_ascii_digit()))
}

/// Parses exactly four decimal octets without leading zeros; refuses every other spelling that
/// `inet_aton` would accept, so the string the policy checks is the address the tool scans.
pub(crate) fn parse_canonical_ipv4(s: &str) -> Result<Ipv4Addr, ValidationError> {
    let refusal = || {
        refuse(
            format!(
                "`{s}` is not a canonical dotted-quad IPv4 address (octal, hex, integer and \
                 short forms are refused)"
            ),
            "write four decimal octets without leading zeros, e.g. 10.0.0.5",
        )
    };
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return Err(refusal());
    }
    let mut octets = [0u8; 4];
    for (slot, part) in octets.iter_mut().zip(&parts) {
        *slot = parse_decimal_u8(part).ok_or_else(refusal)?;
    }
    Ok(Ipv4Addr::from(octets))
}

fn parse_decimal_u8(part: &str) -> Option<u8> {
    let canonical = !part.is_empty()
        && part.len() <= 3
        && part.bytes().all(|b| b.is_ascii_digit())
        && (part == "0" || !part.starts_with('0'));
    if canonical { part.parse().ok() } else { None }
}

fn parse_cidr(s: &str) -> Result<Ipv4Net, ValidationError> {
    let (addr, prefix) = s.split_once('/').unwrap_or((s, ""));
    if !looks_numeric(addr) || prefix.contains('/') {
        return Err(refuse(
            "target contains `/` but is not an IPv4 CIDR; paths are not accepted",
            ACCEPTED,
        ));
    }
    let addr = parse_canonical_ipv4(addr)?;
    let prefix = parse_decimal_u8(prefix)
        .filter(|p| *p <= 32)
        .ok_or_else(|| {
            refuse(
                format!("`{s}` has an invalid prefix length; use /0 to /32 in decimal"),
                "write a CIDR such as 10.0.0.0/24",
            )
        })?;
    let net = Ipv4Net::new(addr, prefix).map_err(|_| refuse("invalid CIDR", ACCEPTED))?;
    if net.network() != addr {
        return Err(refuse(
            format!("`{s}` has host bits set; a CIDR must start at its network address"),
            format!("did you mean {}?", net.trunc()),
        ));
    }
    Ok(net)
}

/// Parses an RFC 1123 hostname and lower-cases it.
pub(crate) fn parse_hostname(s: &str) -> Result<Hostname, ValidationError> {
    const HINT: &str = "write a hostname of letters, digits and hyphens, e.g. db1.lab.internal";
    if let Some(stripped) = s.strip_suffix('.') {
        let hint = if stripped.is_empty() || stripped.ends_with('.') {
            HINT.to_owned()
        } else {
            format!("write `{stripped}`")
        };
        return Err(refuse(
            format!("`{s}` ends with a dot; fully-qualified trailing dots are not accepted"),
            hint,
        ));
    }
    for label in s.split('.') {
        if label.is_empty() {
            return Err(refuse(format!("`{s}` has an empty label"), HINT));
        }
        if label.len() > 63 {
            return Err(refuse(
                format!("`{s}` has a label longer than 63 bytes"),
                HINT,
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(refuse(
                format!("`{s}` has a label that starts or ends with a hyphen"),
                HINT,
            ));
        }
    }
    Ok(Hostname(s.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(s: &str) -> ValidationError {
        s.parse::<Target>().expect_err(s)
    }

    #[test]
    fn canonical_forms_parse_and_display_unchanged() {
        for s in [
            "10.0.0.5",
            "0.0.0.0",
            "255.255.255.255",
            "10.0.0.0/8",
            "10.0.0.5/32",
        ] {
            assert_eq!(s.parse::<Target>().unwrap().to_string(), s);
        }
        assert_eq!(
            "10.0.0.5".parse::<Target>().unwrap(),
            Target::Ip(Ipv4Addr::new(10, 0, 0, 5))
        );
    }

    #[test]
    fn hostnames_are_lower_cased() {
        let t: Target = "DB1.Lab.Internal".parse().unwrap();
        assert_eq!(t.to_string(), "db1.lab.internal");
        assert!(matches!(t, Target::Host(ref h) if h.as_str() == "db1.lab.internal"));
    }

    #[test]
    fn other_ipv4_spellings_are_refused() {
        for s in [
            "010.0.0.1",
            "0x0a.0.0.1",
            "167772161",
            "10.1",
            "10.0.1",
            "10.0.0.256",
            "10.0.0.1.5",
            "0x0a000001",
            "10.0.0.0x1",
            "00.0.0.0",
        ] {
            let err = field_of(s);
            assert_eq!(err.field, "target", "{s}");
            assert!(err.message.contains("canonical"), "{s}: {}", err.message);
        }
    }

    #[test]
    fn cidr_with_host_bits_names_the_network_address() {
        let err = field_of("10.0.0.5/24");
        assert!(err.hint.contains("10.0.0.0/24"), "{}", err.hint);
    }

    #[test]
    fn bad_prefixes_are_refused() {
        for s in [
            "10.0.0.0/33",
            "10.0.0.0/08",
            "10.0.0.0/",
            "10.0.0.0/8/8",
            "10.0.0.0/x",
        ] {
            assert_eq!(field_of(s).field, "target", "{s}");
        }
    }

    #[test]
    fn ipv6_urls_ports_and_userinfo_are_refused_with_a_reason() {
        let cases = [
            ("::1", "IPv6"),
            ("::ffff:10.0.0.1", "IPv6"),
            ("[10.0.0.1]", "IPv6"),
            ("fe80::1%eth0", "%"),
            ("10.0.0.1:22", "port"),
            ("http://10.0.0.1", "URL"),
            ("a@b.lab.internal", "userinfo"),
            ("db1.lab.internal/admin", "paths"),
            ("10.0.0.1 10.0.0.2", "whitespace"),
            ("10.0.0.1\n", "control"),
            ("１0.0.0.1", "non-ASCII"),
            ("db1.lаb.internal", "non-ASCII"),
            ("db1.lab.internal.", "ends with a dot"),
            ("", "empty"),
        ];
        for (input, needle) in cases {
            let err = field_of(input);
            assert!(err.message.contains(needle), "{input:?}: {}", err.message);
        }
    }

    #[test]
    fn malformed_hostnames_are_refused() {
        let long_label = format!("{}.lab.internal", "a".repeat(64));
        let too_long = format!("{}.internal", "a.".repeat(125));
        for s in [
            "-a.lab.internal",
            "a-.lab.internal",
            "a..lab.internal",
            ".lab.internal",
            "a_b.lab.internal",
            long_label.as_str(),
            too_long.as_str(),
        ] {
            assert_eq!(field_of(s).field, "target", "{s}");
        }
    }

    #[test]
    fn serde_round_trips_as_a_string() {
        let t: Target = serde_json::from_str("\"10.0.0.0/24\"").unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"10.0.0.0/24\"");
        assert!(serde_json::from_str::<Target>("\"010.0.0.1\"").is_err());
    }
}
