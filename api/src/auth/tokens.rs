//! The tokens file (`SCANQ_API_TOKENS_FILE`, TOML): who may call, for which tenant, with which
//! scopes and limits. Only the SHA-256 of each token is stored; a presented token is hashed and
//! compared with every entry in constant time.
//!
//! ```toml
//! [[tokens]]
//! name = "ci"                  # shown in logs and audit lines; unique
//! tenant = "blue"              # every job it submits belongs to this tenant
//! scopes = ["submit", "read"]  # submit, read, cancel, admin, approve (admin implies all, any tenant)
//! sha256 = "9f86d0…"           # from `scanq-api token new`
//! rate_per_sec = 5             # optional: this token's request rate (default: config)
//! burst = 10                   # optional: its burst
//! allowed_targets = ["127.0.1.0/25"]  # optional: narrows its tenant's scope further
//! require_engagement = true    # optional: its jobs must name an engagement
//!
//! [tenants.blue]               # optional caps and scope for a tenant (default: config)
//! max_queued = 100
//! max_running = 10
//! allowed_targets = ["127.0.1.0/24", ".blue.lab"]  # inside the server's scope (DESIGN §14)
//! require_engagement = false
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use scanq::domain::TenantId;
use scanq::request::CallerScope;
use scanq::scripts::Rate;
pub use scanq::tokens::{Scope, Scopes, check_name, entry_toml, generate_token, hash_token};
use scanq::validate::Narrowing;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A checked token entry.
#[derive(Clone)]
pub struct Token {
    pub name: String,
    pub tenant: TenantId,
    pub scopes: Scopes,
    pub rate: Option<Rate>,
    /// The token's own `allowed_targets`, narrowing its tenant's scope further.
    pub narrowing: Option<Arc<Narrowing>>,
    /// The token's jobs must name an engagement.
    pub require_engagement: bool,
    digest: [u8; 32],
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("name", &self.name)
            .field("tenant", &self.tenant)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// Caps of one tenant from the file; unset values fall back to the configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantLimits {
    pub max_queued: Option<u64>,
    pub max_running: Option<u64>,
}

/// A `[tenants.<name>]` entry as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    max_queued: Option<u64>,
    max_running: Option<u64>,
    allowed_targets: Option<Vec<String>>,
    #[serde(default)]
    require_engagement: bool,
}

/// What the file says of one tenant: caps, and the narrowing of the server's scope.
#[derive(Debug, Clone, Default)]
pub struct TenantEntry {
    pub limits: TenantLimits,
    /// `allowed_targets`, as written (published for the scheduler) and parsed.
    pub allowed_targets: Option<(String, Arc<Narrowing>)>,
    pub require_engagement: bool,
}

/// Every token of one version of the file.
#[derive(Debug, Default)]
pub struct TokenSet {
    tokens: Vec<Token>,
    tenants: HashMap<TenantId, TenantEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    tokens: Vec<RawToken>,
    #[serde(default)]
    tenants: BTreeMap<String, RawTenant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: String,
    tenant: String,
    scopes: Vec<String>,
    sha256: String,
    rate_per_sec: Option<f64>,
    burst: Option<u32>,
    allowed_targets: Option<Vec<String>>,
    #[serde(default)]
    require_engagement: bool,
}

/// The most entries one `allowed_targets` may list.
const MAX_ALLOWED_TARGETS: usize = 256;

/// Parses an `allowed_targets` list (`at` names the entry in errors).
fn narrowing(at: &str, label: String, list: &[String]) -> Result<Arc<Narrowing>, String> {
    if list.is_empty() || list.len() > MAX_ALLOWED_TARGETS {
        return Err(format!(
            "{at}: allowed_targets must list 1 to {MAX_ALLOWED_TARGETS} entries (CIDRs, IPv4s, \
             .suffix rules); leave it out to use the server's scope"
        ));
    }
    Narrowing::parse(label, list.iter().map(String::as_str), std::iter::empty())
        .map(Arc::new)
        .map_err(|e| format!("{at}: {e}"))
}

impl TokenSet {
    /// Reads and checks a tokens file; the error names the file and the entry.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("tokens file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("tokens file {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        // The message and line only: toml's full error quotes the line, which could be a
        // plaintext token pasted by mistake.
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            match line {
                Some(n) => format!("line {n}: {}", e.message()),
                None => e.message().to_owned(),
            }
        })?;
        let mut names = HashSet::new();
        let mut digests = HashSet::new();
        let mut tokens = Vec::with_capacity(raw.tokens.len());
        for (i, t) in raw.tokens.into_iter().enumerate() {
            let at = format!("token #{} (`{}`)", i + 1, t.name);
            check_name(&t.name).map_err(|e| format!("{at}: {e}"))?;
            if !names.insert(t.name.clone()) {
                return Err(format!(
                    "{at}: the name is used twice; names must be unique"
                ));
            }
            let tenant = TenantId::parse(&t.tenant).map_err(|e| format!("{at}: {e}"))?;
            let scopes =
                Scopes::parse_list(&t.scopes.join(",")).map_err(|e| format!("{at}: {e}"))?;
            let digest = decode_digest(&t.sha256).map_err(|e| format!("{at}: {e}"))?;
            if !digests.insert(digest) {
                return Err(format!("{at}: the same token is listed twice"));
            }
            let rate = match (t.rate_per_sec, t.burst) {
                (None, None) => None,
                (per_sec, burst) => {
                    let per_sec = per_sec.unwrap_or(1.0);
                    if !(0.0..=1e6).contains(&per_sec) {
                        return Err(format!(
                            "{at}: rate_per_sec {per_sec} is out of range; accepted: 0..=1000000 (0 = no limit)"
                        ));
                    }
                    let burst = burst.unwrap_or_else(|| (per_sec * 2.0).ceil().max(1.0) as u32);
                    if burst == 0 {
                        return Err(format!("{at}: burst must be at least 1"));
                    }
                    Some(Rate { per_sec, burst })
                }
            };
            let narrowing = match &t.allowed_targets {
                Some(list) => Some(narrowing(&at, format!("token {}", t.name), list)?),
                None => None,
            };
            tokens.push(Token {
                name: t.name,
                tenant,
                scopes,
                rate,
                narrowing,
                require_engagement: t.require_engagement,
                digest,
            });
        }
        let mut tenants = HashMap::new();
        for (name, raw) in raw.tenants {
            let at = format!("[tenants.{name}]");
            let tenant = TenantId::parse(&name).map_err(|e| format!("{at}: {e}"))?;
            if raw.max_queued == Some(0) {
                return Err(format!("{at}: max_queued must be at least 1"));
            }
            let allowed_targets = match &raw.allowed_targets {
                Some(list) => Some((
                    list.join(","),
                    narrowing(&at, format!("tenant {name}"), list)?,
                )),
                None => None,
            };
            tenants.insert(
                tenant,
                TenantEntry {
                    limits: TenantLimits {
                        max_queued: raw.max_queued,
                        max_running: raw.max_running,
                    },
                    allowed_targets,
                    require_engagement: raw.require_engagement,
                },
            );
        }
        Ok(Self { tokens, tenants })
    }

    /// The entry whose digest matches the presented token. Every entry is compared (in
    /// constant time each), so the time taken does not depend on which entry matched.
    pub fn find(&self, presented: &str) -> Option<&Token> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for t in &self.tokens {
            let hit = t.digest.ct_eq(&digest);
            if bool::from(hit) {
                found = Some(t);
            }
        }
        found
    }

    /// Whether this set still holds `token` (the same secret, for the same tenant) with
    /// `scope`: what a stream authorised by an older set checks after a reload.
    pub fn still_grants(&self, token: &Token, scope: Scope) -> bool {
        self.tokens.iter().any(|t| {
            bool::from(t.digest.ct_eq(&token.digest))
                && t.tenant == token.tenant
                && t.scopes.allows(scope)
        })
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Every tenant the file names: those of its tokens and of its `[tenants]` table.
    pub fn tenants(&self) -> std::collections::BTreeSet<TenantId> {
        self.tokens
            .iter()
            .map(|t| t.tenant.clone())
            .chain(self.tenants.keys().cloned())
            .collect()
    }

    pub fn tenant_limits(&self, tenant: &TenantId) -> TenantLimits {
        self.tenants
            .get(tenant)
            .map(|e| e.limits)
            .unwrap_or_default()
    }

    /// What the file says of a tenant (caps, `allowed_targets`, `require_engagement`).
    pub fn tenant(&self, tenant: &TenantId) -> Option<&TenantEntry> {
        self.tenants.get(tenant)
    }

    /// The scope of a caller: its tenant's narrowing and rules, then its token's.
    pub fn caller_scope(&self, tenant: &TenantId, token: Option<&Token>) -> CallerScope {
        let entry = self.tenants.get(tenant);
        let narrowings = entry
            .and_then(|e| e.allowed_targets.as_ref().map(|(_, n)| n.clone()))
            .into_iter()
            .chain(token.and_then(|t| t.narrowing.clone()))
            .collect();
        CallerScope {
            narrowings,
            require_engagement: entry.is_some_and(|e| e.require_engagement)
                || token.is_some_and(|t| t.require_engagement),
        }
    }
}

fn decode_digest(hex_digest: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(hex_digest.trim())
        .ok()
        .filter(|b| b.len() == 32)
        .ok_or("sha256 must be 64 hex digits (the line `scanq-api token new` prints)")?;
    let mut out = [0u8; 32];
    out.copy_from_slice(&bytes);
    Ok(out)
}

#[cfg(test)]
mod tests;
