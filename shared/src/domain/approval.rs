//! A person's yes or no before a job runs (DESIGN §14): the decision as the job document shows
//! it, and the bounded reason that comes with it.
//!
//! A job that needs approval is created `awaiting_approval` (it holds no queue slot and no
//! lease) and stays there until a token with the `approve` scope — never the token that
//! submitted it — approves it (it is then admitted like any new job) or rejects it (it is
//! `cancelled`). The job hash keeps `approval` = `needed` for its whole life, so a retry of a
//! rejected job goes back to the person; the decision is in `approval_decision`, `approval_by`,
//! `approval_reason` and `approval_ms`.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::UnknownVariant;
use super::job::{rfc3339, string_enum};

string_enum!(
    /// Which of an engagement's jobs wait for a person to approve them.
    Approval {
        Never => "never",
        Intrusive => "intrusive",
        Always => "always",
    }
);

string_enum!(
    /// What the person decided.
    Decision {
        Approved => "approved",
        Rejected => "rejected",
    }
);

impl Approval {
    /// Whether a job (intrusive or not) waits for a person under this rule: the server's
    /// (`SCANQ_APPROVAL`) and the engagement's are both asked, the stricter wins.
    pub fn requires(self, intrusive: bool) -> bool {
        match self {
            Self::Never => false,
            Self::Intrusive => intrusive,
            Self::Always => true,
        }
    }
}

/// The hash field that marks a job as needing a person's approval (value [`NEEDED`]).
pub const FIELD: &str = "approval";
/// The value of [`FIELD`].
pub const NEEDED: &str = "needed";

/// Longest reason a decision may carry, in characters.
pub const MAX_REASON: usize = 500;

/// A decision's reason: at most [`MAX_REASON`] characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason(String);

/// Why a reason was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadReason {
    /// Longer than [`MAX_REASON`] characters (this many).
    TooLong(usize),
    /// A line break, a tab or another control character.
    Control,
}

impl BadReason {
    /// What is wrong, for the refusal.
    pub fn message(self) -> String {
        match self {
            Self::TooLong(n) => format!("is {n} characters long; at most {MAX_REASON} are kept"),
            Self::Control => "contains a control character (a line break, a tab, …)".into(),
        }
    }

    /// What would be accepted.
    pub fn hint(self) -> String {
        match self {
            Self::TooLong(_) => format!("a short sentence of at most {MAX_REASON} characters"),
            Self::Control => "one line of plain text".into(),
        }
    }
}

impl Reason {
    /// Checks `s` (trimmed); an empty reason is none.
    pub fn parse(s: &str) -> Result<Option<Self>, BadReason> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        let n = s.chars().count();
        if n > MAX_REASON {
            return Err(BadReason::TooLong(n));
        }
        if s.chars().any(char::is_control) {
            return Err(BadReason::Control);
        }
        Ok(Some(Self(s.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A decision as the job document shows it (`approval`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApprovalInfo {
    /// `pending` while the job awaits a decision, then `approved` or `rejected`.
    pub decision: String,
    /// The name of the token that decided (absent while pending).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was decided (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

impl ApprovalInfo {
    /// From the job hash: `None` for a job that never needed approval.
    pub fn from_hash(h: &HashMap<String, String>) -> Option<Self> {
        let get = |k: &str| h.get(k).filter(|v| !v.is_empty()).cloned();
        if get(FIELD).as_deref() != Some(NEEDED) {
            return None;
        }
        Some(Self {
            decision: get("approval_decision").unwrap_or_else(|| "pending".into()),
            by: get("approval_by"),
            reason: get("approval_reason"),
            at: get("approval_ms")
                .and_then(|v| v.parse::<u64>().ok())
                .map(rfc3339),
        })
    }
}

/// The hash fields a decision writes (`decide.lua` saves them with the state change, and its
/// time as `approval_ms`).
pub fn decision_fields(
    decision: Decision,
    by: &str,
    reason: Option<&Reason>,
) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("approval_decision", decision.as_str().to_owned()),
        ("approval_by", by.to_owned()),
    ];
    if let Some(r) = reason {
        f.push(("approval_reason", r.as_str().to_owned()));
    }
    f
}

/// The error a rejected job carries (`error.type = "cancelled"`, the reason in the message).
pub fn rejected_error(by: &str, reason: Option<&Reason>) -> super::ErrorInfo {
    let message = match reason {
        Some(r) => format!("rejected by {by}: {}", r.as_str()),
        None => format!("rejected by {by} (no reason given)"),
    };
    super::ErrorInfo::new(super::ErrorType::Cancelled, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_round_trip_through_their_strings() {
        for d in Decision::ALL {
            assert_eq!(d.as_str().parse::<Decision>().unwrap(), *d);
        }
    }

    #[test]
    fn a_reason_is_bounded_and_one_line() {
        assert_eq!(Reason::parse("  ").unwrap(), None);
        assert_eq!(
            Reason::parse(" change window ok ")
                .unwrap()
                .unwrap()
                .as_str(),
            "change window ok"
        );
        let long = "x".repeat(MAX_REASON + 1);
        assert_eq!(
            Reason::parse(&long).unwrap_err(),
            BadReason::TooLong(MAX_REASON + 1)
        );
        assert_eq!(Reason::parse("a\nb").unwrap_err(), BadReason::Control);
    }

    #[test]
    fn the_document_shows_pending_then_the_decision() {
        let mut h: HashMap<String, String> = HashMap::new();
        assert!(ApprovalInfo::from_hash(&h).is_none());
        h.insert(FIELD.into(), NEEDED.into());
        assert_eq!(ApprovalInfo::from_hash(&h).unwrap().decision, "pending");
        for (k, v) in decision_fields(Decision::Rejected, "alice", None) {
            h.insert(k.into(), v);
        }
        h.insert("approval_ms".into(), "1000".into());
        let info = ApprovalInfo::from_hash(&h).unwrap();
        assert_eq!(info.decision, "rejected");
        assert_eq!(info.by.as_deref(), Some("alice"));
        assert_eq!(info.at.as_deref(), Some("1970-01-01T00:00:01.000Z"));
    }
}
