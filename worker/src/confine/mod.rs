//! Egress confinement (DESIGN §4, docs/sandbox.md): a second layer under validation. Each `exec`
//! run gets a uid of its own from `sandbox_uid_range`, and before the tool starts one nftables
//! transaction installs a chain that lets packets of that uid reach only the job's resolved
//! target addresses (one, or a chunk's list as one set) and refuses (and counts) everything else, DNS included. The chain goes when
//! the run ends; its counters become the job's `result.confinement`.
//!
//! One table, `inet scanq`, is owned by scanq: an `output` hook chain whose one rule looks the
//! socket's uid up in the verdict map `runs` (`uid : jump run_<uid>`). A uid is claimed by
//! *creating* its chain, which fails when another run (of any worker on the host) holds it; the
//! chain's first rule names its owner (`scanq pid=<pid>`), so chains left by a worker that died
//! are removed when a worker starts.

pub mod host_tables;
mod lease;
mod leftovers;
mod netns;
mod nft;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use scanq::config::{Config, EgressConfinement};
use serde_json::{Value, json};

use crate::sandbox::Owner;
use leftovers::{kill_uid, stale};
use netns::RunNet;
use nft::{Nft, TABLE, run_uid};

pub use lease::Lease;
pub use netns::MAX_RUNS;

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
    #[error("the run's network namespace could not be set up: {0}")]
    Net(String),
    #[error("raw-socket scans cannot be confined on this worker: {0}")]
    RawUnavailable(String),
}

/// The confinement of one worker: `nft`, the uids it hands out, and whether raw-socket runs
/// can get a network namespace of their own (`raw`: the `ip` binary, or why not).
#[derive(Debug)]
pub struct Egress {
    nft: Nft,
    first: u32,
    last: u32,
    next: AtomicU32,
    owner: String,
    raw: Result<PathBuf, String>,
    /// Kill whatever runs under a run's uid before and after it (without a cgroup per run, the
    /// only way to find a tool's escapees).
    sweep: AtomicBool,
    /// Finished runs whose rules are still to be removed `(uid, raw)`: removed in the next
    /// claim's transaction, or by a flush shortly after (every nftables commit waits for the
    /// kernel, so one commit for several changes is the cheap way).
    pending: std::sync::Mutex<Vec<(u32, bool)>>,
}

/// How long finished runs' rules may wait for the next claim before they are removed alone.
const FLUSH_AFTER: std::time::Duration = std::time::Duration::from_millis(100);

/// Decides the worker's confinement at start-up: `off` → none; otherwise checks the privilege,
/// creates the table and clears stale runs. `required` without it is an error naming what is
/// missing; `auto` warns and runs unconfined. Raw-socket confinement is checked too; without
/// it the worker runs only plain scans (and says why).
pub async fn setup(cfg: &Config) -> anyhow::Result<(Status, Option<Arc<Egress>>)> {
    if cfg.egress_confinement == EgressConfinement::Off {
        return Ok((Status::Off, None));
    }
    let (first, last) = cfg.sandbox_uids()?;
    let ready = async {
        privileged()?;
        let egress = Egress {
            nft: Nft::find()?,
            first,
            last,
            next: AtomicU32::new(first + fastrand::u32(..=(last - first))),
            owner: Owner::me().tag(),
            raw: Err(String::new()),
            sweep: AtomicBool::new(true),
            pending: std::sync::Mutex::new(Vec::new()),
        };
        egress
            .nft
            .apply(nft::ensure_table())
            .await
            .map_err(|e| e.to_string())?;
        egress.clear_stale().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(egress)
    };
    match (ready.await, cfg.egress_confinement) {
        (Ok(mut egress), _) => {
            egress.raw = egress.raw_setup().await;
            match &egress.raw {
                Ok(_) => {
                    tracing::info!(uids = %cfg.sandbox_uid_range, "Egress confinement on (nftables; raw-socket scans in a network namespace per run)")
                }
                Err(why) => {
                    tracing::warn!(uids = %cfg.sandbox_uid_range, reason = %why, "Egress confinement on (nftables); raw-socket scans cannot be confined here and are not claimed")
                }
            }
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
    let missing = missing_caps(&[
        (12, "CAP_NET_ADMIN"),
        (7, "CAP_SETUID"),
        (6, "CAP_SETGID"),
        (0, "CAP_CHOWN"),
    ])?;
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the worker is not root and lacks {}",
            missing.join(", ")
        ))
    }
}

/// Which of `needed` (bit, name) are not in this process's effective set.
fn missing_caps(needed: &[(u32, &'static str)]) -> Result<Vec<&'static str>, String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    Ok(needed
        .iter()
        .filter(|(bit, _)| eff & (1 << bit) == 0)
        .map(|(_, name)| *name)
        .collect())
}

impl Egress {
    /// Whether raw-socket runs can be confined here: the capabilities a run namespace needs,
    /// the `ip` binary, a namespace made for real, the `netdev` table and NAT chain, a uid pool
    /// the namespace addresses can cover.
    async fn raw_setup(&self) -> Result<PathBuf, String> {
        let missing = missing_caps(&[
            (21, "CAP_SYS_ADMIN"),
            (13, "CAP_NET_RAW"),
            (8, "CAP_SETPCAP"),
        ])?;
        if !missing.is_empty() {
            return Err(format!("the worker lacks {}", missing.join(", ")));
        }
        let size = self.last - self.first + 1;
        if size > MAX_RUNS {
            return Err(format!(
                "SCANQ_SANDBOX_UID_RANGE has {size} uids; raw-socket confinement addresses at most {MAX_RUNS}"
            ));
        }
        let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or("the `ip` binary is not installed (apt-get install iproute2)")?;
        tokio::task::spawn_blocking(netns::probe)
            .await
            .map_err(|e| e.to_string())??;
        self.nft
            .apply(nft::ensure_raw_tables())
            .await
            .map_err(|e| e.to_string())?;
        if let Ok(v) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            && v.trim() == "0"
        {
            tracing::warn!(
                "net.ipv4.ip_forward is 0: raw-socket scans reach this host's own addresses only"
            );
        }
        Ok(ip)
    }

    /// Every run gets a cgroup of its own, killed and emptied at its end: the sweep by uid
    /// (a scan of every process, before and after each run) is then not needed.
    pub fn runs_in_cgroups(&self, yes: bool) {
        self.sweep.store(!yes, Ordering::Relaxed);
    }

    fn sweep(&self, uid: u32) {
        if self.sweep.load(Ordering::Relaxed) {
            kill_uid(uid);
        }
    }

    /// Raw-socket runs are confined in a network namespace of their own on this worker.
    pub fn raw_ready(&self) -> bool {
        self.raw.is_ok()
    }

    /// Removes runs whose owning worker is provably gone (crashed or SIGKILLed): same pid
    /// namespace, and no process with its pid and start time. Runs owned from another pid
    /// namespace are never touched.
    async fn clear_stale(&self) -> Result<(), ConfineError> {
        let listing = self.nft.list(&["list", "table", "inet", TABLE]).await?;
        let mut owners: Vec<(u32, Option<String>)> = Vec::new();
        for item in listing {
            if let Some(chain) = item.get("chain")
                && let Some(uid) = run_uid(chain["name"].as_str().unwrap_or(""))
                && !owners.iter().any(|(u, _)| *u == uid)
            {
                owners.push((uid, None));
            }
            if let Some(rule) = item.get("rule")
                && let Some(uid) = run_uid(rule["chain"].as_str().unwrap_or(""))
                && let Some(comment) = rule["comment"].as_str()
            {
                owners.retain(|(u, _)| *u != uid);
                owners.push((uid, Some(comment.to_owned())));
            }
        }
        for (uid, owner) in owners {
            if stale(owner.as_deref()) {
                tracing::warn!(uid, owner = ?owner, "Removing a stale confinement left by a dead worker");
                kill_uid(uid);
                // Another worker starting at the same time may have removed it first.
                if let Err(e) = self.remove(uid, true).await {
                    tracing::warn!(uid, error = %e, "Stale confinement not removed");
                }
            }
        }
        Ok(())
    }

    /// Claims a uid and installs its rules: packets of that uid reach the `allowed` IPv4
    /// addresses and CIDRs (a job's resolved target list, one entry or more) and nothing else.
    /// With `raw`, the run also gets a network namespace of its own whose only way out is
    /// filtered the same way, at the link layer.
    pub async fn confine(
        self: &Arc<Self>,
        allowed: &[String],
        raw: bool,
    ) -> Result<Lease, ConfineError> {
        let ip = match (&self.raw, raw) {
            (Ok(ip), true) => Some(ip.clone()),
            (Err(why), true) => return Err(ConfineError::RawUnavailable(why.clone())),
            (_, false) => None,
        };
        let size = self.last - self.first + 1;
        for _ in 0..size {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let uid = self.first + n.wrapping_sub(self.first) % size;
            match self.claim(uid, allowed).await? {
                false => continue,
                true => {
                    // A process left over under this uid would be unconfined once we remove
                    // the chain; make sure none exists before the tool starts.
                    self.sweep(uid);
                    let mut lease = Lease {
                        egress: self.clone(),
                        uid,
                        allowed: allowed.to_vec(),
                        released: false,
                        net: None,
                    };
                    if let Some(ip) = ip {
                        let index = uid - self.first;
                        let (dev, from) = (RunNet::host_if(uid), RunNet::address(index));
                        let rules = json!({"nftables": nft::raw_rules(uid, &dev, from, allowed)});
                        let tools = netns::Tools {
                            ip,
                            nft: self.nft.bin().to_owned(),
                        };
                        let mut made =
                            RunNet::create(tools.clone(), uid, index, rules.to_string()).await;
                        if let Err(ConfineError::Net(e)) = &made
                            && e.contains("File exists")
                        {
                            // The uid is ours: its raw chain or veth left by an earlier run is
                            // garbage.
                            tracing::warn!(uid, error = %e, "Replacing a leftover raw confinement");
                            let gone = nft::remove_run(uid, false, false, true);
                            let _ = self.nft.apply(gone).await;
                            made = RunNet::create(tools, uid, index, rules.to_string()).await;
                        }
                        lease.net = Some(made?);
                    }
                    return Ok(lease);
                }
            }
        }
        Err(ConfineError::PoolExhausted {
            first: self.first,
            last: self.last,
        })
    }

    /// One transaction: removes the finished runs still pending and creates `uid`'s chain
    /// (`false`: another run holds the uid). A pending removal that fails does not stop the
    /// claim: they are then removed one by one and the claim is made alone.
    async fn claim(&self, uid: u32, allowed: &[String]) -> Result<bool, ConfineError> {
        if self.pending().iter().any(|(u, _)| *u == uid) {
            return Ok(false);
        }
        let removals = std::mem::take(&mut *self.pending());
        let mut tx = removal_commands(&removals);
        tx.extend(as_commands(nft::run_rules(uid, allowed, &self.owner)));
        match self.nft.apply(Value::Array(tx)).await {
            Ok(()) => Ok(true),
            Err(ConfineError::Nft(e)) if e.contains("File exists") => {
                self.pending().extend(removals);
                Ok(false)
            }
            Err(e) if removals.is_empty() => Err(e),
            Err(_) => {
                for (u, raw) in removals {
                    if let Err(e) = self.remove(u, raw).await {
                        tracing::error!(uid = u, error = %e, "Could not remove a run's confinement");
                    }
                }
                match self
                    .nft
                    .apply(nft::run_rules(uid, allowed, &self.owner))
                    .await
                {
                    Ok(()) => Ok(true),
                    Err(ConfineError::Nft(e)) if e.contains("File exists") => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Vec<(u32, bool)>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a finished run's removal: with the next claim, or alone after [`FLUSH_AFTER`].
    fn defer_remove(self: &Arc<Self>, uid: u32, raw: bool) {
        self.pending().push((uid, raw));
        let egress = self.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                tokio::time::sleep(FLUSH_AFTER).await;
                egress.flush().await;
            });
        }
    }

    /// Removes every pending run now (one transaction; one by one if that fails).
    pub async fn flush(&self) {
        let removals = std::mem::take(&mut *self.pending());
        if removals.is_empty()
            || self
                .nft
                .apply(Value::Array(removal_commands(&removals)))
                .await
                .is_ok()
        {
            return;
        }
        for (uid, raw) in removals {
            if let Err(e) = self.remove(uid, raw).await {
                tracing::error!(uid, error = %e, "Could not remove a run's confinement");
            }
        }
    }

    /// Packets refused so far in `uid`'s run: its `inet` chain's counters, or for a raw run its
    /// `netdev` chain's (the tool's sockets all live in the run's namespace, which the `inet`
    /// chain of the worker's namespace never sees).
    async fn refused(&self, uid: u32, raw: bool) -> Result<u64, ConfineError> {
        let chain = nft::run_chain(uid);
        let family = if raw { "netdev" } else { "inet" };
        let listing = self
            .nft
            .list(&["list", "chain", family, TABLE, &chain])
            .await?;
        Ok(nft::counted(&listing))
    }

    /// Removes `uid`'s run in one transaction (map entry, rules, chains). Whatever part is
    /// already gone (a map entry, a raw chain that was never made) is skipped.
    async fn remove(&self, uid: u32, raw: bool) -> Result<(), ConfineError> {
        let mut last = Ok(());
        for (entry, inet, netdev) in [
            (true, true, raw),
            (false, true, raw),
            (true, true, false),
            (false, true, false),
            (false, false, true),
        ] {
            last = self
                .nft
                .apply(nft::remove_run(uid, entry, inet, netdev))
                .await;
            if last.is_ok() {
                break;
            }
        }
        last
    }
}

/// The commands of a [`Value::Array`] transaction.
fn as_commands(v: Value) -> Vec<Value> {
    match v {
        Value::Array(cmds) => cmds,
        other => vec![other],
    }
}

/// One transaction's worth of removals of whole runs (map entry, chains).
fn removal_commands(runs: &[(u32, bool)]) -> Vec<Value> {
    runs.iter()
        .flat_map(|(uid, raw)| as_commands(nft::remove_run(*uid, true, true, *raw)))
        .collect()
}
