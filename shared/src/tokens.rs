//! Minting and naming API tokens, shared by `scanq-api token new` and the `scanq` CLI (which
//! does not link the API): scopes, the token format, its SHA-256 (all the tokens file stores)
//! and the `[[tokens]]` entry an operator pastes into the tokens file.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::domain::TenantId;

/// What a token may do. `admin` implies every other scope and every tenant. `approve` decides
/// on jobs awaiting a person's approval (DESIGN §14), never on the token's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Submit,
    Read,
    Cancel,
    Admin,
    Approve,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::Submit,
        Scope::Read,
        Scope::Cancel,
        Scope::Admin,
        Scope::Approve,
    ];
    pub const ACCEPTED: &'static str = "submit, read, cancel, admin, approve";

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submit => "submit",
            Self::Read => "read",
            Self::Cancel => "cancel",
            Self::Admin => "admin",
            Self::Approve => "approve",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("unknown scope `{s}`; accepted: {}", Self::ACCEPTED))
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    /// Every scope (the open-mode caller).
    pub fn all() -> Self {
        Self::from_iter(Scope::ALL)
    }

    /// Whether `scope` is granted (directly or through `admin`).
    pub fn allows(self, scope: Scope) -> bool {
        self.0 & (scope.bit() | Scope::Admin.bit()) != 0
    }

    pub fn is_admin(self) -> bool {
        self.0 & Scope::Admin.bit() != 0
    }

    /// Parses `submit,read` (comma-separated).
    pub fn parse_list(s: &str) -> Result<Self, String> {
        let scopes: Vec<Scope> = s
            .split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(Scope::parse)
            .collect::<Result<_, _>>()?;
        if scopes.is_empty() {
            return Err(format!("give at least one scope: {}", Scope::ACCEPTED));
        }
        Ok(Self::from_iter(scopes))
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .into_iter()
            .filter(move |s| self.0 & s.bit() != 0)
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Self(iter.into_iter().fold(0, |acc, s| acc | s.bit()))
    }
}

/// SHA-256 of a token, lowercase hex (what the tokens file stores).
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A token name: it appears in logs and in a Redis key.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    if name.is_empty() || name.len() > 64 || !name.chars().all(ok) {
        return Err(format!(
            "token name `{name}` must be 1-64 characters from A-Z a-z 0-9 . _ -"
        ));
    }
    Ok(())
}

/// A fresh random token: `sq_` and 64 hex digits (256 bits from the OS).
pub fn generate_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| format!("no randomness from the OS: {e}"))?;
    Ok(format!("sq_{}", hex::encode(bytes)))
}

/// The `[[tokens]]` entry for a token, as `scanq-api token new` prints it.
pub fn entry_toml(name: &str, tenant: &TenantId, scopes: Scopes, token: &str) -> String {
    let scopes: Vec<String> = scopes.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "[[tokens]]\nname = \"{name}\"\ntenant = \"{tenant}\"\nscopes = [{}]\nsha256 = \"{}\"\n",
        scopes.join(", "),
        hash_token(token)
    )
}

/// `scanq token new` (and `scanq-api token new`): the text to print — the token, shown once,
/// and the entry for the tokens file — or what is wrong with the arguments.
pub fn new_token(name: &str, tenant: &str, scopes: &str) -> Result<String, String> {
    check_name(name)?;
    let tenant = TenantId::parse(tenant).map_err(|e| e.0)?;
    let scopes = Scopes::parse_list(scopes)?;
    let token = generate_token()?;
    Ok(format!(
        "Token `{name}` for tenant `{tenant}` (shown only now; it is stored nowhere):\n\n    {token}\n\n\
         Add this entry to the tokens file (SCANQ_API_TOKENS_FILE), then send the API SIGHUP:\n\n{}",
        entry_toml(name, &tenant, scopes, &token)
    ))
}
