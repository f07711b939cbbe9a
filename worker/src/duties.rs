//! The background duties that keep jobs safe while the claim loop runs: lease renewal (one
//! round trip for all of this worker's jobs), reaping (due jobs, lapsed leases — any worker
//! does it for all), firing due schedules, delivering webhooks, and heartbeats.

use std::collections::HashMap;
use std::time::Duration;

use scanq::catalog::Executor;
use scanq::domain::StopReason;
use scanq::queue::Heartbeat;
use scanq::scripts::RenewStatus;
use tokio::task::JoinHandle;

use crate::execute;
use crate::state::SharedRef;

pub fn spawn(w: SharedRef) -> [JoinHandle<()>; 6] {
    [
        tokio::spawn(crate::settler::run(w.clone())),
        tokio::spawn(renew_loop(w.clone())),
        tokio::spawn(reap_loop(w.clone())),
        tokio::spawn(fire_schedules(w.clone())),
        tokio::spawn(deliver_webhooks(w.clone())),
        tokio::spawn(heartbeat_loop(w)),
    ]
}

/// Delivers due webhook events, like every API and worker process.
async fn deliver_webhooks(w: SharedRef) {
    let dispatcher = scanq::webhook::Dispatcher::new(
        w.job_events.queue.clone(),
        w.job_events.hooks.clone(),
        &w.cfg,
    );
    let counter = w.metrics.webhook_deliveries.clone();
    dispatcher
        .run(Duration::from_millis(w.cfg.schedule_tick_ms), move |o| {
            counter.with_label_values(&[o]).inc()
        })
        .await;
}

/// Fires due schedules, like every API and worker process (`scanq::schedule`): no leader.
async fn fire_schedules(w: SharedRef) {
    let queue = w.job_events.queue.clone();
    let scheduler = scanq::schedule::Scheduler::new(queue, &w.cfg)
        .with_events(std::sync::Arc::new(w.job_events.clone()));
    let metrics = w.metrics.clone();
    // Each step judges templates against the configuration in force (SIGHUP reaches it).
    let live = w.clone();
    scheduler
        .run(
            move || live.live.current(),
            move |r| metrics.count_schedule_result(r),
        )
        .await;
}

async fn renew_loop(w: SharedRef) {
    let every = Duration::from_millis((w.cfg.lease_sec * 1000 / 3).max(200));
    loop {
        tokio::time::sleep(every).await;
        if let Err(err) = renew_once(&w).await {
            tracing::warn!(error = %err, "Lease renewal failed");
        }
    }
}

/// Renews the leases of all running jobs and stops those that were cancelled or lost.
pub async fn renew_once(w: &SharedRef) -> anyhow::Result<()> {
    let jobs = w.running_jobs();
    if jobs.is_empty() {
        return Ok(());
    }
    let request: Vec<_> = jobs.iter().map(|j| (j.id.clone(), j.fence)).collect();
    let statuses = w.queue.renew(&request).await?;
    for (job, status) in jobs.iter().zip(statuses) {
        match status {
            RenewStatus::Ok => {}
            RenewStatus::Cancel => job.stop(StopReason::Cancel),
            RenewStatus::WindowClosed => job.stop(StopReason::WindowClosed),
            RenewStatus::Lost => {
                tracing::warn!(job = %job.id, "Lease lost to another worker; stopping the tool");
                job.stop(StopReason::Lost);
            }
        }
    }
    Ok(())
}

/// Promotes due jobs and takes over lapsed leases, for every tool; refreshes disabled tools.
async fn reap_loop(w: SharedRef) {
    let base = w.cfg.reap_interval_ms;
    let mut failing = false;
    loop {
        tokio::time::sleep(Duration::from_millis(base / 2 + fastrand::u64(..=base))).await;
        // Jobs past their engagement's window end, whoever runs them (Redis' clock).
        match w.queue.sweep_window_ends(500).await {
            Ok(stopped) => {
                for (tool, zone, job) in stopped {
                    tracing::info!(tool = %tool, zone = %zone, job = %job, "Window ended; job asked to stop");
                }
            }
            Err(err) => tracing::debug!(error = %err, "Window ends not swept"),
        }
        match w.queue.reap(500).await {
            Ok(reports) => {
                for (tool, zone, report) in reports {
                    for (job, parent) in &report.chunks {
                        if let Some(id) = scanq::domain::JobId::from_ref(&tool, &zone, job) {
                            w.settler.touch(&id, parent);
                        }
                    }
                    for (job, state) in report.taken_over {
                        tracing::warn!(tool = %tool, zone = %zone, job = %job, state = %state, "Lease lapsed; job taken over");
                    }
                }
                if failing {
                    tracing::info!("Redis reachable again");
                    failing = false;
                }
            }
            Err(err) if !failing => {
                tracing::warn!(error = %err, "Reaping failed; Redis unreachable?");
                failing = true;
            }
            Err(_) => {}
        }
    }
}

async fn heartbeat_loop(w: SharedRef) {
    let every = Duration::from_secs(w.cfg.heartbeat_sec);
    let started_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    loop {
        let doc = Heartbeat {
            id: w.queue.id().to_owned(),
            version: env!("CARGO_PKG_VERSION"),
            pid: std::process::id(),
            started_ms,
            concurrency: w.cfg.worker_concurrency,
            zone: w.queue.zone().clone(),
            confinement: w.confinement.as_str(),
            running: w
                .running
                .lock()
                .expect("running lock")
                .keys()
                .cloned()
                .collect(),
            tools: w
                .live
                .current()
                .catalog
                .tools()
                .map(|(name, spec)| {
                    let present =
                        spec.executor != Executor::Exec || execute::binary_present(&spec.command);
                    (name.to_string(), present)
                })
                .collect::<HashMap<_, _>>(),
            capabilities: w.capabilities,
        };
        let _ = w
            .queue
            .heartbeat(&doc, Duration::from_secs(w.cfg.heartbeat_sec * 3))
            .await;
        tokio::time::sleep(every).await;
    }
}
