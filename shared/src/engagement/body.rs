//! The body of `PUT /v1/engagements/{id}` ([`EngagementBody`], also its OpenAPI schema) and
//! its checking into an [`Engagement`] against the server's policy ([`EngagementBody::into_engagement`]).
//! A refusal names the JSON path (`targets[3]`, `windows[0].days[1]`, `blackouts[2].start`) and
//! says what would be accepted. docs/engagements.md has the bounds.

use chrono::DateTime;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::entries::{Entry, entries};
use super::{Approval, Blackout, Calendar, Engagement, Weekday, Window};
use crate::catalog::Catalog;
use crate::domain::{EngagementId, ToolName};
use crate::validate::text::first_hidden;
use crate::validate::{TargetPolicy, ValidationError};

/// Most entries in `targets` and in `denied_targets`.
pub const MAX_TARGETS: usize = 256;
/// Most entries in `tools` and in `templates`.
pub const MAX_TOOLS: usize = 64;
/// The longest `description`, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 512;
/// The longest blackout `reason`, in characters.
pub const MAX_REASON_CHARS: usize = 200;
/// The longest template name.
const MAX_ENTRY_LEN: usize = 254;
/// Times are accepted from 2000-01-01 to 2200-01-01 (ms), as for schedules.
const EARLIEST_MS: i64 = 946_684_800_000;
const LATEST_MS: i64 = 7_258_118_400_000;

/// An engagement as a client sends it (DESIGN §14).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EngagementBody {
    /// A note for people (at most 512 characters, no control or invisible characters).
    #[serde(default)]
    #[schema(max_length = 512)]
    pub description: Option<String>,
    /// What the engagement allows (1 to 256 entries): IPv4s, CIDRs, hostnames and `.suffix`
    /// rules, each inside the server's scope.
    #[schema(min_items = 1, max_items = 256, example = json!(["127.0.1.0/24", ".lab.internal"]))]
    pub targets: Vec<String>,
    /// What it never allows, even inside `targets` (at most 256 entries, same forms).
    #[serde(default)]
    #[schema(max_items = 256)]
    pub denied_targets: Vec<String>,
    /// The catalog tools its jobs may use (at most 64; empty: every tool).
    #[serde(default)]
    #[schema(max_items = 64)]
    pub tools: Vec<String>,
    /// The templates its jobs may use (at most 64, each a template of an allowed tool). When
    /// set, every job must name one.
    #[serde(default)]
    #[schema(max_items = 64)]
    pub templates: Vec<String>,
    /// An IANA time zone for `windows` (default `UTC`).
    #[serde(default)]
    #[schema(example = "Europe/Berlin")]
    pub timezone: Option<String>,
    /// Weekly windows in which its jobs may run (none: any time).
    #[serde(default)]
    pub windows: Vec<WindowBody>,
    /// Spans in which no job runs, whatever the windows say.
    #[serde(default)]
    pub blackouts: Vec<BlackoutBody>,
    /// No job runs before this RFC 3339 time.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub starts_at: Option<String>,
    /// No job is admitted or started at or after this RFC 3339 time (after `starts_at`, not
    /// in the past).
    #[serde(default)]
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// Which jobs wait for a person's approval: `never` (default), `intrusive`, `always`.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "intrusive")]
    pub approval: Option<Approval>,
    /// Stop a running job when its window ends (default false).
    #[serde(default)]
    pub stop_at_window_end: Option<bool>,
}

/// A weekly window: on each of `days`, from `start` to `end` (`HH:MM` local time; an `end` at
/// or before `start` ends the next day).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowBody {
    /// `mon` … `sun`.
    #[schema(value_type = Vec<String>, example = json!(["mon", "tue"]))]
    pub days: Vec<Weekday>,
    #[schema(example = "22:00")]
    pub start: String,
    #[schema(example = "06:00")]
    pub end: String,
}

/// A blackout: no job runs from `start` to `end` (RFC 3339).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlackoutBody {
    #[schema(format = DateTime)]
    pub start: String,
    #[schema(format = DateTime)]
    pub end: String,
    /// Why (at most 200 characters), shown to whoever's job waits.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The body's fields, for refusals.
pub const FIELDS: &[&str] = &[
    "description",
    "targets",
    "denied_targets",
    "tools",
    "templates",
    "timezone",
    "windows",
    "blackouts",
    "starts_at",
    "expires_at",
    "approval",
    "stop_at_window_end",
];

pub(super) fn hint(field: &str) -> &'static str {
    match field {
        "description" => "a string of at most 512 characters",
        "targets" | "denied_targets" => {
            "a list of IPv4 addresses, CIDRs, hostnames or .suffix rules, e.g. [\"127.0.1.0/24\"]"
        }
        "tools" => "a list of tool names from GET /v1/tools",
        "templates" => "a list of template names from GET /v1/tools",
        "timezone" => "an IANA time zone such as Europe/Berlin",
        "windows" => "[{\"days\": [\"mon\"], \"start\": \"22:00\", \"end\": \"06:00\"}]",
        "blackouts" => {
            "[{\"start\": \"2026-12-24T00:00:00Z\", \"end\": \"2026-12-27T00:00:00Z\", \"reason\": \"freeze\"}]"
        }
        "starts_at" | "expires_at" => "an RFC 3339 time, e.g. 2026-12-31T23:59:59Z",
        "approval" => "one of: never, intrusive, always",
        "stop_at_window_end" => "true or false",
        _ => "",
    }
}

pub(super) fn refuse(
    field: &str,
    message: impl Into<String>,
    hint: impl Into<String>,
) -> ValidationError {
    ValidationError::new(field, message, hint)
}

/// At most 64 characters of a client's text, for a message.
pub(super) fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(64).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// A note (description, reason): at most `max` characters, nothing hidden.
fn note(field: &str, text: Option<String>, max: usize) -> Result<Option<String>, ValidationError> {
    let Some(t) = text else { return Ok(None) };
    let hint = format!("at most {max} characters without control or invisible characters");
    if t.chars().count() > max {
        return Err(refuse(field, "is too long", hint));
    }
    if let Some(c) = first_hidden(&t) {
        return Err(refuse(field, format!("holds {c:?}"), hint));
    }
    Ok(Some(t))
}

/// A time field: RFC 3339 within 2000..2200; its ms.
fn time(field: &str, text: &str) -> Result<u64, ValidationError> {
    let hint = "an RFC 3339 time from 2000-01-01T00:00:00Z to 2199-12-31T23:59:59Z";
    if text.len() > 64 {
        return Err(refuse(field, "is too long to be a time", hint));
    }
    let t = DateTime::parse_from_rfc3339(text)
        .map_err(|e| refuse(field, format!("`{}`: {e}", clip(text)), hint))?;
    let ms = t.timestamp_millis();
    if !(EARLIEST_MS..LATEST_MS).contains(&ms) {
        return Err(refuse(field, format!("`{text}` is out of range"), hint));
    }
    Ok(ms as u64)
}

impl EngagementBody {
    /// Reads a JSON body; a refusal names the field by its JSON path.
    pub fn from_json(body: &Value) -> Result<Self, ValidationError> {
        crate::request::parse_body(body, FIELDS, hint)
    }

    /// Checks the body against the server's `scope` and `catalog` at `now_ms` and makes the
    /// engagement `id` of it.
    pub fn into_engagement(
        self,
        id: &EngagementId,
        scope: &TargetPolicy,
        catalog: &Catalog,
        now_ms: u64,
    ) -> Result<Engagement, ValidationError> {
        let description = note(
            "description",
            self.description.clone(),
            MAX_DESCRIPTION_CHARS,
        )?;
        if self.targets.is_empty() {
            return Err(refuse(
                "targets",
                "is empty; an engagement allows at least one target",
                hint("targets"),
            ));
        }
        let targets = entries("targets", &self.targets, MAX_TARGETS)?;
        for (i, t) in targets.iter().enumerate() {
            t.check_scope(&format!("targets[{i}]"), scope)?;
        }
        let denied = entries("denied_targets", &self.denied_targets, MAX_TARGETS)?;
        for (i, d) in denied.iter().enumerate() {
            if let Some(j) = targets.iter().position(|t| t.inside(d)) {
                return Err(refuse(
                    &format!("targets[{j}]"),
                    format!(
                        "`{}` lies wholly inside denied_targets[{i}] (`{}`): it allows nothing",
                        targets[j].text(),
                        d.text()
                    ),
                    "drop the entry, or narrow the denied one",
                ));
            }
        }
        let tools = self.tools(catalog)?;
        let templates = self.templates(catalog, &tools)?;
        let mut blackouts = Vec::with_capacity(self.blackouts.len());
        for (i, b) in self.blackouts.into_iter().enumerate() {
            blackouts.push(Blackout {
                start_ms: time(&format!("blackouts[{i}].start"), &b.start)?,
                end_ms: time(&format!("blackouts[{i}].end"), &b.end)?,
                reason: note(
                    &format!("blackouts[{i}].reason"),
                    b.reason,
                    MAX_REASON_CHARS,
                )?,
            });
        }
        let calendar = Calendar {
            timezone: self.timezone,
            windows: self
                .windows
                .into_iter()
                .map(|w| Window {
                    days: w.days,
                    start: w.start,
                    end: w.end,
                })
                .collect(),
            blackouts,
        };
        calendar.check()?;
        let starts_at_ms = self
            .starts_at
            .as_deref()
            .map(|t| time("starts_at", t))
            .transpose()?;
        let expires_at_ms = self
            .expires_at
            .as_deref()
            .map(|t| time("expires_at", t))
            .transpose()?;
        if let Some(end) = expires_at_ms {
            if starts_at_ms.is_some_and(|s| s >= end) {
                return Err(refuse(
                    "expires_at",
                    "is not after starts_at",
                    "a time after starts_at",
                ));
            }
            if end <= now_ms {
                return Err(refuse(
                    "expires_at",
                    "is in the past: the engagement would allow nothing",
                    "a time in the future",
                ));
            }
        }
        let engagement = Engagement {
            id: id.clone(),
            description,
            targets: targets.iter().map(Entry::text).collect(),
            denied_targets: denied.iter().map(Entry::text).collect(),
            tools,
            templates,
            calendar,
            starts_at_ms,
            expires_at_ms,
            approval: self.approval.unwrap_or(Approval::Never),
            stop_at_window_end: self.stop_at_window_end.unwrap_or(false),
        };
        // What admission builds from it must build (it always does from checked entries).
        engagement
            .narrowing()
            .map_err(|e| refuse("targets", e, hint("targets")))?;
        Ok(engagement)
    }

    fn tools(&self, catalog: &Catalog) -> Result<Vec<ToolName>, ValidationError> {
        if self.tools.len() > MAX_TOOLS {
            return Err(refuse(
                "tools",
                format!("holds {} entries; at most {MAX_TOOLS}", self.tools.len()),
                hint("tools"),
            ));
        }
        let known = || format!("one of: {}", catalog.names().join(", "));
        let mut out: Vec<ToolName> = Vec::with_capacity(self.tools.len());
        for (i, t) in self.tools.iter().enumerate() {
            let f = format!("tools[{i}]");
            let tool = ToolName::parse(t)
                .ok()
                .filter(|n| catalog.get(n).is_some())
                .ok_or_else(|| {
                    refuse(&f, format!("`{}` is not a catalog tool", clip(t)), known())
                })?;
            if out.contains(&tool) {
                return Err(refuse(
                    &f,
                    format!("`{tool}` is listed twice"),
                    "list it once",
                ));
            }
            out.push(tool);
        }
        Ok(out)
    }

    fn templates(
        &self,
        catalog: &Catalog,
        tools: &[ToolName],
    ) -> Result<Vec<String>, ValidationError> {
        if self.templates.len() > MAX_TOOLS {
            return Err(refuse(
                "templates",
                format!(
                    "holds {} entries; at most {MAX_TOOLS}",
                    self.templates.len()
                ),
                hint("templates"),
            ));
        }
        let allowed = |name: &str| {
            catalog.tools().any(|(tool, spec)| {
                (tools.is_empty() || tools.contains(tool)) && spec.templates.contains_key(name)
            })
        };
        let mut out: Vec<String> = Vec::with_capacity(self.templates.len());
        for (i, t) in self.templates.iter().enumerate() {
            let f = format!("templates[{i}]");
            if t.len() > MAX_ENTRY_LEN || !allowed(t) {
                let mut names: Vec<&String> = catalog
                    .tools()
                    .filter(|(tool, _)| tools.is_empty() || tools.contains(tool))
                    .flat_map(|(_, spec)| spec.templates.keys())
                    .collect();
                names.sort_unstable();
                names.dedup();
                let names: Vec<&str> = names.into_iter().map(String::as_str).collect();
                return Err(refuse(
                    &f,
                    format!("`{}` is not a template of an allowed tool", clip(t)),
                    format!("one of: {}", names.join(", ")),
                ));
            }
            if out.contains(t) {
                return Err(refuse(&f, format!("`{t}` is listed twice"), "list it once"));
            }
            out.push(t.clone());
        }
        Ok(out)
    }
}

#[cfg(test)]
#[path = "body_tests.rs"]
mod tests;
