//! What changed between two finished nmap scans of a tenant: the one function behind REST's
//! `GET /v1/jobs/{id}/diff` (`routes::exports`) and MCP's `job_diff` (`mcp::tools::programs`),
//! so neither front door imports the other's modules and both refuse alike.

use scanq::domain::{CorrelationId, JobDocument, TenantId};
use scanq::nmap::{NoReport, ScanDiff, diff_reports, finished_report};
use scanq::validate::ValidationError;

use crate::error::AppError;
use crate::state::AppState;

/// A job that has no report to compare is a conflict, saying why.
pub fn refused(e: NoReport) -> AppError {
    AppError::Conflict(e.to_string())
}

async fn document(
    state: &AppState,
    tenant: &TenantId,
    id: &CorrelationId,
) -> Result<JobDocument, AppError> {
    state
        .queue()
        .get(tenant, id)
        .await?
        .map(|(_, d)| d)
        .ok_or(AppError::NotFound)
}

/// The diff of job `id` (newer) against job `against` (older), both of `tenant`: the two job
/// IDs and what changed. `against` defaults to the schedule's previous succeeded run.
pub async fn diff_jobs(
    state: &AppState,
    tenant: &TenantId,
    id: &CorrelationId,
    against: Option<&str>,
) -> Result<(String, String, ScanDiff), AppError> {
    let newer = document(state, tenant, id).await?;
    let against = match against {
        None | Some("") => {
            let previous = match &newer.schedule_id {
                Some(s) => previous_succeeded(state, tenant, s, id.as_str()).await?,
                None => None,
            };
            previous.ok_or_else(|| {
                AppError::Validation(ValidationError::new(
                    "against",
                    "give the job to compare with (this job has no earlier succeeded run of a schedule)",
                    "?against={correlation_id} of another finished nmap job of your tenant",
                ))
            })?
        }
        Some(a) => CorrelationId::parse(a).map_err(|e| {
            AppError::Validation(ValidationError::new(
                "against",
                e.to_string(),
                "a correlation_id: [A-Za-z0-9._:-]{1,64}",
            ))
        })?,
    };
    let older = document(state, tenant, &against).await?;
    let b = finished_report(&newer).map_err(refused)?;
    let a = finished_report(&older).map_err(refused)?;
    Ok((
        newer.correlation_id,
        older.correlation_id,
        diff_reports(&a, &b),
    ))
}

/// The previous succeeded run of `cid`'s schedule (the default `against` of a diff).
async fn previous_succeeded(
    state: &AppState,
    tenant: &TenantId,
    schedule: &str,
    cid: &str,
) -> Result<Option<CorrelationId>, AppError> {
    Ok(state
        .inner
        .scheduler
        .previous_succeeded_run(tenant, schedule, cid)
        .await?)
}
