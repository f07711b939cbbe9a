//! The zone keys (DESIGN §13): `zones`, the zone map (`SCANQ_ZONES` text, or the config file's
//! `[zones]` section), and `worker_zone`, the zone a worker serves. Checked at start and on
//! reload, naming the key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Config, ConfigError};
use crate::validate::ZoneMap;

/// `zones`: `"dmz=192.0.2.0/24,.dmz.example;lab=198.51.100.0/24"` (the environment's form, also
/// accepted in the file) or a TOML section `[zones]` with `dmz = ["192.0.2.0/24", ".dmz.example"]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum ZonesSetting {
    Text(String),
    Table(BTreeMap<String, Vec<String>>),
}

impl Default for ZonesSetting {
    fn default() -> Self {
        Self::Text(String::new())
    }
}

impl Config {
    /// The zone map `zones` describes (refused naming `zones`).
    pub fn zone_map(&self) -> Result<ZoneMap, ConfigError> {
        let parsed = match &self.zones {
            ZonesSetting::Text(text) => ZoneMap::parse(text),
            ZonesSetting::Table(table) => ZoneMap::from_table(table),
        };
        parsed.map_err(|message| ConfigError::Invalid {
            key: "zones",
            message: format!("{message} (environment: SCANQ_ZONES)"),
        })
    }

    /// The map parses, and `worker_zone` is `default` or one of its zones.
    pub(super) fn check_zones(&self) -> Result<(), ConfigError> {
        let map = self.zone_map()?;
        if !map.knows(&self.worker_zone) {
            let names: Vec<String> = map.zones().iter().map(|z| z.to_string()).collect();
            return Err(ConfigError::Invalid {
                key: "worker_zone",
                message: format!(
                    "zone {} is not in the zone map (`zones`); accepted: default{}{} \
                     (environment: SCANQ_WORKER_ZONE)",
                    self.worker_zone,
                    if names.is_empty() { "" } else { ", " },
                    names.join(", ")
                ),
            });
        }
        Ok(())
    }
}
