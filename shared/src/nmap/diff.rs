//! What changed between two nmap reports, with the semantics of nmap's own `ndiff`.
//!
//! Hosts are paired by their identity (lowest address, then lowest host name), as ndiff's
//! `Host.get_id` does. For each pair, the diff reports a changed host state, changed addresses
//! or names, and per port (`protocol`, `port`): a changed state, a changed service (name,
//! product, version, extra info) and added, removed or changed script output. A port absent
//! on one side takes no state there; a port whose two states are both folded into
//! `<extraports>` (or absent) is no change, exactly as in ndiff. OS matches, the extraports
//! summary and host scripts are compared too. [`diff_reports`] is pure: it reads two
//! [`NmapReport`]s and returns a [`ScanDiff`]; `tests/diff.rs` checks it against the real
//! `ndiff` on real scans.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Host, NmapReport, Port, Script};

/// Everything that differs between scan `a` (older) and scan `b` (newer).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScanDiff {
    pub summary: DiffSummary,
    /// Changed hosts, in host-identity order.
    pub hosts: Vec<HostDiff>,
}

impl ScanDiff {
    /// True when the two scans report the same thing.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

/// Counts of a [`ScanDiff`], the compact form stored with a scheduled run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffSummary {
    pub hosts_appeared: u32,
    pub hosts_disappeared: u32,
    pub hosts_changed: u32,
    pub ports_opened: u32,
    pub ports_closed: u32,
    pub ports_changed: u32,
}

/// How a host differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostChange {
    /// Only in scan `b`.
    Appeared,
    /// Only in scan `a`.
    Disappeared,
    /// In both, with differences.
    Changed,
}

/// One host that differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostDiff {
    /// The host's name as ndiff prints it: host names, then addresses in parentheses.
    pub host: String,
    pub change: HostChange,
    /// `up`/`down` (absent = not in that scan), when it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Change<Option<String>>>,
    /// Addresses or host names changed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub identity_changed: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortDiff>,
    /// OS match names, when they changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<Change<Vec<String>>>,
    /// The `Not shown: …` summary (`state` → count), when it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extraports: Option<Change<BTreeMap<String, u32>>>,
    /// Host scripts whose output was added, removed or changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scripts: Vec<ScriptDiff>,
}

/// A value before (`from`, scan `a`) and after (`to`, scan `b`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change<T> {
    pub from: T,
    pub to: T,
}

/// How a port differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortChange {
    /// Now `open`, before not.
    Opened,
    /// Before `open`, now not.
    Closed,
    /// Another difference (state, service, version or script output).
    Changed,
}

/// One port that differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortDiff {
    pub protocol: String,
    pub port: u16,
    pub change: PortChange,
    pub from: PortSide,
    pub to: PortSide,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scripts: Vec<ScriptDiff>,
}

/// What one scan said about a port; `state` is absent when the port was not listed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSide {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extrainfo: Option<String>,
}

/// A script whose output was added (`from` absent), removed (`to` absent) or changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptDiff {
    pub id: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// The diff from report `a` (older) to report `b` (newer).
pub fn diff_reports(a: &NmapReport, b: &NmapReport) -> ScanDiff {
    let index = |r: &NmapReport| -> BTreeMap<(String, String), usize> {
        r.hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (host_id(h), i))
            .collect()
    };
    let (ia, ib) = (index(a), index(b));
    let ids: BTreeSet<&(String, String)> = ia.keys().chain(ib.keys()).collect();
    let mut out = ScanDiff::default();
    for id in ids {
        let ha = ia.get(id).map(|&i| &a.hosts[i]);
        let hb = ib.get(id).map(|&i| &b.hosts[i]);
        if let Some(d) = diff_host(ha, hb) {
            let s = &mut out.summary;
            match d.change {
                HostChange::Appeared => s.hosts_appeared += 1,
                HostChange::Disappeared => s.hosts_disappeared += 1,
                HostChange::Changed => s.hosts_changed += 1,
            }
            for p in &d.ports {
                match p.change {
                    PortChange::Opened => s.ports_opened += 1,
                    PortChange::Closed => s.ports_closed += 1,
                    PortChange::Changed => s.ports_changed += 1,
                }
            }
            out.hosts.push(d);
        }
    }
    out
}

/// ndiff's host identity: the lowest address and the lowest host name.
fn host_id(h: &Host) -> (String, String) {
    let addr = h.addresses.iter().map(|a| a.addr.clone()).min();
    let name = h.hostnames.iter().map(|n| n.name.clone()).min();
    (addr.unwrap_or_default(), name.unwrap_or_default())
}

fn display_name(h: &Host) -> String {
    let mut names: Vec<&str> = h.hostnames.iter().map(|n| n.name.as_str()).collect();
    let mut addrs: Vec<&str> = h.addresses.iter().map(|a| a.addr.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    addrs.sort_unstable();
    match (names.is_empty(), addrs.is_empty()) {
        (false, false) => format!("{} ({})", names.join(", "), addrs.join(", ")),
        (false, true) => names.join(", "),
        (true, false) => addrs.join(", "),
        (true, true) => "<no name>".to_owned(),
    }
}

fn diff_host(a: Option<&Host>, b: Option<&Host>) -> Option<HostDiff> {
    let empty = Host::default();
    let (ha, hb) = (a.unwrap_or(&empty), b.unwrap_or(&empty));
    let state_of = |h: Option<&Host>| h.and_then(|h| h.status.as_ref()).map(|s| s.state.clone());
    let (sa, sb) = (state_of(a), state_of(b));
    let set = |h: &Host| -> (BTreeSet<String>, BTreeSet<String>) {
        (
            h.addresses.iter().map(|x| x.addr.clone()).collect(),
            h.hostnames.iter().map(|x| x.name.clone()).collect(),
        )
    };
    let identity_changed = a.is_some() && b.is_some() && set(ha) != set(hb);
    let extra = |h: &Host| -> BTreeMap<String, u32> {
        h.extraports
            .iter()
            .map(|e| (e.state.clone(), e.count))
            .collect()
    };
    let (ea, eb) = (extra(ha), extra(hb));
    let os = |h: &Host| -> Vec<String> { h.os_matches.iter().map(|o| o.name.clone()).collect() };
    let (oa, ob) = (os(ha), os(hb));
    let specs: BTreeSet<(&str, u16)> = ha
        .ports
        .iter()
        .chain(&hb.ports)
        .map(|p| (p.protocol.as_str(), p.port))
        .collect();
    let ports: Vec<PortDiff> = specs
        .into_iter()
        .filter_map(|(proto, n)| {
            diff_port(proto, n, (ha.port(proto, n), &ea), (hb.port(proto, n), &eb))
        })
        .collect();
    let d = HostDiff {
        host: display_name(b.or(a)?),
        change: match (a, b) {
            (None, _) => HostChange::Appeared,
            (_, None) => HostChange::Disappeared,
            _ => HostChange::Changed,
        },
        state: (sa != sb).then_some(Change { from: sa, to: sb }),
        identity_changed,
        ports,
        os: (oa != ob).then_some(Change { from: oa, to: ob }),
        extraports: (ea != eb).then_some(Change { from: ea, to: eb }),
        scripts: diff_scripts(&ha.scripts, &hb.scripts),
    };
    let changed = d.state.is_some()
        || d.identity_changed
        || !d.ports.is_empty()
        || d.os.is_some()
        || d.extraports.is_some()
        || !d.scripts.is_empty();
    changed.then_some(d)
}

fn side(p: Option<&Port>) -> PortSide {
    let Some(p) = p else {
        return PortSide::default();
    };
    let svc = p.service.as_ref();
    PortSide {
        state: Some(p.state.clone()),
        service: svc.map(|s| s.name.clone()).filter(|n| !n.is_empty()),
        product: svc.and_then(|s| s.product.clone()),
        version: svc.and_then(|s| s.version.clone()),
        extrainfo: svc.and_then(|s| s.extrainfo.clone()),
    }
}

type PortOf<'a> = (Option<&'a Port>, &'a BTreeMap<String, u32>);

fn diff_port(protocol: &str, port: u16, a: PortOf<'_>, b: PortOf<'_>) -> Option<PortDiff> {
    let (from, to) = (side(a.0), side(b.0));
    // ndiff leaves out a port whose states on both sides are folded into extraports.
    let folded = |s: &PortSide, extra: &BTreeMap<String, u32>| {
        s.state.as_ref().is_none_or(|st| extra.contains_key(st))
    };
    if folded(&from, a.1) && folded(&to, b.1) {
        return None;
    }
    let no_scripts: Vec<Script> = Vec::new();
    let scripts = diff_scripts(
        a.0.map_or(&no_scripts, |p| &p.scripts),
        b.0.map_or(&no_scripts, |p| &p.scripts),
    );
    if from == to && scripts.is_empty() {
        return None;
    }
    let open = |s: &PortSide| s.state.as_deref() == Some("open");
    let change = match (open(&from), open(&to)) {
        (false, true) => PortChange::Opened,
        (true, false) => PortChange::Closed,
        _ => PortChange::Changed,
    };
    Some(PortDiff {
        protocol: protocol.to_owned(),
        port,
        change,
        from,
        to,
        scripts,
    })
}

/// Scripts paired by id, as ndiff's `ScriptResultDiff.diff_lists` does.
fn diff_scripts(a: &[Script], b: &[Script]) -> Vec<ScriptDiff> {
    let map = |s: &[Script]| -> BTreeMap<String, String> {
        s.iter().map(|x| (x.id.clone(), x.output.clone())).collect()
    };
    let (ma, mb) = (map(a), map(b));
    let ids: BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
    ids.into_iter()
        .filter_map(|id| {
            let (x, y) = (ma.get(id), mb.get(id));
            (x != y).then(|| ScriptDiff {
                id: id.clone(),
                from: x.cloned(),
                to: y.cloned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nmap::{Address, HostStatus, Service};

    fn host(addr: &str, ports: &[(u16, &str, Option<&str>)]) -> Host {
        Host {
            addresses: vec![Address {
                addr: addr.into(),
                addrtype: "ipv4".into(),
                vendor: None,
            }],
            status: Some(HostStatus {
                state: "up".into(),
                reason: "user-set".into(),
            }),
            ports: ports
                .iter()
                .map(|(n, st, ver)| Port {
                    protocol: "tcp".into(),
                    port: *n,
                    state: (*st).into(),
                    reason: String::new(),
                    service: ver.map(|v| Service {
                        name: "ssh".into(),
                        version: Some(v.into()),
                        ..Service::default()
                    }),
                    scripts: vec![],
                })
                .collect(),
            ..Host::default()
        }
    }

    fn report(hosts: Vec<Host>) -> NmapReport {
        NmapReport {
            hosts,
            ..NmapReport::default()
        }
    }

    #[test]
    fn identical_reports_have_no_diff() {
        let r = report(vec![host("127.0.0.1", &[(22, "open", Some("8.4"))])]);
        assert!(diff_reports(&r, &r).is_empty());
    }

    #[test]
    fn opened_closed_and_version_changes_are_counted() {
        let a = report(vec![host(
            "127.0.0.1",
            &[
                (22, "open", Some("8.4")),
                (80, "open", None),
                (81, "closed", None),
            ],
        )]);
        let b = report(vec![host(
            "127.0.0.1",
            &[
                (22, "open", Some("9.2")),
                (80, "closed", None),
                (81, "open", None),
            ],
        )]);
        let d = diff_reports(&a, &b);
        let s = d.summary;
        assert_eq!((s.ports_opened, s.ports_closed, s.ports_changed), (1, 1, 1));
        assert_eq!(d.hosts[0].change, HostChange::Changed);
        assert_eq!(d.hosts[0].ports[0].to.version.as_deref(), Some("9.2"));
    }

    #[test]
    fn hosts_appear_and_disappear() {
        let a = report(vec![host("127.0.0.1", &[])]);
        let b = report(vec![host("127.0.0.2", &[])]);
        let d = diff_reports(&a, &b);
        assert_eq!(d.summary.hosts_appeared, 1);
        assert_eq!(d.summary.hosts_disappeared, 1);
    }

    #[test]
    fn ports_folded_into_extraports_on_both_sides_are_no_change() {
        let mut a = host("127.0.0.1", &[(80, "closed", None)]);
        a.extraports = vec![super::super::ExtraPorts {
            state: "closed".into(),
            count: 5,
        }];
        let mut b = host("127.0.0.1", &[]);
        b.extraports = a.extraports.clone();
        assert!(diff_reports(&report(vec![a]), &report(vec![b])).is_empty());
    }
}
