//! The worker judges a job's engagement again just before its tool runs (DESIGN §14): the
//! engagement may have changed since admission, the job may have waited in the queue past its
//! window, or a retry may have put it straight on a ready stream.
//!
//! | the engagement now | the attempt |
//! |---|---|
//! | gone, expired, or refusing the job | fails without running (`validation_error`, naming the engagement) |
//! | outside its windows, in a blackout, or before `starts_at` | `defer`: `scheduled` until the opening with `waiting_for: "window"`; the attempt does not count |
//! | unreadable (Redis) | retried after a back-off, like any failure to start |
//! | inside a window | runs; with `stop_at_window_end` its end is registered for the fleet's sweep (`queue/window_ends.rs`) and this worker arms its own timer too |

use std::time::Duration;

use scanq::domain::{EngagementId, ErrorInfo, ErrorType, JobId, Outcome, StopReason};
use scanq::engagement::{Ask, Timing};
use scanq::scripts::{ClaimedJob, Completion};
use scanq::validate::TargetList;
use tokio::task::JoinHandle;

use crate::classify;
use crate::state::{RunningJob, SharedRef};

/// What the engagement says about running the attempt now.
#[derive(Debug)]
pub enum Judged {
    /// Run it; stop it at `ends_ms` when the engagement says `stop_at_window_end`.
    Run { ends_ms: Option<u64> },
    /// Outside its window: wait this long for the opening.
    Defer { delay_ms: u64 },
    /// The engagement refuses it now (gone, expired, changed).
    Refused(ErrorInfo),
    /// The engagement could not be read.
    Unreadable(ErrorInfo),
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The engagement's word on the attempt just before the tool runs: `Ok(end)` to run it (and
/// stop it at `end`, when given), or the completion to write instead of running it.
pub async fn before_run(
    w: &SharedRef,
    job: &RunningJob,
    claimed: &ClaimedJob,
    target: &TargetList,
) -> Result<Option<u64>, Completion> {
    if claimed.engagement.is_empty() {
        return Ok(None);
    }
    let job_ref = claimed.job_ref.as_str();
    match judge(w, &job.id, claimed, target).await {
        Judged::Run { ends_ms } => Ok(ends_ms),
        Judged::Defer { delay_ms } => {
            tracing::info!(
                delay_ms,
                "Outside the engagement's window; deferred to its opening"
            );
            Err(classify::completion(
                job_ref,
                job.fence,
                Outcome::Defer,
                None,
                None,
                delay_ms,
            ))
        }
        Judged::Refused(e) => {
            tracing::warn!(error = %e.message, "Job refused by its engagement before the run");
            Err(classify::completion(
                job_ref,
                job.fence,
                Outcome::Failed,
                None,
                Some(&e),
                0,
            ))
        }
        Judged::Unreadable(e) => {
            tracing::warn!(error = %e.message, "Engagement not read; the attempt is retried");
            let delay = classify::backoff_ms(
                w.cfg.retry_base_ms,
                w.cfg.retry_max_ms,
                claimed.attempt,
                fastrand::f64(),
            );
            Err(classify::completion(
                job_ref,
                job.fence,
                Outcome::Retry,
                None,
                Some(&e),
                delay,
            ))
        }
    }
}

/// Judges job `id` (claimed as `claimed`, its target re-checked as `target`) against the
/// engagement it names, now.
pub async fn judge(w: &SharedRef, id: &JobId, claimed: &ClaimedJob, target: &TargetList) -> Judged {
    let refuse = |m: String| Judged::Refused(ErrorInfo::new(ErrorType::ValidationError, m));
    let Ok(eid) = EngagementId::parse(&claimed.engagement) else {
        return refuse(format!(
            "the job names an unreadable engagement {:?}; it was not run",
            scanq::untrusted::clean(&claimed.engagement, 64)
        ));
    };
    let stored = match w.job_events.queue.engagement(&id.tenant, &eid).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return refuse(format!(
                "engagement {eid} no longer exists (deleted); the job was not run"
            ));
        }
        Err(err) => {
            return Judged::Unreadable(ErrorInfo::new(
                ErrorType::Unknown,
                format!("engagement {eid} could not be read before the run: {err}"),
            ));
        }
    };
    let now = now_ms();
    let ask = Ask {
        tool: &id.tool,
        template: Some(claimed.template.as_str()).filter(|t| !t.is_empty()),
        target,
        intrusive: claimed.intrusive,
    };
    let e = &stored.engagement;
    match e.judge(ask, now) {
        // Its own words name the engagement (`engagement x expired at …`); a refused target,
        // tool or template is said with the field.
        Err(err) if err.field == "engagement" => {
            refuse(format!("{}; the job was not run", err.message))
        }
        Err(err) => refuse(format!(
            "engagement {eid} no longer allows the job ({err}); it was not run"
        )),
        Ok(a) => match a.opens_ms {
            Some(at) => Judged::Defer {
                delay_ms: at.saturating_sub(now).max(1),
            },
            None => Judged::Run {
                ends_ms: match e.calendar.timing(now) {
                    Timing::Open { closes_ms } if e.stop_at_window_end => closes_ms,
                    _ => None,
                },
            },
        },
    }
}

/// Registers the attempt's window end with the fleet and arms this worker's own timer, which
/// stops the job through the same script at `end_ms` (by this worker's clock) should the
/// sweep not have done it first. Abort the handle when the attempt ends.
pub fn arm(w: SharedRef, job: RunningJob, end_ms: u64) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(err) = w
            .queue
            .register_window_end(&job.id, job.fence, end_ms)
            .await
        {
            tracing::warn!(error = %err, "Window end not registered with the fleet; this worker's timer alone stops the job");
        }
        tokio::time::sleep(Duration::from_millis(end_ms.saturating_sub(now_ms()))).await;
        match w.queue.end_window_now(&job.id, job.fence).await {
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "Window end not recorded on the job"),
        }
        tracing::info!(end_ms, "Engagement window closed; stopping the job");
        job.stop(StopReason::WindowClosed);
    })
}
