//! The path parameters' documentation types (`IntoParams`), shared by the handlers'
//! `#[utoipa::path]` annotations. The values themselves are parsed by the extractors in
//! `extract`; these only describe them in `/openapi.json`.

use utoipa::IntoParams;

/// The `{id}` path segment of the job routes: a correlation ID.
#[allow(dead_code)]
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct JobIdParam {
    /// The job's correlation ID (an ID no job can have is simply not found).
    #[param(pattern = "^[A-Za-z0-9._:-]{1,64}$")]
    id: String,
}

/// The `{id}` path segment of the schedule routes.
#[allow(dead_code)]
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ScheduleIdParam {
    /// The schedule's id (the correlation-ID alphabet, at most 48 characters).
    #[param(pattern = "^[A-Za-z0-9._:-]{1,48}$")]
    id: String,
}

/// The `{id}` path segment of the webhook routes.
#[allow(dead_code)]
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct WebhookIdParam {
    /// The subscription's id, as `POST /v1/webhooks` answered it.
    id: String,
}

/// The `{tool}` path segment: a catalog tool (filled in as an enum from the live catalog).
#[allow(dead_code)]
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ToolParam {
    tool: String,
}
