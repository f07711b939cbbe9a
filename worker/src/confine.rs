//! Egress confinement (DESIGN §4, docs/sandbox.md): a second layer under validation. Each `exec`
//! run gets a uid of its own from `sandbox_uid_range`, and before the tool starts one nftables
//! transaction installs a chain that lets packets of that uid reach only the job's resolved
//! target address and refuses (and counts) everything else, DNS included. The chain goes when
//! the run ends; its counters become the job's `result.confinement`.
//!
//! One table, `inet scanq`, is owned by scanq: an `output` hook chain whose one rule looks the
//! socket's uid up in the verdict map `runs` (`uid : jump run_<uid>`). A uid is claimed by
//! *creating* its chain, which fails when another run (of any worker on the host) holds it; the
//! chain's first rule names its owner (`scanq pid=<pid>`), so chains left by a worker that died
//! are removed when a worker starts.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use scanq::config::{Config, EgressConfinement};
use scanq::domain::Confinement;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// The table scanq owns.
pub const TABLE: &str = "scanq";
const MAP: &str = "runs";
const HOOK_CHAIN: &str = "output";
const OWNER_TAG: &str = "scanq pid=";

/// How this worker's tool runs are confined (heartbeat, `/v1/workers`, `/health`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Every `exec` run is confined by nftables.
    Nftables,
    /// `auto` without the privilege: tools run unconfined.
    Unconfined,
    /// `off`.
    Off,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nftables => "nftables",
            Self::Unconfined => "unconfined",
            Self::Off => "off",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    #[error("every sandbox uid ({first}-{last}) is in use by a confined run")]
    PoolExhausted { first: u32, last: u32 },
    #[error("nft failed: {0}")]
    Nft(String),
}

/// The confinement of one worker: where `nft` is and which uids it hands out.
#[derive(Debug)]
pub struct Egress {
    nft: PathBuf,
    first: u32,
    last: u32,
    next: AtomicU32,
}

/// Decides the worker's confinement at start-up: `off` → none; otherwise checks the privilege,
/// creates the table and clears stale runs. `required` without it is an error naming what is
/// missing; `auto` warns and runs unconfined.
pub async fn setup(cfg: &Config) -> anyhow::Result<(Status, Option<Arc<Egress>>)> {
    if cfg.egress_confinement == EgressConfinement::Off {
        return Ok((Status::Off, None));
    }
    let (first, last) = cfg.sandbox_uids()?;
    let ready = async {
        privileged()?;
        let nft = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or("the `nft` binary is not installed (apt-get install nftables)")?;
        let egress = Egress {
            nft,
            first,
            last,
            next: AtomicU32::new(first + fastrand::u32(..=(last - first))),
        };
        egress.ensure_table().await.map_err(|e| e.to_string())?;
        egress.clear_stale().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(egress)
    };
    match (ready.await, cfg.egress_confinement) {
        (Ok(egress), _) => {
            tracing::info!(uids = %cfg.sandbox_uid_range, "Egress confinement on (nftables)");
            Ok((Status::Nftables, Some(Arc::new(egress))))
        }
        (Err(why), EgressConfinement::Required) => anyhow::bail!(
            "SCANQ_EGRESS_CONFINEMENT=required, but tools cannot be confined: {why}. Run the \
             worker as root (or with CAP_NET_ADMIN, CAP_SETUID, CAP_SETGID and CAP_CHOWN), or set \
             SCANQ_EGRESS_CONFINEMENT=auto to run unconfined"
        ),
        (Err(why), _) => {
            tracing::warn!(reason = %why, "Egress confinement unavailable; tools run unconfined");
            Ok((Status::Unconfined, None))
        }
    }
}

/// Root, or the capabilities confinement uses (nftables, switching uid, handing over the
/// working directory).
fn privileged() -> Result<(), String> {
    const NEEDED: [(u32, &str); 4] = [
        (12, "CAP_NET_ADMIN"),
        (7, "CAP_SETUID"),
        (6, "CAP_SETGID"),
        (0, "CAP_CHOWN"),
    ];
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let missing: Vec<&str> = NEEDED
        .iter()
        .filter(|(bit, _)| eff & (1 << bit) == 0)
        .map(|(_, name)| *name)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the worker is not root and lacks {}",
            missing.join(", ")
        ))
    }
}

impl Egress {
    /// Creates the table, map and hook chain if missing and (re)writes the hook's one rule, in
    /// one transaction; runs of other workers are untouched.
    async fn ensure_table(&self) -> Result<(), ConfineError> {
        self.apply(json!([
            {"add": {"table": {"family": "inet", "name": TABLE}}},
            {"add": {"map": {"family": "inet", "table": TABLE, "name": MAP,
                              "type": "uid", "map": "verdict"}}},
            {"add": {"chain": {"family": "inet", "table": TABLE, "name": HOOK_CHAIN,
                                "type": "filter", "hook": "output", "prio": 0,
                                "policy": "accept"}}},
            {"flush": {"chain": {"family": "inet", "table": TABLE, "name": HOOK_CHAIN}}},
            {"add": {"rule": {"family": "inet", "table": TABLE, "chain": HOOK_CHAIN,
                               "expr": [{"vmap": {"key": {"meta": {"key": "skuid"}},
                                                  "data": format!("@{MAP}")}}]}}},
        ]))
        .await
    }

    /// Removes runs whose owning worker process is gone (crashed or SIGKILLed).
    async fn clear_stale(&self) -> Result<(), ConfineError> {
        let listing = self.list(&["list", "table", "inet", TABLE]).await?;
        let mut owners: Vec<(u32, Option<u32>)> = Vec::new();
        for item in listing {
            if let Some(chain) = item.get("chain")
                && let Some(uid) = run_uid(chain["name"].as_str().unwrap_or(""))
                && !owners.iter().any(|(u, _)| *u == uid)
            {
                owners.push((uid, None));
            }
            if let Some(rule) = item.get("rule")
                && let Some(uid) = run_uid(rule["chain"].as_str().unwrap_or(""))
                && let Some(pid) = rule["comment"]
                    .as_str()
                    .and_then(|c| c.strip_prefix(OWNER_TAG))
                    .and_then(|p| p.parse().ok())
            {
                owners.retain(|(u, _)| *u != uid);
                owners.push((uid, Some(pid)));
            }
        }
        for (uid, owner) in owners {
            let alive = owner.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
            if !alive {
                tracing::warn!(uid, owner = ?owner, "Removing a stale confinement left by a dead worker");
                kill_uid(uid);
                // Another worker starting at the same time may have removed it first.
                if let Err(e) = self.remove(uid).await {
                    tracing::warn!(uid, error = %e, "Stale confinement not removed");
                }
            }
        }
        Ok(())
    }

    /// Claims a uid and installs its rules: packets of that uid reach `address` (an IPv4
    /// address or CIDR) and nothing else.
    pub async fn confine(self: &Arc<Self>, address: &str) -> Result<Lease, ConfineError> {
        let size = self.last - self.first + 1;
        for _ in 0..size {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let uid = self.first + n.wrapping_sub(self.first) % size;
            match self.apply(run_rules(uid, address)).await {
                Ok(()) => {
                    // A process left over under this uid would be unconfined once we remove
                    // the chain; make sure none exists before the tool starts.
                    kill_uid(uid);
                    return Ok(Lease {
                        egress: self.clone(),
                        uid,
                        allowed: address.to_owned(),
                        released: false,
                    });
                }
                Err(ConfineError::Nft(e)) if e.contains("File exists") => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ConfineError::PoolExhausted {
            first: self.first,
            last: self.last,
        })
    }

    /// Packets refused so far in `uid`'s chain (the sum of its counters).
    async fn refused(&self, uid: u32) -> Result<u64, ConfineError> {
        let chain = run_chain(uid);
        let listing = self.list(&["list", "chain", "inet", TABLE, &chain]).await?;
        Ok(listing
            .iter()
            .filter_map(|i| i.get("rule"))
            .flat_map(|r| r["expr"].as_array().cloned().unwrap_or_default())
            .filter_map(|e| e["counter"]["packets"].as_u64())
            .sum())
    }

    /// Removes `uid`'s run in one transaction (map entry, rules, chain).
    async fn remove(&self, uid: u32) -> Result<(), ConfineError> {
        let chain = json!({"family": "inet", "table": TABLE, "name": run_chain(uid)});
        let with_entry = json!([
            {"delete": {"element": {"family": "inet", "table": TABLE, "name": MAP, "elem": [uid]}}},
            {"flush": {"chain": chain}},
            {"delete": {"chain": chain}},
        ]);
        if self.apply(with_entry).await.is_ok() {
            return Ok(());
        }
        // A chain whose map entry is already gone.
        self.apply(json!([{"flush": {"chain": chain}}, {"delete": {"chain": chain}}]))
            .await
    }

    async fn apply(&self, commands: Value) -> Result<(), ConfineError> {
        let input = json!({"nftables": commands}).to_string();
        self.nft(&["-j", "-f", "-"], Some(input)).await.map(drop)
    }

    async fn list(&self, what: &[&str]) -> Result<Vec<Value>, ConfineError> {
        let mut args = vec!["-j"];
        args.extend_from_slice(what);
        let out = self.nft(&args, None).await?;
        let v: Value =
            serde_json::from_slice(&out).map_err(|e| ConfineError::Nft(e.to_string()))?;
        Ok(v["nftables"].as_array().cloned().unwrap_or_default())
    }

    async fn nft(&self, args: &[&str], stdin: Option<String>) -> Result<Vec<u8>, ConfineError> {
        let err = |e: std::io::Error| ConfineError::Nft(e.to_string());
        let mut child = tokio::process::Command::new(&self.nft)
            .args(args)
            .env_clear()
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(err)?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes()).await.map_err(err)?;
        }
        let out = child.wait_with_output().await.map_err(err)?;
        if !out.status.success() {
            let msg = String::from_utf8_lossy(&out.stderr);
            return Err(ConfineError::Nft(msg.trim().to_owned()));
        }
        Ok(out.stdout)
    }
}

/// One confined run's uid and rules; [`Lease::release`] removes them and reports what was
/// refused. Dropped without release (an abandoned attempt), it removes them in the background.
#[derive(Debug)]
pub struct Lease {
    egress: Arc<Egress>,
    uid: u32,
    allowed: String,
    released: bool,
}

impl Lease {
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// Kills what is left under the uid, reads the counters, removes the rules.
    pub async fn release(mut self) -> Confinement {
        self.released = true;
        kill_uid(self.uid);
        let refused = match self.egress.refused(self.uid).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, uid = self.uid, "Could not read the confinement counters");
                0
            }
        };
        if let Err(e) = self.egress.remove(self.uid).await {
            tracing::error!(error = %e, uid = self.uid, "Could not remove a run's confinement");
        }
        Confinement {
            mode: Status::Nftables.as_str().to_owned(),
            uid: self.uid,
            allowed: vec![self.allowed.clone()],
            refused_attempts: refused,
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.released {
            let (egress, uid) = (self.egress.clone(), self.uid);
            kill_uid(uid);
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = egress.remove(uid).await;
                });
            }
        }
    }
}

fn run_chain(uid: u32) -> String {
    format!("run_{uid}")
}

fn run_uid(chain: &str) -> Option<u32> {
    chain.strip_prefix("run_")?.parse().ok()
}

/// The transaction that claims `uid` (`create` fails if its chain exists) and confines it.
fn run_rules(uid: u32, address: &str) -> Value {
    let chain = run_chain(uid);
    let rule = |expr: Value, comment: Option<String>| {
        let mut r = json!({"family": "inet", "table": TABLE, "chain": chain, "expr": expr});
        if let Some(c) = comment {
            r["comment"] = json!(c);
        }
        json!({"add": {"rule": r}})
    };
    let daddr = match address.split_once('/') {
        Some((addr, len)) => {
            json!({"prefix": {"addr": addr, "len": len.parse::<u32>().unwrap_or(32)}})
        }
        None => json!(address),
    };
    json!([
        {"create": {"chain": {"family": "inet", "table": TABLE, "name": chain}}},
        rule(
            json!([{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                              "right": daddr}}, {"accept": null}]),
            Some(format!("{OWNER_TAG}{}", std::process::id())),
        ),
        // TCP gets a reset, so a refused connect fails at once instead of timing out.
        rule(
            json!([{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}},
                   {"counter": {"packets": 0, "bytes": 0}}, {"reject": {"type": "tcp reset"}}]),
            None,
        ),
        rule(
            json!([{"counter": {"packets": 0, "bytes": 0}},
                   {"reject": {"type": "icmpx", "expr": "port-unreachable"}}]),
            None,
        ),
        {"add": {"element": {"family": "inet", "table": TABLE, "name": MAP,
                             "elem": [[uid, {"jump": {"target": chain}}]]}}},
    ])
}

/// SIGKILLs every process whose real or effective uid is `uid` (a tool's escapees).
fn kill_uid(uid: u32) {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let owned = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .is_some_and(|ids| {
                ids.split_whitespace()
                    .take(2)
                    .any(|id| id == uid.to_string())
            });
        if owned {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_chains_name_their_uid() {
        assert_eq!(run_uid(&run_chain(61003)), Some(61003));
        assert_eq!(run_uid("output"), None);
    }

    #[test]
    fn a_cidr_becomes_a_prefix_match_and_an_address_a_plain_one() {
        let cidr = run_rules(61000, "127.0.0.0/30").to_string();
        assert!(
            cidr.contains(r#"{"prefix":{"addr":"127.0.0.0","len":30}}"#),
            "{cidr}"
        );
        let one = run_rules(61000, "127.0.0.1").to_string();
        assert!(one.contains(r#""right":"127.0.0.1""#), "{one}");
        assert!(
            one.contains(r#""create""#) && one.contains("scanq pid="),
            "{one}"
        );
    }
}
