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

/// The `{id}` path segment of the engagement routes.
#[allow(dead_code)]
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EngagementIdParam {
    /// The engagement's id, unique per tenant.
    #[param(pattern = "^[A-Za-z0-9._-]{1,64}$")]
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

/// `?zone=` of the breaker routes: which zone's breaker of the tool (DESIGN §13).
#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ZoneQuery {
    /// The zone (default `default`): `default`, a zone of the map, or one still holding jobs.
    #[param(pattern = "^[a-z0-9][a-z0-9_-]{0,31}$")]
    zone: Option<String>,
}

impl ZoneQuery {
    /// The zone named (`default` when none), refused with 422 naming `zone` unless it is a
    /// zone of the map in force or a queue of `tool` exists there.
    pub async fn resolve(
        &self,
        state: &crate::state::AppState,
        tool: &scanq::domain::ToolName,
    ) -> Result<scanq::domain::Zone, crate::error::AppError> {
        use scanq::domain::Zone;
        let Some(name) = self.zone.as_deref() else {
            return Ok(Zone::default());
        };
        let zone = Zone::parse(name).ok();
        if let Some(z) = &zone
            && state.live().zones.knows(z)
        {
            return Ok(z.clone());
        }
        // A zone the map no longer names may still hold the tool's queue (and its breaker).
        let zones: Vec<Zone> = state
            .places()
            .await?
            .into_iter()
            .filter(|(t, _)| t == tool)
            .map(|(_, z)| z)
            .collect();
        match zone {
            Some(z) if zones.contains(&z) => Ok(z),
            _ => {
                let names: Vec<&str> = zones.iter().map(Zone::as_str).collect();
                Err(crate::error::AppError::Validation(
                    scanq::validate::ValidationError::new(
                        "zone",
                        format!("`{name}` is not a zone of this server"),
                        format!("one of: {}", names.join(", ")),
                    ),
                ))
            }
        }
    }
}
