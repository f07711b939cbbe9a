//! Version tags (`ETag`) of what readers poll (DESIGN §15): a job, a page of jobs, the stats.
//!
//! A tag is built from version counters that the writers keep anyway — a job's `created_ms`
//! and `evseq` (every state change and event bumps it, `scripts/lua/common.lua`), the fields
//! that change without an event (`waiting`, `change`) and what the API adds (`waiting_for`
//! from the heartbeats) — never from the body, so a reader can answer `304 Not Modified`
//! before it builds (or even reads) the answer. The parts are folded with FNV-1a (64 bits):
//! cheap, stable across processes and releases, and only ever compared for equality.
//!
//! | kind | what | built in |
//! |---|---|---|
//! | `j` | a job document (`GET /v1/jobs/{id}`) | `queue/versions.rs` |
//! | `s` | a job summary (`?view=summary`) | `queue/versions.rs` |
//! | `l`, `L` | a page of summaries, with results (`?include=result`) | `queue/versions.rs` |
//! | `t` | the stats (`GET /v1/stats`) | `stats/mod.rs` |

use std::fmt;

/// An entity tag, as sent in `ETag` (with its quotes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ETag(String);

impl ETag {
    /// The header value, quotes included (`"j-00ff…"`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether an `If-None-Match` header value names this tag (`*`, a list, weak tags
    /// compared weakly as RFC 9110 §13.1.2 asks).
    pub fn matches(&self, if_none_match: &str) -> bool {
        if_none_match
            .split(',')
            .map(str::trim)
            .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == self.0)
    }
}

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Folds version parts into an [`ETag`] of one kind.
#[derive(Debug, Clone)]
pub struct Tagger {
    kind: &'static str,
    hash: u64,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl Tagger {
    pub fn new(kind: &'static str) -> Self {
        Self {
            kind,
            hash: FNV_OFFSET,
        }
    }

    fn bytes(&mut self, b: &[u8]) {
        for x in b {
            self.hash ^= u64::from(*x);
            self.hash = self.hash.wrapping_mul(FNV_PRIME);
        }
    }

    /// Adds a string part (length-delimited, so `ab`+`c` differs from `a`+`bc`).
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(&(s.len() as u64).to_le_bytes());
        self.bytes(s.as_bytes());
        self
    }

    /// Adds a number part.
    pub fn num(&mut self, n: u64) -> &mut Self {
        self.bytes(&n.to_le_bytes());
        self
    }

    pub fn finish(&self) -> ETag {
        ETag(format!("\"{}-{:016x}\"", self.kind, self.hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_changes_with_any_part_and_only_then() {
        let tag = |a: &str, n: u64| Tagger::new("j").str(a).num(n).finish();
        assert_eq!(tag("x", 1), tag("x", 1));
        assert_ne!(tag("x", 1), tag("x", 2));
        assert_ne!(tag("x", 1), tag("y", 1));
        assert_ne!(
            Tagger::new("j").str("ab").str("c").finish(),
            Tagger::new("j").str("a").str("bc").finish()
        );
        assert_ne!(Tagger::new("j").finish(), Tagger::new("s").finish());
        assert!(tag("x", 1).as_str().starts_with("\"j-"));
    }

    #[test]
    fn if_none_match_takes_lists_weak_tags_and_the_star() {
        let t = Tagger::new("j").num(7).finish();
        assert!(t.matches(t.as_str()));
        assert!(t.matches(&format!("\"other\", W/{}", t.as_str())));
        assert!(t.matches("*"));
        assert!(!t.matches("\"j-0000000000000000\""));
        assert!(!t.matches(""));
    }
}
