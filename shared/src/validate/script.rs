//! `--script` expressions: which nmap scripts a request may run, judged by meaning.
//!
//! An expression is one or more comma-separated rules; a rule is categories joined by `and`,
//! `or` and `not`, parsed exactly as nmap's NSE does (`and` and `or` have equal precedence and
//! nest to the right: `a and b or c` is `a and (b or c)`). Script names, globs, paths, `all` and
//! parentheses are refused. Without the intrusive gate a rule must *imply* `safe` (so `discovery`
//! is refused while `discovery and safe` passes), may not name an intrusive category, and is
//! narrowed with `and not <category>` for every intrusive or excluded category it could still
//! select (nmap files some `safe` scripts under `vuln`, `external` or `broadcast` too). The
//! normalized text given to nmap is exactly the tree that was checked.

use serde::{Deserialize, Serialize};

use super::{ArgContext, ValidationError};

/// Which script categories a `--script` expression may use (`[tools.nmap.args.script_categories]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScriptPolicy {
    /// Categories an expression may name at all.
    pub allowed: Vec<String>,
    /// Categories whose scripts need the intrusive gate.
    pub intrusive: Vec<String>,
    /// Categories never run: refused when named, always narrowed away.
    pub excluded: Vec<String>,
}

/// The category every script must have when the intrusive gate is closed.
pub const SAFE_CATEGORY: &str = "safe";

/// At most this many distinct categories are reasoned about at once (2^n truth table).
const MAX_VARIABLES: usize = 16;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

impl Default for ScriptPolicy {
    fn default() -> Self {
        Self {
            allowed: strings(&[
                "auth",
                "brute",
                "default",
                "discovery",
                "dos",
                "exploit",
                "external",
                "fuzzer",
                "intrusive",
                "malware",
                "safe",
                "version",
                "vuln",
            ]),
            intrusive: strings(&[
                "vuln",
                "intrusive",
                "exploit",
                "brute",
                "dos",
                "malware",
                "fuzzer",
                "external",
            ]),
            excluded: strings(&["broadcast"]),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    And,
    Or,
}

#[derive(Clone, Debug)]
enum Expr {
    Cat(String),
    Not(Box<Expr>),
    /// The left side is never a `Bin`: rules nest to the right, as in nmap.
    Bin(Box<Expr>, Op, Box<Expr>),
}

impl Expr {
    fn eval(&self, has: &dyn Fn(&str) -> bool) -> bool {
        match self {
            Expr::Cat(c) => has(c),
            Expr::Not(e) => !e.eval(has),
            Expr::Bin(l, Op::And, r) => l.eval(has) && r.eval(has),
            Expr::Bin(l, Op::Or, r) => l.eval(has) || r.eval(has),
        }
    }

    fn categories(&self, out: &mut Vec<String>) {
        match self {
            Expr::Cat(c) if !out.contains(c) => out.push(c.clone()),
            Expr::Cat(_) => {}
            Expr::Not(e) => e.categories(out),
            Expr::Bin(l, _, r) => {
                l.categories(out);
                r.categories(out);
            }
        }
    }

    /// Categories that appear under an even number of `not`s (selected by name).
    fn positive(&self, negated: bool, out: &mut Vec<String>) {
        match self {
            Expr::Cat(c) if !negated && !out.contains(c) => out.push(c.clone()),
            Expr::Cat(_) => {}
            Expr::Not(e) => e.positive(!negated, out),
            Expr::Bin(l, _, r) => {
                l.positive(negated, out);
                r.positive(negated, out);
            }
        }
    }

    /// True when every script the rule selects has category `cat` exactly when `value`.
    fn implies(&self, cat: &str, value: bool) -> bool {
        let mut vars = Vec::new();
        self.categories(&mut vars);
        if !vars.iter().any(|v| v == cat) {
            vars.push(cat.to_owned());
        }
        (0u32..1 << vars.len()).all(|bits| {
            let has = |c: &str| {
                vars.iter()
                    .position(|v| v == c)
                    .is_some_and(|i| bits & (1 << i) != 0)
            };
            !self.eval(&has) || has(cat) == value
        })
    }

    fn is_bin(&self) -> bool {
        matches!(self, Expr::Bin(..))
    }

    fn print(&self, out: &mut String) {
        match self {
            Expr::Cat(c) => out.push_str(c),
            Expr::Not(e) => {
                out.push_str("not ");
                e.print(out);
            }
            Expr::Bin(l, op, r) => {
                l.print(out);
                out.push_str(if *op == Op::And { " and " } else { " or " });
                r.print(out);
            }
        }
    }
}

fn refuse(message: impl Into<String>, hint: impl Into<String>) -> ValidationError {
    ValidationError::new("args", message, hint)
}

impl ScriptPolicy {
    fn hint(&self) -> String {
        format!(
            "write categories joined by and/or/not, e.g. `--script default and safe`; categories: {}",
            self.allowed.join(", ")
        )
    }

    /// Checks a `--script` value and returns the normalized expression to give nmap.
    pub(crate) fn check_expression(
        &self,
        raw: &str,
        ctx: &ArgContext,
    ) -> Result<String, ValidationError> {
        let mut normalized = Vec::new();
        for rule_text in raw.split(',') {
            let rule = self.parse_rule(rule_text)?;
            normalized.push(self.check_rule(&rule, ctx)?);
        }
        Ok(normalized.join(","))
    }

    fn parse_rule(&self, text: &str) -> Result<Expr, ValidationError> {
        let words: Vec<String> = text
            .split_whitespace()
            .map(str::to_ascii_lowercase)
            .collect();
        if words.is_empty() {
            return Err(refuse("--script has an empty rule", self.hint()));
        }
        let mut pos = 0;
        let expr = self.parse_expr(&words, &mut pos)?;
        if pos != words.len() {
            return Err(refuse(
                format!("--script: unexpected `{}`", words[pos]),
                self.hint(),
            ));
        }
        let mut vars = Vec::new();
        expr.categories(&mut vars);
        if vars.len() >= MAX_VARIABLES {
            return Err(refuse("--script names too many categories", self.hint()));
        }
        Ok(expr)
    }

    fn parse_expr(&self, words: &[String], pos: &mut usize) -> Result<Expr, ValidationError> {
        let left = self.parse_unary(words, pos)?;
        let op = match words.get(*pos).map(String::as_str) {
            Some("and") => Op::And,
            Some("or") => Op::Or,
            _ => return Ok(left),
        };
        *pos += 1;
        let right = self.parse_expr(words, pos)?;
        Ok(Expr::Bin(Box::new(left), op, Box::new(right)))
    }

    fn parse_unary(&self, words: &[String], pos: &mut usize) -> Result<Expr, ValidationError> {
        let Some(word) = words.get(*pos) else {
            return Err(refuse("--script expression ends too early", self.hint()));
        };
        *pos += 1;
        match word.as_str() {
            "not" => Ok(Expr::Not(Box::new(self.parse_unary(words, pos)?))),
            "and" | "or" => Err(refuse(
                format!("--script: `{word}` needs a category before it"),
                self.hint(),
            )),
            w if self.knows(word) => Ok(Expr::Cat(w.to_owned())),
            w => Err(refuse(
                format!(
                    "--script: `{w}` is not an allowed category (script names, globs, paths and \
                     `all` are not accepted)"
                ),
                self.hint(),
            )),
        }
    }

    fn knows(&self, word: &String) -> bool {
        self.allowed.contains(word) || self.intrusive.contains(word) || self.excluded.contains(word)
    }

    fn check_rule(&self, rule: &Expr, ctx: &ArgContext) -> Result<String, ValidationError> {
        let gate_open = ctx.intrusive_allowed();
        let mut text = String::new();
        rule.print(&mut text);
        let mut named = Vec::new();
        rule.positive(false, &mut named);
        for cat in &named {
            if self.excluded.contains(cat) {
                return Err(refuse(
                    format!("--script category `{cat}` is never run by this server"),
                    self.hint(),
                ));
            }
            if !self.allowed.contains(cat) {
                return Err(refuse(
                    format!("--script category `{cat}` is not allowed (it may only be negated)"),
                    self.hint(),
                ));
            }
            if !gate_open && self.intrusive.contains(cat) {
                return Err(ctx.gate_refusal(&format!("--script category `{cat}`")));
            }
        }
        if !gate_open && !rule.implies(SAFE_CATEGORY, true) {
            let mut refusal = ctx.gate_refusal(&format!(
                "--script `{text}` (it may select scripts not marked safe)"
            ));
            refusal.hint = format!(
                "{}; or select only safe scripts, e.g. `--script {text} and safe`",
                refusal.hint
            );
            return Err(refusal);
        }
        let narrowing: Vec<&String> = self
            .excluded
            .iter()
            .chain(self.intrusive.iter().filter(|_| !gate_open))
            .filter(|cat| !rule.implies(cat, false))
            .collect();
        if narrowing.is_empty() {
            return Ok(text);
        }
        let mut out = if rule.is_bin() {
            format!("({text})")
        } else {
            text
        };
        for cat in narrowing {
            out.push_str(" and not ");
            out.push_str(cat);
        }
        Ok(out)
    }

    /// Refuses lists that are not plain category words or that overlap.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let word = |c: &String| !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase());
        for c in self
            .allowed
            .iter()
            .chain(&self.intrusive)
            .chain(&self.excluded)
        {
            if !word(c) || matches!(c.as_str(), "and" | "or" | "not" | "all" | "true" | "false") {
                return Err(format!(
                    "script category `{c}` is not a plain lower-case category"
                ));
            }
        }
        if let Some(c) = self.excluded.iter().find(|c| self.allowed.contains(c)) {
            return Err(format!(
                "script category `{c}` is both allowed and excluded"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
