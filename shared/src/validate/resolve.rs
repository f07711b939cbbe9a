//! Turning a checked [`TargetList`] (one target, or a chunk's list) into the addresses the tool
//! is given ([`resolve_list`]). Addresses and CIDRs pass through in canonical form; a hostname
//! is resolved (by the worker, just before the run) and every answer is checked again, so a
//! name cannot be re-pointed at a forbidden address between submit and run, and the tool scans
//! the checked address rather than resolving the name itself.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::Duration;

use super::{Target, TargetList, TargetPolicy, ValidationError};

/// A boxed, sendable future, so [`Resolver`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How long a lookup may take before the target is refused.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Looks up the addresses of a hostname.
pub trait Resolver: Send + Sync {
    fn resolve<'a>(&'a self, host: &'a str) -> BoxFuture<'a, io::Result<Vec<IpAddr>>>;
}

/// The operating system's resolver (`getaddrinfo` through tokio).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve<'a>(&'a self, host: &'a str) -> BoxFuture<'a, io::Result<Vec<IpAddr>>> {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host, 0)).await?;
            let mut ips: Vec<IpAddr> = Vec::new();
            for addr in addrs {
                if !ips.contains(&addr.ip()) {
                    ips.push(addr.ip());
                }
            }
            Ok(ips)
        })
    }
}

/// A fixed table of answers, for tests. An unknown name fails with [`io::ErrorKind::NotFound`].
#[derive(Clone, Debug, Default)]
pub struct StaticResolver {
    answers: HashMap<String, Vec<IpAddr>>,
}

impl StaticResolver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the answer for `host`.
    pub fn with(mut self, host: &str, addrs: impl IntoIterator<Item = IpAddr>) -> Self {
        self.answers
            .insert(host.to_ascii_lowercase(), addrs.into_iter().collect());
        self
    }
}

impl Resolver for StaticResolver {
    fn resolve<'a>(&'a self, host: &'a str) -> BoxFuture<'a, io::Result<Vec<IpAddr>>> {
        let answer = self.answers.get(host).cloned().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("no answer for {host}"))
        });
        Box::pin(async move { answer })
    }
}

/// How many names of one list are looked up at once.
pub const RESOLVE_CONCURRENCY: usize = 16;

/// What the tool is actually given for a job's target list, in the list's order: addresses and
/// CIDRs in canonical form; each hostname resolved and its answers checked, giving one checked
/// address. Two names with the same address give it once. The list is checked against the
/// scope first (every entry, and its hosts together within the cap), so nothing out of scope
/// is ever looked up.
pub async fn resolve_list(
    policy: &TargetPolicy,
    resolver: &dyn Resolver,
    list: &TargetList,
    max_hosts_override: Option<u32>,
) -> Result<Vec<String>, ValidationError> {
    policy.check_list(list, max_hosts_override)?;
    let mut seen = HashSet::new();
    let mut addresses = Vec::with_capacity(list.entries().len());
    // A few lookups at a time; the first refusal refuses the list.
    for batch in list.entries().chunks(RESOLVE_CONCURRENCY) {
        let resolved =
            futures::future::try_join_all(batch.iter().map(|t| resolve_one(policy, resolver, t)))
                .await?;
        addresses.extend(resolved.into_iter().filter(|a| seen.insert(a.clone())));
    }
    Ok(addresses)
}

/// [`resolve_list`] for one target: the one address (or CIDR) the tool is given.
pub async fn resolve_for_scan(
    policy: &TargetPolicy,
    resolver: &dyn Resolver,
    target: &Target,
    max_hosts_override: Option<u32>,
) -> Result<String, ValidationError> {
    let list = TargetList::from(target.clone());
    let mut addresses = resolve_list(policy, resolver, &list, max_hosts_override).await?;
    Ok(addresses.remove(0))
}

/// One checked entry: an address or CIDR as it is, a hostname's checked address.
async fn resolve_one(
    policy: &TargetPolicy,
    resolver: &dyn Resolver,
    target: &Target,
) -> Result<String, ValidationError> {
    let host = match target {
        Target::Ip(_) | Target::Cidr(_) => return Ok(target.to_string()),
        Target::Host(host) => host,
    };
    let lookup = tokio::time::timeout(RESOLVE_TIMEOUT, resolver.resolve(host.as_str())).await;
    let addrs = match lookup {
        Ok(Ok(addrs)) => addrs,
        Ok(Err(err)) => {
            return Err(ValidationError::new(
                "target",
                format!("{host} could not be resolved ({})", err.kind()),
                "check the name, or give the IPv4 address",
            ));
        }
        Err(_) => {
            return Err(ValidationError::new(
                "target",
                format!(
                    "{host} did not resolve within {} s",
                    RESOLVE_TIMEOUT.as_secs()
                ),
                "retry later, or give the IPv4 address",
            ));
        }
    };
    policy
        .check_resolved(host, &addrs)
        .map(|addr| addr.to_string())
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    fn host(s: &str) -> Target {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn an_allowed_name_resolves_to_its_checked_address() {
        let resolver = StaticResolver::new().with("db1.lab.internal", [v4(10, 0, 0, 5)]);
        let got = resolve_for_scan(
            &TargetPolicy::default(),
            &resolver,
            &host("db1.lab.internal"),
            None,
        )
        .await
        .unwrap();
        assert_eq!(got, "10.0.0.5");
    }

    #[tokio::test]
    async fn a_name_resolving_to_an_allowed_and_a_forbidden_address_is_refused() {
        let resolver =
            StaticResolver::new().with("db1.lab.internal", [v4(10, 0, 0, 5), v4(127, 0, 0, 1)]);
        let err = resolve_for_scan(
            &TargetPolicy::default(),
            &resolver,
            &host("db1.lab.internal"),
            None,
        )
        .await
        .unwrap_err();
        assert_eq!(err.field, "target");
        assert!(err.message.contains("127.0.0.1"), "{}", err.message);
    }

    #[tokio::test]
    async fn an_unknown_name_is_refused_as_unresolvable() {
        let err = resolve_for_scan(
            &TargetPolicy::default(),
            &StaticResolver::new(),
            &host("gone.lab.internal"),
            None,
        )
        .await
        .unwrap_err();
        assert!(
            err.message.contains("could not be resolved"),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn a_name_outside_scope_is_refused_before_any_lookup() {
        struct Panics;
        impl Resolver for Panics {
            fn resolve<'a>(&'a self, _: &'a str) -> BoxFuture<'a, io::Result<Vec<IpAddr>>> {
                panic!("must not resolve an out-of-scope name")
            }
        }
        let err = resolve_for_scan(
            &TargetPolicy::default(),
            &Panics,
            &host("example.com"),
            None,
        )
        .await
        .unwrap_err();
        assert_eq!(err.field, "target");
    }

    #[tokio::test]
    async fn addresses_and_cidrs_pass_through_in_canonical_form() {
        let policy = TargetPolicy::default();
        let resolver = StaticResolver::new();
        for s in ["10.0.0.5", "10.0.0.0/24"] {
            let got = resolve_for_scan(&policy, &resolver, &host(s), None)
                .await
                .unwrap();
            assert_eq!(got, s);
        }
        assert!(
            resolve_for_scan(&policy, &resolver, &host("10.0.0.0/16"), None)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn the_system_resolver_finds_localhost() {
        // Only `localhost` is ever resolved through the system in tests.
        let addrs = SystemResolver.resolve("localhost").await.unwrap();
        assert!(addrs.iter().any(IpAddr::is_loopback), "{addrs:?}");
        assert!(!addrs.iter().any(|a| !a.is_loopback()), "{addrs:?}");
    }

    fn list(s: &str) -> TargetList {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn a_list_of_names_resolves_in_order_and_an_address_shared_by_two_names_comes_once() {
        let resolver = StaticResolver::new()
            .with("b.lab.internal", [v4(10, 0, 0, 9)])
            .with("a.lab.internal", [v4(10, 0, 0, 5)])
            .with("alias.lab.internal", [v4(10, 0, 0, 9)]);
        let got = resolve_list(
            &TargetPolicy::default(),
            &resolver,
            &list("b.lab.internal,a.lab.internal,alias.lab.internal"),
            None,
        )
        .await
        .unwrap();
        assert_eq!(got, ["10.0.0.9", "10.0.0.5"]);
    }

    #[tokio::test]
    async fn a_list_of_addresses_and_cidrs_passes_through_in_order() {
        let got = resolve_list(
            &TargetPolicy::default(),
            &StaticResolver::new(),
            &list("10.0.0.64/27,10.0.0.0/26,10.0.0.96/30,10.9.0.1"),
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            got,
            ["10.0.0.64/27", "10.0.0.0/26", "10.0.0.96/30", "10.9.0.1"]
        );
    }

    #[tokio::test]
    async fn one_name_of_a_list_resolving_out_of_scope_refuses_the_whole_list() {
        let resolver = StaticResolver::new()
            .with("a.lab.internal", [v4(10, 0, 0, 5)])
            .with("evil.lab.internal", [v4(127, 0, 0, 1)]);
        let err = resolve_list(
            &TargetPolicy::default(),
            &resolver,
            &list("a.lab.internal,evil.lab.internal"),
            None,
        )
        .await
        .unwrap_err();
        assert_eq!(err.field, "target");
        assert!(
            err.message.contains("evil.lab.internal") && err.message.contains("127.0.0.1"),
            "{}",
            err.message
        );
        let err = resolve_list(
            &TargetPolicy::default(),
            &resolver,
            &list("a.lab.internal,gone.lab.internal"),
            None,
        )
        .await
        .unwrap_err();
        assert!(
            err.message
                .contains("gone.lab.internal could not be resolved"),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn a_list_over_the_host_cap_is_refused_before_any_lookup() {
        struct Panics;
        impl Resolver for Panics {
            fn resolve<'a>(&'a self, _: &'a str) -> BoxFuture<'a, io::Result<Vec<IpAddr>>> {
                panic!("must not resolve a list that is refused")
            }
        }
        let err = resolve_list(
            &TargetPolicy::default(),
            &Panics,
            &list("a.lab.internal,b.lab.internal,c.lab.internal"),
            Some(2),
        )
        .await
        .unwrap_err();
        assert!(
            err.message.contains('3') && err.message.contains("at most 2"),
            "{}",
            err.message
        );
        let err = resolve_list(
            &TargetPolicy::default(),
            &StaticResolver::new(),
            &list("10.0.0.0/22,10.0.4.0/30"),
            None,
        )
        .await
        .unwrap_err();
        assert!(err.message.contains("1028"), "{}", err.message);
    }
}
