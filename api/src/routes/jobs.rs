//! `/v1/jobs`: submit, read (with long-poll), cancel, retry and list.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use scanq::domain::{CancelReply, JobDocument, JobList, JobState, ToolName};
use scanq::queue::QueueError;
use scanq::request::JobSpec;
use scanq::scripts::CancelOutcome;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::actions;
use crate::conditional::{self, IfNoneMatch};
use crate::error::AppError;
use crate::error::ProblemBody;
use crate::extract::{Caller, JobId, JsonBody, Params};
use crate::params::JobIdParam;
use crate::prefer::PreferWait;
use crate::reads::{Answer, PageQuery};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/jobs", post(submit).get(list))
        .route("/v1/jobs/{id}", get(read).delete(cancel))
        .route("/v1/jobs/{id}/retry", post(retry))
        .route("/v1/jobs/{id}/chunks", get(chunks))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ChunkParams {
    /// The chunk number to start from (`next_cursor` of the previous page).
    cursor: Option<u64>,
    /// Chunks per page (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u64>,
}

/// A big scan's chunks (DESIGN §12), in chunk order: ordinary jobs named `<id>:<n>`.
#[utoipa::path(get, path = "/v1/jobs/{id}/chunks", operation_id = "job_chunks", tag = "jobs", params(JobIdParam, ChunkParams),
    responses(
        (status = 200, description = "A page of the chunks", body = scanq::domain::ChunkList),
        (status = 404, description = "No such job for this tenant, or the job is not a big scan", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A parameter was refused", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn chunks(
    State(state): State<AppState>,
    caller: Caller,
    JobId(id): JobId,
    Params(p): Params<ChunkParams>,
) -> Result<Response, AppError> {
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(AppError::Validation(scanq::validate::ValidationError::new(
            "limit",
            format!("{limit} is not a whole number from 1 to 1000"),
            "e.g. 100",
        )));
    }
    let start = p.cursor.unwrap_or(0);
    let (total, chunks) = state
        .queue()
        .chunks(&caller.tenant, &id, start, limit)
        .await?
        .ok_or(AppError::NotFound)?;
    let end = start.saturating_add(limit);
    Ok(Json(scanq::domain::ChunkList {
        total,
        chunks,
        next_cursor: (end < total).then_some(end),
    })
    .into_response())
}

/// Submit a job. With `Prefer: wait=N` (RFC 7240) the answer waits up to N seconds (capped by
/// the server's `max_wait_sec`) for the job to reach a terminal state, and is the job as it is
/// then (`Preference-Applied: wait=<seconds>`); a malformed `Prefer` is ignored.
#[utoipa::path(post, path = "/v1/jobs", operation_id = "submit_job", tag = "jobs",
    params(
        ("Prefer" = Option<String>, Header, description = "`wait=N` (0–86400): answer once the job is terminal, or after N seconds (capped by the server's `max_wait_sec`) with the job as it is then; one request instead of a submit and `GET /v1/jobs/{id}?wait=N`. Other preferences, and a `wait` that is not a whole number of seconds in range, are ignored (RFC 7240 §2)")),
    request_body(content = scanq::request::SubmitBody, content_type = "application/json"),
    responses(
        (status = 202, description = "Accepted; `Location` names the job. With `Prefer: wait`, the job as it is when it ended or the wait did", body = JobDocument,
            headers(("Preference-Applied" = String, description = "`wait=<seconds waited at most>` when a `Prefer: wait` was honoured"))),
        (status = 200, description = "The same request was already accepted (idempotent); with `Prefer: wait`, after the same wait", body = JobDocument,
            headers(("Preference-Applied" = String, description = "`wait=<seconds waited at most>` when a `Prefer: wait` was honoured"))),
        (status = 400, description = "Body is not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "Unknown tool", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "correlation_id names a different request", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A field was refused (`field`, `hint`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Breaker open or queue store down (`Retry-After`)", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    prefer: PreferWait,
    JsonBody(body): JsonBody,
) -> Result<Response, AppError> {
    let (live, narrow) = (state.live(), caller.scope(&state));
    let scope = narrow.scope(&live.targets);
    let spec = JobSpec::from_json(&body, &narrow.policy(live.policy(), &scope))?;
    let submitted = actions::submit_waiting(&state, &caller, &spec, prefer.0).await?;
    let created = submitted.created;
    let doc = submitted.document;
    let status = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let location = format!("/v1/jobs/{}", doc.correlation_id);
    let mut resp = (status, Json(doc)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    if let Some((name, value)) = prefer.applied() {
        resp.headers_mut().insert(name, value);
    }
    Ok(resp)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReadParams {
    /// Long-poll up to this many seconds (capped by the server's `max_wait_sec`) for a
    /// terminal state.
    #[param(minimum = 0, maximum = 86_400)]
    wait: Option<u64>,
    /// `summary`: the job's summary (as `GET /v1/jobs` lists it: no result, one Redis read)
    /// instead of its whole document (`full`, the default).
    #[param(inline)]
    view: Option<View>,
}

/// How much of a job a read returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum View {
    #[default]
    Full,
    Summary,
}

/// What a list adds to its summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Include {
    /// Each job's `result` (the tool's output and parsed result).
    Result,
}

/// A job's document (`?view=summary`: its summary); `?wait=` long-polls for a terminal state.
/// Carries an `ETag`; `If-None-Match` with the current tag gets 304 and no body.
#[utoipa::path(get, path = "/v1/jobs/{id}", operation_id = "get_job", tag = "jobs",
    params(JobIdParam, ReadParams,
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` of an earlier answer: 304 while the job is unchanged")),
    responses(
        (status = 200, description = "The job document (or, with `view=summary`, its summary: a `JobSummary`)", body = JobDocument,
            headers(("ETag" = String, description = "The job's version"))),
        (status = 304, description = "Not modified: the `If-None-Match` tag is current (no body)"),
        (status = 404, description = "No such job for this tenant", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A parameter was refused", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn read(
    State(state): State<AppState>,
    caller: Caller,
    JobId(id): JobId,
    Params(p): Params<ReadParams>,
    inm: IfNoneMatch,
) -> Result<Response, AppError> {
    if p.wait.is_some_and(|w| w > 86_400) {
        return Err(AppError::Validation(scanq::validate::ValidationError::new(
            "wait",
            "must be at most 86400 seconds",
            "0..=86400; the server caps the wait at its max_wait_sec",
        )));
    }
    let queue = state.queue();
    if let Some(wait) = p.wait.filter(|w| *w > 0) {
        let wait = Duration::from_secs(wait.min(state.inner.cfg.max_wait_sec));
        let waited = queue
            .wait_terminal(&state.inner.listener, &caller.tenant, &id, wait)
            .await?
            .ok_or(AppError::NotFound)?;
        if p.view != Some(View::Summary) {
            // The long-poll's last read is the answer (one read fewer).
            let t = waited.tagged(&caller.tenant);
            let answer = Answer::json(t.etag, &t.value)?;
            return Ok(conditional::answer(&inm, &answer));
        }
    }
    let answer = state
        .inner
        .reads
        .job(queue, &caller.tenant, &id, p.view == Some(View::Summary))
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(conditional::answer(&inm, &answer))
}

/// Cancel a job: a queued job never runs; a running one is killed.
#[utoipa::path(delete, path = "/v1/jobs/{id}", operation_id = "cancel_job", tag = "jobs", params(JobIdParam),
    responses(
        (status = 200, description = "Cancelled", body = CancelReply),
        (status = 202, description = "Cancel requested; the worker stops the run", body = CancelReply),
        (status = 404, description = "No such job for this tenant", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The job already finished", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    JobId(id): JobId,
) -> Result<Response, AppError> {
    let (out, doc) = actions::cancel(&state, &caller, &id)
        .await
        .map_err(AppError::from_cancel)?;
    let outcome = actions::cancel_outcome(&out);
    let status = match out {
        CancelOutcome::Cancelled => StatusCode::OK,
        _ => StatusCode::ACCEPTED,
    };
    Ok((
        status,
        Json(CancelReply {
            outcome: outcome.to_owned(),
            job: doc,
        }),
    )
        .into_response())
}

/// Re-run a failed or cancelled job (admin or owner).
#[utoipa::path(post, path = "/v1/jobs/{id}/retry", operation_id = "retry_job", tag = "jobs", params(JobIdParam),
    responses(
        (status = 202, description = "Queued again", body = JobDocument),
        (status = 404, description = "No such job for this tenant", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The job is not failed or cancelled", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    JobId(id): JobId,
) -> Result<Response, AppError> {
    let doc = actions::retry(&state, &caller, &id)
        .await
        .map_err(|e| match e {
            QueueError::Final { state: s } => AppError::Conflict(format!(
                "job is {s}; only failed or cancelled jobs can be retried"
            )),
            e => e.into(),
        })?;
    Ok((StatusCode::ACCEPTED, Json(doc)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Only jobs in this state.
    #[param(inline)]
    state: Option<JobState>,
    /// Only jobs of this tool.
    #[param(pattern = "^[A-Za-z0-9_-]{1,32}$")]
    tool: Option<String>,
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u64>,
    /// `next_cursor` of the previous page.
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    cursor: Option<u64>,
    /// Admins: list this tenant's jobs. Others may name only their own tenant. (Applied by
    /// the auth layer, for every route.)
    #[allow(dead_code)]
    #[param(pattern = "^[A-Za-z0-9_-]{0,64}$")]
    tenant: Option<String>,
    /// `result`: each summary carries its job's `result` too (larger pages).
    #[param(inline)]
    include: Option<Include>,
}

/// The caller's jobs, newest first, paginated: summaries (no `result`, no output) unless
/// `?include=result`. Carries an `ETag`; `If-None-Match` with the current tag gets 304.
#[utoipa::path(get, path = "/v1/jobs", operation_id = "list_jobs", tag = "jobs",
    params(ListParams,
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` of an earlier answer: 304 while no job of the page changed")),
    responses(
        (status = 200, description = "One page of job summaries", body = JobList,
            headers(("ETag" = String, description = "The page's version, from its jobs' versions"))),
        (status = 304, description = "Not modified: the `If-None-Match` tag is current (no body)"),
        (status = 422, description = "A parameter was refused", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Params(p): Params<ListParams>,
    inm: IfNoneMatch,
) -> Result<Response, AppError> {
    let bad = |field: &str, msg: String, hint: &str| {
        AppError::Validation(scanq::validate::ValidationError::new(field, msg, hint))
    };
    let job_state = p.state;
    let tool = match p.tool.as_deref() {
        None => None,
        Some(t) => Some(
            ToolName::parse(t).map_err(|e| bad("tool", e.0, "a tool name from GET /v1/tools"))?,
        ),
    };
    let limit = p.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(bad("limit", format!("{limit} is out of range"), "1..=500"));
    }
    let limit = limit as usize;
    if p.cursor.is_some_and(|c| c > i64::MAX as u64) {
        return Err(bad(
            "cursor",
            "is past the last page".into(),
            "a next_cursor from a previous page",
        ));
    }
    let page = PageQuery {
        state: job_state,
        tool,
        limit,
        cursor: p.cursor,
        with_result: p.include == Some(Include::Result),
    };
    let answer = state
        .inner
        .reads
        .list(state.queue(), &caller.tenant, page)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(conditional::answer(&inm, &answer))
}
