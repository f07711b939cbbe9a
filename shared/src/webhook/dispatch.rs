//! Delivering the outbox: [`Dispatcher`], run by every API and worker process. Each step claims
//! due deliveries fairly across tenants (`hook_claim.lua`: round-robin over the ring of tenants
//! with deliveries, within a per-tenant and a fleet-wide in-flight bound) and attempts each in
//! its own task, so one tenant's slow or failing receivers cannot delay another's.
//!
//! An attempt checks the URL against the allow-list in force, resolves the host once and
//! checks every address ([`AllowedUrls::pin`]); a refusal is logged as `refused: <reason>`
//! without any connection. The request then connects to exactly the checked addresses, with
//! no proxy and no redirects.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Semaphore;

use super::signature;
use super::store::{Delivery, HookError, WebhookStore};
use crate::config::Config;
use crate::domain::TenantId;
use crate::queue::Queue;
use crate::scripts::InFlight;
use crate::validate::url::{AllowedUrls, Pinned, WebhookUrl};
use crate::validate::{Resolver, SystemResolver};

/// How long an attempt holds a delivery (longer than the request timeout and the lookup).
const LEASE_MS: u64 = 20_000;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_BACKOFF_MS: u64 = 3_600_000;
/// Deliveries one step may start.
const MAX_PER_STEP: usize = 100;

/// Sees each attempt's outcome (`delivered`, `failed`, `gave_up`, `dropped`, `revoked`).
pub type OnOutcome = Arc<dyn Fn(&str) + Send + Sync>;

/// Sends due deliveries; cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    pub store: WebhookStore,
    /// The fleet's tenants, as the APIs publish them (a revoked tenant's deliveries are dropped).
    queue: Queue,
    allowed: Arc<AllowedUrls>,
    resolver: Arc<dyn Resolver>,
    bounds: InFlight,
    /// This process's attempts in flight (at most the fleet bound).
    slots: Arc<Semaphore>,
    retry_base_ms: u64,
    give_up_ms: u64,
}

impl Dispatcher {
    pub fn new(queue: Queue, store: WebhookStore, cfg: &Config) -> Self {
        let bounds = InFlight {
            per_tenant: cfg.webhook_tenant_in_flight,
            fleet: cfg.webhook_in_flight,
        };
        Self {
            store,
            queue,
            // The config check refused a malformed list at start; should one slip through,
            // nothing is allowed.
            allowed: Arc::new(AllowedUrls::parse(&cfg.webhook_allowed_urls).unwrap_or_default()),
            resolver: Arc::new(SystemResolver),
            bounds,
            slots: Arc::new(Semaphore::new(bounds.fleet as usize)),
            retry_base_ms: cfg.webhook_retry_base_ms,
            give_up_ms: cfg.webhook_give_up_sec * 1000,
        }
    }

    /// Claims due deliveries while this process has free slots and starts an attempt for
    /// each (at most [`MAX_PER_STEP`]); returns how many it started.
    pub async fn tick(&self, on_outcome: &OnOutcome) -> Result<usize, HookError> {
        let mut n = 0;
        while n < MAX_PER_STEP {
            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                break;
            };
            let Some(d) = self.store.claim(LEASE_MS, self.bounds).await? else {
                break;
            };
            let (me, seen) = (self.clone(), on_outcome.clone());
            tokio::spawn(async move {
                let _slot = slot;
                match me.attempt(&d).await {
                    Ok(outcome) => seen(outcome),
                    Err(err) => tracing::debug!(error = %err, "Webhook attempt not recorded"),
                }
            });
            n += 1;
        }
        Ok(n)
    }

    /// Runs [`Dispatcher::tick`] forever.
    pub async fn run(self, every: Duration, on_outcome: impl Fn(&str) + Send + Sync + 'static) {
        let on_outcome: OnOutcome = Arc::new(on_outcome);
        match self.store.adopt_legacy_outbox().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                deliveries = n,
                "Moved webhook deliveries to per-tenant outboxes"
            ),
            Err(err) => tracing::warn!(error = %err, "Could not read the legacy webhook outbox"),
        }
        let base = every.as_millis() as u64;
        loop {
            if let Err(err) = self.tick(&on_outcome).await {
                tracing::debug!(error = %err, "Webhook tick failed");
            }
            tokio::time::sleep(Duration::from_millis(base / 2 + fastrand::u64(..=base))).await;
        }
    }

    /// Whether `tenant` may still receive deliveries (a tenant removed from the tokens file
    /// may not). Consulted before every attempt.
    /// Only a tenant the fleet's tokens file no longer names is refused: a standing that cannot
    /// be read (no API has published yet) delays nothing, since the subscription was checked
    /// when it was made and dropping would lose events.
    async fn may_deliver(&self, tenant: &TenantId) -> bool {
        match self.queue.tenant_revoked(tenant).await {
            Ok(revoked) => !revoked,
            Err(err) => {
                tracing::debug!(error = %err, "Could not read the tenant's standing; delivering");
                true
            }
        }
    }

    #[tracing::instrument(skip_all, fields(delivery = %d.member))]
    async fn attempt(&self, d: &Delivery) -> Result<&'static str, HookError> {
        let attempt = d.attempts + 1;
        let at = crate::schedule::rfc3339(d.now_ms);
        if !self.may_deliver(&d.tenant).await {
            let entry = json!({"event_id": d.event_id, "event": d.event, "attempt": attempt,
                "at": at, "status": null, "outcome": "revoked",
                "error": "the tenant's access was revoked"});
            self.store.finish(d, &entry, None, "revoked").await?;
            return Ok("revoked");
        }
        let Some(sub) = self.store.get(&d.tenant, &d.sub_id).await? else {
            self.store.finish(d, &json!({}), None, "dropped").await?;
            return Ok("dropped");
        };
        let pinned = match WebhookUrl::parse(&sub.url) {
            Err(_) => Err("refused: the stored URL is no longer valid".to_owned()),
            Ok(url) => match self.allowed.pin(&url, &*self.resolver).await {
                Ok(p) => Ok((url, p)),
                Err(why) => Err(format!("refused: {why}")),
            },
        };
        let (status, error) = match pinned {
            Err(why) => (None, Some(why)),
            Ok((url, pinned)) => self.send(&url, pinned, &sub.secret, d, attempt).await,
        };
        let delivered = error.is_none();
        let backoff = (self.retry_base_ms << (attempt - 1).min(20)).min(MAX_BACKOFF_MS);
        let give_up = !delivered && d.now_ms + backoff > d.first_ms + self.give_up_ms;
        let outcome = match (delivered, give_up) {
            (true, _) => "delivered",
            (false, true) => "gave_up",
            (false, false) => "failed",
        };
        let entry = json!({
            "event_id": d.event_id, "event": d.event, "attempt": attempt,
            "at": at, "status": status, "outcome": outcome, "error": error,
        });
        let next = (!delivered && !give_up).then_some(d.now_ms + backoff);
        self.store.finish(d, &entry, next, outcome).await?;
        if !delivered {
            tracing::info!(attempt, outcome, status, "Webhook delivery failed");
        }
        Ok(outcome)
    }

    /// POSTs the delivery to the checked addresses only: `(status, error)`.
    async fn send(
        &self,
        url: &WebhookUrl,
        pinned: Pinned,
        secret: &str,
        d: &Delivery,
        attempt: u64,
    ) -> (Option<u16>, Option<String>) {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(pinned))
            .build();
        let Ok(client) = client else {
            return (None, Some("request failed".into()));
        };
        let ts = d.now_ms / 1000;
        let sent = client
            .post(url.as_str())
            .header("content-type", "application/json")
            .header("scanq-signature", signature(secret, ts, d.body.as_bytes()))
            .header("scanq-event", &d.event)
            .header("scanq-idempotency-key", &d.event_id)
            .header("scanq-delivery-attempt", attempt.to_string())
            .body(d.body.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => (Some(r.status().as_u16()), None),
            Ok(r) => (
                Some(r.status().as_u16()),
                Some(format!("HTTP {}", r.status())),
            ),
            Err(e) => (None, Some(without_url(&e))),
        }
    }
}

/// An HTTP error without the URL (which may hold a token the subscriber put there).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    kind.to_owned()
}
