//! `GET /openapi.json`: the OpenAPI 3.1 document of the REST API, generated from the handlers'
//! own types and `#[utoipa::path]` annotations (kept beside each handler). What depends on the
//! running server is filled in per request from its live state: the catalog's tool names and
//! templates, the largest `timeout_sec` a tool allows, the zones of `?zone=`, and the refusals every token-guarded
//! route can give (401, 403, 429, 503), and the browser guard's 403 and 415 on every route.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::ProblemBody;
use crate::routes;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "scanq",
        description = "Distributed job queue for security tools. Every refusal — body, path, \
                       query, auth — is an RFC 9457 problem document (`application/problem+json`)."
    ),
    paths(
        routes::jobs::submit,
        routes::jobs::list,
        routes::jobs::read,
        routes::jobs::cancel,
        routes::jobs::retry,
        routes::jobs::chunks,
        routes::approvals::approve,
        routes::approvals::reject,
        routes::exports::result_xml,
        routes::exports::result_csv,
        routes::exports::diff,
        routes::schedules::list,
        routes::schedules::read,
        routes::schedules::upsert,
        routes::schedules::remove,
        routes::schedules::pause,
        routes::schedules::resume,
        routes::schedules::trigger,
        routes::schedules::runs,
        routes::webhooks::list,
        routes::webhooks::create,
        routes::webhooks::read,
        routes::webhooks::replace,
        routes::webhooks::remove,
        routes::engagements::list,
        routes::engagements::read,
        routes::engagements::upsert,
        routes::engagements::remove,
        routes::events::events,
        routes::tools::list,
        routes::breakers::list,
        routes::breakers::one,
        routes::breakers::force,
        routes::breakers::switch,
        routes::workers::list,
        routes::zones::list,
        routes::stats::stats,
        routes::whoami::whoami,
        routes::health::healthz,
        routes::health::readyz,
        routes::health::health,
        routes::health::metrics,
        openapi_json,
    ),
    components(schemas(ProblemBody)),
    modifiers(&Bearer),
    security(("bearer" = []))
)]
struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Routes that need no token; `/metrics` takes one optionally (open to loopback peers when
/// the server's `metrics_open` is set).
const OPEN: &[&str] = &["/healthz", "/readyz", "/health", "/openapi.json"];

/// The document for this server: the generated one plus what its live state decides.
pub fn document(state: &AppState) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|_| json!({}));
    let live = state.live();
    let catalog = &live.catalog;
    let tools: Vec<String> = catalog.names();
    let templates: std::collections::BTreeSet<String> = catalog
        .tools()
        .flat_map(|(_, spec)| spec.templates.keys().cloned())
        .collect();
    // The zones a `?zone=` may name: `default` and the map's (DESIGN §13).
    let zones: std::collections::BTreeSet<String> = std::iter::once("default".to_owned())
        .chain(live.zones.zones().iter().map(|z| z.to_string()))
        .collect();
    let max_timeout = catalog
        .tools()
        .map(|(_, spec)| spec.max_timeout_sec)
        .max()
        .unwrap_or(1);
    if let Some(submit) = doc.pointer_mut("/components/schemas/Submit/properties") {
        submit["tool"]["enum"] = json!(tools);
        submit["template"]["enum"] =
            json!(templates.iter().map(Some).chain([None]).collect::<Vec<_>>());
        submit["timeout_sec"]["maximum"] = json!(max_timeout);
    }
    // Links let a client (and schemathesis's stateful phase) follow a submit to the job.
    let by_id = |op: &str| json!({"operationId": op, "parameters": {"id": "$response.body#/correlation_id"}});
    if let Some(accepted) = doc.pointer_mut("/paths/~1v1~1jobs/post/responses/202") {
        accepted["links"] = json!({
            "GetJob": by_id("get_job"),
            "JobEvents": by_id("job_events"),
            "RetryJob": by_id("retry_job"),
        });
    }
    if let Some(Value::Object(paths)) = doc.get_mut("paths") {
        for (path, item) in paths.iter_mut() {
            let Value::Object(ops) = item else { continue };
            for op in ops.values_mut() {
                let params = op.get_mut("parameters").and_then(Value::as_array_mut);
                for p in params.into_iter().flatten() {
                    if p["in"] == "path" && p["name"] == "tool" {
                        p["schema"] = json!({"type": "string", "enum": tools});
                    }
                    if p["in"] == "query" && p["name"] == "zone" {
                        p["schema"] = json!({"type": "string", "enum": zones});
                    }
                }
                guard(path, op);
            }
        }
    }
    doc
}

/// Marks a route's security and adds the refusals of the auth layer and the store.
fn guard(path: &str, op: &mut Value) {
    let problem = |what: &str| {
        json!({"description": what, "content": {"application/problem+json": {
            "schema": {"$ref": "#/components/schemas/Problem"}}}})
    };
    // The browser guard (`origin`) answers every route.
    op["responses"]["403"] = problem("A browser request from a disallowed `Origin` or `Host`");
    if op.get("requestBody").is_some() {
        op["responses"]["415"] = problem("The body was not sent as `application/json`");
    }
    if OPEN.contains(&path) {
        op["security"] = json!([]);
        return;
    }
    if path == "/metrics" {
        op["security"] = json!([{}, {"bearer": []}]);
    }
    let responses = &mut op["responses"];
    responses["401"] = problem("Missing or unknown bearer token (`WWW-Authenticate: Bearer`)");
    responses["403"] = problem(
        "The token lacks the scope, or names another tenant; or a disallowed `Origin`/`Host`",
    );
    responses["429"] = problem("The token's request rate or the tenant's cap (`Retry-After`)");
    if responses.get("503").is_none() {
        responses["503"] = problem("The queue store is unreachable (`Retry-After`)");
    }
    if responses.get("422").is_none() && path.starts_with("/v1/") {
        responses["422"] = problem("A path or query parameter was refused (`field`, `hint`)");
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
pub async fn openapi_json(State(state): State<AppState>) -> Json<Value> {
    Json(document(&state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_submit_schema_names_exactly_the_fields_the_server_reads() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let props = doc
            .pointer("/components/schemas/Submit/properties")
            .and_then(Value::as_object)
            .expect("Submit schema");
        let mut documented: Vec<&str> = props.keys().map(String::as_str).collect();
        let mut read: Vec<&str> = scanq::request::FIELDS.to_vec();
        documented.sort_unstable();
        read.sort_unstable();
        assert_eq!(documented, read);
        let required = doc.pointer("/components/schemas/Submit/required").unwrap();
        assert_eq!(required, &json!(["tool", "target"]));
    }
}
