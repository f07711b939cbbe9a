//! Helpers of the nmap seccomp tests: nmap's catalog entry, the names in an `strace -c -U name`
//! table, and the check that they are all on nmap's allow-list.
#![allow(dead_code)]

use std::collections::BTreeSet;

use scanq::catalog::{Catalog, ToolSpec};
use scanq::domain::ToolName;
use scanq_worker::sandbox::seccomp::BASE;

pub fn nmap() -> ToolSpec {
    Catalog::builtin()
        .get(&ToolName::parse("nmap").unwrap())
        .unwrap()
        .clone()
}

/// `strace`'s arguments to record the system calls of a command into `out`, by name.
pub fn strace_args(out: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = ["-f", "-qq", "-c", "-U", "name", "-o"]
        .map(str::to_owned)
        .to_vec();
    v.push(out.to_str().unwrap().to_owned());
    v
}

/// The system-call names of an `strace -c -U name` table.
pub fn names(table: &str) -> BTreeSet<String> {
    let names: BTreeSet<String> = table
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "syscall" && *l != "total")
        .filter(|l| !l.starts_with('-'))
        .map(str::to_owned)
        .collect();
    assert!(names.contains("openat"), "not an strace table: {table}");
    names
}

/// Fails naming every call in `used` that nmap's allow-list (with the base set) lacks.
pub fn assert_listed(used: &BTreeSet<String>) {
    let listed: BTreeSet<String> = nmap()
        .seccomp
        .allow
        .expect("nmap has an allow-list")
        .iter()
        .map(|n| n.as_str().to_owned())
        .chain(BASE.iter().map(|(n, _)| (*n).to_owned()))
        .collect();
    let missing: Vec<&String> = used.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "nmap used system calls missing from [tools.nmap.seccomp] allow: {missing:?}\n\
         everything it used: {used:?}"
    );
}

/// Whether nmap's XML shows `port` open.
pub fn open_in(xml: &[u8], proto: &str, port: u16) -> bool {
    String::from_utf8_lossy(xml).contains(&format!(
        "<port protocol=\"{proto}\" portid=\"{port}\"><state state=\"open\""
    ))
}
