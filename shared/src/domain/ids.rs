//! Validated identifiers: correlation IDs, tenants, tool names and engagements. Each is a newtype with a
//! private field that can only be built through `parse`, so code downstream never re-checks strings.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an identifier was refused; the message says what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdError(pub String);

fn check(value: &str, max: usize, extra: &[char], what: &str) -> Result<(), IdError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || extra.contains(&c);
    if value.is_empty() || value.len() > max || !value.chars().all(ok_char) {
        let extra: String = extra.iter().collect();
        return Err(IdError(format!(
            "{what} must be 1-{max} characters from A-Z a-z 0-9 and `{extra}`"
        )));
    }
    Ok(())
}

macro_rules! string_id {
    ($name:ident, $max:expr, $extra:expr, $what:expr) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: &str) -> Result<Self, IdError> {
                check(value, $max, $extra, $what)?;
                Ok(Self(value.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(CorrelationId, 64, &['.', '_', ':', '-'], "correlation_id");
string_id!(TenantId, 64, &['_', '-'], "tenant");
string_id!(ToolName, 32, &['_', '-'], "tool");
// An engagement (DESIGN §14), unique per tenant; it names a key, so no `/` or `{`.
string_id!(EngagementId, 64, &['.', '_', '-'], "engagement");

impl CorrelationId {
    /// A fresh server-made ID (UUIDv7: sortable by creation time).
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// The ID as a tenant's backlog item holds it when it is a lowercase UUID (as
    /// [`CorrelationId::generate`] makes them): `#` and its 16 bytes, 17 bytes instead of 36
    /// (docs/queue.md "What a job stores"; `backlog_ref` in common.lua reads it back). `None`
    /// for any other ID, which the item holds as it is.
    pub fn packed(&self) -> Option<[u8; 17]> {
        let u = uuid::Uuid::try_parse(&self.0).ok()?;
        if u.hyphenated().to_string() != self.0 {
            return None;
        }
        let mut out = [b'#'; 17];
        out[1..].copy_from_slice(u.as_bytes());
        Some(out)
    }
}

impl TenantId {
    /// The tenant used when the API runs without tokens (open mode).
    pub fn default_tenant() -> Self {
        Self("default".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_ids_accept_the_documented_alphabet() {
        assert!(CorrelationId::parse("scan-42").is_ok());
        assert!(CorrelationId::parse("a.b_c:d-e").is_ok());
        assert!(CorrelationId::parse(&"x".repeat(64)).is_ok());
    }

    #[test]
    fn correlation_ids_refuse_anything_else_with_a_hint() {
        for bad in ["", "a b", "a/b", "ü", "a{b}", &"x".repeat(65), "a\nb"] {
            let err = CorrelationId::parse(bad).unwrap_err();
            assert!(err.0.contains("1-64"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn lowercase_uuids_pack_into_17_bytes_and_other_ids_do_not() {
        let id = CorrelationId::parse("019af0c2-7e1d-7b3a-9c4e-0123456789ab").unwrap();
        let p = id.packed().unwrap();
        assert_eq!(p[0], b'#');
        assert_eq!(p[1..3], [0x01, 0x9a]);
        assert_eq!(p[16], 0xab);
        assert!(CorrelationId::generate().packed().is_some());
        for other in [
            "019AF0C2-7E1D-7B3A-9C4E-0123456789AB",
            "scan-42",
            "019af0c27e1d7b3a9c4e0123456789ab",
        ] {
            assert_eq!(
                CorrelationId::parse(other).unwrap().packed(),
                None,
                "{other}"
            );
        }
    }

    #[test]
    fn generated_ids_are_valid() {
        let id = CorrelationId::generate();
        assert_eq!(CorrelationId::parse(id.as_str()).unwrap(), id);
    }

    #[test]
    fn tool_names_and_tenants_have_no_separators() {
        assert!(ToolName::parse("nmap").is_ok());
        assert!(ToolName::parse("a:b").is_err());
        assert!(TenantId::parse("blue").is_ok());
        assert!(TenantId::parse("blue/x").is_err());
        assert!(TenantId::parse("a:b").is_err());
    }
}
