//! Authentication and authorization (DESIGN §2, §8).
//!
//! | module | owns |
//! |---|---|
//! | [`tokens`] | the tokens file: entries, scopes, tenant caps, hashing and lookup |
//!
//! With a tokens file (`SCANQ_API_TOKENS_FILE`) every `/v1` and `/mcp` request needs
//! `Authorization: Bearer <token>`; the file is read again on SIGHUP ([`Auth::reload`]), and a
//! file that fails to parse leaves the previous tokens in force. Without one the API is *open*:
//! everyone is the `default` tenant with every scope, which `run` allows only on loopback.

pub mod tokens;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use scanq::config::Config;
use scanq::domain::TenantId;
use scanq::request::CallerScope;
use scanq::scripts::{Rate, TenantCaps};

pub use tokens::{Scope, Scopes, Token, TokenSet, entry_toml, generate_token, hash_token};

pub use scanq::tokens::new_token;

/// The tokens in force, swapped whole on reload.
#[derive(Debug)]
pub struct Auth {
    path: Option<PathBuf>,
    set: RwLock<Arc<TokenSet>>,
    /// Counts successful reloads, so long-lived streams can re-check their token at once.
    reloads: tokio::sync::watch::Sender<u64>,
}

impl Auth {
    /// Open mode: no tokens file.
    pub fn open() -> Self {
        Self {
            path: None,
            set: RwLock::new(Arc::new(TokenSet::default())),
            reloads: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Loads the tokens file, or open mode when there is none.
    pub fn load(path: Option<&Path>) -> Result<Self, String> {
        let Some(path) = path else {
            return Ok(Self::open());
        };
        let set = TokenSet::load(path)?;
        if set.is_empty() {
            tracing::warn!(path = %path.display(), "Tokens file lists no token; every /v1 request will get 401");
        }
        Ok(Self {
            path: Some(path.to_owned()),
            set: RwLock::new(Arc::new(set)),
            reloads: tokio::sync::watch::Sender::new(0),
        })
    }

    /// Changes after every successful reload of the tokens file.
    pub fn reloads(&self) -> tokio::sync::watch::Receiver<u64> {
        self.reloads.subscribe()
    }

    /// Whether a caller authenticated by `token` (none in open mode) may still use `scope`: the
    /// token must still be in the file, for its tenant, with that scope (a reload may have
    /// revoked it).
    pub fn still_grants(&self, token: Option<&Token>, scope: Scope) -> bool {
        match token {
            None => self.is_open(),
            Some(token) => self.current().still_grants(token, scope),
        }
    }

    /// Whether `token` (the one that opened a long-lived stream) is still in the tokens file,
    /// for the same tenant, whatever its scopes: what an MCP session's stream needs.
    pub fn still_valid(&self, token: Option<&Token>) -> bool {
        match token {
            None => self.is_open(),
            Some(token) => token
                .scopes
                .iter()
                .any(|scope| self.current().still_grants(token, scope)),
        }
    }

    pub fn is_open(&self) -> bool {
        self.path.is_none()
    }

    /// The tokens in force now.
    pub fn current(&self) -> Arc<TokenSet> {
        self.set.read().expect("tokens lock").clone()
    }

    /// Reads the file again; on error the previous tokens stay in force. Returns how many
    /// tokens are in force.
    pub fn reload(&self) -> Result<usize, String> {
        let Some(path) = &self.path else {
            return Ok(0);
        };
        let set = TokenSet::load(path)?;
        let n = set.len();
        *self.set.write().expect("tokens lock") = Arc::new(set);
        self.reloads.send_modify(|n| *n += 1);
        Ok(n)
    }

    /// Reloads and logs the outcome (the SIGHUP handler).
    pub fn reload_logged(&self) {
        match self.reload() {
            Ok(_) if self.is_open() => {
                tracing::info!("SIGHUP: no tokens file configured; nothing to reload")
            }
            Ok(tokens) => tracing::info!(tokens, "Tokens file reloaded"),
            Err(error) => {
                tracing::error!(%error, "Tokens file reload failed; the previous tokens stay in force")
            }
        }
    }

    /// The request rate of a token: its own, else the configured default; None = unlimited.
    pub fn rate_for(&self, token: &Token, cfg: &Config) -> Option<Rate> {
        let rate = token.rate.unwrap_or(Rate {
            per_sec: cfg.rate_limit_per_sec,
            burst: cfg.rate_limit_burst,
        });
        (rate.per_sec > 0.0).then_some(rate)
    }

    /// The caps of every tenant the tokens file names (none in open mode), to publish for
    /// scheduled runs (`Queue::publish_caps`).
    pub fn all_caps(&self, cfg: &Config) -> Vec<(TenantId, TenantCaps)> {
        self.current()
            .tenants()
            .into_iter()
            .filter_map(|t| self.caps_for(&t, cfg).map(|c| (t, c)))
            .collect()
    }

    /// Each tenant's scope from the file (`allowed_targets` text, `require_engagement`), to
    /// publish for scheduled runs (`Queue::publish_scopes`).
    pub fn all_scopes(&self) -> Vec<(TenantId, Option<String>, bool)> {
        let set = self.current();
        set.tenants()
            .into_iter()
            .map(|t| {
                let entry = set.tenant(&t);
                let allowed =
                    entry.and_then(|e| e.allowed_targets.as_ref().map(|(s, _)| s.clone()));
                let require = entry.is_some_and(|e| e.require_engagement);
                (t, allowed, require)
            })
            .collect()
    }

    /// The scope of a caller (DESIGN §14): its tenant's and its token's `allowed_targets` and
    /// `require_engagement`; nothing narrowed in open mode.
    pub fn caller_scope(&self, tenant: &TenantId, token: Option<&Token>) -> CallerScope {
        if self.is_open() {
            return CallerScope::default();
        }
        self.current().caller_scope(tenant, token)
    }

    /// The caps of a tenant, or None in open mode (one tenant: only the per-tool queue length
    /// applies).
    pub fn caps_for(&self, tenant: &TenantId, cfg: &Config) -> Option<TenantCaps> {
        if self.is_open() {
            return None;
        }
        let limits = self.current().tenant_limits(tenant);
        Some(TenantCaps {
            max_queued: limits.max_queued.unwrap_or(cfg.tenant_max_queued),
            max_running: limits.max_running.unwrap_or(cfg.tenant_max_running),
        })
    }
}

/// Resolves at the next reload of the tokens file (never, if reloads can no longer happen): a
/// long-lived stream waits on it to re-check its token at once.
pub async fn reloaded(reloads: &mut tokio::sync::watch::Receiver<u64>) {
    if reloads.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}
