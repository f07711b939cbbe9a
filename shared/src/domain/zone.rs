//! A zone (DESIGN §13): a network that only some workers can reach. Every job lives in exactly
//! one zone and is claimed only by workers of that zone; a target in no configured zone is in
//! zone `default`. The zone map that places targets is `validate::ZoneMap`.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::IdError;

/// Longest zone name.
pub const MAX_ZONE_LEN: usize = 32;

/// A zone's name: 1–32 characters of `a-z`, `0-9`, `-` and `_`, starting with a letter or digit.
/// `default` is the zone of everything the zone map does not place.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Zone(String);

impl Zone {
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let ok_char =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
        let first_ok = value
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !first_ok || value.len() > MAX_ZONE_LEN || !value.chars().all(ok_char) {
            return Err(IdError(format!(
                "zone must be 1-{MAX_ZONE_LEN} characters from a-z 0-9 `-` `_`, starting with a \
                 letter or digit (got {value:?})"
            )));
        }
        Ok(Self(value.to_owned()))
    }

    /// The zone of every target the zone map does not place.
    pub fn default_zone() -> Self {
        Self("default".to_owned())
    }

    pub fn is_default(&self) -> bool {
        self.0 == "default"
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Zone {
    fn default() -> Self {
        Self::default_zone()
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Zone {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_names_are_short_lower_case_words() {
        for ok in ["default", "dmz", "lab-2", "eu_west", "0a"] {
            assert_eq!(Zone::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "DMZ",
            "-a",
            "_a",
            "a b",
            "a@b",
            "a/b",
            "a.b",
            &"z".repeat(33),
        ] {
            let err = Zone::parse(bad).unwrap_err();
            assert!(err.0.contains("zone must be"), "{bad:?}: {err}");
        }
        assert!(Zone::default().is_default());
    }
}
