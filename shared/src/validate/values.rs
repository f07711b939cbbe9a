//! The types a flag's value may have, as the tool catalog declares them, and the parsers that
//! turn a raw value into its normalized text (`-p-` becomes `1-65535`, `30s` becomes `30000ms`).
//! Script expressions are parsed by [`super::script`], which needs the script policy too.

use serde::{Deserialize, Serialize};

/// The type of a flag's value (`value = { type = "ports", max_ports = 1024 }` in the catalog).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ValueType {
    /// The flag takes no value (`-sV`).
    #[default]
    None,
    /// An nmap port list: `22`, `1-1024`, `22,80,443`, `T:80,U:53`, `-` (all); at most
    /// `max_ports` ports counted over all items.
    Ports { max_ports: u32 },
    /// A decimal integer in `min..=max`.
    Int { min: i64, max: i64 },
    /// An nmap time: a number with `ms`, `s`, `m` or `h` (bare = seconds), in `min_ms..=max_ms`.
    Duration { min_ms: u64, max_ms: u64 },
    /// An nmap timing template, `0`..`5` or its name (`aggressive`), in `min..=max`.
    Timing { min: u8, max: u8 },
    /// An nmap `--script` expression over categories (see [`super::ScriptPolicy`]).
    ScriptExpr,
    /// One of a fixed list of words.
    OneOf { values: Vec<String> },
}

const TIMING_NAMES: [&str; 6] = [
    "paranoid",
    "sneaky",
    "polite",
    "normal",
    "aggressive",
    "insane",
];

impl ValueType {
    /// True when the flag is followed by a value.
    pub fn takes_value(&self) -> bool {
        !matches!(self, ValueType::None)
    }

    /// Parses a value of every type but [`ValueType::None`] and [`ValueType::ScriptExpr`] into its
    /// normalized text; the error says what would be accepted.
    pub(crate) fn parse_simple(&self, raw: &str) -> Result<String, String> {
        match self {
            ValueType::None | ValueType::ScriptExpr => {
                unreachable!("handled by the argument parser")
            }
            ValueType::Ports { max_ports } => parse_ports(raw, *max_ports),
            ValueType::Int { min, max } => parse_int(raw, *min, *max).map(|n| n.to_string()),
            ValueType::Duration { min_ms, max_ms } => {
                parse_duration_ms(raw, *min_ms, *max_ms).map(|ms| format!("{ms}ms"))
            }
            ValueType::Timing { min, max } => parse_timing(raw, *min, *max).map(|t| t.to_string()),
            ValueType::OneOf { values } => values
                .iter()
                .find(|v| v.as_str() == raw)
                .cloned()
                .ok_or_else(|| format!("must be one of {}", values.join(", "))),
        }
    }

    /// Refuses types whose bounds cannot hold a value.
    pub(crate) fn check_bounds(&self) -> Result<(), String> {
        let ok = match self {
            ValueType::None | ValueType::ScriptExpr => true,
            ValueType::Ports { max_ports } => *max_ports >= 1,
            ValueType::Int { min, max } => min <= max,
            ValueType::Duration { min_ms, max_ms } => min_ms <= max_ms,
            ValueType::Timing { min, max } => min <= max && *max <= 5,
            ValueType::OneOf { values } => {
                !values.is_empty()
                    && values.iter().all(|v| {
                        !v.is_empty()
                            && !v.starts_with('-')
                            && v.chars()
                                .all(|c| c.is_ascii_alphanumeric() || "._,:+-".contains(c))
                    })
            }
        };
        if ok {
            Ok(())
        } else {
            Err(format!("value type {self:?} has empty or invalid bounds"))
        }
    }
}

fn parse_port_number(s: &str) -> Result<u32, String> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{s}` is not a port number (service names and wildcards are not accepted)"
        ));
    }
    let n: u32 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a port number"))?;
    if n > 65535 {
        return Err(format!("port {n} is above 65535"));
    }
    Ok(n)
}

/// Parses an nmap port list, normalizes open ranges, and counts the ports against `max_ports`.
pub(crate) fn parse_ports(raw: &str, max_ports: u32) -> Result<String, String> {
    const HINT: &str = "write ports like 22, 1-1024, 22,80,443 or T:80,U:53";
    if raw.is_empty() {
        return Err(format!("empty port list; {HINT}"));
    }
    let mut count: u64 = 0;
    let mut items = Vec::new();
    for item in raw.split(',') {
        let (proto, range) = match item.split_once(':') {
            Some((p @ ("T" | "U" | "S"), rest)) => (Some(p), rest),
            Some(_) => {
                return Err(format!(
                    "`{item}`: the protocol prefix must be T:, U: or S:"
                ));
            }
            None => (None, item),
        };
        let (lo, hi) = match range.split_once('-') {
            None => {
                let n = parse_port_number(range).map_err(|e| format!("{e}; {HINT}"))?;
                (n, n)
            }
            Some((lo, hi)) => {
                let lo = if lo.is_empty() {
                    1
                } else {
                    parse_port_number(lo)?
                };
                let hi = if hi.is_empty() {
                    65535
                } else {
                    parse_port_number(hi)?
                };
                if lo > hi {
                    return Err(format!("`{item}`: the range runs backwards"));
                }
                (lo, hi)
            }
        };
        count += u64::from(hi - lo + 1);
        let text = if lo == hi {
            lo.to_string()
        } else {
            format!("{lo}-{hi}")
        };
        items.push(match proto {
            Some(p) => format!("{p}:{text}"),
            None => text,
        });
    }
    if count > u64::from(max_ports) {
        return Err(format!(
            "the port list covers {count} ports; at most {max_ports} are allowed"
        ));
    }
    Ok(items.join(","))
}

pub(crate) fn parse_int(raw: &str, min: i64, max: i64) -> Result<i64, String> {
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    let n =
        if !digits.is_empty() && digits.len() <= 18 && digits.bytes().all(|b| b.is_ascii_digit()) {
            raw.parse::<i64>().ok()
        } else {
            None
        };
    match n {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("`{raw}` is not a whole number from {min} to {max}")),
    }
}

/// Parses nmap's time syntax (`500ms`, `1.5s`, `30`, `5m`, `2h`) into milliseconds.
pub(crate) fn parse_duration_ms(raw: &str, min_ms: u64, max_ms: u64) -> Result<u64, String> {
    let refusal = || {
        format!(
            "`{raw}` is not a time from {min_ms}ms to {max_ms}ms; write e.g. 500ms, 30s, 5m or 2h \
             (a bare number is seconds)"
        )
    };
    let split = raw
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(refusal()),
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || whole.len() > 9
        || frac.len() > 3
        || !digits_ok(whole)
        || !digits_ok(frac)
    {
        return Err(refusal());
    }
    if number.ends_with('.') {
        return Err(refusal());
    }
    let whole: u64 = whole.parse().map_err(|_| refusal())?;
    let frac_value: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| refusal())?
    };
    let scale = 10u64.pow(frac.len() as u32);
    let ms = whole * unit_ms + frac_value * unit_ms / scale;
    if (min_ms..=max_ms).contains(&ms) {
        Ok(ms)
    } else {
        Err(refusal())
    }
}

pub(crate) fn parse_timing(raw: &str, min: u8, max: u8) -> Result<u8, String> {
    let level = match raw.as_bytes() {
        [d @ b'0'..=b'5'] => Some(d - b'0'),
        _ => TIMING_NAMES
            .iter()
            .position(|name| *name == raw)
            .and_then(|i| u8::try_from(i).ok()),
    };
    match level {
        Some(level) if (min..=max).contains(&level) => Ok(level),
        _ => Err(format!(
            "`{raw}` is not a timing template from {min} ({}) to {max} ({})",
            TIMING_NAMES[usize::from(min.min(5))],
            TIMING_NAMES[usize::from(max.min(5))]
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_lists_are_normalized_and_counted() {
        assert_eq!(parse_ports("22", 10).unwrap(), "22");
        assert_eq!(parse_ports("22,80,443", 10).unwrap(), "22,80,443");
        assert_eq!(parse_ports("T:80,U:53", 10).unwrap(), "T:80,U:53");
        assert_eq!(parse_ports("-", 65535).unwrap(), "1-65535");
        assert_eq!(parse_ports("-100", 100).unwrap(), "1-100");
        assert_eq!(parse_ports("65000-", 1000).unwrap(), "65000-65535");
        assert_eq!(parse_ports("1-1", 1).unwrap(), "1");
        assert!(parse_ports("-", 65534).unwrap_err().contains("65535 ports"));
        assert!(
            parse_ports("1-1024", 1000)
                .unwrap_err()
                .contains("at most 1000")
        );
    }

    #[test]
    fn bad_port_lists_are_refused() {
        for raw in [
            "", "http", "80-22", "65536", "1,,2", "X:80", "[1-1024]", "10.0.0.6", "1-2-3", "T:",
        ] {
            assert!(parse_ports(raw, 65535).is_err(), "{raw}");
        }
    }

    #[test]
    fn durations_follow_nmap_syntax() {
        assert_eq!(parse_duration_ms("500ms", 0, u64::MAX).unwrap(), 500);
        assert_eq!(parse_duration_ms("30", 0, u64::MAX).unwrap(), 30_000);
        assert_eq!(parse_duration_ms("30s", 0, u64::MAX).unwrap(), 30_000);
        assert_eq!(parse_duration_ms("1.5s", 0, u64::MAX).unwrap(), 1_500);
        assert_eq!(parse_duration_ms("5m", 0, u64::MAX).unwrap(), 300_000);
        assert_eq!(parse_duration_ms("2h", 0, u64::MAX).unwrap(), 7_200_000);
        for raw in [
            "",
            "s",
            "1.",
            ".5s",
            "5d",
            "1e3",
            "-5s",
            "1.2345s",
            "9999999999h",
        ] {
            assert!(parse_duration_ms(raw, 0, u64::MAX).is_err(), "{raw}");
        }
        assert!(parse_duration_ms("10ms", 100, 1000).is_err());
        assert!(parse_duration_ms("2s", 100, 1000).is_err());
    }

    #[test]
    fn integers_and_timing_respect_bounds() {
        assert_eq!(parse_int("3", 0, 10).unwrap(), 3);
        assert_eq!(parse_int("-1", -5, 10).unwrap(), -1);
        for raw in ["11", "-1", "+1", "1.0", "", "0x1", "99999999999999999999"] {
            assert!(parse_int(raw, 0, 10).is_err(), "{raw}");
        }
        assert_eq!(parse_timing("4", 0, 4).unwrap(), 4);
        assert_eq!(parse_timing("aggressive", 0, 4).unwrap(), 4);
        assert!(
            parse_timing("5", 0, 4)
                .unwrap_err()
                .contains("4 (aggressive)")
        );
        assert!(parse_timing("insane", 0, 4).is_err());
        assert!(parse_timing("44", 0, 5).is_err());
    }

    #[test]
    fn value_types_deserialize_from_catalog_toml() {
        #[derive(Deserialize)]
        struct Holder {
            value: ValueType,
        }
        let h: Holder = toml::from_str("value = { type = \"ports\", max_ports = 100 }").unwrap();
        assert_eq!(h.value, ValueType::Ports { max_ports: 100 });
        let h: Holder = toml::from_str("value = { type = \"script_expr\" }").unwrap();
        assert_eq!(h.value, ValueType::ScriptExpr);
        let h: Holder =
            toml::from_str("value = { type = \"one_of\", values = [\"a\", \"b\"] }").unwrap();
        assert_eq!(
            h.value,
            ValueType::OneOf {
                values: vec!["a".into(), "b".into()]
            }
        );
    }
}
