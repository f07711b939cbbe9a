//! What a test process leaves on the host: the product's nftables tables.
//!
//! A confined worker (worker/src/confine/nft.rs) creates `inet scanq` (and `netdev scanq` with
//! raw-socket confinement) and keeps them when it exits: the workers of a host share them, and
//! one cannot tell whether another is about to use them. Tests start such workers (any worker
//! run as root confines by default), so the first Redis server a test process starts checks
//! whether the tables exist; if they did not, they are deleted when the process exits — every
//! test of the binary is done then (cargo runs test binaries one after another), so none is
//! using them.

use std::process::{Command, Stdio};
use std::sync::Once;

const FAMILIES: [&str; 2] = ["inet", "netdev"];
const TABLE: &str = "scanq";

fn nft() -> Option<&'static str> {
    ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
}

fn exists(nft: &str, family: &str) -> bool {
    Command::new(nft)
        .args(["list", "table", family, TABLE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

extern "C" fn remove_tables() {
    let Some(nft) = nft() else { return };
    for family in FAMILIES {
        let _ = Command::new(nft)
            .args(["delete", "table", family, TABLE])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Arranges (once per process) for the tables this process's workers create to be removed at
/// its exit; tables that were there before (a stack running on this host) are left alone.
/// (`atexit` is the one hook that runs after the test harness's last test: statics are never
/// dropped.)
#[allow(unsafe_code)]
pub(crate) fn remove_confinement_tables_at_exit() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Only root may create or list them.
        if !nix::unistd::Uid::effective().is_root() {
            return;
        }
        let Some(nft) = nft() else { return };
        if FAMILIES.iter().any(|f| exists(nft, f)) {
            return;
        }
        // SAFETY: `remove_tables` is a plain function that only runs a subprocess; registering
        // it has no other effect.
        unsafe {
            libc::atexit(remove_tables);
        }
    });
}
