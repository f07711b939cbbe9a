//! Signed webhooks: per-tenant subscriptions, an outbox in Redis, and delivery with retries.
//!
//! | module | owns |
//! |---|---|
//! | this file | events, the `Scanq-Signature` scheme |
//! | `allow` | where a webhook may go: the allow-list, the URL rules, the address check and pinning |
//! | `body` | the create/replace body and the checked subscription it becomes |
//! | `service` | what `/v1/webhooks` does, and its typed documents |
//! | `store` | subscriptions, the per-tenant outboxes and the delivery logs in Redis (keys: `keys::HookKeys`) |
//! | `dispatch` | the fair, concurrent delivery loop every API and worker process runs |
//! | `deliver` | the events of a finished job |
//!
//! Delivery is at least once: an event is written to the outbox before any attempt; an attempt
//! holds it for a lease, so a process that dies mid-attempt only delays it. Each event has an
//! id (`Scanq-Idempotency-Key`) that stays the same across retries and re-emissions.

mod body;
mod deliver;
mod dispatch;
mod service;
mod store;

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use crate::validate::url::{
    AddrClass, AllowedUrls, MAX_URL_BYTES, Pinned, WebhookUrl, classify,
};
pub use body::{MAX_DESCRIPTION_CHARS, MAX_EVENTS, WebhookBody, WebhookSpec};
pub use deliver::{JobEvents, on_job_finished};
pub use dispatch::{Dispatcher, OnOutcome};
pub use service::{
    CreatedWebhook, DeliveryEntry, WebhookDetail, WebhookDoc, WebhookError, WebhookList,
    WebhookService,
};
pub use store::{Delivery, HookError, Subscription, WebhookStore};

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::domain::{UnknownVariant, string_enum};

string_enum!(
    /// What a subscription can hear about (in JSON always as [`EventType::as_str`], never
    /// through serde, whose snake_case names differ).
    EventType {
        JobSucceeded => "job.succeeded",
        JobFailed => "job.failed",
        JobDead => "job.dead",
        /// A job waits for a person's approval (DESIGN §14): created so, or retried so.
        JobAwaitingApproval => "job.awaiting_approval",
        ScheduleChanged => "schedule.changed",
    }
);

/// `Scanq-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// A new subscription secret: 32 random bytes, hex, prefixed `whsec_`.
pub fn new_secret() -> String {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).expect("OS randomness");
    format!("whsec_{}", hex::encode(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
        // The value openssl computes:
        // printf '1700000000.{}' | openssl dgst -sha256 -hmac whsec_test
        let s = signature("whsec_test", 1_700_000_000, b"{}");
        assert_eq!(
            s,
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
        for e in EventType::ALL {
            assert_eq!(e.as_str().parse::<EventType>().unwrap(), *e);
        }
    }
}
