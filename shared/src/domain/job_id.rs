//! A job's identity: the tool that runs it, the zone it runs in (DESIGN §13), the tenant that
//! owns it, and its correlation ID. The tool and zone together name the queue keyspace the job
//! lives in (`{<tool>}` for zone `default`, `{<tool>@<zone>}` otherwise: see `keys.rs`).
//! Every string form a job is known by in Redis is built here and nowhere else:
//!
//! | form | shape | used for |
//! |---|---|---|
//! | [`JobId::job_ref`] | `<tenant>/<cid>` | the job inside its tool's keyspace (stream entries, zsets, script arguments) |
//! | [`JobId::tag`] | `<tool>/<tenant>/<cid>` | notify and cancel messages, the worker's running set |
//! | `cid` alone | `<cid>` | the tenant's listing (the tool is in the member's score) |

use std::fmt;

use super::{CorrelationId, TenantId, ToolName, Zone};

/// The most partitions a tool's queue may have (a job's partition is part of its identity's keys).
pub const MAX_PARTITIONS: u16 = 64;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobId {
    pub tool: ToolName,
    pub zone: Zone,
    pub tenant: TenantId,
    pub cid: CorrelationId,
}

impl JobId {
    pub fn new(tool: ToolName, zone: Zone, tenant: TenantId, cid: CorrelationId) -> Self {
        Self {
            tool,
            zone,
            tenant,
            cid,
        }
    }

    /// The job `cid` of the same tool and tenant in `zone` (a chunk of a big scan).
    pub fn sibling(&self, zone: Zone, cid: CorrelationId) -> Self {
        Self::new(self.tool.clone(), zone, self.tenant.clone(), cid)
    }

    /// `<tenant>/<cid>` (neither part may contain `/`).
    pub fn job_ref(&self) -> String {
        ref_of(&self.tenant, &self.cid)
    }

    /// `<tool>/<tenant>/<cid>`.
    pub fn tag(&self) -> String {
        format!("{}/{}/{}", self.tool, self.tenant, self.cid)
    }

    /// The job a script names by its ref inside the keyspace of `tool` in `zone`.
    pub fn from_ref(tool: &ToolName, zone: &Zone, job_ref: &str) -> Option<Self> {
        let (tenant, cid) = job_ref.split_once('/')?;
        Some(Self {
            tool: tool.clone(),
            zone: zone.clone(),
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
            Zone::default(),
            TenantId::parse("blue").unwrap(),
            CorrelationId::parse("scan-1").unwrap(),
        );
        assert_eq!(id.job_ref(), "blue/scan-1");
        assert_eq!(id.tag(), "nmap/blue/scan-1");
        assert_eq!(
            JobId::from_ref(&id.tool, &id.zone, &id.job_ref()),
            Some(id.clone())
        );
        assert_eq!(JobId::from_ref(&id.tool, &id.zone, "no-slash"), None);
    }
}
