//! A big scan that spans zones (DESIGN §12, §13): its target cut by zone. The plan is fixed at
//! submit and stored on the parent (`zplan`), so its chunks keep their numbers and zones even
//! when the zone map is reloaded later: chunk `n` is the `n`-th piece of cutting each zone's
//! part in turn into pieces of at most `chunk_hosts` hosts.
//!
//! Text form: `<zone>=<target list>;…` (`a=127.0.1.0/24;default=127.0.0.0/24,127.0.2.0/23`),
//! the same shape as `SCANQ_ZONES`.

use std::fmt;
use std::str::FromStr;

use crate::domain::Zone;
use crate::validate::TargetList;

/// A target cut by zone, in order; every zone at most once, every part non-empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZonePlan(Vec<(Zone, TargetList)>);

impl ZonePlan {
    /// `parts` as a plan; `None` when they are fewer than two (one zone needs no plan).
    pub fn new(parts: Vec<(Zone, TargetList)>) -> Option<Self> {
        (parts.len() > 1).then_some(Self(parts))
    }

    pub fn parts(&self) -> &[(Zone, TargetList)] {
        &self.0
    }

    /// The zones, in order.
    pub fn zones(&self) -> Vec<Zone> {
        self.0.iter().map(|(z, _)| z.clone()).collect()
    }

    /// Every chunk with its zone, in chunk order.
    pub fn chunks(&self, chunk_hosts: u64) -> Vec<(Zone, TargetList)> {
        self.0
            .iter()
            .flat_map(|(z, t)| t.chunks(chunk_hosts).into_iter().map(|c| (z.clone(), c)))
            .collect()
    }

    /// The zone of chunk `n` (without cutting anything), `None` past the last chunk.
    pub fn zone_of_chunk(&self, n: u64, chunk_hosts: u64) -> Option<&Zone> {
        let mut first = 0;
        for (z, t) in &self.0 {
            first += t.hosts().div_ceil(chunk_hosts.max(1));
            if n < first {
                return Some(z);
            }
        }
        None
    }
}

impl fmt::Display for ZonePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (z, t)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{z}={t}")?;
        }
        Ok(())
    }
}

impl FromStr for ZonePlan {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts = s
            .split(';')
            .map(|part| {
                let (z, t) = part
                    .split_once('=')
                    .ok_or_else(|| format!("`{part}` is not <zone>=<targets>"))?;
                let zone = Zone::parse(z).map_err(|e| e.0)?;
                let list: TargetList = t.parse().map_err(|e| format!("{e}"))?;
                Ok((zone, list))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Self::new(parts).ok_or_else(|| "a zone plan names at least two zones".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> ZonePlan {
        "a=127.0.1.0/24;default=127.0.0.0/24,127.0.2.0/23"
            .parse()
            .unwrap()
    }

    #[test]
    fn a_plan_reads_back_as_written() {
        let p = plan();
        assert_eq!(
            p.to_string(),
            "a=127.0.1.0/24;default=127.0.0.0/24,127.0.2.0/23"
        );
        assert_eq!(p.zones(), [Zone::parse("a").unwrap(), Zone::default()]);
        assert!("a=127.0.1.0/24".parse::<ZonePlan>().is_err());
        assert!("A=127.0.1.0/24;b=127.0.2.0/24".parse::<ZonePlan>().is_err());
        assert!("a;b".parse::<ZonePlan>().is_err());
    }

    #[test]
    fn chunks_are_cut_per_zone_and_numbered_in_turn() {
        let p = plan();
        let chunks = p.chunks(256);
        // a: one /24; default: 768 hosts in three chunks.
        assert_eq!(chunks.len(), 4);
        assert_eq!(chunks[0].1.to_string(), "127.0.1.0/24");
        assert_eq!(chunks[1].1.to_string(), "127.0.0.0/24");
        assert_eq!(chunks[3].1.to_string(), "127.0.3.0/24");
        for (n, (z, _)) in chunks.iter().enumerate() {
            assert_eq!(p.zone_of_chunk(n as u64, 256), Some(z));
        }
        assert_eq!(p.zone_of_chunk(4, 256), None);
        // Pieces never mix zones, even when a part is not a multiple of chunk_hosts.
        assert_eq!(p.chunks(200).len(), 2 + 4);
    }
}
