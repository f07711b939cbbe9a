//! Finding what a run or a dead worker left: whose a run chain is (its owner comment), and the
//! processes of a run's uid.

use std::path::Path;

use super::nft::{LEGACY_OWNER_TAG, OWNER_TAG};
use crate::sandbox::Owner;

/// Whether a run chain's owner comment says its worker is provably gone.
pub(super) fn stale(owner: Option<&str>) -> bool {
    let Some(comment) = owner else {
        // No owner to judge (claims are atomic, so not scanq's own half-made chain): left alone.
        return false;
    };
    if let Some(tag) = comment.strip_prefix(OWNER_TAG) {
        return Owner::parse(tag).is_none_or(|o| o.is_dead());
    }
    if let Some(pid) = comment.strip_prefix(LEGACY_OWNER_TAG) {
        return !Path::new(&format!("/proc/{pid}")).exists();
    }
    false
}

/// SIGKILLs every process whose real or effective uid is `uid` (a tool's escapees).
pub(super) fn kill_uid(uid: u32) {
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
    use crate::sandbox::Owner;

    #[test]
    fn only_a_provably_gone_owner_is_stale() {
        let me = Owner::me().tag();
        assert!(!stale(Some(&format!("{OWNER_TAG}{me}"))));
        let other_ns = me.replacen(|c: char| c.is_ascii_digit(), "9", 1);
        let _ = other_ns; // another namespace's inode cannot be forged reliably here
        assert!(stale(Some(&format!("{OWNER_TAG}garbage"))));
        assert!(!stale(None));
        assert!(stale(Some(&format!("{LEGACY_OWNER_TAG}{}", u32::MAX - 1))));
        assert!(!stale(Some("someone else's comment")));
    }
}
