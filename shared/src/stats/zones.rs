//! The zones as the fleet sees them (DESIGN §13): `GET /v1/zones`, the `zones` check of
//! `/health` and the MCP resource `scanq://zones` all read this one view.
//!
//! A zone is listed when the zone map names it, when it is `default`, or when it still holds
//! queued jobs or live workers after the map stopped naming it (a reload dropped it): the jobs
//! stranded there are what an operator must see.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Stats;
use crate::domain::{ToolName, Zone};
use crate::queue::QueueError;
use crate::validate::ZoneMap;

/// One zone: its live workers, its queued work and, for admins, where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ZoneView {
    pub name: Zone,
    /// Live workers (heartbeat not lapsed) serving this zone.
    pub workers: usize,
    /// Jobs queued or scheduled in this zone, over every tool.
    pub queued: i64,
    /// The zone map's entries for it (CIDRs, `.suffix`es); admins only (`None` otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<String>>,
}

impl ZoneView {
    /// Jobs wait here with nobody to run them.
    pub fn stranded(&self) -> bool {
        self.queued > 0 && self.workers == 0
    }

    /// The view without the map's entries (a non-admin caller's).
    pub fn without_targets(self) -> Self {
        Self {
            targets: None,
            ..self
        }
    }
}

impl Stats {
    /// Every zone of `map`, `default`, and any zone that still holds queued jobs of `tools` or
    /// live workers; sorted by name, `default` first.
    pub async fn zones(
        &self,
        map: &ZoneMap,
        tools: &[ToolName],
    ) -> Result<Vec<ZoneView>, QueueError> {
        let mut by_zone: BTreeMap<Zone, (usize, i64)> = map
            .zones()
            .into_iter()
            .chain([Zone::default()])
            .map(|z| (z, (0, 0)))
            .collect();
        for w in self.workers().await? {
            by_zone.entry(w.zone).or_default().0 += 1;
        }
        let places = self.places(tools, &map.zones()).await?;
        for q in self.queues(&places).await? {
            if q.depth > 0
                && let Ok(zone) = Zone::parse(&q.zone)
            {
                by_zone.entry(zone).or_default().1 += q.depth;
            }
        }
        let mut out: Vec<ZoneView> = by_zone
            .into_iter()
            .map(|(name, (workers, queued))| ZoneView {
                targets: Some(map.entries(&name).to_vec()),
                name,
                workers,
                queued,
            })
            .collect();
        out.sort_by_key(|z| (!z.name.is_default(), z.name.clone()));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(queued: i64, workers: usize) -> ZoneView {
        ZoneView {
            name: Zone::parse("a").unwrap(),
            workers,
            queued,
            targets: Some(vec!["127.0.1.0/24".into()]),
        }
    }

    #[test]
    fn a_zone_is_stranded_only_with_queued_jobs_and_no_worker() {
        assert!(view(1, 0).stranded());
        assert!(!view(0, 0).stranded());
        assert!(!view(3, 1).stranded());
    }

    #[test]
    fn without_targets_drops_only_the_entries() {
        let v = view(2, 1).without_targets();
        assert_eq!((v.targets, v.queued, v.workers), (None, 2, 1));
        let json = serde_json::to_value(view(0, 0).without_targets()).unwrap();
        assert!(json.get("targets").is_none(), "{json}");
    }
}
