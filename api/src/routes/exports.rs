//! `/v1/jobs/{id}/result.xml`, `/v1/jobs/{id}/result.csv` and `/v1/jobs/{id}/diff`: a finished
//! nmap job's result in forms other tools read, and what changed between two scans.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use scanq::domain::{CorrelationId, JobDocument};
use scanq::nmap::{finished_report, to_csv};
use serde::Deserialize;
use serde_json::json;

use crate::compare::{diff_jobs, refused};
use crate::error::{AppError, ProblemBody};
use crate::extract::{Caller, JobId, Params};
use crate::params::JobIdParam;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/jobs/{id}/result.xml", get(result_xml))
        .route("/v1/jobs/{id}/result.csv", get(result_csv))
        .route("/v1/jobs/{id}/diff", get(diff))
}

async fn document(
    state: &AppState,
    caller: &Caller,
    id: &CorrelationId,
) -> Result<JobDocument, AppError> {
    state
        .queue()
        .get(&caller.tenant, id)
        .await?
        .map(|(_, d)| d)
        .ok_or(AppError::NotFound)
}

/// What a browser may do with an export: nothing but show it. Its bytes come from the scanned
/// hosts, so it is never sniffed as HTML and, opened directly, runs in a sandbox with no script
/// and no requests.
const EXPORT_POLICY: &str = "sandbox; default-src 'none'";

fn typed(body: String, content_type: &'static str, truncated: bool) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(EXPORT_POLICY),
    );
    if truncated {
        h.insert("scanq-truncated", HeaderValue::from_static("true"));
    }
    resp
}

/// nmap's XML exactly as the tool wrote it (the job's stdout); `Scanq-Truncated: true` when the
/// output cap cut it.
#[utoipa::path(get, path = "/v1/jobs/{id}/result.xml", operation_id = "job_result_xml", tag = "jobs", params(JobIdParam),
    responses((status = 200, description = "nmap's XML as produced (`Scanq-Truncated: true` when cut)", body = String, content_type = "application/xml"),
        (status = 404, description = "No such job for this tenant", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The job has not finished, or has no nmap report", body = ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn result_xml(
    State(state): State<AppState>,
    caller: Caller,
    JobId(id): JobId,
) -> Result<Response, AppError> {
    let doc = document(&state, &caller, &id).await?;
    finished_report(&doc).map_err(refused)?;
    let result = doc.result.unwrap_or_default();
    Ok(typed(
        result.stdout,
        "application/xml; charset=utf-8",
        result.truncated_stdout,
    ))
}

/// One row per port: host, port, protocol, state, service, product, version.
#[utoipa::path(get, path = "/v1/jobs/{id}/result.csv", operation_id = "job_result_csv", tag = "jobs", params(JobIdParam),
    responses((status = 200, description = "CSV with a header row", body = String, content_type = "text/csv"),
        (status = 404, description = "No such job for this tenant", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The job has not finished, or has no nmap report", body = ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn result_csv(
    State(state): State<AppState>,
    caller: Caller,
    JobId(id): JobId,
) -> Result<Response, AppError> {
    let doc = document(&state, &caller, &id).await?;
    let report = finished_report(&doc).map_err(refused)?;
    let truncated = doc.result.is_some_and(|r| r.truncated_stdout);
    Ok(typed(to_csv(&report), "text/csv; charset=utf-8", truncated))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DiffParams {
    /// The older job (default: the schedule's previous succeeded run, for a scheduled run).
    #[param(pattern = "^[A-Za-z0-9._:-]{1,64}$")]
    against: Option<String>,
}

/// What changed from job `against` (older) to job `id` (newer), with ndiff semantics; for a
/// scheduled run, `against` defaults to the schedule's previous succeeded run.
#[utoipa::path(get, path = "/v1/jobs/{id}/diff", operation_id = "job_diff", tag = "jobs", params(JobIdParam, DiffParams),
    responses((status = 200, description = "`job`, `against`, `changed`, `summary`, `hosts` (ndiff semantics)", body = Object),
        (status = 404, description = "No such job for this tenant", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "A job has not finished or has no nmap report", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A parameter was refused", body = ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn diff(
    State(state): State<AppState>,
    caller: Caller,
    JobId(id): JobId,
    Params(p): Params<DiffParams>,
) -> Result<Response, AppError> {
    let (job, against, d) = diff_jobs(&state, &caller.tenant, &id, p.against.as_deref()).await?;
    Ok(Json(json!({
        "job": job,
        "against": against,
        "changed": !d.is_empty(),
        "summary": d.summary,
        "hosts": d.hosts,
    }))
    .into_response())
}
