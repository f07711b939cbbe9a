//! The API's view of its own machine (CPU, memory, disk), sampled for the informational
//! checks of `GET /health` (`checks`). Kept out of `checks` so that `state`, which owns the
//! probe, does not depend on the checks that read the state.

use std::sync::Mutex;
use std::time::Instant;

use sysinfo::{Disks, System};

/// One measurement of the machine.
#[derive(Debug, Clone)]
pub struct Sample {
    pub cpu_percent: f64,
    pub memory_percent: f64,
    /// Use of the disk holding the temporary directory (where tools run), with its mount point.
    pub disk_percent: Option<(f64, String)>,
}

/// The API's view of its machine. CPU use is measured between two refreshes, so the probe
/// keeps its `System` and reports the use since the previous sample (at least sysinfo's
/// minimum interval apart).
pub struct SystemProbe {
    inner: Mutex<(System, Disks, Instant)>,
}

impl Default for SystemProbe {
    fn default() -> Self {
        Self::new()
    }
}

impl SystemProbe {
    pub fn new() -> Self {
        let mut sys = System::new();
        sys.refresh_cpu_usage();
        Self {
            inner: Mutex::new((sys, Disks::new_with_refreshed_list(), Instant::now())),
        }
    }

    /// Blocks for up to sysinfo's minimum CPU interval when sampled twice in quick succession.
    pub fn sample(&self) -> Sample {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (sys, disks, at) = &mut *guard;
        let since = at.elapsed();
        if since < sysinfo::MINIMUM_CPU_UPDATE_INTERVAL {
            std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL - since);
        }
        sys.refresh_cpu_usage();
        *at = Instant::now();
        sys.refresh_memory();
        disks.refresh(true);
        let percent = |used: u64, total: u64| {
            if total == 0 {
                0.0
            } else {
                used as f64 * 100.0 / total as f64
            }
        };
        let memory_percent = percent(
            sys.total_memory().saturating_sub(sys.available_memory()),
            sys.total_memory(),
        );
        let tmp = std::env::temp_dir();
        let disk_percent = disks
            .list()
            .iter()
            .filter(|d| tmp.starts_with(d.mount_point()) && d.total_space() > 0)
            .max_by_key(|d| d.mount_point().as_os_str().len())
            .map(|d| {
                (
                    percent(d.total_space() - d.available_space(), d.total_space()),
                    d.mount_point().display().to_string(),
                )
            });
        Sample {
            cpu_percent: f64::from(sys.global_cpu_usage()),
            memory_percent,
            disk_percent,
        }
    }
}

impl std::fmt::Debug for SystemProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SystemProbe")
    }
}
