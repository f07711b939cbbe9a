//! `GET /v1/jobs/{id}/events`: Server-Sent Events (`state`, `progress`, `output`, `done`).
//! Each event's id is its position in the job's event stream; `Last-Event-ID` (or
//! `?last_event_id=`) resumes after it without loss or repetition. The stream ends after `done`,
//! whose data is the final job document. `?include=output` adds `output` events, which are
//! otherwise left out to keep dashboards light.
//!
//! A job's event stream exists only once somebody watches it (or it reported progress): the
//! handler registers as a watcher (`Queue::watch`, renewed while it streams), which creates the
//! stream seeded with the events the client missed, synthesized from the job document (its
//! creation state at position 1 and its current state at the current position; for a finished
//! job its final `state` and `done`). From then on every event is stored.
//!
//! A stream re-checks its token before every read and whenever the tokens file is reloaded
//! (SIGHUP): once the token is gone, or no longer grants `read`, the stream ends.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::Stream;
use serde::Deserialize;
use utoipa::IntoParams;

use scanq::scripts::WatchMode;

use crate::auth::Scope;
use crate::error::{AppError, ProblemBody};
use crate::extract::{Caller, JobId, Params};
use crate::params::JobIdParam;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/jobs/{id}/events", get(events))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventParams {
    /// Resume after this event id (the `Last-Event-ID` header wins when both are sent).
    #[param(minimum = 0)]
    last_event_id: Option<u64>,
    /// `output` adds the tool's output lines as `output` events.
    #[param(pattern = "^output$")]
    include: Option<String>,
}

/// The job's events as Server-Sent Events: `state`, `progress`, `output`, `done`.
#[utoipa::path(get, path = "/v1/jobs/{id}/events", operation_id = "job_events", tag = "jobs",
    params(JobIdParam, EventParams,
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this event id", minimum = 0, nullable = false)),
    responses(
        (status = 200, description = "An event stream; ends after `done`, whose data is the final job document", content_type = "text/event-stream", body = String),
        (status = 404, description = "No such job for this tenant", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A parameter or header was refused", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn events(
    State(state): State<AppState>,
    caller: Caller,
    JobId(id): JobId,
    headers: HeaderMap,
    Params(p): Params<EventParams>,
) -> Result<Response, AppError> {
    let bad = |field: &str, msg: &str, hint: &str| {
        AppError::Validation(scanq::validate::ValidationError::new(field, msg, hint))
    };
    let header_id = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    bad(
                        "Last-Event-ID",
                        "must be an event id",
                        "the id of the last event received, e.g. 7",
                    )
                })?,
        ),
    };
    let with_output = match p.include.as_deref() {
        None => false,
        Some("output") => true,
        Some(other) => {
            return Err(bad(
                "include",
                &format!("`{other}` is not something to include"),
                "output",
            ));
        }
    };
    let Some((tool, _)) = state.queue().get(&caller.tenant, &id).await? else {
        return Err(AppError::NotFound);
    };
    let after = header_id.or(p.last_event_id).unwrap_or(0);
    let stream = event_stream(state, caller, id, tool, after, with_output);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn event_stream(
    state: AppState,
    caller: Caller,
    id: scanq::domain::CorrelationId,
    tool: scanq::domain::ToolName,
    mut after: u64,
    with_output: bool,
) -> impl Stream<Item = Result<Event, Infallible>> {
    async_stream::stream! {
        let tag = scanq::queue::Queue::tag(&tool, &caller.tenant, &id);
        let mut sub = state.inner.listener.subscribe(&tag);
        let mut reloads = state.inner.auth.reloads();
        let mut registered: Option<tokio::time::Instant> = None;
        loop {
            // A reload may have revoked the token that opened the stream: then it ends.
            if !state.inner.auth.still_grants(caller.token.as_ref(), Scope::Read) {
                tracing::info!(correlation_id = %id, token = %caller.name, "Event stream ended: its token was revoked");
                return;
            }
            // (Re-)register as a watcher before reading, so nothing slips in between.
            if registered.is_none_or(|t| t.elapsed() >= Duration::from_secs(15)) {
                match state.queue().watch(&caller.tenant, &id, WatchMode::Stream).await {
                    Ok(Some(_)) => registered = Some(tokio::time::Instant::now()),
                    Ok(None) => return,
                    Err(err) => {
                        tracing::warn!(correlation_id = %id, error = %err, "Watch registration failed");
                        sub.wait(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
            let batch = match state.queue().events(&tool, &caller.tenant, &id, after, 200).await {
                Ok(b) => b,
                Err(err) => {
                    tracing::warn!(correlation_id = %id, error = %err, "Event stream read failed");
                    sub.wait(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let empty = batch.is_empty();
            for ev in batch {
                after = ev.position;
                if ev.kind == "output" && !with_output {
                    continue;
                }
                if ev.kind == "done" {
                    let doc = state.queue().get(&caller.tenant, &id).await.ok().flatten().map(|(_, d)| d);
                    let data = serde_json::to_string(&doc).unwrap_or_else(|_| "null".into());
                    yield Ok(Event::default().id(ev.position.to_string()).event("done").data(data));
                    return;
                }
                yield Ok(Event::default().id(ev.position.to_string()).event(ev.kind).data(ev.data));
            }
            if empty {
                // Nothing new: wait for a notification (re-read at least every 15 s), and stop
                // if the job has expired meanwhile.
                // A reload of the tokens file wakes the stream too, to re-check its token.
                let notified = tokio::select! {
                    n = sub.wait(Duration::from_secs(15)) => n,
                    () = crate::auth::reloaded(&mut reloads) => true,
                };
                if !notified && matches!(state.queue().get(&caller.tenant, &id).await, Ok(None)) {
                    return;
                }
            }
        }
    }
}
