//! Keeps big scans' parents up to date (DESIGN §12, `scanq::queue` `parent.rs`): a chunk that
//! this worker claimed, finished or took over marks its parent; one task settles the marked
//! parents at most every [`SETTLE_EVERY`] (so a parent of 256 chunks costs a few settles per
//! second, not one per chunk), emits the webhook events of a parent that finished here (once
//! per parent, never per chunk), and every [`RECONCILE_EVERY`] runs the reconciler that makes
//! up for settles a crash lost.

use std::time::Duration;

use crate::state::SharedRef;

const SETTLE_EVERY: Duration = Duration::from_millis(200);
const RECONCILE_EVERY: Duration = Duration::from_secs(5);
/// Parents per partition the reconciler looks at in one pass.
const RECONCILE_BUDGET: usize = 100;

pub async fn run(w: SharedRef) {
    let mut tick = tokio::time::interval(SETTLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_reconcile = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        for id in w.settler.take() {
            // A chunk's mark names the chunk's zone; the parent may live in another.
            let id = w.job_events.queue.placed(id).await;
            match w.job_events.queue.settle_parent(&id).await {
                Ok(Some((before, after))) if after.is_terminal() && !before.is_terminal() => {
                    tracing::info!(correlation_id = %id.cid, state = %after, "Big scan finished");
                    w.job_events.finished(id);
                }
                Ok(_) => {}
                Err(err) => {
                    // Marked again: the next tick (or the reconciler) tries once more.
                    tracing::warn!(error = %err, correlation_id = %id.cid, "Could not settle a big scan's parent");
                    w.settler.mark(id);
                }
            }
        }
        if last_reconcile.elapsed() >= RECONCILE_EVERY {
            last_reconcile = tokio::time::Instant::now();
            let tools: Vec<_> = w
                .live
                .current()
                .catalog
                .tools()
                .map(|(t, _)| t.clone())
                .collect();
            for tool in tools {
                match w
                    .job_events
                    .queue
                    .reconcile_parents(&tool, w.queue.zone(), RECONCILE_BUDGET)
                    .await
                {
                    Ok(finished) => {
                        for id in finished {
                            w.job_events.finished(id);
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, tool = %tool, "Reconciling big scans failed")
                    }
                }
            }
        }
    }
}
