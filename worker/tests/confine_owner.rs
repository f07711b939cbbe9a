//! Confinement state is keyed by its owner (pid namespace, pid, start time): a starting worker
//! removes what a dead worker of its own pid namespace left (nftables run chains, run cgroups)
//! and never what a worker in another pid namespace owns, even when that worker's pid does not
//! exist in this one (root only).

mod sandbox_support;

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

use sandbox_support::is_root;
use scanq::config::{Config, EgressConfinement};
use scanq_worker::sandbox::{CgroupRoot, Owner};

fn nft(script: &str) {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "{script}");
}

fn chain_exists(uid: u32) -> bool {
    Command::new("nft")
        .args(["list", "chain", "inet", "scanq", &format!("run_{uid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// A process in a pid namespace of its own; its namespace's inode.
struct Foreign {
    child: std::process::Child,
    pidns: u64,
}

impl Foreign {
    fn start() -> Self {
        let child = Command::new("unshare")
            .args(["--pid", "--fork", "sleep", "60"])
            .spawn()
            .unwrap();
        let me = std::fs::metadata("/proc/self/ns/pid").unwrap().ino();
        // `unshare` forks `sleep` into the new namespace: wait until its child is there.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let pidns = loop {
            let kids = std::fs::read_to_string(format!(
                "/proc/{}/task/{}/children",
                child.id(),
                child.id()
            ))
            .unwrap_or_default();
            if let Some(kid) = kids.split_whitespace().next()
                && let Ok(m) = std::fs::metadata(format!("/proc/{kid}/ns/pid"))
                && m.ino() != me
            {
                break m.ino();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no child in a new pid namespace"
            );
            std::thread::yield_now();
        };
        Self { child, pidns }
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_starting_worker_removes_dead_owners_state_and_never_another_namespaces() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    // Before this test makes the table: deleted at exit unless it was here already.
    scanq_worker::confine::host_tables::remove_at_exit();
    let foreign = Foreign::start();
    let me = Owner::me().tag();
    let my_ns = me.split('.').next().unwrap();
    // A pid that does not exist here, owned from the other namespace and from this one.
    let ghost = u32::MAX - 7;
    let (theirs, dead) = (61_990, 61_991);
    nft("add table inet scanq\n");
    for (uid, owner) in [
        (theirs, format!("{}.{ghost}.1", foreign.pidns)),
        (dead, format!("{my_ns}.{ghost}.1")),
    ] {
        nft(&format!(
            "add chain inet scanq run_{uid}\nadd rule inet scanq run_{uid} ip daddr 127.0.0.1 accept comment \"scanq owner={owner}\"\n"
        ));
    }
    let cg = CgroupRoot::detect().ok();
    let cg_dirs = cg.as_ref().map(|root| {
        let theirs = root
            .dir()
            .join(format!("scanq-{}.{ghost}.1-0", foreign.pidns));
        let dead = root.dir().join(format!("scanq-{my_ns}.{ghost}.1-0"));
        std::fs::create_dir_all(&theirs).unwrap();
        std::fs::create_dir_all(&dead).unwrap();
        (theirs, dead)
    });

    let cfg = Config {
        egress_confinement: EgressConfinement::Required,
        ..Config::default()
    };
    scanq_worker::confine::setup(&cfg).await.expect("setup");
    if let Some(root) = &cg {
        root.clear_stale();
    }

    assert!(
        chain_exists(theirs),
        "another pid namespace's run was removed"
    );
    assert!(!chain_exists(dead), "a dead worker's run was left");
    if let Some((theirs_dir, dead_dir)) = &cg_dirs {
        assert!(
            theirs_dir.exists(),
            "another pid namespace's cgroup was removed"
        );
        assert!(!dead_dir.exists(), "a dead worker's cgroup was left");
        std::fs::remove_dir(theirs_dir).unwrap();
    }
    nft(&format!(
        "flush chain inet scanq run_{theirs}\ndelete chain inet scanq run_{theirs}\n"
    ));
}
