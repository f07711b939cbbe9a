//! What the tokens file narrows for one caller (DESIGN §14): a tenant's or a token's
//! `allowed_targets` (a [`Narrowing`] of the server's scope, so tenants do not share one scope
//! even without engagements) and `require_engagement`. The API builds it from the caller's tenant
//! and token; the scheduler, acting for a tenant without a request, from what the APIs published
//! for the tenant (`Queue::tenant_scope`).

use std::borrow::Cow;
use std::sync::Arc;

use super::Policy;
use crate::validate::{Narrowing, TargetPolicy};

/// The narrowings and rules of one caller; the default narrows nothing.
#[derive(Debug, Clone, Default)]
pub struct CallerScope {
    /// Every target must pass each of these too (the tenant's, then the token's).
    pub narrowings: Vec<Arc<Narrowing>>,
    /// Every job must name an engagement.
    pub require_engagement: bool,
}

impl CallerScope {
    /// The server's scope narrowed for this caller (borrowed when nothing narrows it).
    pub fn scope<'a>(&self, server: &'a TargetPolicy) -> Cow<'a, TargetPolicy> {
        if self.narrowings.is_empty() {
            return Cow::Borrowed(server);
        }
        let mut scope = server.clone();
        for n in &self.narrowings {
            scope = scope.narrowed(n.clone());
        }
        Cow::Owned(scope)
    }

    /// `base` with this caller's scope (from [`CallerScope::scope`]) and rules.
    pub fn policy<'a>(&self, base: Policy<'a>, scope: &'a TargetPolicy) -> Policy<'a> {
        Policy {
            targets: scope,
            require_engagement: base.require_engagement || self.require_engagement,
            ..base
        }
    }

    /// From what the APIs published for a tenant: its `allowed_targets` as comma-separated
    /// entries (absent: not narrowed) and its `require_engagement`.
    pub fn published(tenant: &str, allowed: Option<&str>, require_engagement: bool) -> Self {
        let narrowings = allowed
            .map(|text| {
                Narrowing::parse(
                    format!("tenant {tenant}"),
                    text.split(',').filter(|e| !e.is_empty()),
                    std::iter::empty(),
                )
                // Published by an API that checked it; unreadable = allows nothing (fail closed).
                .unwrap_or_else(|_| {
                    Narrowing::parse(format!("tenant {tenant}"), [], [])
                        .expect("an empty narrowing parses")
                })
            })
            .map(Arc::new)
            .into_iter()
            .collect();
        Self {
            narrowings,
            require_engagement,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_scope_narrows_and_an_unreadable_one_allows_nothing() {
        let server = TargetPolicy::parse("127.0.0.0/8", "", 256).unwrap();
        let t = |s: &str| s.parse().unwrap();
        let blue = CallerScope::published("blue", Some("127.0.1.0/24"), false);
        let scope = blue.scope(&server);
        scope.check(&t("127.0.1.7"), None).unwrap();
        let e = scope.check(&t("127.0.2.7"), None).unwrap_err();
        assert!(e.message.contains("tenant blue"), "{e}");
        let broken = CallerScope::published("x", Some("nope/99"), true);
        assert!(broken.require_engagement);
        assert!(broken.scope(&server).check(&t("127.0.1.7"), None).is_err());
        let open = CallerScope::published("y", None, false);
        assert!(matches!(open.scope(&server), Cow::Borrowed(_)));
    }
}
