//! The entries of an engagement's `targets` and `denied_targets`: each parsed once into its
//! canonical form ([`Entry`]: a target or a `.suffix` rule), a list refused when it names an
//! address twice (an entry inside another), and an allowed entry checked against the server's
//! scope.

use super::body::{clip, hint, refuse};
use crate::validate::target::parse_hostname;
use crate::validate::{Target, TargetPolicy, ValidationError};

/// The longest text of one entry.
const MAX_ENTRY_LEN: usize = 254;

/// One entry of `targets` or `denied_targets`, in its canonical form: a [`Target`], or a
/// `.suffix` rule (lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Entry {
    Target(Target),
    Suffix(String),
}

impl Entry {
    pub(super) fn parse(field: &str, text: &str) -> Result<Self, ValidationError> {
        let hint = hint("targets");
        if text.is_empty() || text.len() > MAX_ENTRY_LEN {
            return Err(refuse(
                field,
                format!("must be 1 to {MAX_ENTRY_LEN} bytes"),
                hint,
            ));
        }
        if text.contains([',', ' ']) {
            return Err(refuse(
                field,
                format!(
                    "`{}` holds a comma or a space; one entry per item",
                    clip(text)
                ),
                hint,
            ));
        }
        if let Some(name) = text.strip_prefix('.') {
            let host = parse_hostname(name).map_err(|e| refuse(field, e.message, hint))?;
            return Ok(Self::Suffix(format!(".{}", host.as_str())));
        }
        text.parse::<Target>()
            .map(Self::Target)
            .map_err(|e| refuse(field, e.message, e.hint))
    }

    pub(super) fn text(&self) -> String {
        match self {
            Self::Target(t) => t.to_string(),
            Self::Suffix(s) => s.clone(),
        }
    }

    /// Whether every address or name `self` allows is also allowed by `other`.
    pub(super) fn inside(&self, other: &Entry) -> bool {
        match (self, other) {
            (Self::Target(a), Self::Target(b)) => match (net(a), net(b)) {
                (Some(a), Some(b)) => b.contains(&a),
                _ => a == b,
            },
            (Self::Target(Target::Host(h)), Self::Suffix(s)) => h.as_str().ends_with(s.as_str()),
            (Self::Suffix(a), Self::Suffix(b)) => a.ends_with(b.as_str()),
            _ => false,
        }
    }

    /// Checks that what the entry allows lies inside the server's scope. A `.suffix` rule is
    /// checked as a name under it.
    pub(super) fn check_scope(
        &self,
        field: &str,
        scope: &TargetPolicy,
    ) -> Result<(), ValidationError> {
        let wider = |message: String, hint: String| {
            refuse(
                field,
                format!(
                    "`{}` is wider than the server's scope allows: {message}",
                    self.text()
                ),
                format!("entries inside the server's scope ({hint})"),
            )
        };
        match self {
            Self::Target(t) => scope
                .check(t, Some(u32::MAX))
                .map_err(|e| wider(e.message, e.hint)),
            // Every name under it must be under an allowed suffix: an allowed exact name is
            // not enough.
            Self::Suffix(s) if scope.covers_suffix(s) => Ok(()),
            Self::Suffix(s) => Err(wider(
                format!("names under {s} are not all under an allowed suffix"),
                scope.describe(),
            )),
        }
    }
}

fn net(t: &Target) -> Option<ipnet::Ipv4Net> {
    match t {
        Target::Ip(ip) => Some(ipnet::Ipv4Net::from(*ip)),
        Target::Cidr(n) => Some(*n),
        Target::Host(_) => None,
    }
}

/// Parses a list field's entries: at most `max`, none twice, none inside an earlier one.
pub(super) fn entries(
    field: &str,
    list: &[String],
    max: usize,
) -> Result<Vec<Entry>, ValidationError> {
    if list.len() > max {
        return Err(refuse(
            field,
            format!("holds {} entries; at most {max}", list.len()),
            hint(field),
        ));
    }
    let mut out: Vec<Entry> = Vec::with_capacity(list.len());
    for (i, text) in list.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let e = Entry::parse(&f, text)?;
        if let Some((j, other)) = out
            .iter()
            .enumerate()
            .find(|(_, o)| e.inside(o) || o.inside(&e))
        {
            return Err(refuse(
                &f,
                format!(
                    "`{}` overlaps {field}[{j}] (`{}`); list each address once",
                    e.text(),
                    other.text()
                ),
                "merge the two entries into the wider one",
            ));
        }
        out.push(e);
    }
    Ok(out)
}
