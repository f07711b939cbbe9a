//! For programs that start workers on a host for a while — the test harnesses and `scanq-bench`.
//! A confined worker creates scanq's nftables tables (`inet scanq`, and `netdev scanq` with
//! raw-socket confinement) and keeps them when it exits: the workers of a host share them, and
//! none can tell whether another is about to use them, so no worker deletes them. Such a program
//! calls [`remove_at_exit`] before it starts any: the tables that were absent then are deleted
//! when the program exits (after its last test or phase, with every worker it started gone);
//! tables that were already there (a stack running on this host) are left alone.

use std::process::{Command, Stdio};
use std::sync::Once;

use super::nft::{Nft, TABLE};

const FAMILIES: [&str; 2] = ["inet", "netdev"];

fn nft(nft: &Nft, args: &[&str]) -> bool {
    Command::new(nft.bin())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

extern "C" fn remove_tables() {
    let Ok(bin) = Nft::find() else { return };
    for family in FAMILIES {
        nft(&bin, &["delete", "table", family, TABLE]);
    }
}

/// Arranges, once per process, for scanq's nftables tables to be deleted when the process exits,
/// unless one of them exists now. Does nothing without `nft` or without the right to list
/// tables (not root), where no worker can create them either.
#[allow(unsafe_code)]
pub fn remove_at_exit() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let Ok(bin) = Nft::find() else { return };
        if !nft(&bin, &["list", "tables"]) {
            return;
        }
        if FAMILIES
            .iter()
            .any(|f| nft(&bin, &["list", "table", f, TABLE]))
        {
            return;
        }
        // SAFETY: `remove_tables` is a plain `extern "C"` function that only runs a subprocess;
        // `atexit` is the one hook that runs after a test harness's last test (statics are never
        // dropped).
        unsafe {
            libc::atexit(remove_tables);
        }
    });
}
