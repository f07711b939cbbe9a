//! What a worker can do beyond running a tool, and what a job needs of the worker that claims
//! it. A job that needs raw sockets (`needs: ["raw_sockets"]`, from the flags of its arguments
//! marked `raw` in the catalog) waits in its tool's raw lane, which only a worker whose heartbeat
//! says `raw_sockets: true` reads (docs/queue.md, "Lanes").

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::string_enum;
use super::{UnknownVariant, Zone};

/// A worker's capabilities, as its heartbeat reports them (`GET /v1/workers`, `/health`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct Capabilities {
    /// This worker runs raw-socket scans confined (it claims jobs that need raw sockets).
    pub raw_sockets: bool,
    /// Each run gets its own cgroup (killed whole at the end).
    pub run_cgroups: bool,
    /// Exec tools run as the worker's own uid because the operator set
    /// `SCANQ_ALLOW_UNCONFINED=true`.
    pub unconfined: bool,
}

string_enum!(
    /// Something a job needs of the worker that claims it.
    Need {
        /// Raw sockets (SYN, UDP, OS detection…): only a raw-capable worker claims the job.
        RawSockets => "raw_sockets",
    }
);

/// Why a queued job is not being claimed although it is ready, or why a scheduled one waits.
/// Written as a string: `raw_capable_worker`, `target_group`, `zone:<name>`, `window`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WaitingFor {
    /// It needs raw sockets and no live raw-capable worker serves its tool in its zone.
    RawCapableWorker,
    /// Its target group (`target_group`) runs as many jobs as its tool's per-group cap
    /// allows (politeness, docs/queue.md); it starts when one of them stops.
    TargetGroup,
    /// No live worker serves its tool in its zone (DESIGN §13): it starts when one does.
    Zone(Zone),
    /// A scheduled job waits for its engagement's next window (or a blackout's end, DESIGN
    /// §14): `retry_at` is the opening.
    Window,
}

impl WaitingFor {
    pub fn as_str(&self) -> std::borrow::Cow<'static, str> {
        match self {
            Self::RawCapableWorker => "raw_capable_worker".into(),
            Self::TargetGroup => "target_group".into(),
            Self::Zone(z) => format!("zone:{z}").into(),
            Self::Window => "window".into(),
        }
    }
}

impl fmt::Display for WaitingFor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str())
    }
}

impl FromStr for WaitingFor {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "raw_capable_worker" => Ok(Self::RawCapableWorker),
            "target_group" => Ok(Self::TargetGroup),
            "window" => Ok(Self::Window),
            _ => s
                .strip_prefix("zone:")
                .and_then(|z| Zone::parse(z).ok())
                .map(Self::Zone)
                .ok_or_else(|| UnknownVariant {
                    value: s.to_owned(),
                    accepted: "raw_capable_worker target_group zone:<name> window",
                }),
        }
    }
}

impl Serialize for WaitingFor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_str())
    }
}

impl<'de> Deserialize<'de> for WaitingFor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_default_to_nothing_and_read_old_heartbeats() {
        let c: Capabilities = serde_json::from_str("{}").unwrap();
        assert_eq!(c, Capabilities::default());
        let c: Capabilities = serde_json::from_str(r#"{"raw_sockets":true}"#).unwrap();
        assert!(c.raw_sockets && !c.run_cgroups && !c.unconfined);
        assert_eq!(
            serde_json::to_value(Need::RawSockets).unwrap(),
            "raw_sockets"
        );
        assert_eq!(WaitingFor::RawCapableWorker.as_str(), "raw_capable_worker");
        assert_eq!(WaitingFor::TargetGroup.as_str(), "target_group");
        let z = WaitingFor::Zone(Zone::parse("dmz").unwrap());
        assert_eq!(serde_json::to_value(&z).unwrap(), "zone:dmz");
        assert_eq!("zone:dmz".parse::<WaitingFor>().unwrap(), z);
        assert!("zone:".parse::<WaitingFor>().is_err());
        assert_eq!(serde_json::to_value(WaitingFor::Window).unwrap(), "window");
        assert_eq!("window".parse::<WaitingFor>().unwrap(), WaitingFor::Window);
    }
}
