//! `GET /v1/whoami`: the caller as the server sees it — token name, tenant, admin flag and
//! scopes — so a client (the dashboard) offers only the actions the token may use.

use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Scope;
use crate::extract::Caller;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/whoami", get(whoami))
}

/// Who is calling.
#[derive(Debug, Serialize, ToSchema)]
pub struct Whoami {
    /// The token's name (`open` when the API runs without tokens).
    name: String,
    tenant: String,
    admin: bool,
    /// Scopes held (admin holds every one).
    scopes: Vec<&'static str>,
}

/// The caller: token name, tenant, admin flag and scopes.
#[utoipa::path(get, path = "/v1/whoami", operation_id = "whoami", tag = "meta",
    responses((status = 200, description = "The caller", body = Whoami)))]
pub(crate) async fn whoami(caller: Caller) -> Json<Whoami> {
    Json(Whoami {
        scopes: Scope::ALL
            .into_iter()
            .filter(|s| caller.can(*s))
            .map(Scope::as_str)
            .collect(),
        name: caller.name,
        tenant: caller.tenant.to_string(),
        admin: caller.admin,
    })
}
