//! What a process may change without a restart (DESIGN §8): on SIGHUP the API and every worker
//! read their config file, tool catalog and target scope again, validate the whole new set, and
//! swap it in at once ([`LiveCell::reload`]). A bad set is refused with the key that is wrong
//! and the old one stays in force; the outcome is logged and counted
//! (`scanq_config_reloads_total{result}`).
//!
//! Reloadable ([`HOT_KEYS`]): the target scope (`allowed_targets`, `denied_targets`,
//! `max_hosts`), `allow_intrusive`, `approval`, `default_max_attempts`, the zone map (`zones`; a worker's
//! `worker_zone` is fixed, and must stay a zone of the new map) and the catalog (the file `catalog`
//! names is read again even when its path did not change). Every other key is fixed at start
//! (addresses, Redis, key prefix, pool sizes, timeouts, …): a reload that changes one is refused
//! with that key's name, rather than half applied. So is a catalog that changes a kept tool's
//! `partitions` or `max_running_per_group` (both fixed when the queue is built).

use std::path::Path;
use std::sync::{Arc, RwLock};

use crate::catalog::Catalog;
use crate::config::Config;
use crate::request::Policy;
use crate::validate::{TargetPolicy, ZoneMap};

/// Keys a reload may change.
pub const HOT_KEYS: &[&str] = &[
    "allowed_targets",
    "denied_targets",
    "max_hosts",
    "allow_intrusive",
    "approval",
    "default_max_attempts",
    "catalog",
    "zones",
];

/// One consistent set: the configuration, the catalog it names and the target scope it sets.
#[derive(Debug)]
pub struct Live {
    pub cfg: Config,
    pub catalog: Catalog,
    pub targets: TargetPolicy,
    /// The zone map (DESIGN §13) parsed from `cfg.zones`.
    pub zones: ZoneMap,
}

impl Live {
    /// The set for `cfg` and `catalog` (the target scope parsed from `cfg`).
    pub fn new(cfg: Config, catalog: Catalog) -> Result<Self, String> {
        let targets = TargetPolicy::parse(&cfg.allowed_targets, &cfg.denied_targets, cfg.max_hosts)
            .map_err(|e| format!("allowed_targets/denied_targets: {e}"))?
            .with_max_target_hosts(cfg.max_target_hosts);
        let zones = cfg.zone_map().map_err(|e| e.to_string())?;
        Ok(Self {
            cfg,
            catalog,
            targets,
            zones,
        })
    }

    /// Reads the whole set again (config file and environment, then the catalog it names),
    /// and checks that it changes only [`HOT_KEYS`] compared with `running`.
    pub fn load(file: Option<&Path>, running: &Config) -> Result<Self, String> {
        let cfg = Config::load(file).map_err(|e| e.to_string())?;
        if let Some(key) = fixed_key_changed(running, &cfg) {
            return Err(format!(
                "configuration key `{key}` changed, but it takes effect only at start: restart \
                 the process for it (only {} reload)",
                HOT_KEYS.join(", ")
            ));
        }
        let catalog = Catalog::load(cfg.catalog.as_deref()).map_err(|e| e.to_string())?;
        Self::new(cfg, catalog)
    }

    /// What a submit is judged against.
    pub fn policy(&self) -> Policy<'_> {
        Policy {
            catalog: &self.catalog,
            targets: &self.targets,
            zones: &self.zones,
            allow_intrusive: self.cfg.allow_intrusive,
            default_max_attempts: self.cfg.default_max_attempts,
            require_engagement: self.cfg.require_engagement,
            approval: self.cfg.approval,
        }
    }
}

/// A tool's partition count places its jobs (`queue::layout`): a reload may not change it for
/// a tool it keeps. `default` is `queue_partitions`, which a reload never changes.
fn partitions_kept(old: &Catalog, new: &Catalog, default: u16) -> Result<(), String> {
    let (was, is) = (old.partitions(), new.partitions());
    let count = |m: &std::collections::HashMap<_, u16>, t| m.get(t).copied().unwrap_or(default);
    let mut kept: Vec<_> = old
        .tools()
        .map(|(t, _)| t)
        .filter(|t| new.get(t).is_some())
        .collect();
    kept.sort();
    for tool in kept {
        let (was, is) = (count(&was, tool), count(&is, tool));
        if was != is {
            return Err(format!(
                "tool `{tool}`: `partitions` changed ({was} → {is}), but it places the tool's jobs \
                 and takes effect only at start, with the whole fleet (docs/scaling.md)"
            ));
        }
    }
    Ok(())
}

/// A tool's cap of running jobs per target group is fixed when the queue and the workers' claims
/// are built (politeness, docs/queue.md): a reload may not change it for a tool it keeps.
fn group_caps_kept(old: &Catalog, new: &Catalog, fleet: u32) -> Result<(), String> {
    let mut kept: Vec<_> = old
        .tools()
        .map(|(t, _)| t)
        .filter(|t| new.get(t).is_some())
        .collect();
    kept.sort();
    for tool in kept {
        let (was, is) = (
            old.max_running_per_group(tool, fleet),
            new.max_running_per_group(tool, fleet),
        );
        if was != is {
            return Err(format!(
                "tool `{tool}`: `max_running_per_group` changed ({was} → {is}), but it takes \
                 effect only at start (docs/queue.md, \"Politeness per target network\")"
            ));
        }
    }
    Ok(())
}

/// The first key outside [`HOT_KEYS`] whose value differs.
fn fixed_key_changed(old: &Config, new: &Config) -> Option<String> {
    let old = serde_json::to_value(old).ok()?;
    let new = serde_json::to_value(new).ok()?;
    let (old, new) = (old.as_object()?, new.as_object()?);
    old.keys()
        .chain(new.keys())
        .filter(|k| !HOT_KEYS.contains(&k.as_str()))
        .find(|k| old.get(*k) != new.get(*k))
        .cloned()
}

/// How a reload ended (the `result` label of `scanq_config_reloads_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Refused,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Refused => "refused",
        }
    }
}

/// The set in force, swapped whole on reload: readers take an `Arc` to one set and keep using
/// it for the request or job at hand, so nothing ever sees half of an old and half of a new set.
#[derive(Debug)]
pub struct LiveCell(RwLock<Arc<Live>>);

impl LiveCell {
    pub fn new(live: Live) -> Self {
        Self(RwLock::new(Arc::new(live)))
    }

    /// The set in force.
    pub fn current(&self) -> Arc<Live> {
        self.0.read().expect("live config lock").clone()
    }

    /// Reads the set again from the file the running one came from, checks it with `accept`
    /// (what this process cannot take live), and swaps it in; on any error the running set stays
    /// in force. Logs the outcome.
    pub fn reload(&self, accept: impl FnOnce(&Live) -> Result<(), String>) -> Outcome {
        let running = self.current();
        let loaded = Live::load(running.cfg.source.as_deref(), &running.cfg)
            .and_then(|live| {
                let default = running.cfg.queue_partitions;
                partitions_kept(&running.catalog, &live.catalog, default).map(|()| live)
            })
            .and_then(|live| {
                let fleet = running.cfg.target_group_max_running;
                group_caps_kept(&running.catalog, &live.catalog, fleet).map(|()| live)
            })
            .and_then(|live| accept(&live).map(|()| live));
        match loaded {
            Ok(live) => {
                tracing::info!(
                    tools = ?live.catalog.names(),
                    targets = %live.targets.describe(),
                    allow_intrusive = live.cfg.allow_intrusive,
                    zones = ?live.zones.zones().iter().map(|z| z.as_str()).collect::<Vec<_>>(),
                    "Configuration reloaded"
                );
                *self.0.write().expect("live config lock") = Arc::new(live);
                Outcome::Ok
            }
            Err(error) => {
                tracing::error!(%error, "Configuration reload refused; the running configuration stays in force");
                Outcome::Refused
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hot_keys_may_change() {
        let old = Config::default();
        let mut new = old.clone();
        new.allowed_targets = "10.0.0.0/8".into();
        new.allow_intrusive = true;
        assert_eq!(fixed_key_changed(&old, &new), None);
        new.key_prefix = "other".into();
        assert_eq!(fixed_key_changed(&old, &new).as_deref(), Some("key_prefix"));
    }

    #[test]
    fn a_bad_scope_names_its_key() {
        let cfg = Config {
            allowed_targets: "10.0.0.0/33".into(),
            ..Config::default()
        };
        let err = Live::new(cfg, Catalog::builtin()).unwrap_err();
        assert!(err.contains("allowed_targets"), "{err}");
    }

    #[test]
    fn the_zone_map_is_hot_and_built_with_the_set() {
        let old = Config::default();
        let mut new = old.clone();
        new.zones = crate::config::ZonesSetting::Text("a=127.0.1.0/24".into());
        assert_eq!(fixed_key_changed(&old, &new), None);
        let live = Live::new(new.clone(), Catalog::builtin()).unwrap();
        let a = crate::domain::Zone::parse("a").unwrap();
        assert_eq!(live.zones.zone_of_addr([127, 0, 1, 5].into()), a);
        new.worker_zone = a;
        assert_eq!(
            fixed_key_changed(&old, &new).as_deref(),
            Some("worker_zone")
        );
        new.zones = crate::config::ZonesSetting::Text("a=127.0.1.0/24;b=127.0.1.0/24".into());
        let err = Live::new(new, Catalog::builtin()).unwrap_err();
        assert!(
            err.contains("`zones`") && err.contains("ambiguous"),
            "{err}"
        );
    }

    #[test]
    fn a_reload_takes_a_changed_zone_map_from_the_file() {
        let file = std::env::temp_dir().join(format!("scanq-zones-{}.toml", std::process::id()));
        std::fs::write(&file, "[zones]\na = [\"127.0.1.0/24\"]\n").unwrap();
        let cfg = Config::load(Some(&file)).unwrap();
        let cell = LiveCell::new(Live::new(cfg, Catalog::builtin()).unwrap());
        let at = |cell: &LiveCell| cell.current().zones.zone_of_addr([127, 0, 2, 1].into());
        assert!(at(&cell).is_default());
        std::fs::write(&file, "zones = \"a=127.0.1.0/24;b=127.0.2.0/24\"\n").unwrap();
        assert_eq!(cell.reload(|_| Ok(())), Outcome::Ok);
        assert_eq!(at(&cell).as_str(), "b");
        // A bad map is refused and the running one stays.
        std::fs::write(&file, "zones = \"b=127.0.2.0/24;c=127.0.2.0/24\"\n").unwrap();
        assert_eq!(cell.reload(|_| Ok(())), Outcome::Refused);
        assert_eq!(at(&cell).as_str(), "b");
        let _ = std::fs::remove_file(&file);
    }

    #[test]
    fn a_kept_tools_partition_count_may_not_change() {
        let catalog = |extra: &str| {
            let text = format!("[tools.noop]\nexecutor = \"noop\"\n{extra}");
            Catalog::from_sources("", Some(("test", &text))).unwrap()
        };
        let (one, three) = (catalog(""), catalog("partitions = 3\n"));
        assert_eq!(
            partitions_kept(&one, &catalog("partitions = 1\n"), 1),
            Ok(())
        );
        let err = partitions_kept(&one, &three, 1).unwrap_err();
        assert!(err.contains("`noop`") && err.contains("(1 → 3)"), "{err}");
        assert!(
            partitions_kept(&three, &one, 3).is_ok(),
            "the default is 3 here"
        );
        // A tool the reload removes has nothing to keep.
        let other =
            Catalog::from_sources("", Some(("test", "[tools.sleep]\nexecutor = \"sleep\"\n")));
        assert_eq!(partitions_kept(&three, &other.unwrap(), 1), Ok(()));
    }

    #[test]
    fn a_kept_tools_group_cap_may_not_change() {
        let catalog = |extra: &str| {
            let text = format!("[tools.noop]\nexecutor = \"noop\"\n{extra}");
            Catalog::from_sources("", Some(("test", &text))).unwrap()
        };
        let (none, two) = (catalog(""), catalog("max_running_per_group = 2\n"));
        assert_eq!(group_caps_kept(&none, &catalog(""), 2), Ok(()));
        assert_eq!(
            group_caps_kept(&none, &two, 2),
            Ok(()),
            "the fleet's is 2 here"
        );
        let err = group_caps_kept(&none, &two, 0).unwrap_err();
        assert!(err.contains("`noop`") && err.contains("(0 → 2)"), "{err}");
    }
}
