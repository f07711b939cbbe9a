//! The audit trail: one structured log line (`audit = <action>`) per submit, cancel, retry,
//! schedule, webhook and engagement change and admin action, all of one shape: the token's name (never the
//! token itself), tenant, correlation ID, tool, target, schedule id, webhook id, engagement id (each empty when
//! the action has none) and outcome. The target's field is `scan_target`: `target` is the log line's own (module)
//! field in JSON logs.

use scanq::queue::QueueError;

use crate::extract::Caller;

/// What was acted on; fields unknown to the action stay empty.
#[derive(Debug, Default, Clone, Copy)]
pub struct Subject<'a> {
    pub correlation_id: &'a str,
    pub tool: &'a str,
    pub target: &'a str,
    /// The schedule acted on, or whose run a job is.
    pub schedule_id: &'a str,
    /// The webhook subscription acted on.
    pub webhook_id: &'a str,
    /// The engagement acted on (DESIGN §14).
    pub engagement_id: &'a str,
}

/// Writes the audit line.
pub fn record(action: &'static str, caller: &Caller, subject: Subject<'_>, outcome: &str) {
    tracing::info!(
        audit = action,
        token = %caller.name,
        tenant = %caller.tenant,
        correlation_id = subject.correlation_id,
        tool = subject.tool,
        scan_target = subject.target,
        schedule_id = subject.schedule_id,
        webhook_id = subject.webhook_id,
        engagement_id = subject.engagement_id,
        outcome,
        "Audit"
    );
}

/// The audit outcome of a refused queue call.
pub fn refusal(err: &QueueError) -> &'static str {
    match err {
        QueueError::Conflict { .. } | QueueError::Final { .. } => "conflict",
        QueueError::Full { .. } => "queue_full",
        QueueError::TenantFull { .. } => "tenant_full",
        QueueError::NotFound => "not_found",
        QueueError::ToolDisabled { .. } => "tool_disabled",
        QueueError::BreakerOpen { .. } => "breaker_open",
        QueueError::Refused(_) => "refused",
        QueueError::SelfDecision => "own_job",
        QueueError::Redis(_) | QueueError::Pool(_) | QueueError::NotReplicated { .. } => {
            "unavailable"
        }
    }
}

impl<'a> Subject<'a> {
    /// A schedule, by its id.
    pub fn schedule(id: &'a str) -> Self {
        Self {
            schedule_id: id,
            ..Self::default()
        }
    }

    /// An engagement, by its id.
    pub fn engagement(id: &'a str) -> Self {
        Self {
            engagement_id: id,
            ..Self::default()
        }
    }

    /// A webhook subscription, by its id (never its URL, which may hold a token).
    pub fn webhook(id: &'a str) -> Self {
        Self {
            webhook_id: id,
            ..Self::default()
        }
    }
}

/// Writes the audit line of a decision on a job awaiting approval (`approve`, `reject`): the
/// line of [`record`] and the decision's reason.
pub fn decision(
    action: &'static str,
    caller: &Caller,
    subject: Subject<'_>,
    outcome: &str,
    reason: &str,
) {
    tracing::info!(
        audit = action,
        token = %caller.name,
        tenant = %caller.tenant,
        correlation_id = subject.correlation_id,
        tool = subject.tool,
        scan_target = subject.target,
        schedule_id = subject.schedule_id,
        webhook_id = subject.webhook_id,
        outcome,
        reason,
        "Audit"
    );
}

/// Writes the audit line of a schedule action (`schedule.create`, `.replace`, `.put` (refused),
/// `.delete`, `.pause`, `.resume`, `.trigger`).
pub fn schedule(action: &'static str, caller: &Caller, schedule_id: &str, outcome: &str) {
    record(action, caller, Subject::schedule(schedule_id), outcome);
}

/// The audit outcome of a call: `ok`, or the refusal's error type and status.
pub fn outcome_of<T>(r: &Result<T, crate::error::AppError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => {
            let p = e.problem();
            format!("{} {}", p.status.as_u16(), p.error_type)
        }
    }
}
