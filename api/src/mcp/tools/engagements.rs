//! The engagement tools (DESIGN §14): `engagement_list` and `engagement_get`, read-only, through
//! the same service as `GET /v1/engagements` (`routes::engagements::service`), so an agent sees
//! which targets, tools, templates and windows it may use before it starts a scan.

use scanq::request::fields;
use scanq::validate::ValidationError;
use serde_json::{Value, json};

use super::args;
use super::failure::Outcome;
use crate::auth::Scope;
use crate::error::AppError;
use crate::mcp::{Ctx, reply};
use crate::routes::engagements::service;

const ID_HINT: &str = "an engagement id from engagement_list ([A-Za-z0-9._-], 1-64 characters)";

/// One line per engagement: id, state, targets, tools, approval.
fn line(e: &crate::engagements::EngagementDocument) -> String {
    let tools = if e.tools.is_empty() {
        "any tool".to_owned()
    } else {
        e.tools.join(", ")
    };
    format!(
        "{} ({}) — targets {}; {tools}; approval {}{}",
        e.id,
        serde_json::to_value(e.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        e.targets.join(", "),
        e.approval,
        e.expires_at
            .as_deref()
            .map(|t| format!("; expires {t}"))
            .unwrap_or_default(),
    )
}

/// `engagement_list`: the caller's engagements.
pub(super) async fn list(ctx: &mut Ctx, params: &Value) -> Outcome {
    ctx.require(Scope::Read)?;
    args::arguments(params, &[])?;
    let all = service(&ctx.state)
        .list(&ctx.caller.tenant)
        .await
        .map_err(AppError::from)?;
    let mut text = format!("{} engagement(s):\n", all.engagements.len());
    for e in &all.engagements {
        text.push_str(&line(e));
        text.push('\n');
    }
    Ok(reply::tool_result(json!(all), text, false))
}

/// `engagement_get`: one of the caller's engagements.
pub(super) async fn get(ctx: &mut Ctx, params: &Value) -> Outcome {
    ctx.require(Scope::Read)?;
    let args = args::arguments(params, &["id"])?;
    let id = fields::string(args, "id", ID_HINT)?
        .ok_or_else(|| ValidationError::new("id", "is required", ID_HINT))?;
    let doc = service(&ctx.state)
        .get(&ctx.caller.tenant, id)
        .await
        .map_err(AppError::from)?;
    let text = line(&doc);
    Ok(reply::tool_result(json!({"engagement": doc}), text, false))
}

/// The definitions of these tools for `tools/list`.
pub(super) fn definitions(annotations: impl Fn(&str, bool) -> Value) -> Vec<Value> {
    let doc = json!({"type": "object", "description": "an engagement: targets, denied_targets, tools, templates, timezone, windows, blackouts, starts_at, expires_at, approval, stop_at_window_end, state (active, not_started, expired)"});
    vec![
        json!({
            "name": "engagement_list",
            "title": "List engagements",
            "description": "Your engagements: the written permissions to test that a scan may name (its `engagement` argument) — which targets, tools and templates, in which windows, until when, and whether a person must approve.",
            "inputSchema": {"type": "object", "properties": {}, "additionalProperties": false},
            "outputSchema": {"type": "object", "properties": {
                "engagements": {"type": "array", "items": doc},
            }, "required": ["engagements"]},
            "annotations": annotations("List engagements", true),
        }),
        json!({
            "name": "engagement_get",
            "title": "Read an engagement",
            "description": "One of your engagements by id: what a scan naming it may do.",
            "inputSchema": {"type": "object", "properties": {"id": {"type": "string", "description": ID_HINT}}, "required": ["id"], "additionalProperties": false},
            "outputSchema": {"type": "object", "properties": {"engagement": doc}, "required": ["engagement"]},
            "annotations": annotations("Read an engagement", true),
        }),
    ]
}
