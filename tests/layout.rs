//! The architecture stays visible: no import circle between the top-level modules of any crate.
//! A module that needs another's type takes it from below, never from a module that needs it
//! back (`config` does not reach into `queue`, `routes` into `openapi`, the worker's `state` into
//! `completer`). Test code (`mod tests`, `tests.rs`) may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const CRATES: &[&str] = &["shared", "api", "worker", "cli", "bench"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("tests.rs") {
            out.push(p);
        }
    }
}

/// The code of a file without comments and without its `#[cfg(test)] mod tests { … }` tail.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules named after each `crate::` in `code`.
fn references(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for item in inner.split(',') {
                out.insert(ident_at(item.trim()).to_owned());
            }
        } else {
            out.insert(ident_at(rest).to_owned());
        }
    }
    out
}

/// module → (module it imports → a file that does).
type Graph = BTreeMap<String, BTreeMap<String, PathBuf>>;

fn graph(root: &Path) -> Graph {
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let module_of = |p: &Path| -> String {
        let rel = p.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        first.trim_end_matches(".rs").to_owned()
    };
    let modules: BTreeSet<String> = files
        .iter()
        .map(|p| module_of(p))
        .filter(|m| m != "lib" && m != "main")
        .collect();
    let mut g: Graph = modules
        .iter()
        .map(|m| (m.clone(), BTreeMap::new()))
        .collect();
    for f in &files {
        let from = module_of(f);
        if !modules.contains(&from) {
            continue;
        }
        for to in references(&code(&std::fs::read_to_string(f).unwrap())) {
            if to != from && modules.contains(&to) {
                g.get_mut(&from)
                    .unwrap()
                    .entry(to)
                    .or_insert_with(|| f.clone());
            }
        }
    }
    g
}

/// A circle through `start`, if there is one, as the modules along it.
fn circle(g: &Graph, start: &str) -> Option<Vec<String>> {
    fn walk(
        g: &Graph,
        at: &str,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in g[at].keys() {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(g, next, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_owned()];
    walk(g, start, start, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn no_crate_has_an_import_circle_between_its_modules() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut found = Vec::new();
    for name in CRATES {
        let g = graph(&workspace.join(name));
        for m in g.keys() {
            if let Some(c) = circle(&g, m) {
                let steps: Vec<String> = c
                    .iter()
                    .zip(c.iter().skip(1).chain(std::iter::once(&c[0])))
                    .map(|(a, b)| format!("{a} → {b} ({})", g[a][b].display()))
                    .collect();
                found.push(format!("{name}: {}", steps.join(", ")));
                break;
            }
        }
    }
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

#[test]
fn the_circle_finder_finds_a_circle() {
    let mut g = Graph::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")] {
        g.entry(a.into())
            .or_default()
            .insert(b.into(), PathBuf::from(a));
        g.entry(b.into()).or_default();
    }
    assert_eq!(circle(&g, "a").unwrap(), ["a", "b", "c"]);
    assert!(circle(&g, "d").is_none());
    assert_eq!(
        references("use crate::{queue::X, keys};\nlet _ = crate::config::Y;"),
        ["config", "keys", "queue"].map(String::from).into()
    );
}
