//! Which worker owns a piece of confinement state (a run cgroup, nftables rules): its pid
//! namespace, pid and start time. A pid alone is not enough: two workers in different pid
//! namespaces (containers) sharing one network namespace or cgroup tree see different pids, and a
//! pid is reused after its process dies. State is stale only when its owner is provably gone:
//! same pid namespace as the looking worker, and no process with that pid *and* start time.
//! State owned from another pid namespace is never judged (and never removed) by this worker.

use std::os::unix::fs::MetadataExt;

/// A worker's identity as written into the state it owns: `<pidns>.<pid>.<start>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pidns: u64,
    pid: u32,
    start: u64,
}

impl Owner {
    /// This process.
    pub fn me() -> Self {
        let pid = std::process::id();
        Self {
            pidns: pid_namespace(),
            pid,
            start: start_time(pid).unwrap_or(0),
        }
    }

    pub fn tag(&self) -> String {
        format!("{}.{}.{}", self.pidns, self.pid, self.start)
    }

    pub fn parse(tag: &str) -> Option<Self> {
        let mut it = tag.split('.');
        let owner = Self {
            pidns: it.next()?.parse().ok()?,
            pid: it.next()?.parse().ok()?,
            start: it.next()?.parse().ok()?,
        };
        it.next().is_none().then_some(owner)
    }

    /// The owner is provably gone: it lived in this pid namespace and no process there has its
    /// pid and start time now.
    pub fn is_dead(&self) -> bool {
        self.pidns == pid_namespace() && start_time(self.pid) != Some(self.start)
    }
}

/// The inode of this process's pid namespace.
fn pid_namespace() -> u64 {
    std::fs::metadata("/proc/self/ns/pid")
        .map(|m| m.ino())
        .unwrap_or(0)
}

/// A process's start time in clock ticks since boot (`/proc/<pid>/stat`, field 22).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_round_trips_and_this_process_is_alive() {
        let me = Owner::me();
        assert_eq!(Owner::parse(&me.tag()), Some(me));
        assert!(!me.is_dead());
        assert!(me.start > 0);
    }

    #[test]
    fn a_gone_pid_or_another_start_is_dead_but_another_namespace_is_left_alone() {
        let me = Owner::me();
        assert!(
            Owner {
                start: me.start + 1,
                ..me
            }
            .is_dead()
        );
        assert!(
            Owner {
                pid: u32::MAX - 1,
                ..me
            }
            .is_dead()
        );
        assert!(
            !Owner {
                pidns: me.pidns + 1,
                pid: u32::MAX - 1,
                ..me
            }
            .is_dead()
        );
        assert_eq!(Owner::parse("1.2"), None);
        assert_eq!(Owner::parse("1.2.3.4"), None);
    }
}
