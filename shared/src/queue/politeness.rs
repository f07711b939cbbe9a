//! Politeness per target network, the API's half: which jobs carry a target group (`tgroup`)
//! when admitted. A job gets one when its tool's cap of running jobs per group (the catalog's
//! `max_running_per_group`, else `SCANQ_TARGET_GROUP_MAX_RUNNING`) is above 0; otherwise the
//! field is left out (a queued job's bytes matter). The workers enforce the cap in `claim.lua`
//! with their own configuration (docs/queue.md, "Politeness per target network").

use std::collections::HashMap;
use std::sync::Arc;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::domain::ToolName;
use crate::validate::{Target, target_group};

/// The group prefix and each tool's cap, fixed when the queue is built.
#[derive(Debug, Clone, Default)]
pub(super) struct TargetGroups {
    prefix: u8,
    fleet_cap: u32,
    by_tool: Arc<HashMap<ToolName, u32>>,
}

impl TargetGroups {
    pub(super) fn new(cfg: &Config, catalog: Option<&Catalog>) -> Self {
        let by_tool = catalog
            .map(|c| {
                c.tools()
                    .map(|(name, _)| {
                        (
                            name.clone(),
                            c.max_running_per_group(name, cfg.target_group_max_running),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            prefix: cfg.target_group_prefix,
            fleet_cap: cfg.target_group_max_running,
            by_tool: Arc::new(by_tool),
        }
    }

    /// The `tgroup` to store with a job of `tool` on `target`: `None` when the tool is not
    /// capped per group.
    pub(super) fn of(&self, tool: &ToolName, target: &Target) -> Option<String> {
        let cap = self.by_tool.get(tool).copied().unwrap_or(self.fleet_cap);
        (cap > 0).then(|| target_group(target, self.prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_capped_tools_jobs_carry_a_group() {
        let extra = "[tools.own]\nexecutor = \"noop\"\nmax_running_per_group = 1\n\
                     [tools.off]\nexecutor = \"noop\"\nmax_running_per_group = 0\n\
                     [tools.fleet]\nexecutor = \"noop\"\n";
        let catalog =
            Catalog::from_sources(crate::catalog::DEFAULT_CATALOG, Some(("t", extra))).unwrap();
        let tool = |t: &str| ToolName::parse(t).unwrap();
        let target: Target = "127.2.0.9".parse().unwrap();
        let none = TargetGroups::new(&Config::default(), Some(&catalog));
        assert_eq!(
            none.of(&tool("own"), &target).as_deref(),
            Some("127.2.0.0/24")
        );
        assert_eq!(none.of(&tool("fleet"), &target), None);
        let cfg = Config {
            target_group_max_running: 2,
            target_group_prefix: 16,
            ..Config::default()
        };
        let fleet = TargetGroups::new(&cfg, Some(&catalog));
        assert_eq!(fleet.of(&tool("off"), &target), None);
        assert_eq!(
            fleet.of(&tool("fleet"), &target).as_deref(),
            Some("127.2.0.0/16")
        );
        let no_catalog = TargetGroups::new(&cfg, None);
        assert_eq!(
            no_catalog.of(&tool("any"), &target).as_deref(),
            Some("127.2.0.0/16")
        );
    }
}
