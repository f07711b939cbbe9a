//! The argument policy of a catalog tool and the parser that turns a request's `args` string into
//! normalized [`ToolArgs`]: a list of policy flags, each followed by its checked value. No shell
//! ever runs; the string is refused if it holds anything a shell or the tool could read as more
//! than flags (metacharacters, control characters, positional tokens, file or spoofing flags).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::forbidden::{never_reason, raw_reason};
use super::{ScriptPolicy, ValidationError, ValueType};

const FIELD: &str = "args";
/// Characters a request's `args` may hold; everything else is refused before tokenizing.
const SAFE_PUNCTUATION: &str = " ._,:/=+-";

/// The flag policy of one tool, from the catalog (`[tools.<name>.args]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArgPolicy {
    /// Longest `args` string accepted, in bytes.
    pub max_bytes: usize,
    /// Every flag a request may use.
    pub flags: Vec<FlagSpec>,
    /// What `--script` expressions (values of type `script_expr`) may select.
    pub script_categories: ScriptPolicy,
}

impl Default for ArgPolicy {
    fn default() -> Self {
        Self {
            max_bytes: 2048,
            flags: Vec::new(),
            script_categories: ScriptPolicy::default(),
        }
    }
}

/// One allowed flag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagSpec {
    /// The canonical spelling, used in normalized arguments (`-p`, `--top-ports`).
    pub name: String,
    /// Other spellings accepted in requests and normalized to `name`.
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub value: ValueType,
    /// Needs both the server's `allow_intrusive` and the request's `intrusive`.
    #[serde(default)]
    pub intrusive: bool,
    /// Needs raw sockets: a job using it is claimed only by a worker that runs raw-socket scans
    /// confined (`needs: ["raw_sockets"]`, docs/queue.md).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub raw: bool,
    #[serde(default)]
    pub description: String,
}

impl FlagSpec {
    fn is_called(&self, token: &str) -> bool {
        self.name == token || self.aliases.iter().any(|a| a == token)
    }
}

/// What the caller may do beyond the tool's plain policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArgContext {
    /// The operator's `SCANQ_ALLOW_INTRUSIVE`.
    pub server_allows_intrusive: bool,
    /// The request's `"intrusive": true`.
    pub request_intrusive: bool,
}

impl ArgContext {
    /// True when intrusive flags and script categories may be used.
    pub fn intrusive_allowed(&self) -> bool {
        self.server_allows_intrusive && self.request_intrusive
    }

    /// The refusal for an intrusive `what`, naming which of the two switches is off.
    pub(crate) fn gate_refusal(&self, what: &str) -> ValidationError {
        let (missing, hint) = match (self.server_allows_intrusive, self.request_intrusive) {
            (false, false) => (
                "the server does not allow intrusive scans (SCANQ_ALLOW_INTRUSIVE is off) and the \
                 request did not set \"intrusive\": true",
                "ask the operator to enable intrusive scans and set \"intrusive\": true, or leave it out",
            ),
            (false, true) => (
                "the server does not allow intrusive scans (SCANQ_ALLOW_INTRUSIVE is off)",
                "ask the operator to enable intrusive scans, or leave it out",
            ),
            _ => (
                "the request did not set \"intrusive\": true",
                "set \"intrusive\": true in the request to confirm, or leave it out",
            ),
        };
        ValidationError::new(FIELD, format!("{what} is intrusive: {missing}"), hint)
    }
}

/// Normalized tool arguments: each token a policy flag's canonical name or the checked value
/// that follows it. Built by [`ArgPolicy::parse_args`] (or read back from a stored job).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct ToolArgs(Vec<String>);

impl ToolArgs {
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Template arguments followed by request arguments; a flag given in the request (under any
    /// alias: both are normalized to the canonical name) replaces the template's.
    pub fn merge(template: &ToolArgs, request: &ToolArgs, policy: &ArgPolicy) -> ToolArgs {
        let template_units = policy.units(&template.0);
        let request_units = policy.units(&request.0);
        let overridden = |flag: &str| request_units.iter().any(|u| u[0] == flag);
        let tokens = template_units
            .iter()
            .filter(|u| !overridden(&u[0]))
            .chain(&request_units)
            .flat_map(|u| u.iter().cloned())
            .collect();
        ToolArgs(tokens)
    }
}

impl fmt::Display for ToolArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

impl From<ToolArgs> for Vec<String> {
    fn from(args: ToolArgs) -> Self {
        args.0
    }
}

impl TryFrom<Vec<String>> for ToolArgs {
    type Error = String;

    /// Reads back arguments that [`ArgPolicy::parse_args`] produced (a stored job); only their
    /// shape is checked here, the policy was applied at submit time.
    fn try_from(tokens: Vec<String>) -> Result<Self, Self::Error> {
        for token in &tokens {
            let printable = token.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
            if token.is_empty() || !printable {
                return Err(format!(
                    "argument {token:?} is empty or not printable ASCII"
                ));
            }
        }
        Ok(ToolArgs(tokens))
    }
}

fn refuse(message: impl Into<String>, hint: impl Into<String>) -> ValidationError {
    ValidationError::new(FIELD, message, hint)
}

impl ArgPolicy {
    fn spec(&self, token: &str) -> Option<&FlagSpec> {
        self.flags.iter().find(|f| f.is_called(token))
    }

    fn allowed_hint(&self) -> String {
        let names: Vec<&str> = self.flags.iter().map(|f| f.name.as_str()).collect();
        format!("allowed flags: {}", names.join(" "))
    }

    /// Splits normalized tokens into `[flag, value?]` units.
    fn units(&self, tokens: &[String]) -> Vec<Vec<String>> {
        let mut units = Vec::new();
        let mut iter = tokens.iter();
        while let Some(token) = iter.next() {
            let mut unit = vec![token.clone()];
            if self.spec(token).is_some_and(|s| s.value.takes_value()) {
                unit.extend(iter.next().cloned());
            }
            units.push(unit);
        }
        units
    }

    /// Whether normalized `args` (template and request merged) use a flag marked `raw`: the
    /// job then needs a raw-capable worker.
    pub fn needs_raw(&self, args: &ToolArgs) -> bool {
        self.units(&args.0)
            .iter()
            .any(|u| self.spec(&u[0]).is_some_and(|s| s.raw))
    }

    /// The never-allowed list, so catalog load can refuse a policy that lists one.
    pub fn forbidden_reason(flag: &str) -> Option<std::borrow::Cow<'static, str>> {
        never_reason(flag)
    }

    /// Refuses a catalog policy that allows a never-allowed flag or cannot be applied.
    pub fn validate_policy(&self) -> Result<(), String> {
        if !(1..=65536).contains(&self.max_bytes) {
            return Err(format!("max_bytes {} is outside 1..=65536", self.max_bytes));
        }
        let mut seen: Vec<&str> = Vec::new();
        for flag in &self.flags {
            for name in std::iter::once(&flag.name).chain(&flag.aliases) {
                let shaped = name.len() >= 2
                    && name.starts_with('-')
                    && name != "--"
                    && name[1..]
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-');
                if !shaped {
                    return Err(format!("flag `{name}` is not a -flag or --flag name"));
                }
                if let Some(reason) = never_reason(name) {
                    return Err(format!("flag `{name}` may never be allowed: {reason}"));
                }
                if seen.contains(&name.as_str()) {
                    return Err(format!("flag `{name}` is listed twice"));
                }
                seen.push(name);
            }
            flag.value
                .check_bounds()
                .map_err(|e| format!("flag `{}`: {e}", flag.name))?;
        }
        self.script_categories.validate()
    }

    /// Parses a request's `args` string into normalized tokens; refusals name the field `args`.
    pub fn parse_args(&self, raw: &str, ctx: &ArgContext) -> Result<ToolArgs, ValidationError> {
        self.check_raw(raw)?;
        let tokens = shlex::split(raw)
            .ok_or_else(|| refuse("args could not be split into words", self.allowed_hint()))?;
        let mut out = Vec::new();
        let mut rest = tokens.iter();
        while let Some(token) = rest.next() {
            let (spec, attached) = self.lookup(token)?;
            if spec.intrusive && !ctx.intrusive_allowed() {
                return Err(ctx.gate_refusal(&format!("`{}`", spec.name)));
            }
            out.push(spec.name.clone());
            if !spec.value.takes_value() {
                continue;
            }
            let value = match attached {
                Some(value) => value.to_owned(),
                None => rest.next().cloned().ok_or_else(|| {
                    refuse(
                        format!("`{}` needs a value", spec.name),
                        self.value_hint(spec),
                    )
                })?,
            };
            let normalized = if spec.value == ValueType::ScriptExpr {
                let mut text = value;
                while continues_expression(&text, rest.as_slice().first()) {
                    text.push(' ');
                    text.push_str(rest.next().map_or("", String::as_str));
                }
                self.script_categories.check_expression(&text, ctx)?
            } else {
                spec.value.parse_simple(&value).map_err(|message| {
                    refuse(format!("`{}`: {message}", spec.name), self.value_hint(spec))
                })?
            };
            out.push(normalized);
        }
        Ok(ToolArgs(out))
    }

    fn value_hint(&self, spec: &FlagSpec) -> String {
        if spec.description.is_empty() {
            format!("give `{}` a value of type {:?}", spec.name, spec.value)
        } else {
            format!("`{}`: {}", spec.name, spec.description)
        }
    }

    /// Length, control characters, non-ASCII and shell metacharacters, before any tokenizing.
    fn check_raw(&self, raw: &str) -> Result<(), ValidationError> {
        const CHARSET: &str = "use only letters, digits, spaces and . _ , : / = + -";
        if raw.len() > self.max_bytes {
            return Err(refuse(
                format!(
                    "args are {} bytes long; at most {} are accepted",
                    raw.len(),
                    self.max_bytes
                ),
                "shorten the arguments",
            ));
        }
        for c in raw.chars() {
            let problem = if c.is_control() {
                format!("args contain the control character U+{:04X}", c as u32)
            } else if !c.is_ascii() {
                format!("args contain the non-ASCII character U+{:04X}", c as u32)
            } else if !(c.is_ascii_alphanumeric() || SAFE_PUNCTUATION.contains(c)) {
                format!("args contain `{c}`; shell metacharacters and quotes are refused")
            } else {
                continue;
            };
            return Err(refuse(problem, CHARSET));
        }
        Ok(())
    }

    /// Finds the policy flag a token names, with a value attached by `=` or directly (`-p80`).
    fn lookup<'t>(&self, token: &'t str) -> Result<(&FlagSpec, Option<&'t str>), ValidationError> {
        if let Some(spec) = self.spec(token) {
            return Ok((spec, None));
        }
        if token == "--" {
            return Err(refuse(
                "`--` (end of options) is refused: args take flags only",
                "put the one target in the `target` field",
            ));
        }
        if !token.starts_with('-') || token == "-" {
            return Err(refuse(
                format!("`{token}` is not a flag; positional arguments are refused"),
                "put the one target in the `target` field; args take flags only",
            ));
        }
        if let Some(reason) = never_reason(token) {
            return Err(refuse(
                format!("`{token}` is never allowed: {reason}"),
                self.allowed_hint(),
            ));
        }
        if token.starts_with("--")
            && let Some((name, value)) = token.split_once('=')
            && let Some(spec) = self.spec(name)
        {
            if spec.value.takes_value() {
                return Ok((spec, Some(value)));
            }
            return Err(refuse(
                format!("`{name}` takes no value"),
                self.allowed_hint(),
            ));
        }
        if !token.starts_with("--")
            && token.len() > 2
            && token.is_char_boundary(2)
            && let Some(spec) = self.spec(&token[..2]).filter(|s| s.value.takes_value())
        {
            return Ok((spec, Some(&token[2..])));
        }
        let message = match raw_reason(token) {
            Some(reason) => format!("`{token}` is not allowed for this tool: {reason}"),
            None => format!("`{token}` is not an allowed flag for this tool"),
        };
        Err(refuse(message, self.allowed_hint()))
    }
}

/// True when the next token continues a `--script` expression written with spaces
/// (`--script discovery and safe`): after a trailing operator, or before `and`/`or`/`,`.
fn continues_expression(text: &str, next: Option<&String>) -> bool {
    let Some(next) = next else { return false };
    let last = text
        .rsplit([' ', ','])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let dangling = text.ends_with(',') || matches!(last.as_str(), "and" | "or" | "not");
    let joins = next.starts_with(',') || matches!(next.to_ascii_lowercase().as_str(), "and" | "or");
    dangling || joins
}

#[cfg(test)]
mod tests;
