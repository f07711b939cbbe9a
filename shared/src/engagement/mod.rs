//! Engagements (DESIGN §14): a tenant's written permission to test — which targets, which tools
//! and templates, in which weekly windows (outside blackouts), between which dates, and whether a
//! person must approve a job first. A submit, a schedule's run or a retry that names an
//! engagement is judged against it in the one admission path (`queue/admission.rs`), and the
//! worker judges the timing again just before the tool runs.
//!
//! | module | owns |
//! |---|---|
//! | this file | the checked engagement ([`Engagement`]) and its judgement of a job ([`Admission`]) |
//! | `calendar` | windows, blackouts and time zones: when a job may run ([`Calendar`], [`Timing`]) |
//! | `body` | the `PUT /v1/engagements/{id}` body and its checks against the server's policy ([`EngagementBody`]) |
//! | `entries` | the entries of `targets`/`denied_targets`: canonical form, overlaps, the server's scope |
//!
//! The engagements are stored by `queue/engagements.rs` (keys in its table); REST and MCP reach
//! them through `scanq-api`'s `engagements` service.

mod body;
mod calendar;
mod entries;

pub use body::{BlackoutBody, EngagementBody, WindowBody};
pub use calendar::{Blackout, Calendar, Timing, Weekday, Window};

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use crate::domain::Approval;
use crate::domain::{EngagementId, ToolName};
use crate::validate::{Narrowing, TargetList, TargetPolicy, ValidationError};

/// A checked engagement, as stored and as documented. Every value is within the bounds its body
/// enforces (`EngagementBody`), whether it came from a request or from Redis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Engagement {
    #[schema(value_type = String)]
    pub id: EngagementId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What the engagement allows, inside the server's scope: IPv4s, CIDRs, `.suffix` rules.
    pub targets: Vec<String>,
    /// What it never allows, even inside `targets`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denied_targets: Vec<String>,
    /// The tools its jobs may use (empty: every catalog tool).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub tools: Vec<ToolName>,
    /// The templates its jobs may use (empty: any, or none). When set, a job must name one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<String>,
    /// When its jobs may run: weekly windows in a time zone, minus blackouts.
    #[serde(flatten)]
    pub calendar: Calendar,
    /// No job runs before this (ms since the epoch): jobs submitted earlier wait for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at_ms: Option<u64>,
    /// No job is admitted or started after this (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
    #[schema(value_type = String)]
    pub approval: Approval,
    /// A running job is stopped when its window ends (`stop_reason: "window_closed"`).
    #[serde(default)]
    pub stop_at_window_end: bool,
}

/// What admitting one job under an engagement means for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Admission {
    /// A person must approve it first (`awaiting_approval`).
    pub needs_approval: bool,
    /// It waits for its window (or the engagement's start) until then, ms since the epoch
    /// (`scheduled`, `waiting_for: "window"`). `None`: it may run now.
    pub opens_ms: Option<u64>,
}

/// What a job asks that an engagement judges.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub tool: &'a ToolName,
    pub template: Option<&'a str>,
    pub target: &'a TargetList,
    pub intrusive: bool,
}

/// A refusal naming `field`, with what would be accepted.
fn refuse(field: &str, message: String, hint: String) -> ValidationError {
    ValidationError::new(field, message, hint)
}

impl Engagement {
    /// Its targets as a narrowing of the server's scope (labelled `engagement <id>`).
    pub fn narrowing(&self) -> Result<Arc<Narrowing>, String> {
        Narrowing::parse(
            format!("engagement {}", self.id),
            self.targets.iter().map(String::as_str),
            self.denied_targets.iter().map(String::as_str),
        )
        .map(Arc::new)
    }

    /// The server's scope narrowed to this engagement.
    pub fn scope(&self, server: &TargetPolicy) -> Result<TargetPolicy, ValidationError> {
        let n = self.narrowing().map_err(|e| {
            refuse(
                "engagement",
                format!("engagement {} is unreadable: {e}", self.id),
                "replace it with PUT /v1/engagements/{id}".into(),
            )
        })?;
        Ok(server.narrowed(n))
    }

    /// Judges one job at `now_ms`: its target, tool and template must be inside the
    /// engagement (422 naming which), the engagement must not have expired; then when it may
    /// run and whether a person must approve it.
    pub fn judge(&self, ask: Ask<'_>, now_ms: u64) -> Result<Admission, ValidationError> {
        if let Some(end) = self.expires_at_ms
            && now_ms >= end
        {
            return Err(refuse(
                "engagement",
                format!(
                    "engagement {} expired at {}",
                    self.id,
                    crate::domain::rfc3339(end)
                ),
                "name an engagement that is in force, or extend this one's expires_at".into(),
            ));
        }
        if !self.tools.is_empty() && !self.tools.contains(ask.tool) {
            return Err(refuse(
                "tool",
                format!(
                    "engagement {} does not allow the tool {}",
                    self.id, ask.tool
                ),
                format!("one of: {}", join(&self.tools)),
            ));
        }
        if !self.templates.is_empty() {
            match ask.template {
                Some(t) if self.templates.iter().any(|x| x == t) => {}
                Some(t) => {
                    return Err(refuse(
                        "template",
                        format!("engagement {} does not allow the template {t}", self.id),
                        format!("one of: {}", self.templates.join(", ")),
                    ));
                }
                None => {
                    return Err(refuse(
                        "template",
                        format!(
                            "engagement {} allows only named templates; this job names none",
                            self.id
                        ),
                        format!("one of: {}", self.templates.join(", ")),
                    ));
                }
            }
        }
        let n = self.narrowing().map_err(|e| {
            refuse(
                "engagement",
                format!("engagement {} is unreadable: {e}", self.id),
                "replace it with PUT /v1/engagements/{id}".into(),
            )
        })?;
        for t in ask.target.entries() {
            n.check(t)?;
        }
        let needs_approval = match self.approval {
            Approval::Never => false,
            Approval::Intrusive => ask.intrusive,
            Approval::Always => true,
        };
        let from = self.starts_at_ms.map_or(now_ms, |s| s.max(now_ms));
        let opens_ms = match self.calendar.timing(from) {
            Timing::Open { .. } => (from > now_ms).then_some(from),
            Timing::Opens { at_ms } => Some(at_ms),
            Timing::Never => {
                return Err(refuse(
                    "engagement",
                    format!(
                        "engagement {} has no window left in which the job could run",
                        self.id
                    ),
                    "change its windows or blackouts".into(),
                ));
            }
        };
        if let (Some(open), Some(end)) = (opens_ms, self.expires_at_ms)
            && open >= end
        {
            return Err(refuse(
                "engagement",
                format!(
                    "engagement {} expires at {} before its next window opens",
                    self.id,
                    crate::domain::rfc3339(end)
                ),
                "extend its expires_at or change its windows".into(),
            ));
        }
        Ok(Admission {
            needs_approval,
            opens_ms,
        })
    }
}

fn join(v: &[ToolName]) -> String {
    v.iter()
        .map(ToolName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}
