//! One confined run: its uid, its rules and, for a raw run, its network namespace, from the
//! claim (`Egress::confine`) to the release that reports what was refused.

use std::sync::Arc;

use scanq::domain::Confinement;

use super::netns::RunNet;
use super::{Egress, Status, kill_uid};

/// One confined run's uid and rules (and, for raw runs, its network namespace);
/// [`Lease::release`] removes them and reports what was refused. Dropped without release (an
/// abandoned attempt), it removes them in the background.
#[derive(Debug)]
pub struct Lease {
    pub(super) egress: Arc<Egress>,
    pub(super) uid: u32,
    /// The addresses and CIDRs the run may reach.
    pub(super) allowed: Vec<String>,
    pub(super) released: bool,
    pub(super) net: Option<RunNet>,
}

impl Lease {
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The run's network namespace (an fd for the tool's pre-exec hook), for raw runs.
    pub fn net_ns(&self) -> Option<std::os::fd::RawFd> {
        self.net.as_ref().map(RunNet::fd)
    }

    /// Kills what is left under the uid, reads the counters, removes the rules; the run's
    /// network namespace goes with its last fd.
    pub async fn release(mut self) -> Confinement {
        self.released = true;
        let raw = self.net.is_some();
        self.egress.sweep(self.uid);
        let refused = match self.egress.refused(self.uid, raw).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, uid = self.uid, "Could not read the confinement counters");
                0
            }
        };
        self.egress.defer_remove(self.uid, raw);
        self.net = None;
        Confinement {
            mode: if raw {
                "netns"
            } else {
                Status::Nftables.as_str()
            }
            .to_owned(),
            uid: self.uid,
            allowed: self.allowed.clone(),
            refused_attempts: refused,
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.released {
            kill_uid(self.uid);
            self.egress.defer_remove(self.uid, self.net.is_some());
        }
    }
}
