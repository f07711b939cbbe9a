//! The tool catalog (DESIGN §4): which tools exist, how each runs, which arguments it takes, its
//! templates, timeouts, output caps and breaker settings. A built-in default (`default.toml`,
//! nmap) is extended or replaced by an operator file (`SCANQ_CATALOG`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::domain::ToolName;
use crate::validate::{ArgContext, ArgPolicy, ToolArgs, ValidationError};

mod syscalls;
pub use syscalls::{SeccompPolicy, SyscallName, x86_64_number};

pub const DEFAULT_CATALOG: &str = include_str!("default.toml");

/// The largest `max_running_per_group` a tool may set (as `SCANQ_TARGET_GROUP_MAX_RUNNING`).
pub const MAX_RUNNING_PER_GROUP: u32 = 1_000_000;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog {origin}: {message}")]
    Invalid { origin: String, message: String },
    #[error("catalog {origin}: {source}")]
    Io {
        origin: String,
        source: std::io::Error,
    },
}

/// How a tool runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Executor {
    /// A real command in the sandbox.
    Exec,
    /// In-process: succeeds at once (queue tests and benchmarks).
    Noop,
    /// In-process: sleeps for `--ms N` (queue tests).
    Sleep,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxLimits {
    pub cpu_sec: Option<u64>,
    pub address_space_mb: Option<u64>,
    pub open_files: Option<u64>,
    pub processes: Option<u64>,
    pub file_size_mb: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSpec {
    #[serde(default)]
    pub description: String,
    pub executor: Executor,
    #[serde(default)]
    pub command: String,
    #[serde(default)]
    pub output_args: Vec<String>,
    /// Added by the worker (before `output_args`) when a run has raw sockets, i.e. `CAP_NET_RAW`
    /// as an ordinary uid in a network namespace of its own (nmap: `--privileged`). A request
    /// can never pass them.
    #[serde(default)]
    pub raw_args: Vec<String>,
    #[serde(default = "default_timeout")]
    pub default_timeout_sec: u64,
    #[serde(default = "max_timeout")]
    pub max_timeout_sec: u64,
    #[serde(default)]
    pub max_hosts: Option<u32>,
    #[serde(default = "stdout_cap")]
    pub stdout_cap: usize,
    #[serde(default = "stderr_cap")]
    pub stderr_cap: usize,
    /// Progress parser name (`nmap`, `percent-lines`), if any.
    #[serde(default)]
    pub progress: Option<String>,
    /// Result parser name (`nmap`), if any.
    #[serde(default)]
    pub parser: Option<String>,
    /// Whether a timeout is worth a retry for this tool.
    #[serde(default)]
    pub retry_on_timeout: bool,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub templates: BTreeMap<String, String>,
    #[serde(default)]
    pub args: ArgPolicy,
    #[serde(default)]
    pub limits: SandboxLimits,
    /// The tool's circuit breaker (DESIGN §6).
    #[serde(default)]
    pub breaker: crate::breaker::BreakerSettings,
    /// Partitions of the tool's queue, each under its own hash tag (docs/scaling.md); unset:
    /// `queue_partitions` of the configuration.
    #[serde(default)]
    pub partitions: Option<u16>,
    /// The sandbox's system-call policy (`[tools.<name>.seccomp]`, docs/sandbox.md "Seccomp").
    #[serde(default)]
    pub seccomp: SeccompPolicy,
    /// Politeness: jobs of this tool running at once per target group (docs/queue.md); unset:
    /// `target_group_max_running` of the configuration; 0 = no cap for this tool.
    #[serde(default)]
    pub max_running_per_group: Option<u32>,
}

fn default_timeout() -> u64 {
    600
}
fn max_timeout() -> u64 {
    3600
}
fn stdout_cap() -> usize {
    1024 * 1024
}
fn stderr_cap() -> usize {
    256 * 1024
}
fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    tools: BTreeMap<String, ToolSpec>,
}

#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Mode {
    #[default]
    Extend,
    Replace,
}

/// The loaded, checked catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    tools: BTreeMap<ToolName, ToolSpec>,
}

impl Catalog {
    /// The built-in catalog alone.
    pub fn builtin() -> Self {
        Self::from_sources(DEFAULT_CATALOG, None).expect("the built-in catalog is valid")
    }

    /// The built-in catalog extended or replaced by an operator file.
    pub fn load(path: Option<&Path>) -> Result<Self, CatalogError> {
        let extra = match path {
            None => None,
            Some(p) => Some((
                p.display().to_string(),
                std::fs::read_to_string(p).map_err(|source| CatalogError::Io {
                    origin: p.display().to_string(),
                    source,
                })?,
            )),
        };
        Self::from_sources(
            DEFAULT_CATALOG,
            extra.as_ref().map(|(o, s)| (o.as_str(), s.as_str())),
        )
    }

    pub fn from_sources(
        builtin: &str,
        operator: Option<(&str, &str)>,
    ) -> Result<Self, CatalogError> {
        let parse = |origin: &str, text: &str| {
            toml::from_str::<CatalogFile>(text).map_err(|e| CatalogError::Invalid {
                origin: origin.to_owned(),
                message: e.to_string(),
            })
        };
        let base = parse("built-in", builtin)?;
        let mut tools = base.tools;
        let mut origin = "built-in".to_owned();
        if let Some((o, text)) = operator {
            let file = parse(o, text)?;
            if file.mode == Mode::Replace {
                tools.clear();
            }
            tools.extend(file.tools);
            origin = o.to_owned();
        }
        let mut checked = BTreeMap::new();
        for (name, spec) in tools {
            let tool = ToolName::parse(&name).map_err(|e| CatalogError::Invalid {
                origin: origin.clone(),
                message: e.to_string(),
            })?;
            spec.check(&name).map_err(|message| CatalogError::Invalid {
                origin: origin.clone(),
                message,
            })?;
            checked.insert(tool, spec);
        }
        Ok(Self { tools: checked })
    }

    pub fn get(&self, tool: &ToolName) -> Option<&ToolSpec> {
        self.tools.get(tool)
    }

    pub fn tools(&self) -> impl Iterator<Item = (&ToolName, &ToolSpec)> {
        self.tools.iter()
    }

    /// The tool's cap of running jobs per target group: its own `max_running_per_group`, else
    /// `fleet` (`SCANQ_TARGET_GROUP_MAX_RUNNING`); 0 = none.
    pub fn max_running_per_group(&self, tool: &ToolName, fleet: u32) -> u32 {
        self.tools
            .get(tool)
            .and_then(|spec| spec.max_running_per_group)
            .unwrap_or(fleet)
    }

    /// Tool → partitions, for the tools that set their own.
    pub fn partitions(&self) -> std::collections::HashMap<ToolName, u16> {
        self.tools
            .iter()
            .filter_map(|(t, spec)| Some((t.clone(), spec.partitions?)))
            .collect()
    }

    pub fn names(&self) -> Vec<String> {
        self.tools.keys().map(|t| t.to_string()).collect()
    }
}

impl ToolSpec {
    fn check(&self, name: &str) -> Result<(), String> {
        if self.executor == Executor::Exec && self.command.is_empty() {
            return Err(format!(
                "tools.{name}.command is required for executor \"exec\""
            ));
        }
        if self.default_timeout_sec == 0 || self.default_timeout_sec > self.max_timeout_sec {
            return Err(format!(
                "tools.{name}.default_timeout_sec must be between 1 and max_timeout_sec ({})",
                self.max_timeout_sec
            ));
        }
        if let Some(p) = &self.progress
            && !crate::nmap::PROGRESS_PARSER_NAMES.contains(&p.as_str())
        {
            return Err(format!(
                "tools.{name}.progress `{p}` is not a progress parser; accepted: {}",
                crate::nmap::PROGRESS_PARSER_NAMES.join(", ")
            ));
        }
        if let Some(p) = self.parser.as_deref().filter(|p| *p != "nmap") {
            return Err(format!(
                "tools.{name}.parser `{p}` is not a result parser; accepted: nmap"
            ));
        }
        if let Some(n) = self.partitions
            && !(1..=crate::domain::MAX_PARTITIONS).contains(&n)
        {
            return Err(format!(
                "tools.{name}.partitions {n} is out of range; accepted: 1..={}",
                crate::domain::MAX_PARTITIONS
            ));
        }
        if let Some(n) = self.max_running_per_group
            && n > MAX_RUNNING_PER_GROUP
        {
            return Err(format!(
                "tools.{name}.max_running_per_group {n} is out of range; accepted: 0..={MAX_RUNNING_PER_GROUP}"
            ));
        }
        self.seccomp
            .check()
            .map_err(|m| format!("tools.{name}.seccomp.{m}"))?;
        self.breaker
            .validate()
            .map_err(|m| format!("tools.{name}.breaker.{m}"))?;
        self.args
            .validate_policy()
            .map_err(|m| format!("tools.{name}.args: {m}"))?;
        let all = ArgContext {
            server_allows_intrusive: true,
            request_intrusive: true,
        };
        for (t, text) in &self.templates {
            self.args
                .parse_args(text, &all)
                .map_err(|e| format!("tools.{name}.templates.{t}: {e}"))?;
        }
        Ok(())
    }

    /// The template's arguments under the request's intrusive gate.
    pub fn template_args(
        &self,
        template: &str,
        ctx: &ArgContext,
    ) -> Result<ToolArgs, ValidationError> {
        let text = self.templates.get(template).ok_or_else(|| {
            ValidationError::new(
                "template",
                format!("`{template}` is not a template of this tool"),
                format!(
                    "accepted: {}",
                    self.templates
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        self.args.parse_args(text, ctx)
    }
}

/// The nmap argument policy of the built-in catalog (`catalog/default.toml`).
#[cfg(test)]
pub(crate) fn nmap_policy() -> ArgPolicy {
    let catalog = Catalog::builtin();
    let nmap = crate::domain::ToolName::parse("nmap").expect("valid name");
    catalog
        .get(&nmap)
        .expect("nmap in the built-in catalog")
        .args
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_catalog_has_nmap_with_its_templates() {
        let cat = Catalog::builtin();
        let nmap = cat.get(&ToolName::parse("nmap").unwrap()).unwrap();
        assert_eq!(nmap.executor, Executor::Exec);
        for t in ["quick", "standard", "discovery"] {
            assert!(nmap.templates.contains_key(t), "{t}");
        }
        assert!(nmap.templates["quick"].contains("-sT"));
    }

    #[test]
    fn an_operator_file_extends_or_replaces_the_builtin_catalog() {
        let extra = r#"
            [tools.fast]
            executor = "noop"
        "#;
        let cat = Catalog::from_sources(DEFAULT_CATALOG, Some(("test", extra))).unwrap();
        assert_eq!(cat.names(), vec!["fast", "nmap"]);
        let replace = format!("mode = \"replace\"\n{extra}");
        let cat = Catalog::from_sources(DEFAULT_CATALOG, Some(("test", &replace))).unwrap();
        assert_eq!(cat.names(), vec!["fast"]);
    }

    #[test]
    fn a_bad_catalog_is_refused_with_the_key() {
        let bad = "[tools.x]\nexecutor = \"exec\"\n";
        let err = Catalog::from_sources(DEFAULT_CATALOG, Some(("ops.toml", bad))).unwrap_err();
        assert!(err.to_string().contains("tools.x.command"), "{err}");
        let bad = "[tools.x]\nexecutor = \"noop\"\nbogus = 1\n";
        assert!(Catalog::from_sources(DEFAULT_CATALOG, Some(("ops.toml", bad))).is_err());
        let bad = "[tools.x]\nexecutor = \"noop\"\nprogress = \"magic\"\n";
        let err = Catalog::from_sources(DEFAULT_CATALOG, Some(("ops.toml", bad))).unwrap_err();
        assert!(err.to_string().contains("tools.x.progress"), "{err}");
    }

    #[test]
    fn a_tools_group_cap_overrides_the_fleets_and_is_range_checked() {
        let extra = "[tools.a]\nexecutor = \"noop\"\nmax_running_per_group = 2\n\
                     [tools.b]\nexecutor = \"noop\"\nmax_running_per_group = 0\n\
                     [tools.c]\nexecutor = \"noop\"\n";
        let cat = Catalog::from_sources(DEFAULT_CATALOG, Some(("ops.toml", extra))).unwrap();
        let cap = |t: &str, fleet| cat.max_running_per_group(&ToolName::parse(t).unwrap(), fleet);
        assert_eq!(
            (cap("a", 5), cap("b", 5), cap("c", 5), cap("c", 0)),
            (2, 0, 5, 0)
        );
        let bad = "[tools.x]\nexecutor = \"noop\"\nmax_running_per_group = 2000000\n";
        let err = Catalog::from_sources(DEFAULT_CATALOG, Some(("ops.toml", bad))).unwrap_err();
        assert!(
            err.to_string().contains("tools.x.max_running_per_group"),
            "{err}"
        );
    }

    #[test]
    fn a_seccomp_allow_list_names_known_system_calls_only() {
        let nmap = Catalog::builtin();
        let nmap = nmap.get(&ToolName::parse("nmap").unwrap()).unwrap();
        let allow = nmap.seccomp.allow.as_ref().expect("nmap has an allow-list");
        assert!(allow.iter().any(|s| s.as_str() == "sendto"));
        let ok =
            "[tools.x]\nexecutor = \"noop\"\n[tools.x.seccomp]\nallow = [\"read\", \"write\"]\n";
        let cat = Catalog::from_sources(DEFAULT_CATALOG, Some(("ops.toml", ok))).unwrap();
        let x = cat.get(&ToolName::parse("x").unwrap()).unwrap();
        assert_eq!(x.seccomp.allow.as_ref().unwrap()[1].x86_64_number(), 1);
        let typo = ok.replace("\"write\"", "\"wirte\"");
        let err = Catalog::from_sources(DEFAULT_CATALOG, Some(("ops.toml", &typo))).unwrap_err();
        let err = err.to_string();
        assert!(err.contains("`wirte` is not a Linux system call"), "{err}");
        assert!(err.contains("ops.toml") && err.contains("allow"), "{err}");
        let empty = "[tools.x]\nexecutor = \"noop\"\n[tools.x.seccomp]\nallow = []\n";
        let err = Catalog::from_sources(DEFAULT_CATALOG, Some(("ops.toml", empty))).unwrap_err();
        assert!(
            err.to_string().contains("tools.x.seccomp.allow is empty"),
            "{err}"
        );
        let unknown = "[tools.x]\nexecutor = \"noop\"\n[tools.x.seccomp]\ndeny = [\"read\"]\n";
        assert!(Catalog::from_sources(DEFAULT_CATALOG, Some(("ops.toml", unknown))).is_err());
    }
}
