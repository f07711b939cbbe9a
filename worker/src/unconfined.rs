//! The tool never runs as the worker (issue 20, docs/sandbox.md "Deployment"). A tool that runs
//! under the worker's own uid can read `/proc/<worker>/environ` (the Redis password), the TLS
//! key and the worker's memory, and signal it. So a worker whose `exec` tools would run as its
//! own uid — egress confinement not active (`auto` without the privilege, or `off`) and no
//! effective `SCANQ_TOOL_USER` switch — refuses to start unless the operator says
//! `SCANQ_ALLOW_UNCONFINED=true`, which is logged as a warning and reported as the worker's
//! `unconfined` capability. Catalogs with no `exec` tool (only in-process `noop`/`sleep`) are
//! unaffected. The worker process is also made non-dumpable ([`harden_process`]) so that no
//! other process of its uid can read its environment or ptrace it.

use nix::unistd::{Uid, User};
use scanq::catalog::{Catalog, Executor};
use scanq::config::Config;

use crate::confine::Status;

/// How the processes of an `exec` tool are kept apart from the worker's uid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Separation {
    /// Egress confinement gives each run a uid of its own.
    Confined,
    /// A root worker switches each tool to `SCANQ_TOOL_USER`.
    ToolUser(String),
    /// None: the tool runs as the worker's own uid, for this reason.
    SameUid(String),
}

/// What the worker's identity allows: the sandbox switches the tool's uid only when the worker's
/// effective uid is root (`sandbox::limits::tool_user` and `pool_user`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub euid: u32,
}

impl Identity {
    pub fn current() -> Self {
        Self {
            euid: Uid::effective().as_raw(),
        }
    }

    fn can_switch(self) -> bool {
        self.euid == 0
    }
}

/// Which separation a worker with this confinement status, configuration and identity gives its
/// `exec` tools. `lookup` finds a user's uid (the system's passwd in [`check`]).
pub fn separation(
    status: Status,
    cfg: &Config,
    who: Identity,
    lookup: impl Fn(&str) -> Option<u32>,
) -> Separation {
    let confined = !matches!(status, Status::Unconfined | Status::Off);
    if confined && who.can_switch() {
        return Separation::Confined;
    }
    let confinement = match status {
        Status::Off => "SCANQ_EGRESS_CONFINEMENT=off",
        Status::Unconfined => "egress confinement is unavailable (SCANQ_EGRESS_CONFINEMENT=auto)",
        _ => "egress confinement cannot switch the run's uid without root",
    };
    let why = match (cfg.tool_user.as_deref(), who.can_switch()) {
        (None, _) => format!("{confinement} and SCANQ_TOOL_USER is not set"),
        (Some(name), false) => format!(
            "{confinement}, and the worker runs as uid {}, not root, so it cannot switch to \
             SCANQ_TOOL_USER={name}",
            who.euid
        ),
        (Some(name), true) => match lookup(name) {
            Some(0) => format!("{confinement} and SCANQ_TOOL_USER={name} is root itself"),
            Some(_) => return Separation::ToolUser(name.to_owned()),
            None => format!("{confinement} and SCANQ_TOOL_USER={name} is no user on this machine"),
        },
    };
    Separation::SameUid(why)
}

/// The start-up rule. `Ok(true)`: `exec` tools run as the worker's own uid because the operator
/// allowed it (warned here; the worker's `unconfined` capability). `Ok(false)`: they do not (or
/// there are none). `Err`: they would, and nobody allowed it — the message names both ways out.
pub fn check(cfg: &Config, catalog: &Catalog, status: Status) -> anyhow::Result<bool> {
    let lookup = |name: &str| User::from_name(name).ok().flatten().map(|u| u.uid.as_raw());
    decide(
        cfg,
        catalog,
        separation(status, cfg, Identity::current(), lookup),
    )
}

/// [`check`] once the separation is known (pure apart from the warning it logs).
pub fn decide(cfg: &Config, catalog: &Catalog, separation: Separation) -> anyhow::Result<bool> {
    let exec: Vec<String> = catalog
        .tools()
        .filter(|(_, spec)| spec.executor == Executor::Exec)
        .map(|(name, _)| name.to_string())
        .collect();
    let Separation::SameUid(why) = separation else {
        return Ok(false);
    };
    if exec.is_empty() {
        return Ok(false);
    }
    if cfg.allow_unconfined {
        tracing::warn!(
            tools = ?exec,
            reason = %why,
            "SCANQ_ALLOW_UNCONFINED=true: exec tools run as the worker's own uid; they can read \
             the files the worker can (its TLS key) and signal it"
        );
        return Ok(true);
    }
    anyhow::bail!(
        "the exec tools {exec:?} would run as the worker's own uid ({why}) \
         and could read its files (its TLS key) and signal it. Either give the worker the privilege to keep them apart \
         (run it as root with nftables and SCANQ_EGRESS_CONFINEMENT=auto or required, so each \
         run gets a uid of its own; or as root with SCANQ_TOOL_USER=<user>), or accept the risk \
         with SCANQ_ALLOW_UNCONFINED=true"
    )
}

/// First thing in `main`, before the configuration (and its secrets) is read: the worker process
/// becomes non-dumpable, so a process of its own uid (an unconfined tool) can neither read
/// `/proc/<worker>/environ` or `mem` nor ptrace it, and it leaves no core dump. The kernel shows
/// it by giving those `/proc` files to root. Tools it starts are dumpable again after `exec`.
pub fn harden_process() -> anyhow::Result<()> {
    nix::sys::prctl::set_dumpable(false)
        .map_err(|e| anyhow::anyhow!("prctl(PR_SET_DUMPABLE, 0) failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: Identity = Identity { euid: 0 };
    const NOBODY: Identity = Identity { euid: 65534 };

    fn users(name: &str) -> Option<u32> {
        match name {
            "root" => Some(0),
            "scanq-tool" => Some(10002),
            _ => None,
        }
    }

    fn cfg(tool_user: Option<&str>, allow: bool) -> Config {
        Config {
            tool_user: tool_user.map(str::to_owned),
            allow_unconfined: allow,
            ..Config::default()
        }
    }

    fn noop_only() -> Catalog {
        Catalog::from_sources("[tools.fast]\nexecutor = \"noop\"\n", None).unwrap()
    }

    #[test]
    fn a_root_worker_that_confines_or_switches_keeps_tools_apart() {
        let sep = |status, c: &Config| separation(status, c, ROOT, users);
        assert_eq!(
            sep(Status::Nftables, &cfg(None, false)),
            Separation::Confined
        );
        for status in [Status::Off, Status::Unconfined] {
            assert_eq!(
                sep(status, &cfg(Some("scanq-tool"), false)),
                Separation::ToolUser("scanq-tool".into())
            );
        }
    }

    #[test]
    fn every_way_to_run_as_the_workers_uid_is_named() {
        let cases: [(Status, Option<&str>, Identity, &str); 6] = [
            (Status::Off, None, ROOT, "SCANQ_TOOL_USER is not set"),
            (Status::Unconfined, None, NOBODY, "unavailable"),
            (Status::Off, Some("scanq-tool"), NOBODY, "not root"),
            (Status::Off, Some("root"), ROOT, "is root itself"),
            (Status::Off, Some("ghost"), ROOT, "no user on this machine"),
            (Status::Nftables, None, NOBODY, "without root"),
        ];
        for (status, user, who, want) in cases {
            match separation(status, &cfg(user, false), who, users) {
                Separation::SameUid(why) => assert!(why.contains(want), "{why}"),
                other => panic!("{status:?} {user:?} {who:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn same_uid_exec_tools_are_refused_unless_allowed() {
        let same = || Separation::SameUid("SCANQ_EGRESS_CONFINEMENT=off".into());
        let err = decide(&cfg(None, false), &Catalog::builtin(), same())
            .unwrap_err()
            .to_string();
        for part in [
            "nmap",
            "SCANQ_ALLOW_UNCONFINED=true",
            "root",
            "SCANQ_TOOL_USER",
        ] {
            assert!(err.contains(part), "{part}: {err}");
        }
        assert!(decide(&cfg(None, true), &Catalog::builtin(), same()).unwrap());
        assert!(!decide(&cfg(None, false), &noop_only(), same()).unwrap());
        assert!(!decide(&cfg(None, false), &Catalog::builtin(), Separation::Confined).unwrap());
        let switched = Separation::ToolUser("scanq-tool".into());
        assert!(!decide(&cfg(None, true), &Catalog::builtin(), switched).unwrap());
    }
}
