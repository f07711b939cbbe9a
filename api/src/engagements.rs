//! What both front doors (REST `/v1/engagements`, MCP `engagement_*`) do with engagements: one
//! call each, returning typed documents ([`EngagementDocument`]). Every call is the tenant's
//! own: a tenant never reads, replaces or deletes another's engagement (the store's keys carry
//! the tenant).

use serde::Serialize;
use serde_json::Value;

use scanq::catalog::Catalog;
use scanq::domain::{EngagementId, TenantId};
use scanq::engagement::{Approval, Engagement, EngagementBody, Window};
use scanq::queue::{Queue, QueueError, StoredEngagement};
use scanq::schedule::rfc3339;
use scanq::validate::{TargetPolicy, ValidationError};

/// Most engagements one tenant may hold.
pub const MAX_PER_TENANT: usize = 256;

/// Why an engagement call was refused.
#[derive(Debug, thiserror::Error)]
pub enum EngagementError {
    /// A field of the request (422).
    #[error("{0}")]
    Invalid(ValidationError),
    #[error("no such engagement")]
    NotFound,
    /// Creating one more would pass [`MAX_PER_TENANT`].
    #[error("your tenant has {cap} engagements, its cap; delete one or replace an existing one")]
    AtCap { cap: usize },
    /// The store is unreachable.
    #[error("{0}")]
    Queue(#[from] QueueError),
}

impl From<ValidationError> for EngagementError {
    fn from(e: ValidationError) -> Self {
        Self::Invalid(e)
    }
}

/// Whether an engagement admits jobs now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EngagementState {
    /// Between `starts_at` and `expires_at` (its windows still apply).
    Active,
    /// Before `starts_at`: jobs are admitted and wait for it.
    NotStarted,
    /// At or after `expires_at`: new jobs are refused, its schedules are parked.
    Expired,
}

/// A blackout as documented.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BlackoutDoc {
    /// RFC 3339.
    pub start: String,
    /// RFC 3339.
    pub end: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An engagement's public document: its definition with RFC 3339 times, its state and times.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EngagementDocument {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub targets: Vec<String>,
    pub denied_targets: Vec<String>,
    pub tools: Vec<String>,
    pub templates: Vec<String>,
    pub timezone: String,
    pub windows: Vec<Window>,
    pub blackouts: Vec<BlackoutDoc>,
    pub starts_at: Option<String>,
    pub expires_at: Option<String>,
    #[schema(value_type = String)]
    pub approval: Approval,
    pub stop_at_window_end: bool,
    pub state: EngagementState,
    pub created_at: String,
    pub updated_at: String,
}

impl EngagementDocument {
    /// The document of a stored engagement at `now_ms`.
    pub fn of(s: &StoredEngagement, now_ms: u64) -> Self {
        let e = &s.engagement;
        Self {
            id: e.id.to_string(),
            description: e.description.clone(),
            targets: e.targets.clone(),
            denied_targets: e.denied_targets.clone(),
            tools: e.tools.iter().map(ToString::to_string).collect(),
            templates: e.templates.clone(),
            timezone: e.calendar.timezone.clone().unwrap_or_else(|| "UTC".into()),
            windows: e.calendar.windows.clone(),
            blackouts: e
                .calendar
                .blackouts
                .iter()
                .map(|b| BlackoutDoc {
                    start: rfc3339(b.start_ms),
                    end: rfc3339(b.end_ms),
                    reason: b.reason.clone(),
                })
                .collect(),
            starts_at: e.starts_at_ms.map(rfc3339),
            expires_at: e.expires_at_ms.map(rfc3339),
            approval: e.approval,
            stop_at_window_end: e.stop_at_window_end,
            state: EngagementState::of(e, now_ms),
            created_at: rfc3339(s.created_ms),
            updated_at: rfc3339(s.updated_ms),
        }
    }
}

impl EngagementState {
    /// Whether `e` admits jobs at `now_ms`.
    pub fn of(e: &Engagement, now_ms: u64) -> Self {
        if e.expires_at_ms.is_some_and(|end| now_ms >= end) {
            Self::Expired
        } else if e.starts_at_ms.is_some_and(|start| now_ms < start) {
            Self::NotStarted
        } else {
            Self::Active
        }
    }
}

/// What a create-or-replace did.
#[derive(Debug, Clone)]
pub struct PutEngagement {
    pub created: bool,
    pub document: EngagementDocument,
}

/// The list answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EngagementList {
    pub engagements: Vec<EngagementDocument>,
}

/// An engagement id from a path or an argument (422 naming `id`).
pub fn engagement_id(id: &str) -> Result<EngagementId, ValidationError> {
    EngagementId::parse(id).map_err(|e| ValidationError::new("id", e.0, "[A-Za-z0-9._-]{1,64}"))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The engagements of every tenant; cheap to build per request.
#[derive(Clone)]
pub struct Engagements {
    queue: Queue,
}

impl Engagements {
    pub fn new(queue: Queue) -> Self {
        Self { queue }
    }

    /// Creates or replaces the tenant's engagement `id` from a request body, checked against
    /// the server's `scope` and `catalog` in force.
    pub async fn put(
        &self,
        scope: &TargetPolicy,
        catalog: &Catalog,
        tenant: &TenantId,
        id: &str,
        body: &Value,
    ) -> Result<PutEngagement, EngagementError> {
        let id = engagement_id(id)?;
        let now = now_ms();
        let engagement =
            EngagementBody::from_json(body)?.into_engagement(&id, scope, catalog, now)?;
        let exists = self.queue.engagement(tenant, &id).await?.is_some();
        if !exists && self.queue.engagement_count(tenant).await? >= MAX_PER_TENANT {
            return Err(EngagementError::AtCap {
                cap: MAX_PER_TENANT,
            });
        }
        let created = self.queue.put_engagement(tenant, &engagement, now).await?;
        Ok(PutEngagement {
            created,
            document: self.get(tenant, id.as_str()).await?,
        })
    }

    /// The tenant's engagement `id`.
    pub async fn get(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<EngagementDocument, EngagementError> {
        let id = engagement_id(id)?;
        let stored = self
            .queue
            .engagement(tenant, &id)
            .await?
            .ok_or(EngagementError::NotFound)?;
        Ok(EngagementDocument::of(&stored, now_ms()))
    }

    /// The tenant's engagements, oldest first.
    pub async fn list(&self, tenant: &TenantId) -> Result<EngagementList, EngagementError> {
        let now = now_ms();
        let engagements = self
            .queue
            .engagements(tenant)
            .await?
            .iter()
            .map(|s| EngagementDocument::of(s, now))
            .collect();
        Ok(EngagementList { engagements })
    }

    /// Deletes the tenant's engagement `id`: from then on new jobs and retries naming it are
    /// refused, and its schedules are parked at their next slot.
    pub async fn delete(&self, tenant: &TenantId, id: &str) -> Result<(), EngagementError> {
        let id = engagement_id(id)?;
        if !self.queue.delete_engagement(tenant, &id).await? {
            return Err(EngagementError::NotFound);
        }
        Ok(())
    }
}
