//! The scope a job's host names must resolve into (DESIGN §14): the server's, narrowed by its
//! tenant's `allowed_targets` (as the APIs published them) and by its engagement's targets. A
//! name is judged by its suffix at admission; only here, once resolved, are its addresses known,
//! so a name cannot point a tenant's scan into another tenant's range or out of its engagement.
//! Read only for a target of names: an address target was judged whole at admission.

use std::borrow::Cow;

use scanq::domain::{EngagementId, ErrorInfo, ErrorType, JobId};
use scanq::validate::TargetPolicy;

use crate::state::SharedRef;

/// The server's scope narrowed for job `id` (under `engagement`, when not empty). An error
/// means the narrowings could not be read: the attempt must not resolve against a wider scope.
pub async fn of<'a>(
    w: &SharedRef,
    id: &JobId,
    engagement: &str,
    server: &'a TargetPolicy,
) -> Result<Cow<'a, TargetPolicy>, ErrorInfo> {
    let unreadable = |what: &str, err: &dyn std::fmt::Display| {
        ErrorInfo::new(
            ErrorType::Unknown,
            format!("{what} could not be read before resolving the target: {err}"),
        )
    };
    let queue = &w.job_events.queue;
    let tenant = queue
        .tenant_scope(&id.tenant)
        .await
        .map_err(|e| unreadable("the tenant's scope", &e))?;
    let mut scope = tenant.scope(server);
    if let Ok(eid) = EngagementId::parse(engagement)
        && let Some(stored) = queue
            .engagement(&id.tenant, &eid)
            .await
            .map_err(|e| unreadable("the engagement", &e))?
    {
        let n = stored
            .engagement
            .narrowing()
            .map_err(|e| unreadable("the engagement's targets", &e))?;
        scope = Cow::Owned(scope.narrowed(n));
    }
    Ok(scope)
}
