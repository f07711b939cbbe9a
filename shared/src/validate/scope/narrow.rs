//! A narrowing of the server's scope: an allow list and a deny list that a target must pass *in
//! addition to* the server's (DESIGN §14). A tenant's `allowed_targets` in the tokens file and an
//! engagement's `targets`/`denied_targets` are both narrowings: they can only take addresses away
//! from what the operator allows, never add any (the server's special-range rules still apply
//! first).

use ipnet::Ipv4Net;

use super::{Rules, overlaps};
use crate::validate::{Hostname, Target, ValidationError};

/// An allow list and a deny list inside the server's scope, with the name shown in refusals
/// (`engagement pentest-q4`, `tenant blue`).
#[derive(Clone, Debug)]
pub struct Narrowing {
    label: String,
    allow: Rules,
    deny: Rules,
}

impl Narrowing {
    /// `allow`/`deny`: entries as in `SCANQ_ALLOWED_TARGETS` (IPv4s, CIDRs, `.suffix` rules, exact
    /// names). An empty allow list allows nothing.
    pub fn parse<'a>(
        label: impl Into<String>,
        allow: impl IntoIterator<Item = &'a str>,
        deny: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, String> {
        let join = |it: &mut dyn Iterator<Item = &'a str>| it.collect::<Vec<_>>().join(",");
        let label = label.into();
        Ok(Self {
            allow: Rules::parse(&join(&mut allow.into_iter()), "allowed targets")?,
            deny: Rules::parse(&join(&mut deny.into_iter()), "denied targets")?,
            label,
        })
    }

    /// Who narrows (shown in refusals).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// A human summary: `allowed: …; denied: …`.
    pub fn describe(&self) -> String {
        let mut out = format!("{} allows: {}", self.label, self.allow.describe());
        if !self.deny.nets.is_empty()
            || !self.deny.suffixes.is_empty()
            || !self.deny.names.is_empty()
        {
            out.push_str(&format!("; denies: {}", self.deny.describe()));
        }
        out
    }

    /// Whether `target` lies wholly inside one allowed entry and touches no denied one. The
    /// refusal names the field `target` and says who narrows.
    pub fn check(&self, target: &Target) -> Result<(), ValidationError> {
        match target {
            Target::Ip(ip) => self.check_net(Ipv4Net::from(*ip), &ip.to_string()),
            Target::Cidr(net) => self.check_net(*net, &net.to_string()),
            Target::Host(host) => self.check_host(host),
        }
    }

    /// Whether every name under `suffix` (`.lab.internal`) lies under an allowed suffix, and
    /// none of its suffixes is denied.
    pub fn covers_suffix(&self, suffix: &str) -> bool {
        self.allow
            .suffixes
            .iter()
            .any(|a| suffix.ends_with(a.as_str()))
            && !self
                .deny
                .suffixes
                .iter()
                .any(|d| suffix.ends_with(d.as_str()) || d.ends_with(suffix))
    }

    /// Whether an address a name resolved to is inside the narrowing.
    pub fn check_address(&self, addr: std::net::Ipv4Addr) -> Result<(), ValidationError> {
        self.check_net(Ipv4Net::from(addr), &addr.to_string())
    }

    fn check_host(&self, host: &Hostname) -> Result<(), ValidationError> {
        if let Some(rule) = self.deny.matches_host(host) {
            return Err(self.refuse(format!(
                "{host} is under {rule}, which {} denies",
                self.label
            )));
        }
        if self.allow.matches_host(host).is_none() {
            return Err(self.refuse(format!("{host} is outside what {} allows", self.label)));
        }
        Ok(())
    }

    fn check_net(&self, net: Ipv4Net, shown: &str) -> Result<(), ValidationError> {
        if let Some(denied) = self.deny.nets.iter().find(|d| overlaps(d, &net)) {
            return Err(self.refuse(format!(
                "{shown} overlaps {denied}, which {} denies",
                self.label
            )));
        }
        if !self.allow.nets.iter().any(|a| a.contains(&net)) {
            return Err(self.refuse(format!("{shown} is outside what {} allows", self.label)));
        }
        Ok(())
    }

    fn refuse(&self, message: String) -> ValidationError {
        ValidationError::new("target", message, self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Target {
        s.parse().unwrap()
    }

    #[test]
    fn a_narrowing_allows_only_inside_and_never_what_it_denies() {
        let n = Narrowing::parse(
            "engagement q4",
            ["127.0.1.0/24", ".lab.test"],
            ["127.0.1.128/25", "db.lab.test"],
        )
        .unwrap();
        n.check(&t("127.0.1.5")).unwrap();
        n.check(&t("127.0.1.0/26")).unwrap();
        n.check(&t("web.lab.test")).unwrap();
        let e = n.check(&t("127.0.2.1")).unwrap_err();
        assert_eq!(e.field, "target");
        assert!(
            e.message.contains("outside what engagement q4 allows"),
            "{e}"
        );
        let e = n.check(&t("127.0.1.0/24")).unwrap_err();
        assert!(e.message.contains("127.0.1.128/25"), "{e}");
        assert!(n.check(&t("127.0.1.200")).is_err());
        assert!(n.check(&t("db.lab.test")).is_err());
        assert!(n.check(&t("other.test")).is_err());
        assert!(n.check_address("127.0.1.130".parse().unwrap()).is_err());
        assert!(
            Narrowing::parse("x", ["nope/99"], std::iter::empty())
                .unwrap_err()
                .contains("nope/99")
        );
        let none = Narrowing::parse("x", std::iter::empty(), std::iter::empty()).unwrap();
        assert!(none.check(&t("127.0.0.1")).is_err());
    }
}
