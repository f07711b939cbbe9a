//! The body of `POST /v1/webhooks` and `PUT /v1/webhooks/{id}` ([`WebhookBody`], also its
//! OpenAPI schema) and the checked subscription it becomes ([`WebhookSpec`]). A refusal names
//! the field path (`url`, `events[2]`, `description`) and what would be accepted.

use serde::Deserialize;
use utoipa::ToSchema;

use super::EventType;
use crate::validate::ValidationError;
use crate::validate::text::{first_hidden, hidden};
use crate::validate::url::WebhookUrl;

/// Events one subscription may list (before duplicates are dropped).
pub const MAX_EVENTS: usize = 16;
/// The longest `description`, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 200;
/// The longest `schedule_id`, in bytes.
const MAX_SCHEDULE_ID_BYTES: usize = 128;

/// A webhook subscription as a client sends it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookBody {
    /// Where to POST events: admitted by `SCANQ_WEBHOOK_ALLOWED_URLS`, at most 2048 bytes of
    /// printable ASCII, `http` or `https`, no user info, no fragment.
    #[schema(example = "https://hooks.example.com/scanq")]
    pub url: String,
    /// What to hear about (1 to 16 entries, duplicates dropped): `job.succeeded`,
    /// `job.failed`, `job.dead`, `schedule.changed`.
    #[schema(example = json!(["job.succeeded", "job.failed"]))]
    pub events: Vec<String>,
    /// Only events of this schedule (an id from `GET /v1/schedules`).
    #[serde(default)]
    pub schedule_id: Option<String>,
    /// A note for people (at most 200 characters; no control or invisible formatting
    /// characters).
    #[serde(default)]
    pub description: Option<String>,
}

/// A subscription's checked settings (the allow-list and the schedule's existence are the
/// service's to check: they need configuration and Redis).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSpec {
    pub url: WebhookUrl,
    pub events: Vec<EventType>,
    pub schedule_id: Option<String>,
    pub description: Option<String>,
}

fn refuse(field: &str, message: impl Into<String>, hint: impl Into<String>) -> ValidationError {
    ValidationError::new(field, message, hint)
}

impl WebhookBody {
    /// Reads a JSON body, naming the path of the first thing refused.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, ValidationError> {
        const HINT: &str = "a JSON object with `url`, `events` and optionally `schedule_id`, `description` (docs/webhooks.md)";
        if !value.is_object() {
            // (serde would also read a struct from an array, by position)
            return Err(refuse("body", "must be a JSON object", HINT));
        }
        serde_path_to_error::deserialize(value).map_err(|e| {
            let message = e.inner().to_string();
            let path = e.path().to_string();
            let field = if path != "." {
                path
            } else if let Some(name) = message.split('`').nth(1).filter(|_| {
                message.starts_with("missing field") || message.starts_with("unknown field")
            }) {
                name.to_owned()
            } else {
                "body".to_owned()
            };
            let message = message
                .split(", expected one of")
                .next()
                .unwrap_or_default();
            refuse(&field, clip(message), HINT)
        })
    }
}

/// At most 200 characters of `s` (a message may quote a huge value).
fn clip(s: &str) -> String {
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

impl TryFrom<WebhookBody> for WebhookSpec {
    type Error = ValidationError;

    fn try_from(b: WebhookBody) -> Result<Self, ValidationError> {
        let url = WebhookUrl::parse(&b.url).map_err(|m| {
            refuse(
                "url",
                m,
                "http(s)://host[:port]/path admitted by SCANQ_WEBHOOK_ALLOWED_URLS",
            )
        })?;
        let accepted = EventType::ACCEPTED.trim_end();
        if b.events.is_empty() || b.events.len() > MAX_EVENTS {
            return Err(refuse(
                "events",
                format!("holds {} entries; 1 to {MAX_EVENTS}", b.events.len()),
                accepted,
            ));
        }
        let mut events = Vec::new();
        for (i, e) in b.events.iter().enumerate() {
            let e = e.parse::<EventType>().map_err(|_| {
                refuse(
                    &format!("events[{i}]"),
                    format!("`{}` is not an event", clip(e)),
                    accepted,
                )
            })?;
            if !events.contains(&e) {
                events.push(e);
            }
        }
        if let Some(s) = &b.schedule_id
            && (s.is_empty() || s.len() > MAX_SCHEDULE_ID_BYTES || s.chars().any(hidden))
        {
            return Err(refuse(
                "schedule_id",
                format!(
                    "is not a schedule id (1 to {MAX_SCHEDULE_ID_BYTES} bytes, no control characters)"
                ),
                "an id from GET /v1/schedules",
            ));
        }
        if let Some(d) = &b.description {
            let hint = format!(
                "at most {MAX_DESCRIPTION_CHARS} characters without control or invisible formatting characters"
            );
            if d.chars().count() > MAX_DESCRIPTION_CHARS {
                return Err(refuse("description", "is too long", hint));
            }
            if let Some(c) = first_hidden(d) {
                return Err(refuse("description", format!("holds {c:?}"), hint));
            }
        }
        Ok(Self {
            url,
            events,
            schedule_id: b.schedule_id,
            description: b.description.filter(|d| !d.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(v: serde_json::Value) -> String {
        WebhookBody::from_json(&v)
            .and_then(WebhookSpec::try_from)
            .unwrap_err()
            .field
            .clone()
    }

    #[test]
    fn refusals_name_the_field_path() {
        let url = "http://127.0.0.1:9/h";
        assert_eq!(field(json!({"events": ["job.dead"]})), "url");
        assert_eq!(
            field(json!({"url": url, "events": ["job.dead"], "x": 1})),
            "x"
        );
        assert_eq!(field(json!({"url": 7, "events": []})), "url");
        assert_eq!(
            field(json!({"url": url, "events": ["job.dead", 3]})),
            "events[1]"
        );
        assert_eq!(
            field(json!({"url": url, "events": ["job.dead", "nope"]})),
            "events[1]"
        );
        assert_eq!(field(json!({"url": url, "events": []})), "events");
        assert_eq!(field(json!([1])), "body");
        assert_eq!(
            field(json!({"url": url, "events": ["job.dead"], "description": "a\u{202e}b"})),
            "description"
        );
        let ok = WebhookSpec::try_from(
            WebhookBody::from_json(
                &json!({"url": url, "events": ["job.dead", "job.dead"], "description": "日本 é"}),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(ok.events, vec![EventType::JobDead]);
    }
}
