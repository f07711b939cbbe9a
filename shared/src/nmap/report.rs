//! The parsed nmap report: the types stored as `result.parsed` in the job document.
//!
//! These are plain records of what nmap said, not validated domain types: every string is
//! copied from nmap's XML as written (states such as `open|filtered` included), so a newer
//! nmap that adds a state or a method still parses. Optional and empty fields are left out
//! of the JSON to keep results compact for MCP clients and dashboards.

use serde::{Deserialize, Serialize};

/// Everything scanq keeps from one nmap run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NmapReport {
    /// Hosts whose `<host>` element was complete, in the order nmap reported them.
    pub hosts: Vec<Host>,
    /// The closing `<runstats>`; `None` when the run was cut before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<RunStats>,
    /// True when the document ended before `</nmaprun>` (timeout, cancel, output cap).
    pub partial: bool,
    /// nmap's own record of its command line (`<nmaprun args>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanner_args: Option<String>,
    /// nmap's version (`<nmaprun version>`), e.g. `7.93`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl NmapReport {
    /// Hosts whose status is `up`.
    pub fn hosts_up(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| h.is_up())
    }
}

/// One scanned host.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Host {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Address>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<Hostname>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<HostStatus>,
    /// Ports nmap listed one by one (open ones always; others up to nmap's limit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// Ports nmap folded into a count (`<extraports state="closed" count="997">`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extraports: Vec<ExtraPorts>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub os_matches: Vec<OsMatch>,
    /// Host scripts (`<hostscript>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scripts: Vec<Script>,
}

impl Host {
    /// True when nmap reported the host `up`.
    pub fn is_up(&self) -> bool {
        self.status.as_ref().is_some_and(|s| s.state == "up")
    }

    /// The first IPv4/IPv6 address, if any (MAC addresses are skipped).
    pub fn ip(&self) -> Option<&str> {
        self.addresses
            .iter()
            .find(|a| a.addrtype != "mac")
            .map(|a| a.addr.as_str())
    }

    /// The port with this protocol and number, if nmap listed it.
    pub fn port(&self, protocol: &str, port: u16) -> Option<&Port> {
        self.ports
            .iter()
            .find(|p| p.port == port && p.protocol == protocol)
    }

    /// Ports in state `open`.
    pub fn open_ports(&self) -> impl Iterator<Item = &Port> {
        self.ports.iter().filter(|p| p.is_open())
    }
}

/// `<address addr=".." addrtype="ipv4|ipv6|mac" vendor="..">`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Address {
    pub addr: String,
    pub addrtype: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
}

/// `<hostname name=".." type="user|PTR">`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Hostname {
    pub name: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// `<status state="up|down|unknown" reason="..">`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostStatus {
    pub state: String,
    pub reason: String,
}

/// One listed port.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Port {
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    pub port: u16,
    /// `open`, `closed`, `filtered`, `unfiltered`, `open|filtered`, `closed|filtered`.
    pub state: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Service>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scripts: Vec<Script>,
}

impl Port {
    /// True for state `open` (not `open|filtered`).
    pub fn is_open(&self) -> bool {
        self.state == "open"
    }
}

/// `<service>`: a table guess (`method="table"`) or a version-probe match (`method="probed"`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Service {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extrainfo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ostype: Option<String>,
    /// `ssl` when nmap spoke through TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// nmap's confidence, 0..=10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conf: Option<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpe: Vec<String>,
}

/// An NSE script result: its id and its human-readable `output` (structured
/// `<elem>`/`<table>` children are not kept).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Script {
    pub id: String,
    pub output: String,
}

/// Ports folded into a count, e.g. 997 `closed`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExtraPorts {
    pub state: String,
    pub count: u32,
}

/// `<osmatch name=".." accuracy="..">`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OsMatch {
    pub name: String,
    /// Percent, 0..=100.
    pub accuracy: u8,
}

/// `<runstats>`: how the run finished and how many hosts it saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunStats {
    /// Unix time the run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_time: Option<u64>,
    /// Seconds the run took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_sec: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// `success` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<String>,
    /// nmap's error message when `exit="error"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    pub hosts_up: u32,
    pub hosts_down: u32,
    pub hosts_total: u32,
}
