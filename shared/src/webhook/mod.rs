//! Signed webhooks: per-tenant subscriptions, an outbox in Redis, and delivery with retries.
//!
//! | module | owns |
//! |---|---|
//! | this file | events, the URL allow-list, the `Scanq-Signature` scheme |
//! | `store` | subscriptions, the outbox and the delivery logs in Redis (hash tag `{hook}`) |
//! | `deliver` | the delivery loop every API and worker process runs, and the events of a finished job |
//!
//! Delivery is at least once: an event is written to the outbox before any attempt; an attempt
//! holds it for a lease, so a process that dies mid-attempt only delays it. Each event has an
//! id (`Scanq-Idempotency-Key`) that stays the same across retries and re-emissions.

mod deliver;
mod store;

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use deliver::{Dispatcher, JobEvents, on_job_finished};
pub use store::{HookError, Subscription, WebhookStore};

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
        ScheduleChanged => "schedule.changed",
    }
);

/// The URL prefixes webhooks may target (`SCANQ_WEBHOOK_ALLOWED_URLS`), so a subscription
/// cannot make scanq call an internal service.
#[derive(Debug, Clone)]
pub struct AllowedUrls(Vec<String>);

impl AllowedUrls {
    pub fn parse(list: &str) -> Self {
        Self(
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    /// Whether `url` is an `http(s)` URL that starts with an allowed prefix. User info
    /// (`http://127.0.0.1:1@evil/`) is refused outright.
    pub fn allows(&self, url: &str) -> bool {
        let Ok(parsed) = reqwest::Url::parse(url) else {
            return false;
        };
        if !matches!(parsed.scheme(), "http" | "https")
            || !parsed.username().is_empty()
            || parsed.password().is_some()
        {
            return false;
        }
        self.0.iter().any(|p| url.starts_with(p.as_str()))
    }

    pub fn as_list(&self) -> String {
        self.0.join(", ")
    }
}

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
    fn only_listed_prefixes_and_plain_urls_are_allowed() {
        let a = AllowedUrls::parse("http://127.0.0.1:, https://hooks.example/");
        assert!(a.allows("http://127.0.0.1:9000/hook"));
        assert!(a.allows("https://hooks.example/x"));
        assert!(!a.allows("http://10.0.0.5/hook"));
        assert!(!a.allows("http://127.0.0.1:1@10.0.0.5/"));
        assert!(!a.allows("ftp://127.0.0.1:21/"));
        assert!(!a.allows("not a url"));
    }

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
