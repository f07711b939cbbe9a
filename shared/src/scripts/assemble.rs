//! A script's source: the generated prelude, then only those helpers of `common.lua` (and the
//! breaker's `lib.lua`, for the scripts that move it) that its body uses, directly or through
//! another helper, in their order in the library.
//!
//! Why not the whole library in front of every body: Redis keeps every loaded script's compiled
//! code in its one Lua heap, and its garbage collector marks that heap again and again, at a cost
//! that grows with it; and a script run defines every helper it carries (a closure each) before
//! its body starts. With the whole library in each of ~40 scripts the heap held ~2 MB of mostly
//! identical helpers, an empty script cost 19 µs a call against 9 µs on a fresh server, and the
//! claim and completion of a drained job ~38 µs against ~29 µs (BENCHMARKS.md "Engine v5").
//!
//! The libraries keep one shape that this relies on (checked by the tests below): every
//! top-level statement starts at column 0 with `local` — `local function name(…)` or
//! `local a, b = …` — and everything until the next such line belongs to it. A name is "used"
//! when it appears as a word in the body or in a used helper: a mention in a comment only keeps
//! a helper that was not needed, never drops one that is.

use std::collections::HashSet;

/// One top-level definition of a helper library.
struct Def<'a> {
    text: &'a str,
    names: Vec<&'a str>,
}

/// The library cut into its top-level definitions (what precedes the first one, its header
/// comment, is left out).
fn defs(lib: &str) -> Vec<Def<'_>> {
    let mut starts: Vec<usize> = Vec::new();
    let mut at = 0;
    for line in lib.split_inclusive('\n') {
        if line.starts_with("local ") {
            starts.push(at);
        }
        at += line.len();
    }
    starts.push(lib.len());
    starts
        .windows(2)
        .map(|w| {
            let text = &lib[w[0]..w[1]];
            Def {
                text,
                names: declared(text),
            }
        })
        .collect()
}

/// The names a definition's first line declares: `local function f(` → `f`;
/// `local a, b = …` → `a`, `b`.
fn declared(text: &str) -> Vec<&str> {
    let first = text.lines().next().unwrap_or("");
    let rest = first.trim_start_matches("local ");
    if let Some(f) = rest.strip_prefix("function ") {
        return f.split('(').next().map(str::trim).into_iter().collect();
    }
    rest.split('=')
        .next()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect()
}

/// Every word (`[A-Za-z_][A-Za-z0-9_]*`) of a text.
fn words(text: &str) -> HashSet<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| {
            w.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        })
        .collect()
}

/// `body` preceded by the definitions of `libs` (in order) that it uses.
pub(super) fn assemble(prelude: &str, libs: &[&str], body: &str) -> String {
    let all: Vec<Def<'_>> = libs.iter().flat_map(|l| defs(l)).collect();
    let mut used: HashSet<&str> = HashSet::new();
    let mut todo: Vec<&str> = words(body).into_iter().collect();
    while let Some(w) = todo.pop() {
        for d in all.iter().filter(|d| d.names.contains(&w)) {
            for n in &d.names {
                if used.insert(n) {
                    todo.extend(words(d.text));
                }
            }
        }
    }
    let mut out = String::from(prelude);
    for d in all
        .iter()
        .filter(|d| d.names.iter().any(|n| used.contains(n)))
    {
        out.push_str(d.text);
    }
    out.push('\n');
    out.push_str(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIB: &str = "-- header\nlocal A = 1\n\n-- b's comment\nlocal function b(x)\n  return x + A\nend\n\nlocal function c()\n  return 2\nend\nlocal d, e = {}, {}\n";

    #[test]
    fn a_body_gets_what_it_uses_and_what_that_uses_in_library_order() {
        let s = assemble("P\n", &[LIB], "return b(1)");
        assert_eq!(
            s,
            "P\nlocal A = 1\n\n-- b's comment\nlocal function b(x)\n  return x + A\nend\n\n\nreturn b(1)"
        );
        let s = assemble("", &[LIB], "return e");
        assert!(
            s.contains("local d, e = {}, {}") && !s.contains("function c"),
            "{s}"
        );
        assert_eq!(assemble("", &[LIB], "return 1"), "\nreturn 1");
    }

    /// The shape the cut relies on: at column 0 only `local` statements, their closing `end`,
    /// comments and blank lines.
    #[test]
    fn the_libraries_keep_one_top_level_shape() {
        for (name, lib) in [
            ("common.lua", super::super::COMMON),
            ("breaker lib.lua", crate::breaker::LIB_LUA),
        ] {
            for line in lib.lines() {
                let ok = line.is_empty()
                    || line.starts_with("local ")
                    || line.starts_with("--")
                    || line == "end"
                    || line.starts_with(' ');
                assert!(ok, "{name}: a top-level line of another kind: {line:?}");
            }
            for d in defs(lib) {
                assert!(!d.names.is_empty(), "{name}: {:?}", d.text);
            }
        }
    }
}
