//! Request bodies as types: each body is a `Deserialize + ToSchema` struct that refuses unknown
//! fields, read with [`parse`] so a refusal names the field (its JSON path) and says what would
//! be accepted. The same type documents the body in `/openapi.json`; the rules that need the
//! server's policy (catalog, scope) are applied when the body becomes a domain type
//! ([`SubmitBody::into_spec`]).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::domain::Priority;
use crate::validate::ValidationError;

/// A submit request (DESIGN §2): `POST /v1/jobs`, the job template of a schedule, and the body
/// an MCP scan tool builds from its arguments. `tool`, `template` and the `timeout_sec` maximum
/// are filled into `/openapi.json` from the live catalog.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Submit)]
pub struct SubmitBody {
    /// A catalog tool (GET /v1/tools).
    pub tool: String,
    /// An IPv4 address, an IPv4 CIDR or a hostname, inside the server's target scope — or a
    /// list of addresses/CIDRs or of hostnames, separated by commas (no spaces). A target over the
    /// tool's `max_hosts` (up to `SCANQ_MAX_TARGET_HOSTS`) is a big scan: one parent job split
    /// into chunks (DESIGN §12).
    #[schema(min_length = 1, max_length = 61440)]
    pub target: String,
    /// A template of the tool (GET /v1/tools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Extra flags, split with shell rules; each must be in the tool's flag policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2048)]
    pub args: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub timeout_sec: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,64}$")]
    pub correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 20)]
    pub max_attempts: Option<u64>,
    /// Needed (with the server's `allow_intrusive`) for intrusive flags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intrusive: Option<bool>,
    /// Queue the job even while the tool's breaker is open, instead of 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_if_unavailable: Option<bool>,
    /// Start no earlier than this many seconds from now (at most 30 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 2_592_000)]
    pub delay_sec: Option<u64>,
    /// Start no earlier than this RFC 3339 UTC time, within the next 30 days. A time up to
    /// 5 minutes past (clock skew) runs at once; an older one is refused. Not together with
    /// `delay_sec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub run_at: Option<String>,
    /// For a big scan: the most hosts one chunk scans (1 to the tool's `max_hosts`, which is
    /// also the default). A target over this size is split even when the tool could take it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub chunk_hosts: Option<u64>,
    /// The zone the target must be in (DESIGN §13; GET /v1/zones). The server places every
    /// job by its target (`SCANQ_ZONES`); naming a zone makes a target outside it a 422.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,31}$")]
    pub zone: Option<String>,
    /// The engagement the job runs under (DESIGN §14; GET /v1/engagements): its targets, tools,
    /// templates, windows and approval rule apply. Required when the server or the token says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub engagement: Option<String>,
}

/// What a submit field accepts, for refusals.
fn submit_hint(field: &str) -> &'static str {
    match field {
        "tool" => "a tool name from GET /v1/tools",
        "target" => {
            "an IPv4 address, CIDR or hostname, e.g. 127.0.0.1, or a list of one kind separated by commas"
        }
        "template" => "a template name from GET /v1/tools",
        "args" => "a string of flags, e.g. \"-p 22,80 -sV\"",
        "timeout_sec" => "a whole number of seconds, e.g. 300",
        "priority" => "one of: high, normal, low",
        "correlation_id" => "[A-Za-z0-9._:-]{1,64}",
        "max_attempts" => "a whole number from 1 to 20",
        "intrusive" | "queue_if_unavailable" => "true or false",
        "delay_sec" => "a whole number of seconds from 0 to 2592000",
        "run_at" => "an RFC 3339 UTC time, e.g. 2026-11-22T03:00:00Z",
        "chunk_hosts" => "a whole number of hosts from 1 to the tool's max_hosts, e.g. 256",
        "zone" => "a zone name from GET /v1/zones, e.g. default",
        "engagement" => "an engagement id from GET /v1/engagements",
        _ => "",
    }
}

impl SubmitBody {
    /// Reads a submit body; a refusal names the field.
    pub fn parse(body: &Value) -> Result<Self, ValidationError> {
        parse(body, super::FIELDS, submit_hint)
    }
}

/// The field a serde message is about when its path is the object itself: `unknown field
/// `x`` and `missing field `x`` name it in the message.
fn named_in(message: &str) -> Option<&str> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))?;
    rest.split('`').next()
}

/// Reads a JSON object into `T`; a refusal names the field by its JSON path (`events[2]`,
/// `template.args`) and gives `hint(field)` — or, for an unknown field, the accepted ones.
pub fn parse<T: DeserializeOwned>(
    body: &Value,
    accepted: &[&str],
    hint: impl Fn(&str) -> &'static str,
) -> Result<T, ValidationError> {
    if !body.is_object() {
        return Err(ValidationError::new(
            "body",
            "must be a JSON object",
            format!("an object with the fields: {}", accepted.join(", ")),
        ));
    }
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let field = match path.as_str() {
            "" | "." => named_in(&message).unwrap_or("body").to_owned(),
            p => p.to_owned(),
        };
        let top = field.split(['.', '[']).next().unwrap_or(&field);
        let unknown = message.starts_with("unknown field");
        let hint = match hint(top) {
            h if !h.is_empty() && !unknown => h.to_owned(),
            _ => format!("accepted fields: {}", accepted.join(", ")),
        };
        let message = match message.split_once(", expected one of") {
            Some((head, _)) if unknown => head.replace("unknown field", "is not a known field:"),
            _ => message,
        };
        ValidationError::new(&field, message, hint)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refusals_name_the_field_and_what_it_accepts() {
        let e = SubmitBody::parse(&json!({"tool": "nmap", "target": 5})).unwrap_err();
        assert_eq!(e.field, "target");
        assert!(e.message.contains("expected a string"), "{}", e.message);
        let e = SubmitBody::parse(&json!({"target": "x"})).unwrap_err();
        assert_eq!(e.field, "tool");
        let e = SubmitBody::parse(&json!({"tool": "n", "target": "x", "colour": 1})).unwrap_err();
        assert_eq!(e.field, "colour");
        assert!(e.hint.contains("correlation_id"), "{}", e.hint);
        let e =
            SubmitBody::parse(&json!({"tool": "n", "target": "x", "timeout_sec": -1})).unwrap_err();
        assert_eq!(e.field, "timeout_sec");
        let e = SubmitBody::parse(&json!({"tool": "n", "target": "x", "max_attempts": 1e308}))
            .unwrap_err();
        assert_eq!(e.field, "max_attempts");
        let e = SubmitBody::parse(&json!(["tool"])).unwrap_err();
        assert_eq!(e.field, "body");
    }

    #[test]
    fn null_is_absent() {
        let b = SubmitBody::parse(&json!({"tool": "n", "target": "x", "args": null})).unwrap();
        assert_eq!(b.args, None);
    }
}
