//! Helpers of the approval tests (`tests/approvals*.rs`, DESIGN §14): a loopback webhook
//! receiver, a bearer-token client, the in-process tools' configuration, the audit lines of a
//! JSON log.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use scanq::catalog::Catalog;
use scanq::config::Config;
use serde_json::Value;

use crate::{Fixture, INPROCESS_TOOLS, RedisServer, http, test_config};

/// What the webhook receiver accepted: (event, body).
pub type Seen = Arc<Mutex<Vec<(String, Value)>>>;

async fn hook(State(seen): State<Seen>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    let event = headers
        .get("scanq-event")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let doc: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    seen.lock().unwrap().push((event, doc));
    StatusCode::NO_CONTENT
}

/// A loopback webhook receiver; returns its URL.
pub async fn receiver(seen: Seen) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/hook", post(hook))
        .with_state(seen);
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, task)
}

/// A bearer-token client of one API (no token: open mode).
pub struct As<'a> {
    pub base: &'a str,
    pub token: Option<&'a str>,
}

impl As<'_> {
    pub async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let req = match self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
    pub async fn post(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        let req = http().post(format!("{}{path}", self.base));
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        self.send(req).await
    }
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(http().get(format!("{}{path}", self.base))).await
    }
    pub async fn submit(&self, body: Value) -> Value {
        let (status, doc) = self.post("/v1/jobs", Some(body)).await;
        assert_eq!(status, 202, "{doc}");
        doc
    }
}

pub fn config(redis: &RedisServer, name: &str, fx: &Fixture) -> (Config, Catalog) {
    let mut cfg = test_config(redis, name);
    cfg.catalog = Some(fx.catalog(INPROCESS_TOOLS));
    cfg.allow_intrusive = true;
    let catalog = Catalog::load(cfg.catalog.as_deref()).unwrap();
    (cfg, catalog)
}

/// The audit lines of `action` in a JSON log.
pub fn audits(log: &std::path::Path, action: &str) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| {
            if v["fields"].is_object() {
                v["fields"].clone()
            } else {
                v
            }
        })
        .filter(|v| v["audit"] == action)
        .collect()
}
