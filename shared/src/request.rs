//! A submit request turned into a checked [`JobSpec`] exactly once (DESIGN §2, §4). The API and
//! the MCP front door both go through [`JobSpec::from_json`]; the worker re-checks what it reads
//! from Redis with [`recheck`], since a job written by anything else is not trusted.
//! [`SubmitBody`] is the body as a type (the same one documents it in `/openapi.json`);
//! [`fields`] reads the MCP tools' typed arguments; [`strict`] parses JSON refusing duplicate keys.

mod body;
mod caller_scope;
mod decision;
pub mod fields;
pub mod strict;
mod zone_plan;

pub use body::{SubmitBody, parse as parse_body};
pub use caller_scope::CallerScope;
pub use decision::DecisionBody;
pub use zone_plan::ZonePlan;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::catalog::{Catalog, ToolSpec};
use crate::domain::{CorrelationId, EngagementId, Priority, ToolName, Zone};
use crate::validate::{ArgContext, TargetList, TargetPolicy, ToolArgs, ValidationError, ZoneMap};

/// Fields a submit body may carry.
pub const FIELDS: &[&str] = &[
    "tool",
    "target",
    "template",
    "args",
    "timeout_sec",
    "priority",
    "correlation_id",
    "max_attempts",
    "intrusive",
    "queue_if_unavailable",
    "delay_sec",
    "run_at",
    "chunk_hosts",
    "zone",
    "engagement",
];

/// How far in the past a `run_at` may lie and still be taken as "now" (clocks of clients and
/// server differ a little); anything older is refused rather than silently run at once.
pub const RUN_AT_SKEW_SEC: u64 = 300;

/// What the server needs to judge a request.
#[derive(Debug, Clone)]
pub struct Policy<'a> {
    pub catalog: &'a Catalog,
    pub targets: &'a TargetPolicy,
    /// Places each job in its zone (DESIGN §13).
    pub zones: &'a ZoneMap,
    pub allow_intrusive: bool,
    pub default_max_attempts: u32,
    /// Every job must name an engagement (`SCANQ_REQUIRE_ENGAGEMENT`, or the caller's token's
    /// `require_engagement`; DESIGN §14).
    pub require_engagement: bool,
    /// Which jobs wait for a person's approval (`SCANQ_APPROVAL`; DESIGN §14). An engagement's
    /// rule is added at admission (the stricter wins).
    pub approval: crate::domain::Approval,
}

/// A validated job request.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub tool: ToolName,
    /// The zone the job runs in (DESIGN §13): where the zone map places its target. A big scan
    /// spanning zones lives in the zone of its first piece; `zone_plan` places its chunks.
    pub zone: Zone,
    /// A big scan spanning several zones: its target cut by zone, in order (chunks are cut
    /// from each piece in turn). `None` when the whole target is in `zone`.
    pub zone_plan: Option<ZonePlan>,
    /// One or more hosts (DESIGN §12): more than one job may scan make a parent job.
    pub target: TargetList,
    /// A big scan (DESIGN §12): the target covers more hosts than one job may scan, so the job
    /// is a parent split into chunks of at most this many hosts. `None` for an ordinary job.
    pub chunk_hosts: Option<u64>,
    pub template: Option<String>,
    /// Template arguments followed by the request's, normalized.
    pub args: ToolArgs,
    /// The arguments use a flag marked `raw`: only a raw-capable worker may claim the job.
    pub needs_raw: bool,
    pub timeout_sec: u64,
    pub priority: Priority,
    pub correlation_id: Option<CorrelationId>,
    pub max_attempts: u32,
    pub intrusive: bool,
    pub queue_if_unavailable: bool,
    pub delay_ms: u64,
    /// The request's own `args` text, kept so the worker can re-apply the policy.
    pub raw_args: String,
    /// Digest of the request's meaning: same digest = same request (idempotency).
    pub request_hash: String,
    /// The schedule whose run this is (set by the scheduler, never by a request); stored with
    /// the job from its creation.
    pub schedule_id: Option<String>,
    /// The engagement the job runs under (DESIGN §14), judged at admission.
    pub engagement: Option<EngagementId>,
    /// Set by the server, never by a request: a person must approve the job before it is
    /// queued (`awaiting_approval`), by the server's rule (`SCANQ_APPROVAL`, from the policy)
    /// or the job's engagement's (added at admission: the stricter wins).
    pub needs_approval: bool,
    /// The name of the token that submitted the job (`schedule:<id>` for a schedule's run),
    /// set by the front door: the one token that may not approve it.
    pub submitted_by: Option<String>,
    /// Set by admission from the engagement, never by a request: the job's delay is the wait for
    /// its window (`waiting_for: "window"`).
    pub waits_for_window: bool,
    /// Set by a front door that waits for the job's end (`Prefer: wait`), never by a request:
    /// the job is created registered for watchers until this time (ms; its `watch` field, see
    /// `watch.lua`), so its changes are published from its creation on.
    pub watch_until_ms: Option<u64>,
}

/// Why a request was refused before validation could name a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// The tool is not in the catalog (404).
    UnknownTool(String),
    Invalid(ValidationError),
}

impl From<ValidationError> for RequestError {
    fn from(e: ValidationError) -> Self {
        Self::Invalid(e)
    }
}

fn invalid(field: &str, message: impl Into<String>, hint: impl Into<String>) -> RequestError {
    RequestError::Invalid(ValidationError::new(field, message, hint))
}

/// A whole number in `lo..=hi`, or absent.
fn within(field: &str, n: Option<u64>, lo: u64, hi: u64) -> Result<Option<u64>, RequestError> {
    match n {
        Some(n) if !(lo..=hi).contains(&n) => Err(invalid(
            field,
            format!("{n} is not a whole number from {lo} to {hi}"),
            format!("e.g. {lo}"),
        )),
        n => Ok(n),
    }
}

impl JobSpec {
    /// Parses a submit body (the REST body, a schedule's template, an MCP scan's arguments).
    pub fn from_json(body: &Value, policy: &Policy<'_>) -> Result<Self, RequestError> {
        Self::from_body(SubmitBody::parse(body)?, policy)
    }

    /// Checks a submit body against the server's policy: the tool, the target's scope, the
    /// tool's argument policy and limits.
    pub fn from_body(body: SubmitBody, policy: &Policy<'_>) -> Result<Self, RequestError> {
        let tool = ToolName::parse(&body.tool)
            .map_err(|_| RequestError::UnknownTool(body.tool.clone()))?;
        let spec = policy
            .catalog
            .get(&tool)
            .ok_or_else(|| RequestError::UnknownTool(body.tool.clone()))?;

        let target: TargetList = body.target.parse()?;
        let (zone, zone_plan) = place(&target, body.zone.as_deref(), policy.zones)?;
        let chunk_hosts = split(
            &target,
            body.chunk_hosts,
            spec,
            policy.targets,
            zone_plan.is_some(),
        )?;

        let intrusive = body.intrusive.unwrap_or(false);
        let ctx = ArgContext {
            server_allows_intrusive: policy.allow_intrusive,
            request_intrusive: intrusive,
        };
        let template = body.template.as_deref();
        let template_args = match template {
            Some(t) => spec.template_args(t, &ctx)?,
            None => ToolArgs::default(),
        };
        let raw_args = body.args.as_deref().unwrap_or("");
        let request_args = spec.args.parse_args(raw_args, &ctx)?;
        let args = ToolArgs::merge(&template_args, &request_args, &spec.args);
        let needs_raw = spec.args.needs_raw(&args);

        let timeout_sec = within("timeout_sec", body.timeout_sec, 1, spec.max_timeout_sec)?
            .unwrap_or(spec.default_timeout_sec);
        let priority = body.priority.unwrap_or(Priority::Normal);
        let correlation_id = match body.correlation_id.as_deref() {
            None => None,
            Some(c) => Some(
                CorrelationId::parse(c)
                    .map_err(|e| invalid("correlation_id", e.0, "[A-Za-z0-9._:-]{1,64}"))?,
            ),
        };
        let max_attempts = within("max_attempts", body.max_attempts, 1, 20)?
            .map(|n| n as u32)
            .unwrap_or(policy.default_max_attempts);
        let mut delay_ms = within("delay_sec", body.delay_sec, 0, 30 * 86_400)?.unwrap_or(0) * 1000;
        if let Some(at) = body.run_at.as_deref() {
            if delay_ms > 0 {
                return Err(invalid(
                    "run_at",
                    "cannot be combined with delay_sec",
                    "send one of run_at or delay_sec",
                ));
            }
            let when = humantime::parse_rfc3339(at).map_err(|_| {
                invalid(
                    "run_at",
                    format!("`{at}` is not an RFC 3339 UTC time"),
                    "e.g. 2026-11-22T03:00:00Z",
                )
            })?;
            let now = std::time::SystemTime::now();
            if now
                .duration_since(when)
                .is_ok_and(|behind| behind.as_secs() > RUN_AT_SKEW_SEC)
            {
                return Err(invalid(
                    "run_at",
                    format!("`{at}` is more than {RUN_AT_SKEW_SEC} s in the past"),
                    "a time from now to 30 days ahead (up to 5 minutes past is taken as now, \
                     for clock skew); leave run_at out to run at once",
                ));
            }
            let ahead = when.duration_since(now).unwrap_or_default().as_millis() as u64;
            if ahead > 30 * 86_400 * 1000 {
                return Err(invalid(
                    "run_at",
                    "is more than 30 days ahead",
                    "a time within the next 30 days",
                ));
            }
            delay_ms = ahead;
        }
        let queue_if_unavailable = body.queue_if_unavailable.unwrap_or(false);
        let engagement = match body.engagement.as_deref() {
            Some(e) => Some(EngagementId::parse(e).map_err(|e| {
                invalid(
                    "engagement",
                    e.0,
                    "an engagement id from GET /v1/engagements",
                )
            })?),
            None if policy.require_engagement => {
                return Err(invalid(
                    "engagement",
                    "is required: this server (SCANQ_REQUIRE_ENGAGEMENT) or your token \
                     (require_engagement) runs jobs only under an engagement",
                    "an engagement id from GET /v1/engagements",
                ));
            }
            None => None,
        };

        let mut canonical = serde_json::json!([
            tool.as_str(),
            target.to_string(),
            template,
            args.as_slice(),
            timeout_sec,
            priority.as_str(),
            max_attempts,
            intrusive,
        ]);
        // What the job needs is part of its identity like its arguments (appended only when
        // set, so the hashes of plain jobs stay what they were).
        if needs_raw && let Some(parts) = canonical.as_array_mut() {
            parts.push(serde_json::json!("needs:raw_sockets"));
        }
        if let (Some(n), Some(parts)) = (chunk_hosts, canonical.as_array_mut()) {
            parts.push(serde_json::json!(format!("chunks:{n}")));
        }
        // Under which permission (the same scan under another engagement is another job).
        if let (Some(e), Some(parts)) = (&engagement, canonical.as_array_mut()) {
            parts.push(serde_json::json!(format!("engagement:{e}")));
        }
        // Where it runs too (a zone map reloaded between two submits gives another job).
        if let Some(parts) = canonical.as_array_mut() {
            match &zone_plan {
                Some(plan) => parts.push(serde_json::json!(format!("zones:{plan}"))),
                None if !zone.is_default() => parts.push(serde_json::json!(format!("zone:{zone}"))),
                None => {}
            }
        }
        if chunk_hosts.is_some()
            && let Some(cid) = &correlation_id
            && cid.as_str().len() > MAX_PARENT_ID
        {
            return Err(invalid(
                "correlation_id",
                format!(
                    "a big scan's correlation ID may be at most {MAX_PARENT_ID} characters \
                     (its chunks are named <id>:<n>); this one has {}",
                    cid.as_str().len()
                ),
                format!("[A-Za-z0-9._:-]{{1,{MAX_PARENT_ID}}}"),
            ));
        }
        // 64 bits: it only tells apart two requests under the same tenant and correlation ID.
        let request_hash = hex::encode(&Sha256::digest(canonical.to_string().as_bytes())[..8]);
        Ok(Self {
            tool,
            zone,
            zone_plan,
            target,
            chunk_hosts,
            template: template.map(str::to_owned),
            args,
            needs_raw,
            timeout_sec,
            priority,
            correlation_id,
            max_attempts,
            intrusive,
            queue_if_unavailable,
            delay_ms,
            raw_args: raw_args.to_owned(),
            request_hash,
            schedule_id: None,
            engagement,
            needs_approval: policy.approval.requires(intrusive),
            submitted_by: None,
            waits_for_window: false,
            watch_until_ms: None,
        })
    }
}

/// Longest correlation ID of a big scan: its chunks are `<id>:<n>` (n < 65,536 … 16,777,216).
pub const MAX_PARENT_ID: usize = 56;

/// The zone a target runs in (DESIGN §13) and, for a target spanning zones, its zone plan
/// (the parent lives in the zone of its first piece). A requested `zone` must be the target's
/// only zone.
fn place(
    target: &TargetList,
    asked: Option<&str>,
    zones: &ZoneMap,
) -> Result<(Zone, Option<ZonePlan>), RequestError> {
    let mut parts = zones.split(target);
    let zone = parts.first().map(|(z, _)| z.clone()).unwrap_or_default();
    if let Some(asked) = asked {
        let asked = Zone::parse(asked)
            .map_err(|e| invalid("zone", e.0, "a zone name from GET /v1/zones, e.g. default"))?;
        if parts.len() > 1 {
            let names: Vec<String> = parts.iter().map(|(z, _)| z.to_string()).collect();
            return Err(invalid(
                "zone",
                format!(
                    "the target spans zones {} (SCANQ_ZONES), so it cannot run in zone {asked} alone",
                    names.join(", ")
                ),
                "leave zone out (a target spanning zones is split by zone), or send only the                  part of the target in that zone",
            ));
        }
        if asked != zone {
            return Err(invalid(
                "zone",
                format!("the target is in zone {zone} (SCANQ_ZONES), not {asked}"),
                format!("zone {zone}, or leave zone out"),
            ));
        }
    }
    if parts.len() == 1 {
        parts.clear();
    }
    Ok((zone, ZonePlan::new(parts)))
}

/// Whether `target` is a big scan (DESIGN §12) and, if so, its chunk size: every entry must lie
/// in scope; the whole may cover at most the scope's `max_target_hosts`; a target over the
/// tool's `max_hosts` (or over the request's `chunk_hosts`, which may only be smaller), or one
/// that `spans_zones`, is split.
fn split(
    target: &TargetList,
    chunk_hosts: Option<u64>,
    spec: &ToolSpec,
    scope: &TargetPolicy,
    spans_zones: bool,
) -> Result<Option<u64>, RequestError> {
    let per_job = u64::from(spec.max_hosts.unwrap_or(scope.max_hosts()));
    let most = u64::from(scope.max_target_hosts());
    for t in target.entries() {
        scope.check(t, Some(scope.max_target_hosts()))?;
    }
    let hosts = target.hosts();
    if hosts > most {
        return Err(invalid(
            "target",
            format!(
                "target covers {hosts} hosts; one submit may cover at most {most} \
                 (SCANQ_MAX_TARGET_HOSTS), scanned in chunks of at most {per_job} \
                 (the tool's max_hosts)"
            ),
            format!("split the target into submits of at most {most} hosts"),
        ));
    }
    let chunk = match chunk_hosts {
        None => per_job,
        Some(n) if (1..=per_job).contains(&n) => n,
        Some(n) => {
            return Err(invalid(
                "chunk_hosts",
                format!("{n} is not a whole number from 1 to {per_job} (the tool's max_hosts)"),
                format!("e.g. 256; at most {per_job}"),
            ));
        }
    };
    Ok((hosts > chunk || spans_zones).then_some(chunk))
}

/// The worker's second look at a job read from Redis: the target must still parse and lie in
/// scope (every entry of a list, and the list's hosts together within the tool's `max_hosts`),
/// and the template and request arguments must still pass the tool's policy. Returns the
/// target list and the arguments to run, rebuilt from the stored request rather than trusted
/// from storage.
pub fn recheck(
    spec: &ToolSpec,
    targets: &TargetPolicy,
    allow_intrusive: bool,
    stored: &StoredRequest<'_>,
) -> Result<(TargetList, ToolArgs), ValidationError> {
    // A chunk of a big scan carries a list; a one-entry list is a plain target. The API stores
    // the canonical text, so anything else (white space, a space-separated list, a name in
    // capitals) was not written by it and is refused rather than reinterpreted.
    let target: TargetList = stored.target.parse()?;
    if target.to_string() != stored.target {
        return Err(ValidationError::new(
            "target",
            format!(
                "the stored target {:?} is not in canonical form (`{target}`)",
                stored.target
            ),
            "a job's target is stored as the API writes it: canonical entries joined by `,`",
        ));
    }
    targets.check_list(&target, spec.max_hosts)?;
    let ctx = ArgContext {
        server_allows_intrusive: allow_intrusive,
        request_intrusive: stored.intrusive,
    };
    let template_args = match stored.template {
        Some(t) if !t.is_empty() => spec.template_args(t, &ctx)?,
        _ => ToolArgs::default(),
    };
    let request_args = spec.args.parse_args(stored.raw_args, &ctx)?;
    Ok((
        target,
        ToolArgs::merge(&template_args, &request_args, &spec.args),
    ))
}

#[cfg(test)]
mod recheck_tests;
#[cfg(test)]
mod zone_tests;

/// The parts of a stored job the worker re-checks.
#[derive(Debug, Clone, Copy)]
pub struct StoredRequest<'a> {
    /// One target, or a list (a chunk's `127.1.0.0/26,127.1.0.64/27`): [`TargetList`] text.
    pub target: &'a str,
    pub template: Option<&'a str>,
    pub raw_args: &'a str,
    pub intrusive: bool,
}

#[cfg(test)]
mod tests;
