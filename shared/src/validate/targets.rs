//! A job's `target` as a list: one or more [`Target`]s separated by commas, nothing else (no
//! white space: a stray space must not turn one target into two) (`127.1.0.0/16`,
//! `db1.lab,db2.lab`). One entry is what a target always was; a list lets a
//! chunk of a big scan (DESIGN §12) carry exactly its share of the addresses.
//!
//! The rules a list keeps, whatever its size:
//! - addresses (IPv4, CIDR) and hostnames are not mixed: a list is one or the other (a name is
//!   resolved by the worker, an address is not; a list of one kind splits and groups cleanly);
//! - no address is named twice (no duplicate, no overlapping CIDRs) and no name twice: every
//!   host is scanned once;
//! - the canonical text joins the canonical entries with `,`, so a one-entry list reads exactly
//!   as its [`Target`].
//!
//! [`TargetList::chunks`] splits a list into consecutive pieces of at most `n` hosts, each as
//! few entries as possible (aligned CIDR blocks for addresses).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::Ipv4Net;

use super::{Target, ValidationError};

const FIELD: &str = "target";

/// Longest target text accepted: a list of about 2,000 hostnames, or thousands of CIDRs; it
/// fits in a request body of the default `SCANQ_MAX_BODY_BYTES` (64 KiB) with the other fields.
pub const MAX_LIST_TEXT: usize = 60 * 1024;
/// Most entries a list may hold.
pub const MAX_ENTRIES: usize = 65_536;

/// One or more targets, canonical, of one kind, none overlapping.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TargetList(Vec<Target>);

impl TargetList {
    pub fn entries(&self) -> &[Target] {
        &self.0
    }

    /// The one target of a one-entry list.
    pub fn single(&self) -> Option<&Target> {
        match self.0.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }

    /// The first entry (every list has one).
    pub fn first(&self) -> &Target {
        &self.0[0]
    }

    /// Hosts the list covers: the addresses of every entry (a name counts as one).
    pub fn hosts(&self) -> u64 {
        self.0.iter().map(hosts_of).sum()
    }

    /// Whether the entries are hostnames (else addresses).
    pub fn is_names(&self) -> bool {
        matches!(self.0[0], Target::Host(_))
    }

    /// Consecutive pieces of at most `n` hosts (n ≥ 1), in the list's order: names `n` at a
    /// time; addresses as ranges cut every `n` addresses, each piece written as the fewest
    /// aligned CIDR blocks (a /16 cut by 256 gives 256 /24s).
    pub fn chunks(&self, n: u64) -> Vec<TargetList> {
        let n = n.max(1);
        if self.is_names() {
            return self
                .0
                .chunks(n as usize)
                .map(|c| TargetList(c.to_vec()))
                .collect();
        }
        let mut out = Vec::new();
        let mut piece: Vec<(u32, u32)> = Vec::new();
        let mut room = n;
        for t in &self.0 {
            let (mut lo, hi) = range_of(t);
            loop {
                let left = u64::from(hi - lo) + 1;
                let take = left.min(room);
                let end = lo + (take - 1) as u32;
                match piece.last_mut() {
                    Some(last) if last.1.checked_add(1) == Some(lo) => last.1 = end,
                    _ => piece.push((lo, end)),
                }
                room -= take;
                if room == 0 {
                    out.push(TargetList::from_ranges(&piece));
                    piece.clear();
                    room = n;
                }
                if end == hi {
                    break;
                }
                lo = end + 1;
            }
        }
        if !piece.is_empty() {
            out.push(TargetList::from_ranges(&piece));
        }
        out
    }

    /// The list of ranges `lo..=hi` (in order, disjoint), each as the fewest aligned blocks.
    pub(crate) fn from_ranges(ranges: &[(u32, u32)]) -> Self {
        let mut entries = Vec::new();
        for &(lo, hi) in ranges {
            for net in cover(lo, hi) {
                entries.push(if net.prefix_len() == 32 {
                    Target::Ip(net.addr())
                } else {
                    Target::Cidr(net)
                });
            }
        }
        TargetList(entries)
    }
}

impl TargetList {
    /// A list of entries already known to keep the list's rules (a piece of a checked list).
    pub(crate) fn from_entries(entries: Vec<Target>) -> Self {
        TargetList(entries)
    }
}

impl From<Target> for TargetList {
    fn from(t: Target) -> Self {
        TargetList(vec![t])
    }
}

impl fmt::Display for TargetList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            t.fmt(f)?;
        }
        Ok(())
    }
}

impl FromStr for TargetList {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > MAX_LIST_TEXT {
            return Err(ValidationError::new(
                FIELD,
                format!(
                    "target is {} bytes long; a list may be at most {MAX_LIST_TEXT}",
                    s.len()
                ),
                "give a CIDR for a range of addresses, or split the list",
            ));
        }
        if !s.contains(',') {
            // One target: its own parser words every refusal.
            return s.parse::<Target>().map(TargetList::from);
        }
        let parts: Vec<&str> = s.split(',').collect();
        if parts.len() > MAX_ENTRIES {
            return Err(ValidationError::new(
                FIELD,
                format!(
                    "target lists {} entries; at most {MAX_ENTRIES} are accepted",
                    parts.len()
                ),
                "give CIDRs for ranges of addresses",
            ));
        }
        let mut entries = Vec::with_capacity(parts.len());
        for (i, p) in parts.iter().enumerate() {
            let t: Target = p.parse().map_err(|e: ValidationError| {
                if parts.len() == 1 {
                    e
                } else {
                    ValidationError::new(
                        FIELD,
                        format!("entry {} (`{p}`): {}", i + 1, e.message),
                        e.hint,
                    )
                }
            })?;
            entries.push(t);
        }
        let list = TargetList(entries);
        list.check_kind()?;
        list.check_unique()?;
        Ok(list)
    }
}

impl TargetList {
    fn check_kind(&self) -> Result<(), ValidationError> {
        let names = self.is_names();
        if let Some(odd) = self
            .0
            .iter()
            .find(|t| matches!(t, Target::Host(_)) != names)
        {
            return Err(ValidationError::new(
                FIELD,
                format!(
                    "the list mixes hostnames and addresses (`{}` and `{odd}`)",
                    self.0[0]
                ),
                "give a list of hostnames or a list of IPv4 addresses and CIDRs, one kind per job",
            ));
        }
        Ok(())
    }

    fn check_unique(&self) -> Result<(), ValidationError> {
        if self.0.len() < 2 {
            return Ok(());
        }
        if self.is_names() {
            let mut seen = std::collections::HashSet::new();
            for t in &self.0 {
                if !seen.insert(t) {
                    return Err(ValidationError::new(
                        FIELD,
                        format!("`{t}` is listed twice"),
                        "name every host once",
                    ));
                }
            }
            return Ok(());
        }
        let mut ranges: Vec<(u32, u32, &Target)> = self
            .0
            .iter()
            .map(|t| {
                let (lo, hi) = range_of(t);
                (lo, hi, t)
            })
            .collect();
        ranges.sort_by_key(|r| (r.0, r.1));
        for w in ranges.windows(2) {
            if w[1].0 <= w[0].1 {
                return Err(ValidationError::new(
                    FIELD,
                    format!("`{}` and `{}` overlap", w[0].2, w[1].2),
                    "list every address once (no duplicates, no overlapping CIDRs)",
                ));
            }
        }
        Ok(())
    }
}

fn hosts_of(t: &Target) -> u64 {
    match t {
        Target::Ip(_) | Target::Host(_) => 1,
        Target::Cidr(net) => 1u64 << (32 - net.prefix_len()),
    }
}

/// The first and last address of an address entry (a name has none: never called for one).
pub(crate) fn range_of(t: &Target) -> (u32, u32) {
    match t {
        Target::Ip(ip) => (u32::from(*ip), u32::from(*ip)),
        Target::Cidr(net) => (u32::from(net.network()), u32::from(net.broadcast())),
        Target::Host(_) => (0, 0),
    }
}

/// The fewest aligned CIDR blocks that cover `lo..=hi` exactly.
fn cover(mut lo: u32, hi: u32) -> Vec<Ipv4Net> {
    let mut out = Vec::new();
    loop {
        let left = u64::from(hi - lo) + 1;
        // The biggest block aligned at `lo` that fits in what is left.
        let align = if lo == 0 { 32 } else { lo.trailing_zeros() };
        let fit = 63 - left.leading_zeros();
        let bits = align.min(fit).min(32);
        out.push(Ipv4Net::new(Ipv4Addr::from(lo), (32 - bits) as u8).expect("prefix ≤ 32"));
        let size = 1u64 << bits;
        if u64::from(lo) + size > u64::from(hi) {
            break;
        }
        lo += size as u32;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &str) -> TargetList {
        s.parse().unwrap()
    }

    #[test]
    fn one_entry_reads_as_its_target() {
        for s in ["127.0.0.1", "127.1.0.0/16", "db1.lab.internal"] {
            assert_eq!(list(s).to_string(), s);
            assert!(list(s).single().is_some());
        }
        assert_eq!(list("127.1.0.0/16").hosts(), 65_536);
    }

    #[test]
    fn lists_split_on_commas_only_and_read_back_canonical() {
        let l = list("b.lab,a.lab,c.lab");
        assert_eq!(l.to_string(), "b.lab,a.lab,c.lab");
        assert_eq!(l.hosts(), 3);
        assert!(l.is_names());
        for bad in [
            "a.lab, b.lab",
            "a.lab b.lab",
            "a.lab,,b.lab",
            "a.lab,",
            ",a.lab",
            "a.lab\n",
        ] {
            let e = bad.parse::<TargetList>().unwrap_err();
            assert_eq!(e.field, "target", "{bad:?}");
        }
    }

    #[test]
    fn mixed_duplicate_and_overlapping_lists_are_refused_naming_the_entries() {
        let e = "a.lab,127.0.0.1".parse::<TargetList>().unwrap_err();
        assert_eq!(e.field, "target");
        assert!(e.message.contains("mixes"), "{e}");
        let e = "a.lab,b.lab,a.lab".parse::<TargetList>().unwrap_err();
        assert!(e.message.contains("twice"), "{e}");
        let e = "127.1.0.0/24,127.1.0.128/25"
            .parse::<TargetList>()
            .unwrap_err();
        assert!(e.message.contains("overlap"), "{e}");
        let e = "127.1.0.0/24,127.0.0.1,nonsense!"
            .parse::<TargetList>()
            .unwrap_err();
        assert!(e.message.contains("entry 3"), "{e}");
    }

    #[test]
    fn a_slash_16_cut_by_256_is_256_aligned_slash_24s() {
        let chunks = list("127.1.0.0/16").chunks(256);
        assert_eq!(chunks.len(), 256);
        assert_eq!(chunks[0].to_string(), "127.1.0.0/24");
        assert_eq!(chunks[255].to_string(), "127.1.255.0/24");
        assert!(chunks.iter().all(|c| c.hosts() == 256));
    }

    #[test]
    fn uneven_cuts_cover_every_address_once_with_few_blocks() {
        let l = list("127.1.0.0/24,127.1.1.0/25,127.9.0.1");
        let chunks = l.chunks(100);
        assert_eq!(chunks.iter().map(|c| c.hosts()).sum::<u64>(), l.hosts());
        assert!(chunks.iter().all(|c| c.hosts() <= 100));
        assert_eq!(
            chunks[0].to_string(),
            "127.1.0.0/26,127.1.0.64/27,127.1.0.96/30"
        );
        // Adjacent entries join inside a chunk: 127.1.0.200–127.1.1.43.
        assert_eq!(
            chunks[2].to_string(),
            "127.1.0.200/29,127.1.0.208/28,127.1.0.224/27,127.1.1.0/27,127.1.1.32/29,127.1.1.40/30"
        );
        let again: Vec<_> = chunks.iter().flat_map(|c| c.entries().to_vec()).collect();
        let rejoined = TargetList(again);
        assert!(rejoined.check_unique().is_ok());
    }

    #[test]
    fn names_are_cut_n_at_a_time() {
        let chunks = list("a.lab,b.lab,c.lab,d.lab,e.lab").chunks(2);
        let texts: Vec<String> = chunks.iter().map(|c| c.to_string()).collect();
        assert_eq!(texts, ["a.lab,b.lab", "c.lab,d.lab", "e.lab"]);
    }

    #[test]
    fn the_top_of_the_address_space_does_not_overflow() {
        let chunks = list("255.255.255.0/24").chunks(1000);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].to_string(), "255.255.255.0/24");
        let chunks = list("0.0.0.0/31").chunks(1);
        assert_eq!(chunks[0].to_string(), "0.0.0.0");
    }
}
