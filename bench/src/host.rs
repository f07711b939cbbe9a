//! What a bench run leaves on the host: the product's nftables tables. Run as root, the workers
//! it starts confine by default and create `inet scanq` (and `netdev scanq`), which a worker keeps
//! when it exits (the workers of a host share them: worker/src/confine/nft.rs). The run notes
//! which of them were absent when it started and deletes those when it ends, as the tests do
//! (tests/common/leftovers.rs); tables that were there before (a stack running here) stay.

use std::process::{Command, Stdio};

const FAMILIES: [&str; 2] = ["inet", "netdev"];
const TABLE: &str = "scanq";

/// The tables this run may create, to be removed at its end.
pub struct MadeTables {
    nft: Option<&'static str>,
    absent: Vec<&'static str>,
}

impl MadeTables {
    pub fn note() -> Self {
        let nft = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_file())
            // Listing them needs root, as creating them does.
            .filter(|nft| run(nft, &["list", "tables"]));
        let absent = match nft {
            Some(nft) => FAMILIES
                .into_iter()
                .filter(|f| !run(nft, &["list", "table", f, TABLE]))
                .collect(),
            None => Vec::new(),
        };
        Self { nft, absent }
    }

    pub fn remove(&self) {
        if let Some(nft) = self.nft {
            for family in &self.absent {
                run(nft, &["delete", "table", family, TABLE]);
            }
        }
    }
}

fn run(nft: &str, args: &[&str]) -> bool {
    Command::new(nft)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
