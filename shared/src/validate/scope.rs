//! The target scope policy: which parsed [`Target`]s an operator lets scans reach.
//!
//! Rules are IPv4 networks and `.suffix` hostname rules, in an allow list and a deny list
//! (`SCANQ_ALLOWED_TARGETS`, `SCANQ_DENIED_TARGETS`). Deny wins over allow; a CIDR must lie wholly
//! inside one allowed network, overlap no denied one and stay under the size cap. Special ranges
//! (this-network, loopback, link-local, multicast, reserved/broadcast) are refused unless an allow
//! rule lies inside that special range, so `0.0.0.0/0` alone never lets a scan reach 127.0.0.1.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;

use super::target::parse_hostname;
use super::{Hostname, Target, TargetList, ValidationError};

mod narrow;
pub use narrow::Narrowing;

/// The allow list used when the operator sets none.
pub const DEFAULT_ALLOWED: &str = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,.lab.internal";
/// The largest CIDR, in addresses, accepted when neither operator nor tool sets one.
pub const DEFAULT_MAX_HOSTS: u32 = 1024;
/// Most hosts one submit may cover by default (a /16), split into chunks (DESIGN §12).
pub const DEFAULT_MAX_TARGET_HOSTS: u32 = 65_536;

/// Ranges that are refused unless an allow rule names them (or a part of them) explicitly.
const SPECIAL: &[(&str, &str)] = &[
    ("0.0.0.0/8", "this-network"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reserved"),
];

#[derive(Clone, Debug, Default)]
struct Rules {
    nets: Vec<Ipv4Net>,
    /// Suffixes with their leading dot, lower-cased (`.lab.internal`).
    suffixes: Vec<String>,
    /// Exact names (a bare `scanner-1.lab.internal` or `localhost` entry), lower-cased.
    names: Vec<String>,
}

impl Rules {
    fn parse(list: &str, which: &str) -> Result<Self, String> {
        let mut rules = Rules::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if let Some(name) = entry.strip_prefix('.') {
                let host = parse_hostname(name)
                    .map_err(|e| format!("{which} entry `{entry}`: {}", e.message))?;
                rules.suffixes.push(format!(".{}", host.as_str()));
                continue;
            }
            let target: Target = entry.parse().map_err(|e: ValidationError| {
                format!("{which} entry `{entry}`: {} ({})", e.message, e.hint)
            })?;
            match target {
                Target::Ip(ip) => rules.nets.push(Ipv4Net::from(ip)),
                Target::Cidr(net) => rules.nets.push(net),
                Target::Host(h) => rules.names.push(h.as_str().to_owned()),
            }
        }
        Ok(rules)
    }

    fn matches_host(&self, host: &Hostname) -> Option<&str> {
        self.suffixes
            .iter()
            .find(|suffix| host.as_str().ends_with(suffix.as_str()))
            .or_else(|| {
                self.names
                    .iter()
                    .find(|name| host.as_str() == name.as_str())
            })
            .map(String::as_str)
    }

    fn describe(&self) -> String {
        let items: Vec<String> = self
            .nets
            .iter()
            .map(ToString::to_string)
            .chain(self.suffixes.iter().map(|s| format!("*{s}")))
            .chain(self.names.iter().cloned())
            .collect();
        if items.is_empty() {
            "none".to_owned()
        } else {
            items.join(", ")
        }
    }
}

/// Which targets scans may reach. Build with [`TargetPolicy::parse`] or [`Default`].
#[derive(Clone, Debug)]
pub struct TargetPolicy {
    allow: Rules,
    deny: Rules,
    max_hosts: u32,
    /// Most hosts one submit may cover, split into chunks (DESIGN §12).
    max_target_hosts: u32,
    /// Narrowings every target must pass too: the tenant's `allowed_targets`, an engagement's
    /// targets (DESIGN §14).
    narrowings: Vec<std::sync::Arc<Narrowing>>,
}

impl Default for TargetPolicy {
    /// RFC 1918 ranges and names under `.lab.internal`, nothing denied, at most 1024 addresses.
    fn default() -> Self {
        Self::parse("", "", DEFAULT_MAX_HOSTS).expect("the default allow list parses")
    }
}

impl TargetPolicy {
    /// `allow`/`deny`: comma-separated CIDRs, single IPv4s and `.suffix` hostname rules
    /// (e.g. "10.0.0.0/8,127.0.0.0/8,.lab.internal"). Empty allow string = the default allow list.
    pub fn parse(allow: &str, deny: &str, max_hosts: u32) -> Result<Self, String> {
        if max_hosts == 0 {
            return Err("max_hosts must be at least 1".to_owned());
        }
        let allow = if allow.trim().is_empty() {
            DEFAULT_ALLOWED
        } else {
            allow
        };
        Ok(Self {
            allow: Rules::parse(allow, "allowed targets")?,
            deny: Rules::parse(deny, "denied targets")?,
            max_hosts,
            max_target_hosts: DEFAULT_MAX_TARGET_HOSTS.max(max_hosts),
            narrowings: Vec::new(),
        })
    }

    /// This scope narrowed by `n` as well: a target must pass both (a tenant's
    /// `allowed_targets`, an engagement's targets).
    pub fn narrowed(&self, n: std::sync::Arc<Narrowing>) -> Self {
        let mut out = self.clone();
        out.narrowings.push(n);
        out
    }

    /// The narrowings on top of the server's scope, outermost first.
    pub fn narrowings(&self) -> &[std::sync::Arc<Narrowing>] {
        &self.narrowings
    }

    /// With at most `n` hosts per submit (`SCANQ_MAX_TARGET_HOSTS`; never below `max_hosts`).
    pub fn with_max_target_hosts(mut self, n: u32) -> Self {
        self.max_target_hosts = n.max(self.max_hosts);
        self
    }

    /// Most hosts one submit may cover.
    pub fn max_target_hosts(&self) -> u32 {
        self.max_target_hosts
    }

    /// Most addresses one job (or chunk) may scan, unless its tool sets its own.
    pub fn max_hosts(&self) -> u32 {
        self.max_hosts
    }

    /// Checks a parsed target against the scope. A hostname is checked by its suffix only; its
    /// addresses are checked by [`TargetPolicy::check_resolved`] once it has been resolved.
    pub fn check(
        &self,
        target: &Target,
        max_hosts_override: Option<u32>,
    ) -> Result<(), ValidationError> {
        match target {
            Target::Ip(ip) => self.check_net(Ipv4Net::from(*ip), &ip.to_string(), None)?,
            Target::Cidr(net) => self.check_net(
                *net,
                &net.to_string(),
                Some(max_hosts_override.unwrap_or(self.max_hosts)),
            )?,
            // Narrowed inside (also for `check_resolved`).
            Target::Host(host) => return self.check_host(host),
        }
        self.narrowings.iter().try_for_each(|n| n.check(target))
    }

    /// Checks the target list of one job (a chunk of a big scan, or a one-entry list): every
    /// entry as [`TargetPolicy::check`] would, and all of them together within the tool's
    /// `max_hosts` (or the server's, [`TargetPolicy::max_hosts`]), so no job scans more
    /// addresses than one job may.
    pub fn check_list(
        &self,
        list: &TargetList,
        max_hosts_override: Option<u32>,
    ) -> Result<(), ValidationError> {
        for target in list.entries() {
            self.check(target, max_hosts_override)?;
        }
        let cap = max_hosts_override.unwrap_or(self.max_hosts);
        let hosts = list.hosts();
        if hosts > u64::from(cap) {
            return Err(refuse(
                format!("the target list covers {hosts} hosts; one job may cover at most {cap}"),
                format!("split the list into jobs of at most {cap} hosts"),
            ));
        }
        Ok(())
    }

    /// Checks what a hostname resolved to: every answer must be an allowed IPv4 address (no DNS
    /// rebinding through a mixed answer, no IPv6). Returns the first address, which is what the
    /// tool is given.
    pub fn check_resolved(
        &self,
        host: &Hostname,
        addrs: &[IpAddr],
    ) -> Result<Ipv4Addr, ValidationError> {
        self.check_host(host)?;
        let mut first = None;
        for addr in addrs {
            let v4 = match addr {
                IpAddr::V4(v4) => *v4,
                IpAddr::V6(v6) => {
                    return Err(refuse(
                        format!("{host} resolves to the IPv6 address {v6}; IPv6 is not in scope"),
                        "point the name at IPv4 addresses only, or give the IPv4 address",
                    ));
                }
            };
            self.check_net(Ipv4Net::from(v4), &v4.to_string(), None)
                .and_then(|()| self.narrowings.iter().try_for_each(|n| n.check_address(v4)))
                .map_err(|e| {
                    refuse(
                        format!("{host} resolves to {v4}, which is refused: {}", e.message),
                        e.hint,
                    )
                })?;
            first.get_or_insert(v4);
        }
        first.ok_or_else(|| {
            refuse(
                format!("{host} resolved to no addresses"),
                "check the name, or give the IPv4 address",
            )
        })
    }

    /// Whether every name under the `.suffix` rule `suffix` (leading dot, lower-cased) is under
    /// an allowed suffix rule: what an engagement's `.suffix` entry must be (DESIGN §14). Denied
    /// rules still apply to each name at submit.
    pub fn covers_suffix(&self, suffix: &str) -> bool {
        self.allow
            .suffixes
            .iter()
            .any(|allowed| suffix.ends_with(allowed.as_str()))
            && self.narrowings.iter().all(|n| n.covers_suffix(suffix))
    }

    /// A human summary of the scope for messages and `GET /v1/tools`.
    pub fn describe(&self) -> String {
        let mut out = format!("allowed: {}", self.allow.describe());
        if !self.deny.nets.is_empty() || !self.deny.suffixes.is_empty() {
            let _ = write!(out, "; denied: {}", self.deny.describe());
        }
        let _ = write!(out, "; CIDRs up to {} addresses", self.max_hosts);
        out
    }

    fn check_host(&self, host: &Hostname) -> Result<(), ValidationError> {
        self.narrowings
            .iter()
            .try_for_each(|n| n.check(&Target::Host(host.clone())))?;
        if let Some(rule) = self.deny.matches_host(host) {
            return Err(refuse(
                format!("{host} is under the denied suffix {rule}"),
                self.describe(),
            ));
        }
        if self.allow.matches_host(host).is_none() {
            return Err(refuse(
                format!("{host} is not under an allowed suffix"),
                self.describe(),
            ));
        }
        Ok(())
    }

    fn check_net(
        &self,
        net: Ipv4Net,
        shown: &str,
        cap: Option<u32>,
    ) -> Result<(), ValidationError> {
        if let Some(denied) = self.deny.nets.iter().find(|d| overlaps(d, &net)) {
            return Err(refuse(
                format!("{shown} overlaps the denied range {denied}"),
                self.describe(),
            ));
        }
        let containing: Vec<&Ipv4Net> = self
            .allow
            .nets
            .iter()
            .filter(|a| a.contains(&net))
            .collect();
        if containing.is_empty() {
            let message = match special_overlaps(&net).next() {
                Some((range, kind)) => format!(
                    "{shown} {} {range} ({kind}), which is refused unless the operator lists it",
                    if range.contains(&net) {
                        "is in"
                    } else {
                        "overlaps"
                    }
                ),
                None => format!("{shown} is not inside an allowed range"),
            };
            return Err(refuse(message, self.describe()));
        }
        for (range, kind) in special_overlaps(&net) {
            if !containing.iter().any(|a| range.contains(*a)) {
                return Err(refuse(
                    format!(
                        "{shown} {} {range} ({kind}), which is refused unless the operator \
                         lists it explicitly (a wider allowed range does not count)",
                        if range.contains(&net) {
                            "is in"
                        } else {
                            "overlaps"
                        }
                    ),
                    self.describe(),
                ));
            }
        }
        if let Some(cap) = cap {
            let size = 1u64 << (32 - u32::from(net.prefix_len()));
            if size > u64::from(cap) {
                return Err(refuse(
                    format!("{shown} covers {size} addresses; the limit is {cap}"),
                    format!("split the scan into CIDRs of at most {cap} addresses"),
                ));
            }
        }
        Ok(())
    }
}

fn refuse(message: impl Into<String>, hint: impl Into<String>) -> ValidationError {
    ValidationError::new("target", message, hint)
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(b) || b.contains(a)
}

fn special_overlaps(net: &Ipv4Net) -> impl Iterator<Item = (Ipv4Net, &'static str)> + '_ {
    SPECIAL.iter().filter_map(move |(range, kind)| {
        let range: Ipv4Net = range.parse().expect("special ranges are valid CIDRs");
        overlaps(&range, net).then_some((range, *kind))
    })
}

#[cfg(test)]
mod tests;
