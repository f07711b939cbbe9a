//! The `PUT /v1/schedules/{id}` body (and MCP's `schedule_upsert` arguments): one typed
//! [`ScheduleBody`], read with its field path on every refusal, turned into a [`ScheduleDef`]
//! by `TryFrom` (the bounds) and admitted by [`ScheduleDef::admit`] (the policy in force: the
//! template as a submit, the minimum interval for `every_sec` and `cron` alike).

use serde::Deserialize;
use serde_json::{Map, Value};

use super::service::MAX_BIG_SCAN_ID;
use super::{Overlap, ScheduleDef};
use crate::request::{JobSpec, Policy, RequestError};
use crate::validate::ValidationError;

/// How many of a cron's next fires the minimum-interval check measures.
const CRON_GAP_FIRES: usize = 500;

/// A schedule: the job template (the fields of a submit, validated exactly as one) plus the
/// schedule's own fields. docs/schedules.md has the bounds.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    /// The tool (template field, required).
    pub tool: Option<String>,
    /// What to scan (template field, required).
    pub target: Option<String>,
    /// A catalog argument preset (template field).
    pub template: Option<String>,
    /// Extra flags (template field).
    pub args: Option<String>,
    /// Template field, as for a submit.
    pub timeout_sec: Option<u64>,
    /// `high`, `normal` or `low` (template field).
    pub priority: Option<String>,
    /// Template field, as for a submit.
    pub max_attempts: Option<u64>,
    /// Template field, as for a submit.
    pub intrusive: Option<bool>,
    /// Template field, as for a submit.
    pub queue_if_unavailable: Option<bool>,
    /// Template field, as for a submit: each run waits this long after its slot.
    pub delay_sec: Option<u64>,
    /// Template field, as for a submit: the hosts per chunk of a big scan (DESIGN §12); each
    /// run is then one parent job (docs/big-scans-programs.md).
    pub chunk_hosts: Option<u64>,
    /// Template field, as for a submit: the zone the target must be in (DESIGN §13).
    pub zone: Option<String>,
    /// Template field, as for a submit: the engagement each run is admitted under (DESIGN §14;
    /// an unknown one is refused; once it expires or is deleted the schedule is parked).
    pub engagement: Option<String>,
    /// 5 fields: minute hour day-of-month month day-of-week. Its fires may come no closer
    /// together than `SCANQ_SCHEDULE_MIN_EVERY_SEC`. Give `cron` or `every_sec`.
    #[schema(max_length = 128, example = "0 3 * * 1-5")]
    pub cron: Option<String>,
    /// IANA zone for `cron` (default UTC).
    #[schema(max_length = 64, example = "Europe/Paris")]
    pub timezone: Option<String>,
    /// Seconds between runs: `SCANQ_SCHEDULE_MIN_EVERY_SEC`..=31622400 (366 days).
    #[schema(minimum = 1, maximum = 31_622_400)]
    pub every_sec: Option<u64>,
    /// A fixed per-slot delay of up to this many seconds (0..=3600, default 0).
    #[schema(minimum = 0, maximum = 3600)]
    pub jitter_sec: Option<u64>,
    /// No slot before this RFC 3339 time (2000-01-01..2200-01-01).
    #[schema(format = DateTime)]
    pub start_at: Option<String>,
    /// No slot after this RFC 3339 time (2000-01-01..2200-01-01, after `start_at`).
    #[schema(format = DateTime)]
    pub end_at: Option<String>,
    /// When the previous run is still busy (default `skip`).
    #[schema(inline)]
    pub overlap: Option<Overlap>,
    /// After downtime, fire at most one missed slot younger than this (0..=31622400).
    #[schema(minimum = 0, maximum = 31_622_400)]
    pub catchup_sec: Option<u64>,
}

/// The template's fields: those of a submit a schedule may set.
pub const TEMPLATE_FIELDS: &[&str] = &[
    "tool",
    "target",
    "template",
    "args",
    "timeout_sec",
    "priority",
    "max_attempts",
    "intrusive",
    "queue_if_unavailable",
    "delay_sec",
    "chunk_hosts",
    "zone",
    "engagement",
];

/// The schedule's own fields.
pub const OWN_FIELDS: &[&str] = &[
    "cron",
    "timezone",
    "every_sec",
    "jitter_sec",
    "start_at",
    "end_at",
    "overlap",
    "catchup_sec",
];

fn invalid(field: &str, message: impl Into<String>, hint: impl Into<String>) -> RequestError {
    RequestError::Invalid(ValidationError::new(field, message, hint))
}

impl ScheduleBody {
    /// Reads a body; a refusal names the field (`every_sec`, or `body` for the whole).
    pub fn from_json(body: &Value) -> Result<Self, RequestError> {
        let Some(obj) = body.as_object() else {
            return Err(invalid(
                "body",
                "must be a JSON object",
                "{\"tool\":\"nmap\",\"target\":\"127.0.0.1\",\"every_sec\":3600}",
            ));
        };
        if let Some(unknown) = obj
            .keys()
            .find(|k| !TEMPLATE_FIELDS.contains(&k.as_str()) && !OWN_FIELDS.contains(&k.as_str()))
        {
            return Err(match unknown.as_str() {
                "correlation_id" => invalid(
                    "correlation_id",
                    "is set by the schedule for each run",
                    "leave correlation_id out of a schedule",
                ),
                "run_at" => invalid(
                    "run_at",
                    "does not apply to a schedule",
                    "use start_at, or delay_sec for a delay after each slot",
                ),
                _ => invalid(
                    &clip(unknown),
                    format!("`{}` is not a schedule field", clip(unknown)),
                    format!(
                        "accepted fields: {}, {}",
                        TEMPLATE_FIELDS.join(", "),
                        OWN_FIELDS.join(", ")
                    ),
                ),
            });
        }
        serde_path_to_error::deserialize(body).map_err(|e| {
            let field = match e.path().to_string() {
                p if p == "." => "body".to_owned(),
                p => p,
            };
            let hint = hint_for(&field);
            // serde quotes the value it refused: at most a short piece of it.
            let message: String = e.inner().to_string().chars().take(200).collect();
            invalid(&clip(&field), message, hint)
        })
    }

    /// The job template: the submit fields that were given.
    fn template(&self) -> Value {
        let mut t = Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                t.insert(k.to_owned(), v);
            }
        };
        put("tool", self.tool.clone().map(Value::from));
        put("target", self.target.clone().map(Value::from));
        put("template", self.template.clone().map(Value::from));
        put("args", self.args.clone().map(Value::from));
        put("timeout_sec", self.timeout_sec.map(Value::from));
        put("priority", self.priority.clone().map(Value::from));
        put("max_attempts", self.max_attempts.map(Value::from));
        put("intrusive", self.intrusive.map(Value::from));
        put(
            "queue_if_unavailable",
            self.queue_if_unavailable.map(Value::from),
        );
        put("delay_sec", self.delay_sec.map(Value::from));
        put("chunk_hosts", self.chunk_hosts.map(Value::from));
        put("zone", self.zone.clone().map(Value::from));
        put("engagement", self.engagement.clone().map(Value::from));
        Value::Object(t)
    }
}

/// At most 64 characters of a client's text, for a message (or a field name).
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

fn hint_for(field: &str) -> String {
    match field {
        "every_sec" => "seconds between runs, e.g. 3600 (at most 31622400)".into(),
        "catchup_sec" => "seconds, 0..=31622400".into(),
        "jitter_sec" => "0..=3600".into(),
        "cron" => "a 5-field cron expression: */15 * * * *".into(),
        "timezone" => "an IANA zone such as Europe/Paris".into(),
        "start_at" | "end_at" => "an RFC 3339 time: 2026-11-29T10:00:00Z".into(),
        "overlap" => format!("one of: {}", Overlap::ACCEPTED.trim_end()),
        "body" => "a JSON object: the submit fields plus cron or every_sec".into(),
        _ => "see the schedule body in GET /openapi.json".into(),
    }
}

impl TryFrom<ScheduleBody> for ScheduleDef {
    type Error = ValidationError;

    /// The schedule's bounds ([`ScheduleDef::check`]).
    fn try_from(b: ScheduleBody) -> Result<Self, ValidationError> {
        let def = ScheduleDef {
            template: b.template(),
            cron: b.cron,
            timezone: b.timezone,
            every_sec: b.every_sec,
            jitter_sec: b.jitter_sec.unwrap_or(0),
            start_at: b.start_at,
            end_at: b.end_at,
            overlap: b.overlap.unwrap_or(Overlap::Skip),
            catchup_sec: b.catchup_sec.unwrap_or(0),
        };
        def.check()?;
        Ok(def)
    }
}

impl ScheduleDef {
    /// Whether the fleet takes this schedule now: its template passes as a submit (same
    /// refusals) and its runs come no closer together than `min_every_sec`, for `every_sec`
    /// and `cron` alike (the smallest gap among a cron's next fires after `now_ms`). A template
    /// that is a big scan needs a schedule `id` of at most [`MAX_BIG_SCAN_ID`] characters.
    pub fn admit(
        &self,
        id: &str,
        policy: &Policy<'_>,
        min_every_sec: u64,
        now_ms: u64,
    ) -> Result<(), RequestError> {
        let spec = JobSpec::from_json(&self.template, policy)?;
        if spec.chunk_hosts.is_some() && id.len() > MAX_BIG_SCAN_ID {
            // Its runs are parents whose chunks are `<run>:<n>`: a longer id would only be
            // refused at every fire.
            return Err(invalid(
                "id",
                format!(
                    "is {} characters long; a schedule whose runs are big scans (the target \
                     is split into chunks) may have at most {MAX_BIG_SCAN_ID}, so that its run \
                     IDs (<id>.<slot>, <id>.t<ms>) leave room for chunk numbers",
                    id.len()
                ),
                format!("[A-Za-z0-9._:-]{{1,{MAX_BIG_SCAN_ID}}}"),
            ));
        }
        if let Some(n) = self.every_sec
            && n < min_every_sec
        {
            return Err(invalid(
                "every_sec",
                format!("{n} is below the minimum of {min_every_sec}"),
                format!("at least {min_every_sec} (SCANQ_SCHEDULE_MIN_EVERY_SEC)"),
            ));
        }
        if let Some(gap) = self.cron_min_gap_sec(now_ms, CRON_GAP_FIRES)
            && gap < min_every_sec
        {
            return Err(invalid(
                "cron",
                format!("fires {gap} s apart at times; the minimum interval is {min_every_sec} s"),
                format!(
                    "a cron whose fires are at least {min_every_sec} s apart \
                     (SCANQ_SCHEDULE_MIN_EVERY_SEC), e.g. 0 * * * *"
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(body: Value) -> String {
        let e = ScheduleBody::from_json(&body)
            .map_err(|e| match e {
                RequestError::Invalid(v) => v,
                RequestError::UnknownTool(t) => ValidationError::new("tool", t, ""),
            })
            .and_then(ScheduleDef::try_from)
            .expect_err("refused");
        e.field
    }

    #[test]
    fn every_refusal_names_its_field() {
        let t = |extra: Value| {
            let mut b = json!({"tool":"noop","target":"10.0.0.5"});
            for (k, v) in extra.as_object().unwrap() {
                b[k] = v.clone();
            }
            b
        };
        assert_eq!(field(t(json!({"every_sec": 1u64 << 61}))), "every_sec");
        assert_eq!(
            field(t(json!({"every_sec": (1u64 << 61) + 1}))),
            "every_sec"
        );
        assert_eq!(field(t(json!({"every_sec": -1}))), "every_sec");
        assert_eq!(field(t(json!({"every_sec": 1e308}))), "every_sec");
        assert_eq!(field(t(json!({"every_sec": "3600"}))), "every_sec");
        assert_eq!(
            field(t(json!({"every_sec": 60, "catchup_sec": u64::MAX}))),
            "catchup_sec"
        );
        assert_eq!(
            field(t(json!({"every_sec": 60, "jitter_sec": 3601}))),
            "jitter_sec"
        );
        assert_eq!(
            field(t(
                json!({"every_sec": 60, "start_at": "1970-01-01T00:00:00Z"})
            )),
            "start_at"
        );
        assert_eq!(
            field(t(
                json!({"every_sec": 60, "end_at": "9999-12-31T23:59:59Z"})
            )),
            "end_at"
        );
        assert_eq!(field(t(json!({"every_sec": 60, "bogus": 1}))), "bogus");
        assert_eq!(field(t(json!({"every_sec": 60, "overlap": 3}))), "overlap");
        assert_eq!(field(t(json!({"cron": "0 0 31 2 *"}))), "cron");
        assert_eq!(field(json!([1, 2])), "body");
    }
}
