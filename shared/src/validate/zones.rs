//! The zone map (DESIGN §13): which zone a target is in. `SCANQ_ZONES` (or the config file's
//! `[zones]` section) maps IPv4 CIDRs and `.suffix`es of names to zone names; the most specific
//! CIDR entry, or the longest suffix, wins; everything else is zone `default`.
//!
//! The map is parsed once into a sorted table of disjoint address spans, so placing an address,
//! cutting a big address list by zone ([`ZoneMap::split`]) and the worker's re-check of what it
//! is about to scan ([`ZoneMap::check_addresses`]) are binary searches, whatever the list size.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::targets::range_of;
use super::{Hostname, Target, TargetList};
use crate::domain::Zone;

/// Most entries (CIDRs and suffixes of all zones together) a map may hold.
pub const MAX_ZONE_ENTRIES: usize = 1024;

const ACCEPTED: &str = "accepted: `zone=entry,entry;zone=entry` where an entry is an IPv4 CIDR \
                        (192.0.2.0/24), an IPv4 address or a name suffix with its leading dot \
                        (.dmz.example)";

/// Where targets live: CIDR and suffix entries per zone. Empty: everything is zone `default`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ZoneMap {
    /// Suffix (without its leading dot) → zone.
    suffixes: HashMap<String, Zone>,
    /// Disjoint, sorted, covering the address space once built (empty: one span of nothing).
    spans: Vec<Span>,
    /// Zones the map names.
    named: BTreeSet<Zone>,
    /// Zones with at least one CIDR entry.
    with_cidrs: BTreeSet<Zone>,
    /// Each zone's entries in canonical form (`192.0.2.0/24`, `.dmz.example`), as listed.
    listed: BTreeMap<Zone, Vec<String>>,
}

/// Addresses `lo..=hi` and the zone its most specific CIDR entry gives them (`None`: no entry).
#[derive(Clone, Debug, PartialEq)]
struct Span {
    lo: u32,
    hi: u32,
    zone: Option<Zone>,
}

const NOTHING: &[Span] = &[Span {
    lo: 0,
    hi: u32::MAX,
    zone: None,
}];

impl ZoneMap {
    /// `"dmz=192.0.2.0/24,.dmz.example;lab=198.51.100.0/24"`; a trailing `;` and white space
    /// around items and entries are accepted; an empty text is the empty map.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut items: Vec<&str> = text.split(';').map(str::trim).collect();
        if items.last() == Some(&"") {
            items.pop();
        }
        let mut groups = Vec::with_capacity(items.len());
        let mut seen = BTreeSet::new();
        for item in items {
            let Some((zone, entries)) = item.split_once('=') else {
                return Err(format!("item `{item}` has no `=`; {ACCEPTED}"));
            };
            let zone = zone.trim();
            if !seen.insert(zone) {
                return Err(format!(
                    "zone {zone} is given twice; list all its entries in one item; {ACCEPTED}"
                ));
            }
            let entries: Vec<String> = if entries.trim().is_empty() {
                Vec::new()
            } else {
                entries.split(',').map(|e| e.trim().to_owned()).collect()
            };
            groups.push((zone.to_owned(), entries));
        }
        Self::build(groups)
    }

    /// The config file's `[zones]` section: `dmz = ["192.0.2.0/24", ".dmz.example"]`.
    pub fn from_table(t: &BTreeMap<String, Vec<String>>) -> Result<Self, String> {
        Self::build(t.iter().map(|(z, e)| (z.clone(), e.clone())).collect())
    }

    fn build(groups: Vec<(String, Vec<String>)>) -> Result<Self, String> {
        let total: usize = groups.iter().map(|g| g.1.len()).sum();
        if total > MAX_ZONE_ENTRIES {
            return Err(format!(
                "the map has {total} entries; at most {MAX_ZONE_ENTRIES} are accepted (give wider CIDRs)"
            ));
        }
        let mut map = ZoneMap::default();
        let mut nets: HashMap<Ipv4Net, Zone> = HashMap::new();
        for (name, entries) in groups {
            let zone = Zone::parse(&name).map_err(|e| format!("zone `{name}`: {e}"))?;
            if entries.is_empty() {
                return Err(format!("zone {zone} has no entries; {ACCEPTED}"));
            }
            for entry in entries {
                let clash = |key: &str, other: &Zone| {
                    if *other == zone {
                        format!("zone {zone} lists {key} twice")
                    } else {
                        format!("ambiguous: {key} is in zone {other} and zone {zone}")
                    }
                };
                let shown = match parse_entry(&zone, &entry)? {
                    Entry::Net(net) => {
                        if let Some(other) = nets.insert(net, zone.clone()) {
                            return Err(clash(&net.to_string(), &other));
                        }
                        map.with_cidrs.insert(zone.clone());
                        net.to_string()
                    }
                    Entry::Suffix(s) => {
                        if let Some(other) = map.suffixes.insert(s.clone(), zone.clone()) {
                            return Err(clash(&format!(".{s}"), &other));
                        }
                        format!(".{s}")
                    }
                };
                map.listed.entry(zone.clone()).or_default().push(shown);
            }
            map.named.insert(zone);
        }
        map.spans = spans(&nets);
        Ok(map)
    }

    /// The zones the map names, sorted (`default` only when the map names it).
    pub fn zones(&self) -> Vec<Zone> {
        self.named.iter().cloned().collect()
    }

    /// The entries that place targets in `z`, canonical (`192.0.2.0/24`, an address as its
    /// `/32`, `.dmz.example`), in the order the map lists them; none for a zone it does not
    /// name (`default` has only the entries that carve exceptions out of wider zones).
    pub fn entries(&self, z: &Zone) -> &[String] {
        self.listed.get(z).map_or(&[], Vec::as_slice)
    }

    /// Whether `z` is a zone of this map; `default` always is.
    pub fn knows(&self, z: &Zone) -> bool {
        z.is_default() || self.named.contains(z)
    }

    /// The zone of the most specific CIDR entry holding `a`, else `default`.
    pub fn zone_of_addr(&self, a: Ipv4Addr) -> Zone {
        let spans = self.spans();
        zone_or_default(&spans[span_index(spans, u32::from(a))].zone)
    }

    /// The zone of the longest suffix `h` ends with (`.dmz.example` holds `db.dmz.example` and
    /// `dmz.example` itself), else `default`.
    pub fn zone_of_name(&self, h: &Hostname) -> Zone {
        let name = h.as_str();
        let tails =
            std::iter::once(name).chain(name.match_indices('.').map(|(i, _)| &name[i + 1..]));
        for tail in tails {
            if let Some(z) = self.suffixes.get(tail) {
                return z.clone();
            }
        }
        Zone::default()
    }

    /// The zone of one target (a CIDR by its first address: use [`Self::split`] for a range
    /// that may span zones).
    pub fn zone_of(&self, t: &Target) -> Zone {
        match t {
            Target::Host(h) => self.zone_of_name(h),
            other => self.zone_of_addr(Ipv4Addr::from(range_of(other).0)),
        }
    }

    /// The list cut by zone: each zone's piece in list order, zones in order of first
    /// appearance. A list in one zone comes back whole (`vec![(zone, list.clone())]`); an
    /// address range cut by a zone boundary becomes the fewest aligned CIDR blocks.
    pub fn split(&self, list: &TargetList) -> Vec<(Zone, TargetList)> {
        let mut order: Vec<Zone> = Vec::new();
        if list.is_names() {
            let mut pieces: HashMap<Zone, Vec<Target>> = HashMap::new();
            for t in list.entries() {
                let zone = self.zone_of(t);
                let piece = pieces.entry(zone.clone()).or_insert_with(|| {
                    order.push(zone);
                    Vec::new()
                });
                piece.push(t.clone());
            }
            if order.len() == 1 {
                return vec![(order.remove(0), list.clone())];
            }
            return order
                .into_iter()
                .map(|z| {
                    let piece = pieces.remove(&z).unwrap_or_default();
                    (z, TargetList::from_entries(piece))
                })
                .collect();
        }
        let spans = self.spans();
        let mut pieces: HashMap<Zone, Vec<(u32, u32)>> = HashMap::new();
        for t in list.entries() {
            let (mut lo, hi) = range_of(t);
            let mut i = span_index(spans, lo);
            loop {
                let end = hi.min(spans[i].hi);
                let zone = zone_or_default(&spans[i].zone);
                let piece = pieces.entry(zone.clone()).or_insert_with(|| {
                    order.push(zone);
                    Vec::new()
                });
                piece.push((lo, end));
                if end == hi {
                    break;
                }
                lo = end + 1;
                i += 1;
            }
        }
        if order.len() == 1 {
            return vec![(order.remove(0), list.clone())];
        }
        order
            .into_iter()
            .map(|z| {
                let ranges = pieces.remove(&z).unwrap_or_default();
                (z, TargetList::from_ranges(&ranges))
            })
            .collect()
    }

    /// Whether `address` (an IPv4 address or CIDR text) lies wholly in `zone`; the error says
    /// where it is instead (`in zone a`, `partly in zone a (127.0.1.0/25)`).
    pub fn check_address(&self, zone: &Zone, address: &str) -> Result<(), String> {
        let (lo, hi) = match (address.parse::<Ipv4Addr>(), address.parse::<Ipv4Net>()) {
            (Ok(a), _) => (u32::from(a), u32::from(a)),
            (_, Ok(n)) => (u32::from(n.network()), u32::from(n.broadcast())),
            _ => return Err("not an IPv4 address or CIDR".to_owned()),
        };
        // A zone placed by names only also takes the addresses no CIDR entry places.
        let takes_unplaced = zone.is_default() || !self.with_cidrs.contains(zone);
        let spans = self.spans();
        let mut i = span_index(spans, lo);
        loop {
            let s = &spans[i];
            let inside = match &s.zone {
                Some(z) => z == zone,
                None => takes_unplaced,
            };
            if !inside {
                let other = zone_or_default(&s.zone);
                if s.lo <= lo && hi <= s.hi {
                    return Err(format!("in zone {other}"));
                }
                let (a, b) = (lo.max(s.lo), hi.min(s.hi));
                let part = TargetList::from_ranges(&[(a, b)]);
                return Err(format!("partly in zone {other} ({part})"));
            }
            if s.hi >= hi {
                return Ok(());
            }
            i += 1;
        }
    }

    /// The worker's re-check: every address (IPv4 or CIDR text, as `resolve_list` gives them)
    /// lies wholly in `zone`: the CIDR entries place it there, or `zone` has no CIDR entries
    /// and none places it. The error names the first address outside and where it is.
    pub fn check_addresses(&self, zone: &Zone, addresses: &[String]) -> Result<(), String> {
        for a in addresses {
            self.check_address(zone, a)
                .map_err(|why| format!("{a} is {why}, outside zone {zone}"))?;
        }
        Ok(())
    }

    fn spans(&self) -> &[Span] {
        if self.spans.is_empty() {
            NOTHING
        } else {
            &self.spans
        }
    }
}

enum Entry {
    Net(Ipv4Net),
    Suffix(String),
}

fn parse_entry(zone: &Zone, entry: &str) -> Result<Entry, String> {
    let bad = |why: String| format!("zone {zone}: entry `{entry}`: {why}; {ACCEPTED}");
    if entry.is_empty() {
        return Err(bad("empty entry".into()));
    }
    if let Some(suffix) = entry.strip_prefix('.') {
        return match suffix.parse::<Target>() {
            Ok(Target::Host(h)) => Ok(Entry::Suffix(h.as_str().to_owned())),
            Ok(_) => Err(bad("a suffix is a name, not an address".into())),
            Err(e) => Err(bad(e.message)),
        };
    }
    match entry.parse::<Target>() {
        Ok(Target::Ip(ip)) => Ok(Entry::Net(Ipv4Net::from(ip))),
        Ok(Target::Cidr(net)) => Ok(Entry::Net(net)),
        Ok(Target::Host(h)) => Err(bad(format!(
            "a name entry is a suffix with its leading dot: write `.{h}`"
        ))),
        Err(e) => Err(bad(e.message)),
    }
}

fn zone_or_default(z: &Option<Zone>) -> Zone {
    z.clone().unwrap_or_default()
}

/// The span holding `a` (spans cover the whole address space).
fn span_index(spans: &[Span], a: u32) -> usize {
    spans.partition_point(|s| s.lo <= a) - 1
}

/// The address space cut at every entry's edges, each piece given its most specific entry's
/// zone, neighbours of one zone joined. CIDRs either nest or are disjoint, so the zone is the
/// same across a piece.
fn spans(nets: &HashMap<Ipv4Net, Zone>) -> Vec<Span> {
    let mut edges: BTreeSet<u32> = BTreeSet::from([0]);
    for net in nets.keys() {
        edges.insert(u32::from(net.network()));
        if let Some(next) = u32::from(net.broadcast()).checked_add(1) {
            edges.insert(next);
        }
    }
    let edges: Vec<u32> = edges.into_iter().collect();
    let mut out: Vec<Span> = Vec::with_capacity(edges.len());
    for (i, &lo) in edges.iter().enumerate() {
        let hi = edges.get(i + 1).map_or(u32::MAX, |n| n - 1);
        let zone = (0..=32u8).rev().find_map(|len| {
            let net = Ipv4Net::new(Ipv4Addr::from(lo), len).ok()?.trunc();
            nets.get(&net).cloned()
        });
        match out.last_mut() {
            Some(last) if last.zone == zone => last.hi = hi,
            _ => out.push(Span { lo, hi, zone }),
        }
    }
    out
}

#[cfg(test)]
mod tests;
