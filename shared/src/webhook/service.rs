//! What `/v1/webhooks` does, apart from HTTP: read and check a body ([`WebhookBody`] →
//! [`WebhookSpec`] → the allow-list, the schedule, the tenant's cap), store, and answer with
//! typed documents (also the OpenAPI schemas).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::{WebhookBody, WebhookSpec};
use super::new_secret;
use super::store::{HookError, Subscription, WebhookStore};
use crate::config::Config;
use crate::domain::TenantId;
use crate::schedule::{ScheduleStore, StoreError, rfc3339};
use crate::validate::ValidationError;
use crate::validate::url::AllowedUrls;

/// A subscription as the API shows it (never its secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookDoc {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub schedule_id: Option<String>,
    pub description: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

/// The answer to a create: the subscription and its signing secret, shown only here.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: WebhookDoc,
    /// `whsec_` + 64 hex digits; the HMAC key of `Scanq-Signature`.
    pub secret: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookDoc>,
}

/// One delivery attempt, as the log keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryEntry {
    pub event_id: String,
    pub event: String,
    pub attempt: u64,
    /// RFC 3339.
    pub at: String,
    /// The receiver's HTTP status; null when no answer came (or no connection was made).
    pub status: Option<u16>,
    /// `delivered`, `failed`, `gave_up` or `revoked`.
    pub outcome: String,
    /// `HTTP 500`, `timed out`, `connection failed`, `refused: <reason>` (the address was
    /// refused and no connection attempted)…
    pub error: Option<String>,
}

/// A subscription and its newest delivery attempts, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookDetail {
    #[serde(flatten)]
    pub webhook: WebhookDoc,
    pub deliveries: Vec<DeliveryEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Invalid(ValidationError),
    #[error("the tenant has {count} webhooks; its cap is {cap}")]
    AtCap { count: u64, cap: u64 },
    #[error("no such webhook")]
    NotFound,
    #[error("webhook store: {0}")]
    Store(#[from] HookError),
    #[error("schedule store: {0}")]
    Schedules(#[from] StoreError),
}

impl From<ValidationError> for WebhookError {
    fn from(e: ValidationError) -> Self {
        Self::Invalid(e)
    }
}

/// The subscriptions of every tenant; cheap to build per request.
#[derive(Clone)]
pub struct WebhookService {
    store: WebhookStore,
    schedules: ScheduleStore,
    allowed: Arc<AllowedUrls>,
    cap: u64,
}

fn view(s: &Subscription) -> WebhookDoc {
    WebhookDoc {
        id: s.id.clone(),
        url: s.url.clone(),
        events: s.events.iter().map(|e| e.as_str().to_owned()).collect(),
        schedule_id: s.schedule_id.clone(),
        description: s.description.clone(),
        created_at: rfc3339(s.created_ms),
    }
}

impl WebhookService {
    pub fn new(store: WebhookStore, schedules: ScheduleStore, cfg: &Config) -> Self {
        Self {
            store,
            schedules,
            allowed: Arc::new(AllowedUrls::parse(&cfg.webhook_allowed_urls).unwrap_or_default()),
            cap: cfg.tenant_max_webhooks,
        }
    }

    /// Every rule a subscription body must pass.
    async fn check(
        &self,
        tenant: &TenantId,
        body: &serde_json::Value,
    ) -> Result<WebhookSpec, WebhookError> {
        let spec = WebhookSpec::try_from(WebhookBody::from_json(body)?)?;
        if self.allowed.admits(&spec.url).is_none() {
            return Err(ValidationError::new(
                "url",
                if self.allowed.is_empty() {
                    "is not allowed: no webhook receiver is allowed (SCANQ_WEBHOOK_ALLOWED_URLS is empty)".to_owned()
                } else {
                    "is not admitted by SCANQ_WEBHOOK_ALLOWED_URLS".to_owned()
                },
                self.allowed.hint(),
            )
            .into());
        }
        if let Some(s) = &spec.schedule_id
            && self.schedules.get(tenant, s).await?.is_none()
        {
            return Err(ValidationError::new(
                "schedule_id",
                format!("no schedule `{s}`"),
                "an id from GET /v1/schedules",
            )
            .into());
        }
        Ok(spec)
    }

    /// Creates a subscription; the answer is the only place its secret is ever shown.
    pub async fn create(
        &self,
        tenant: &TenantId,
        body: &serde_json::Value,
    ) -> Result<CreatedWebhook, WebhookError> {
        let spec = self.check(tenant, body).await?;
        let sub = Subscription {
            id: uuid::Uuid::new_v4().simple().to_string()[..16].to_owned(),
            url: spec.url.as_str().to_owned(),
            events: spec.events,
            schedule_id: spec.schedule_id,
            description: spec.description,
            secret: new_secret(),
            created_ms: self.schedules.now_ms().await?,
        };
        if let Err(count) = self.store.create(tenant, &sub, self.cap).await? {
            return Err(WebhookError::AtCap {
                count,
                cap: self.cap,
            });
        }
        Ok(CreatedWebhook {
            webhook: view(&sub),
            secret: sub.secret,
        })
    }

    /// Replaces a subscription's settings; its id, secret and creation time stay.
    pub async fn replace(
        &self,
        tenant: &TenantId,
        id: &str,
        body: &serde_json::Value,
    ) -> Result<WebhookDoc, WebhookError> {
        let spec = self.check(tenant, body).await?;
        let old = self
            .store
            .get(tenant, id)
            .await?
            .ok_or(WebhookError::NotFound)?;
        let sub = Subscription {
            url: spec.url.as_str().to_owned(),
            events: spec.events,
            schedule_id: spec.schedule_id,
            description: spec.description,
            ..old
        };
        if !self.store.replace(tenant, &sub).await? {
            return Err(WebhookError::NotFound);
        }
        Ok(view(&sub))
    }

    pub async fn list(&self, tenant: &TenantId) -> Result<WebhookList, WebhookError> {
        let subs = self.store.list(tenant).await?;
        Ok(WebhookList {
            webhooks: subs.iter().map(view).collect(),
        })
    }

    pub async fn get(&self, tenant: &TenantId, id: &str) -> Result<WebhookDetail, WebhookError> {
        let sub = self
            .store
            .get(tenant, id)
            .await?
            .ok_or(WebhookError::NotFound)?;
        let deliveries = self
            .store
            .log(tenant, id)
            .await?
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        Ok(WebhookDetail {
            webhook: view(&sub),
            deliveries,
        })
    }

    pub async fn delete(&self, tenant: &TenantId, id: &str) -> Result<(), WebhookError> {
        if !self.store.delete(tenant, id).await? {
            return Err(WebhookError::NotFound);
        }
        Ok(())
    }
}
