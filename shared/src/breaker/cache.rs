//! A worker's in-process memory of which tools' breakers are open, so it does not ask Redis
//! for every job while a breaker is open. Redis stays the truth: an entry only postpones the
//! next question until the `retry_after_ms` Redis gave.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest a rejection is remembered, whatever Redis said, so an admin's close is seen soon.
pub const MAX_REMEMBERED: Duration = Duration::from_secs(30);

/// "Open until" per tool. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct OpenCache {
    until: Mutex<HashMap<String, Instant>>,
}

impl OpenCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Remembers that `tool`'s breaker rejected a job and said to come back after
    /// `retry_after_ms` (capped at [`MAX_REMEMBERED`]).
    pub fn note_rejected(&self, tool: &str, retry_after_ms: u64) {
        self.note_rejected_at(tool, retry_after_ms, Instant::now());
    }

    /// [`OpenCache::note_rejected`] with an explicit clock.
    pub fn note_rejected_at(&self, tool: &str, retry_after_ms: u64, now: Instant) {
        let wait = Duration::from_millis(retry_after_ms).min(MAX_REMEMBERED);
        if wait.is_zero() {
            self.clear(tool);
            return;
        }
        self.lock().insert(tool.to_string(), now + wait);
    }

    /// How long `tool` is still known to be open, if it is.
    pub fn is_open(&self, tool: &str) -> Option<Duration> {
        self.is_open_at(tool, Instant::now())
    }

    /// [`OpenCache::is_open`] with an explicit clock; forgets an entry that has run out.
    pub fn is_open_at(&self, tool: &str, now: Instant) -> Option<Duration> {
        let mut map = self.lock();
        let until = *map.get(tool)?;
        if until > now {
            return Some(until - now);
        }
        map.remove(tool);
        None
    }

    /// Forgets `tool` (e.g. after an admission was allowed again).
    pub fn clear(&self, tool: &str) {
        self.lock().remove(tool);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        // A panic while holding the lock cannot leave the map inconsistent: recover it.
        self.until.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejection_is_remembered_until_its_retry_after_passes() {
        let cache = OpenCache::new();
        let t0 = Instant::now();
        cache.note_rejected_at("nmap", 5_000, t0);
        assert_eq!(cache.is_open_at("nmap", t0), Some(Duration::from_secs(5)));
        assert_eq!(
            cache.is_open_at("nmap", t0 + Duration::from_secs(4)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(cache.is_open_at("nmap", t0 + Duration::from_secs(5)), None);
        assert_eq!(
            cache.is_open_at("nmap", t0),
            None,
            "expired entry is forgotten"
        );
    }

    #[test]
    fn tools_are_remembered_separately_and_can_be_cleared() {
        let cache = OpenCache::new();
        let t0 = Instant::now();
        cache.note_rejected_at("nmap", 1_000, t0);
        assert_eq!(cache.is_open_at("other", t0), None);
        cache.clear("nmap");
        assert_eq!(cache.is_open_at("nmap", t0), None);
    }

    #[test]
    fn a_long_retry_after_is_capped_and_zero_forgets() {
        let cache = OpenCache::new();
        let t0 = Instant::now();
        cache.note_rejected_at("nmap", 3_600_000, t0);
        assert_eq!(cache.is_open_at("nmap", t0), Some(MAX_REMEMBERED));
        cache.note_rejected_at("nmap", 0, t0);
        assert_eq!(cache.is_open_at("nmap", t0), None);
    }

    #[test]
    fn the_real_clock_variant_reports_a_remaining_duration() {
        let cache = OpenCache::new();
        cache.note_rejected("nmap", 10_000);
        let left = cache.is_open("nmap").unwrap();
        assert!(left <= Duration::from_secs(10) && left > Duration::from_secs(9));
    }
}
