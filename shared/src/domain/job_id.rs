//! A job's identity: the tool that runs it, the tenant that owns it, and its correlation ID.
//! Every string form a job is known by in Redis is built here and nowhere else:
//!
//! | form | shape | used for |
//! |---|---|---|
//! | [`JobId::job_ref`] | `<tenant>/<cid>` | the job inside its tool's keyspace (stream entries, zsets, script arguments) |
//! | [`JobId::tag`] | `<tool>/<tenant>/<cid>` | notify and cancel messages, the worker's running set |
//! | `cid` alone | `<cid>` | the tenant's listing (the tool is in the member's score) |

use std::fmt;

use super::{CorrelationId, TenantId, ToolName};

/// The most partitions a tool's queue may have (a job's partition is part of its identity's keys).
pub const MAX_PARTITIONS: u16 = 64;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobId {
    pub tool: ToolName,
    pub tenant: TenantId,
    pub cid: CorrelationId,
}

impl JobId {
    pub fn new(tool: ToolName, tenant: TenantId, cid: CorrelationId) -> Self {
        Self { tool, tenant, cid }
    }

    /// `<tenant>/<cid>` (neither part may contain `/`).
    pub fn job_ref(&self) -> String {
        ref_of(&self.tenant, &self.cid)
    }

    /// `<tool>/<tenant>/<cid>`.
    pub fn tag(&self) -> String {
        format!("{}/{}/{}", self.tool, self.tenant, self.cid)
    }

    /// The job a script names by its ref inside `tool`'s keyspace.
    pub fn from_ref(tool: &ToolName, job_ref: &str) -> Option<Self> {
        let (tenant, cid) = job_ref.split_once('/')?;
        Some(Self {
            tool: tool.clone(),
            tenant: TenantId::parse(tenant).ok()?,
            cid: CorrelationId::parse(cid).ok()?,
        })
    }
}

/// `<tenant>/<cid>`, for callers that do not know the tool yet.
pub fn ref_of(tenant: &TenantId, cid: &CorrelationId) -> String {
    format!("{tenant}/{cid}")
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tag())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_round_trips() {
        let id = JobId::new(
            ToolName::parse("nmap").unwrap(),
            TenantId::parse("blue").unwrap(),
            CorrelationId::parse("scan-1").unwrap(),
        );
        assert_eq!(id.job_ref(), "blue/scan-1");
        assert_eq!(id.tag(), "nmap/blue/scan-1");
        assert_eq!(JobId::from_ref(&id.tool, &id.job_ref()), Some(id.clone()));
        assert_eq!(JobId::from_ref(&id.tool, "no-slash"), None);
    }
}
