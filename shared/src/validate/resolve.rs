//! Turning a checked [`Target`] into the text the tool is given. Addresses and CIDRs pass
//! through in canonical form; a hostname is resolved (by the worker, just before the run) and
//! every answer is checked again, so a name cannot be re-pointed at a forbidden address between
//! submit and run, and the tool scans the checked address rather than resolving the name itself.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::Duration;

use super::{Target, TargetPolicy, ValidationError};

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

/// What the tool is actually given: for IP/CIDR the canonical text; for hostnames the checked
/// address.
pub async fn resolve_for_scan(
    policy: &TargetPolicy,
    resolver: &dyn Resolver,
    target: &Target,
    max_hosts_override: Option<u32>,
) -> Result<String, ValidationError> {
    policy.check(target, max_hosts_override)?;
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
}
