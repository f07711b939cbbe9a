//! Per-tool breaker settings: the `[breaker]` table of a catalog tool, its defaults, its
//! validation, and which failure kinds count against the breaker.
//!
//! The settings travel to the Lua scripts as JSON ([`BreakerSettings::to_json`]); the scripts
//! read exactly these field names.

use serde::{Deserialize, Serialize};

/// How the breaker decides to trip while closed.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TripMode {
    /// `failure_threshold` failures in a row (a success resets the count).
    #[default]
    Consecutive,
    /// Failure rate ≥ `failure_rate` over the last `window_sec` seconds, once the window
    /// holds at least `min_calls` calls.
    Rate,
}

use crate::domain::FailureKind;

/// One tool's breaker settings. Every field has a default, so a catalog may set only some.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerSettings {
    /// `consecutive` or `rate`.
    pub mode: TripMode,
    /// Consecutive failures that trip the breaker (mode `consecutive`).
    pub failure_threshold: u32,
    /// Failure rate in (0, 1] that trips the breaker (mode `rate`).
    pub failure_rate: f64,
    /// Length of the sliding window in seconds (mode `rate`).
    pub window_sec: u64,
    /// Calls the window must hold before the rate is judged (mode `rate`).
    pub min_calls: u32,
    /// Distinct workers the counted failures must come from (quorum).
    pub min_workers: u32,
    /// The first open period, in seconds.
    pub recovery_timeout_sec: u64,
    /// Factor the open period grows by on each re-trip from half-open.
    pub backoff_multiplier: f64,
    /// Cap of the open period, in seconds.
    pub max_open_sec: u64,
    /// Relative jitter of the open period, in [0, 0.5] (0.1 = ±10 %).
    pub jitter: f64,
    /// Probe jobs admitted at once across the fleet while half-open.
    pub half_open_max_probes: u32,
    /// Probe successes that close the breaker.
    pub success_threshold: u32,
    /// Lease of one probe slot, in seconds; a probe that does not report in time frees it.
    pub probe_lease_sec: u64,
    /// Failure kinds (as classified by the worker) that count as breaker failures; a kind the
    /// worker never emits is refused when the catalog is read.
    pub failure_kinds: Vec<FailureKind>,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            mode: TripMode::Consecutive,
            failure_threshold: 5,
            failure_rate: 0.5,
            window_sec: 60,
            min_calls: 10,
            min_workers: 1,
            recovery_timeout_sec: 60,
            backoff_multiplier: 1.5,
            max_open_sec: 300,
            jitter: 0.1,
            half_open_max_probes: 1,
            success_threshold: 2,
            probe_lease_sec: 30,
            failure_kinds: FailureKind::DEFAULT_BREAKER.to_vec(),
        }
    }
}

/// Longest open period or lease accepted, so the scripts' millisecond arithmetic stays exact.
const MAX_SECONDS: u64 = 7 * 24 * 3600;

impl BreakerSettings {
    /// Checks every value; the error names the offending key and the accepted range.
    pub fn validate(&self) -> Result<(), String> {
        fn at_least_one(key: &str, v: u64) -> Result<(), String> {
            if v == 0 {
                return Err(format!("{key} must be at least 1, got 0"));
            }
            Ok(())
        }
        fn seconds(key: &str, v: u64) -> Result<(), String> {
            if v == 0 || v > MAX_SECONDS {
                return Err(format!(
                    "{key} must be in 1..={MAX_SECONDS} seconds, got {v}"
                ));
            }
            Ok(())
        }
        at_least_one("failure_threshold", self.failure_threshold.into())?;
        if !(self.failure_rate > 0.0 && self.failure_rate <= 1.0) {
            return Err(format!(
                "failure_rate must be in (0, 1], got {}",
                self.failure_rate
            ));
        }
        seconds("window_sec", self.window_sec)?;
        at_least_one("min_calls", self.min_calls.into())?;
        at_least_one("min_workers", self.min_workers.into())?;
        seconds("recovery_timeout_sec", self.recovery_timeout_sec)?;
        if !(self.backoff_multiplier >= 1.0 && self.backoff_multiplier <= 100.0) {
            return Err(format!(
                "backoff_multiplier must be in [1, 100], got {}",
                self.backoff_multiplier
            ));
        }
        seconds("max_open_sec", self.max_open_sec)?;
        if self.max_open_sec < self.recovery_timeout_sec {
            return Err(format!(
                "max_open_sec ({}) must not be below recovery_timeout_sec ({})",
                self.max_open_sec, self.recovery_timeout_sec
            ));
        }
        if !(0.0..=0.5).contains(&self.jitter) {
            return Err(format!("jitter must be in [0, 0.5], got {}", self.jitter));
        }
        at_least_one("half_open_max_probes", self.half_open_max_probes.into())?;
        at_least_one("success_threshold", self.success_threshold.into())?;
        seconds("probe_lease_sec", self.probe_lease_sec)?;
        Ok(())
    }

    /// Whether a failure of this kind counts against the breaker for this tool.
    pub fn counts_as_failure(&self, kind: FailureKind) -> bool {
        self.failure_kinds.contains(&kind)
    }

    /// The JSON the Lua scripts decode as `cfg`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("breaker settings always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_contract() {
        let s = BreakerSettings::default();
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(s.mode, TripMode::Consecutive);
        assert_eq!(s.failure_threshold, 5);
        assert_eq!(s.recovery_timeout_sec, 60);
        assert_eq!(s.backoff_multiplier, 1.5);
        assert_eq!(s.max_open_sec, 300);
        assert_eq!(s.half_open_max_probes, 1);
        assert_eq!(s.success_threshold, 2);
        assert_eq!(s.min_workers, 1);
    }

    #[test]
    fn a_partial_table_fills_in_the_defaults() {
        let s: BreakerSettings =
            serde_json::from_str(r#"{"mode":"rate","failure_rate":0.25}"#).unwrap();
        assert_eq!(s.mode, TripMode::Rate);
        assert_eq!(s.failure_rate, 0.25);
        assert_eq!(s.window_sec, 60);
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let err = serde_json::from_str::<BreakerSettings>(r#"{"treshold":3}"#).unwrap_err();
        assert!(err.to_string().contains("treshold"), "{err}");
    }

    #[test]
    fn validation_names_the_bad_key() {
        let cases: Vec<(&str, BreakerSettings)> = vec![
            (
                "failure_threshold",
                BreakerSettings {
                    failure_threshold: 0,
                    ..Default::default()
                },
            ),
            (
                "failure_rate",
                BreakerSettings {
                    failure_rate: 1.5,
                    ..Default::default()
                },
            ),
            (
                "failure_rate",
                BreakerSettings {
                    failure_rate: f64::NAN,
                    ..Default::default()
                },
            ),
            (
                "window_sec",
                BreakerSettings {
                    window_sec: 0,
                    ..Default::default()
                },
            ),
            (
                "min_calls",
                BreakerSettings {
                    min_calls: 0,
                    ..Default::default()
                },
            ),
            (
                "min_workers",
                BreakerSettings {
                    min_workers: 0,
                    ..Default::default()
                },
            ),
            (
                "recovery_timeout_sec",
                BreakerSettings {
                    recovery_timeout_sec: 0,
                    ..Default::default()
                },
            ),
            (
                "backoff_multiplier",
                BreakerSettings {
                    backoff_multiplier: 0.5,
                    ..Default::default()
                },
            ),
            (
                "max_open_sec",
                BreakerSettings {
                    max_open_sec: 10,
                    ..Default::default()
                },
            ),
            (
                "jitter",
                BreakerSettings {
                    jitter: 0.9,
                    ..Default::default()
                },
            ),
            (
                "half_open_max_probes",
                BreakerSettings {
                    half_open_max_probes: 0,
                    ..Default::default()
                },
            ),
            (
                "success_threshold",
                BreakerSettings {
                    success_threshold: 0,
                    ..Default::default()
                },
            ),
            (
                "probe_lease_sec",
                BreakerSettings {
                    probe_lease_sec: 0,
                    ..Default::default()
                },
            ),
        ];
        for (key, settings) in cases {
            let err = settings.validate().unwrap_err();
            assert!(err.starts_with(key), "{key}: {err}");
        }
    }

    #[test]
    fn only_listed_kinds_count_as_failures() {
        let s = BreakerSettings::default();
        assert!(s.counts_as_failure(FailureKind::SpawnError));
        assert!(!s.counts_as_failure(FailureKind::Timeout));
        assert!(!s.counts_as_failure(FailureKind::ExitNonzero));
        let custom = BreakerSettings {
            failure_kinds: vec![FailureKind::Timeout],
            ..Default::default()
        };
        assert!(custom.counts_as_failure(FailureKind::Timeout));
        assert!(!custom.counts_as_failure(FailureKind::SpawnError));
    }

    #[test]
    fn a_kind_nothing_emits_is_refused_with_the_accepted_ones() {
        let err = toml::from_str::<BreakerSettings>(r#"failure_kinds = ["infra_timeout"]"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("infra_timeout"), "{err}");
        assert!(err.contains("spawn_error"), "{err}");
    }

    #[test]
    fn the_json_for_lua_uses_the_field_names_the_scripts_read() {
        let v: serde_json::Value =
            serde_json::from_str(&BreakerSettings::default().to_json()).unwrap();
        for key in [
            "mode",
            "failure_threshold",
            "failure_rate",
            "window_sec",
            "min_calls",
            "min_workers",
            "recovery_timeout_sec",
            "backoff_multiplier",
            "max_open_sec",
            "jitter",
            "half_open_max_probes",
            "success_threshold",
            "probe_lease_sec",
        ] {
            assert!(v.get(key).is_some(), "{key} missing");
        }
        assert_eq!(v["mode"], "consecutive");
    }
}
