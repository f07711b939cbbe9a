//! Live progress of a running tool, computed from its stdout as it arrives.
//!
//! Owns the catalog's names for parsers ([`progress_parser`]) and [`NmapProgress`], which turns nmap's
//! per-task `<taskbegin>`/`<taskprogress>`/`<taskend>` elements (written with
//! `-oX - --stats-every Ns`) into one overall percent that never goes backwards.
//!
//! nmap restarts its percent for every task (Ping Scan, Connect Scan, Service scan, NSE…) and
//! for every host group. [`NmapProgress`] splits a host group ("round") into weighted phase
//! slots, counts finished hosts from `<host>` elements, and combines both into an overall
//! fraction; see `docs/nmap.md` for the formula. It is capped at 99% until `<runstats>` or
//! `</nmaprun>` arrives, which sets 100%.

use super::lines::PercentLines;
use super::parser::{Progress, ProgressParser, report_if_forward};
use super::tags::{Tag, TagScanner};

/// The names a catalog tool may give as its `progress` parser.
pub const PROGRESS_PARSER_NAMES: &[&str] = &["nmap", "percent-lines", "lines-percent"];

/// The progress parser a catalog tool names (`progress = "nmap"`), or `None` for an
/// unknown name.
pub fn progress_parser(name: &str) -> Option<Box<dyn ProgressParser>> {
    progress_parser_for_hosts(name, None)
}

/// Like [`progress_parser`], telling the parser how many hosts the target expands to
/// (1 for an address or hostname, the CIDR's size for a range), which lets multi-group
/// nmap scans report steady progress.
pub fn progress_parser_for_hosts(
    name: &str,
    expected_hosts: Option<u64>,
) -> Option<Box<dyn ProgressParser>> {
    match name {
        "nmap" => Some(Box::new(match expected_hosts {
            Some(n) => NmapProgress::with_expected_hosts(n),
            None => NmapProgress::new(),
        })),
        "percent-lines" | "lines-percent" => Some(Box::new(PercentLines::new())),
        _ => None,
    }
}

/// Highest percent reported before the run's end is seen.
const CAP_BEFORE_END: f64 = 99.0;

/// Share of the remaining work given to each host group after the first when the host
/// count is unknown.
const LATER_ROUND_SHARE: f64 = 0.5;

/// The phases of one host group, in the order nmap runs them, with their weights (sum 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Discovery,
    PortScan,
    Service,
    OsAndTrace,
    Scripts,
}

impl Slot {
    const ALL: [Slot; 5] = [
        Slot::Discovery,
        Slot::PortScan,
        Slot::Service,
        Slot::OsAndTrace,
        Slot::Scripts,
    ];

    fn weight(self) -> f64 {
        match self {
            Slot::Discovery => 0.10,
            Slot::PortScan => 0.50,
            Slot::Service => 0.20,
            Slot::OsAndTrace => 0.05,
            Slot::Scripts => 0.15,
        }
    }

    fn of_task(task: &str) -> Slot {
        let t = task.to_ascii_lowercase();
        if t.contains("ping") || t.contains("dns resolution") || t.contains("arp") {
            Slot::Discovery
        } else if t.starts_with("service") {
            Slot::Service
        } else if t.starts_with("nse") || t.starts_with("script") {
            Slot::Scripts
        } else if t.starts_with("os ") || t.contains("traceroute") {
            Slot::OsAndTrace
        } else {
            Slot::PortScan
        }
    }

    /// Fraction of the round done when this slot is `done` (0..=1) complete.
    fn round_fraction(self, done: f64) -> f64 {
        let before: f64 = Self::ALL
            .iter()
            .take_while(|s| **s < self)
            .map(|s| s.weight())
            .sum();
        before + self.weight() * done.clamp(0.0, 1.0)
    }
}

/// One host group: the phases seen since the last batch of `<host>` elements.
#[derive(Debug, Clone)]
struct Round {
    /// Overall fraction when the round began.
    base: f64,
    /// Hosts finished before the round began.
    hosts_before: u64,
    /// `<hosthint>`s seen in this round (hosts found up in it).
    hints: u64,
    /// Furthest slot reached and how far into it.
    slot: Option<Slot>,
    slot_done: f64,
    /// Whether this is not the run's first round.
    later: bool,
}

/// Progress tracker for nmap's XML stream (also works on bare `<taskprogress/>` lines).
#[derive(Debug)]
pub struct NmapProgress {
    scanner: TagScanner,
    expected_hosts: Option<u64>,
    hosts_done: u64,
    round: Round,
    finished: bool,
    best: f64,
    phase: Option<String>,
    eta_sec: Option<u64>,
    reported: Option<Progress>,
}

const WANTED_TAGS: &[&str] = &[
    "taskbegin",
    "taskprogress",
    "taskend",
    "host",
    "hosthint",
    "runstats",
    "nmaprun",
];

impl Default for NmapProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl NmapProgress {
    /// A tracker that does not know how many hosts the target holds.
    pub fn new() -> Self {
        Self {
            scanner: TagScanner::new(WANTED_TAGS),
            expected_hosts: None,
            hosts_done: 0,
            round: Round {
                base: 0.0,
                hosts_before: 0,
                hints: 0,
                slot: None,
                slot_done: 0.0,
                later: false,
            },
            finished: false,
            best: 0.0,
            phase: None,
            eta_sec: None,
            reported: None,
        }
    }

    /// A tracker for a target of `n` hosts (ignored when 0).
    pub fn with_expected_hosts(n: u64) -> Self {
        Self {
            expected_hosts: (n > 0).then_some(n),
            ..Self::new()
        }
    }

    fn on_tag(&mut self, tag: &Tag) {
        match (tag.name.as_str(), tag.closing) {
            ("taskbegin" | "taskprogress" | "taskend", false) => self.on_task(tag),
            ("host", false) => self.hosts_done += 1,
            ("hosthint", false) => self.round.hints += 1,
            ("runstats", false) | ("nmaprun", true) => self.finished = true,
            _ => {}
        }
    }

    fn on_task(&mut self, tag: &Tag) {
        let Some(task) = tag.attr("task") else { return };
        let slot = Slot::of_task(task);
        if self.hosts_done > self.round.hosts_before {
            self.start_round();
        }
        self.phase = Some(task.to_owned());
        // NSE before any port scan in a round is nmap's pre-scan (or post-scan) script
        // phase: it says nothing about the hosts' progress.
        let port_scanned = self.round.slot.is_some_and(|s| s >= Slot::PortScan);
        if slot == Slot::Scripts && !port_scanned {
            self.eta_sec = None;
            return;
        }
        match self.round.slot {
            Some(current) if slot < current => return,
            Some(current) if slot == current => {}
            _ => {
                self.round.slot = Some(slot);
                self.round.slot_done = 0.0;
            }
        }
        let done = match tag.name.as_str() {
            "taskend" => 1.0,
            "taskprogress" => tag
                .attr("percent")
                .and_then(|p| p.trim().parse::<f64>().ok())
                .filter(|p| p.is_finite())
                .map_or(0.0, |p| p / 100.0),
            _ => 0.0,
        };
        self.round.slot_done = self.round.slot_done.max(done.clamp(0.0, 1.0));
        self.eta_sec = if tag.name == "taskprogress" {
            eta_of(tag)
        } else {
            None
        };
    }

    fn start_round(&mut self) {
        self.round = Round {
            base: self.best,
            hosts_before: self.hosts_done,
            hints: 0,
            slot: None,
            slot_done: 0.0,
            later: true,
        };
    }

    /// Overall fraction done (0..=1), before the cap and the monotonic clamp.
    fn estimate(&self) -> f64 {
        let f = self
            .round
            .slot
            .map_or(0.0, |s| s.round_fraction(self.round.slot_done));
        match self.expected_hosts {
            Some(n) => {
                let group = self.round.hints.max(1) as f64;
                let in_progress = self.round.hosts_before as f64 + f * group;
                in_progress.max(self.hosts_done as f64) / n as f64
            }
            None => {
                let share = if self.round.later {
                    LATER_ROUND_SHARE
                } else {
                    1.0
                };
                self.round.base + (1.0 - self.round.base) * share * f
            }
        }
    }

    fn current(&mut self) -> Progress {
        let percent = if self.finished {
            100.0
        } else {
            (self.estimate() * 100.0).clamp(0.0, CAP_BEFORE_END)
        };
        // One decimal is all a progress bar needs, and it keeps near-identical updates out
        // of the job's event stream.
        let percent = (percent * 10.0).floor() / 10.0;
        self.best = self.best.max(percent / 100.0);
        Progress {
            percent: self.best * 100.0,
            eta_sec: if self.finished { Some(0) } else { self.eta_sec },
            phase: self.phase.clone(),
        }
    }
}

/// Seconds left from `remaining`, or from `etc - time`.
fn eta_of(tag: &Tag) -> Option<u64> {
    let num = |k: &str| tag.attr(k).and_then(|v| v.trim().parse::<u64>().ok());
    num("remaining").or_else(|| Some(num("etc")?.saturating_sub(num("time")?)))
}

impl ProgressParser for NmapProgress {
    fn feed(&mut self, chunk: &[u8]) -> Option<Progress> {
        let mut tags = Vec::new();
        self.scanner.feed(chunk, |tag| tags.push(tag));
        for tag in &tags {
            self.on_tag(tag);
        }
        if tags.is_empty() {
            return None;
        }
        let now = self.current();
        report_if_forward(&mut self.reported, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_weights_add_up_to_the_whole_round() {
        let total: f64 = Slot::ALL.iter().map(|s| s.weight()).sum();
        assert!((total - 1.0).abs() < 1e-9);
        assert!((Slot::Scripts.round_fraction(1.0) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn task_names_map_to_the_phase_nmap_runs_them_in() {
        let cases = [
            ("Ping Scan", Slot::Discovery),
            ("ARP Ping Scan", Slot::Discovery),
            ("Parallel DNS resolution of 1 host.", Slot::Discovery),
            ("Connect Scan", Slot::PortScan),
            ("SYN Stealth Scan", Slot::PortScan),
            ("UDP Scan", Slot::PortScan),
            ("Service scan", Slot::Service),
            ("Traceroute", Slot::OsAndTrace),
            ("NSE", Slot::Scripts),
        ];
        for (task, slot) in cases {
            assert_eq!(Slot::of_task(task), slot, "{task}");
        }
    }
}
