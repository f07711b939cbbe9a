//! `scanq-bench --confinement`: what confinement adds to one tool run, measured on the real
//! kernel (root only). Each mode runs `/bin/true` through the worker's sandbox `runs` times:
//!
//! - `sandbox`: the sandbox alone (seccomp, limits, a cgroup per run when available) — the base;
//! - `nftables`: plus a per-run uid and its nftables chain (plain scans);
//! - `netns`: plus a network namespace with a filtered veth and `CAP_NET_RAW` (raw scans).
//!
//! For the two confined modes it reports the setup + teardown of the confinement itself (lease
//! taken and released) as p50/p99, and the whole run next to the base.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scanq::config::{Config, EgressConfinement};
use scanq_worker::confine;
use scanq_worker::sandbox::{CgroupRoot, SandboxSpec, run};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Samples {
    confinement: Vec<Duration>,
    total: Vec<Duration>,
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

pub async fn main(runs: u64) -> ExitCode {
    match measure(runs).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scanq-bench --confinement: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn measure(runs: u64) -> anyhow::Result<()> {
    let cfg = Config {
        egress_confinement: EgressConfinement::Required,
        ..Config::default()
    };
    let (_, egress) = confine::setup(&cfg).await?;
    let egress = egress.ok_or_else(|| anyhow::anyhow!("confinement needs root"))?;
    anyhow::ensure!(
        egress.raw_ready(),
        "raw-socket confinement is not available here"
    );
    let cgroups = match CgroupRoot::detect() {
        Ok(root) => Some(Arc::new(root)),
        Err(why) => {
            eprintln!("no cgroup per run: {why}");
            None
        }
    };
    egress.runs_in_cgroups(cgroups.is_some());
    let base_spec = || {
        let mut s = SandboxSpec::new("/bin/true", Vec::<String>::new());
        s.seccomp = scanq_worker::sandbox::seccomp::Seccomp::DenyList;
        s.cgroups = cgroups.clone();
        s
    };
    let mut results: Vec<(&str, Samples)> = Vec::new();
    for mode in ["sandbox", "nftables", "netns"] {
        let mut samples = Samples::default();
        // One warm-up run per mode, not counted.
        for i in 0..=runs {
            let started = Instant::now();
            let mut spec = base_spec();
            let mut confinement = Duration::ZERO;
            let lease = match mode {
                "sandbox" => None,
                m => {
                    let t = Instant::now();
                    let lease = egress
                        .confine(&["127.0.0.1".to_owned()], m == "netns")
                        .await?;
                    confinement += t.elapsed();
                    Some(lease)
                }
            };
            if let Some(l) = &lease {
                spec.run_as_uid = Some(l.uid());
                spec.net_ns = l.net_ns();
                spec.raw_sockets = mode == "netns";
            }
            let out = run(&spec, CancellationToken::new(), None).await?;
            anyhow::ensure!(
                out.exit_code == Some(0),
                "{mode}: /bin/true failed: {out:?}"
            );
            if let Some(l) = lease {
                let t = Instant::now();
                l.release().await;
                confinement += t.elapsed();
            }
            if i > 0 {
                samples.confinement.push(confinement);
                samples.total.push(started.elapsed());
            }
        }
        results.push((mode, samples));
    }
    egress.flush().await;
    let base = pct(&mut results[0].1.total.clone(), 0.5);
    println!(
        "confinement cost per run, {runs} runs of /bin/true each (cgroup per run: {})",
        cgroups.is_some()
    );
    println!(
        "{:<10} {:>16} {:>16} {:>12} {:>12} {:>14}",
        "mode", "setup+teardown", "setup+teardown", "run p50", "run p99", "added p50"
    );
    println!(
        "{:<10} {:>16} {:>16} {:>12} {:>12} {:>14}",
        "", "p50 ms", "p99 ms", "ms", "ms", "ms"
    );
    for (mode, s) in &mut results {
        let (c50, c99) = (pct(&mut s.confinement, 0.5), pct(&mut s.confinement, 0.99));
        let (t50, t99) = (pct(&mut s.total, 0.5), pct(&mut s.total, 0.99));
        println!(
            "{mode:<10} {c50:>16.2} {c99:>16.2} {t50:>12.2} {t99:>12.2} {:>14.2}",
            t50 - base
        );
    }
    Ok(())
}
