//! What an agent should do next with a job, in words (`next_step` of the job view).

use scanq::domain::{JobDocument, JobState};

/// The next step for an agent, given the job as it stands.
pub(super) fn next_step(doc: &JobDocument) -> String {
    let id = &doc.correlation_id;
    if doc.waiting_for == Some(scanq::domain::WaitingFor::TargetGroup) {
        return format!(
            "Queued: its target network ({}) already runs as many scans as the operator allows \
             at once; it starts when one of them ends. Call job_status with correlation_id \
             \"{id}\" and wait_sec up to 50 to follow it.",
            doc.target_group.as_deref().unwrap_or(&doc.target)
        );
    }
    if let Some(scanq::domain::WaitingFor::Zone(zone)) = &doc.waiting_for {
        return format!(
            "Queued: its target is in zone {zone} and no live worker of that zone serves {}; it \
             starts once one runs there (resource scanq://zones shows the zones' workers). Call \
             job_status with correlation_id \"{id}\" later.",
            doc.tool
        );
    }
    if doc.waiting_for == Some(scanq::domain::WaitingFor::Window) {
        return format!(
            "Scheduled: its engagement's window is closed (or a blackout is on); it starts when \
             the window opens at {}. Call job_status with correlation_id \"{id}\" after that.",
            doc.retry_at.as_deref().unwrap_or("the next opening")
        );
    }
    if doc.stop_reason.is_some() && doc.state == JobState::Cancelled {
        return format!(
            "Stopped at the end of its engagement's window; what it found so far is kept (call \
             job_result with correlation_id \"{id}\"). It is not retried by itself: run it again \
             in the next window."
        );
    }
    if doc.waiting_for.is_some() {
        return format!(
            "Queued: it needs raw sockets and no raw-capable worker serving {} is running; it \
             starts once one is. Call job_status with correlation_id \"{id}\" later, or submit a \
             connect scan (-sT) instead.",
            doc.tool
        );
    }
    match doc.state {
        JobState::AwaitingApproval => format!(
            "{} Call job_status with correlation_id \"{id}\" later to see the decision.",
            approval_needed(doc)
        ),
        JobState::Queued | JobState::Scheduled | JobState::Running => format!(
            "Not finished yet. Call job_status with correlation_id \"{id}\" and wait_sec up to 50 \
             to follow it, then job_result once it is done."
        ),
        JobState::Succeeded | JobState::Failed => format!(
            "Finished. Call job_result with correlation_id \"{id}\" to read the result page by page."
        ),
        JobState::Cancelled => "Cancelled. Submit the scan again if it is still needed.".into(),
    }
}

/// What an agent is told of a job awaiting approval (DESIGN §14): a person must approve it,
/// and how; the agent itself cannot.
pub fn approval_needed(doc: &JobDocument) -> String {
    let id = &doc.correlation_id;
    format!(
        "A person must approve job {id} before it runs: through the dashboard's pending \
         approvals, `scanq approve {id}`, or POST /v1/jobs/{id}/approve with a token holding the \
         `approve` scope (not the token that submitted it). You cannot approve it yourself; tell \
         the user it awaits approval."
    )
}
