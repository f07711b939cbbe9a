//! A tool's system-call policy in the catalog (`[tools.<name>.seccomp]`, docs/sandbox.md
//! "Seccomp"): an optional allow-list of Linux system-call names, each checked against the
//! x86_64 table (`syscalls_x86_64.txt`) when the catalog is read, so a typo is refused at load
//! instead of killing the tool at run time.

use serde::{Deserialize, Serialize};

/// `name number` per line, `#` comments: the x86_64 system calls.
const X86_64_TABLE: &str = include_str!("syscalls_x86_64.txt");

/// The x86_64 number of the system call `name`, if there is one.
pub fn x86_64_number(name: &str) -> Option<u32> {
    X86_64_TABLE
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .find(|(n, _)| *n == name)
        .and_then(|(_, nr)| nr.parse().ok())
}

/// The name of a Linux system call (`openat`, `sendto`…), known to the x86_64 table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SyscallName(String);

impl SyscallName {
    pub fn parse(name: &str) -> Result<Self, String> {
        if x86_64_number(name).is_some() {
            Ok(Self(name.to_owned()))
        } else {
            Err(format!(
                "`{name}` is not a Linux system call; accepted: a name from the x86_64 table \
                 (shared/src/catalog/syscalls_x86_64.txt), e.g. `openat`, `sendto`"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number of the call on x86_64 (every name was checked when parsed).
    pub fn x86_64_number(&self) -> u32 {
        x86_64_number(&self.0).expect("checked when parsed")
    }
}

impl TryFrom<String> for SyscallName {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        Self::parse(&name)
    }
}

impl From<SyscallName> for String {
    fn from(name: SyscallName) -> Self {
        name.0
    }
}

impl std::fmt::Display for SyscallName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[tools.<name>.seccomp]`: what the sandbox's system-call filter lets the tool do. The deny
/// rules of the worker (namespaces, io_uring, the mount API, ptrace, x32…) always apply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeccompPolicy {
    /// When set, the only system calls the tool may make (besides `execve`, `exit`,
    /// `exit_group`, `rt_sigreturn` and `restart_syscall`); any other kills it (SIGSYS, failure
    /// kind `sandbox_violation`). Unset: every call outside the deny rules is allowed.
    pub allow: Option<Vec<SyscallName>>,
}

impl SeccompPolicy {
    /// An empty allow-list would kill the tool at its first system call.
    pub(super) fn check(&self) -> Result<(), String> {
        match &self.allow {
            Some(list) if list.is_empty() => Err("allow is empty (it would kill the tool at its \
                 first system call); remove it to keep the deny rules only"
                .to_owned()),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_their_x86_64_numbers_and_unknown_names_are_refused() {
        assert_eq!(x86_64_number("read"), Some(0));
        assert_eq!(x86_64_number("clone3"), Some(435));
        assert_eq!(x86_64_number("open_tree_attr"), Some(467));
        assert_eq!(SyscallName::parse("openat").unwrap().x86_64_number(), 257);
        let err = SyscallName::parse("opneat").unwrap_err();
        assert!(err.contains("`opneat` is not a Linux system call"), "{err}");
        assert!(SyscallName::parse("").is_err());
        assert!(SyscallName::parse("#").is_err());
    }
}
