//! MCP sessions of 2025-era clients (`Mcp-Session-Id`), kept in Redis so that any API instance
//! answers any request of a session. A session is one string key holding its tenant and the
//! negotiated protocol version, with an idle TTL that each request renews. The id is 128 random
//! bits (UUIDv4, hex): opaque to clients, unguessable, and meaningless without the key.

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use super::{Queue, QueueError};
use crate::domain::TenantId;

/// What a session remembers between requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpSession {
    pub tenant: TenantId,
    pub protocol_version: String,
}

/// Session ids are 32 lowercase hex digits; anything else is not looked up.
fn plausible(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Queue {
    /// Creates a session and returns its id.
    pub async fn session_create(
        &self,
        session: &McpSession,
        ttl_sec: u64,
    ) -> Result<String, QueueError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let value = serde_json::to_string(session).expect("serializable");
        let mut con = self.connection().await?;
        let _: () = con
            .set_ex(self.keys().mcp_session(&id), value, ttl_sec)
            .await?;
        Ok(id)
    }

    /// The session, its idle TTL renewed; `None` when unknown, expired or deleted.
    pub async fn session_get(
        &self,
        id: &str,
        ttl_sec: u64,
    ) -> Result<Option<McpSession>, QueueError> {
        if !plausible(id) {
            return Ok(None);
        }
        let mut con = self.connection().await?;
        let value: Option<String> = redis::cmd("GETEX")
            .arg(self.keys().mcp_session(id))
            .arg("EX")
            .arg(ttl_sec)
            .query_async(&mut con)
            .await?;
        Ok(value.and_then(|v| serde_json::from_str(&v).ok()))
    }

    /// Ends a session; false when there was none.
    pub async fn session_delete(&self, id: &str) -> Result<bool, QueueError> {
        if !plausible(id) {
            return Ok(false);
        }
        let mut con = self.connection().await?;
        let n: u64 = con.del(self.keys().mcp_session(id)).await?;
        Ok(n > 0)
    }
}
