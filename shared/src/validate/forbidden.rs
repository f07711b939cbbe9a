//! Flags that no policy may allow (they read or write files, pick targets of their own, send
//! traffic from or through other hosts, or claim root privileges), and raw-packet flags that
//! are refused unless the operator's policy lists them (the built-in nmap policy lists the
//! scan types it runs on raw-capable workers, marked `raw = true`). nmap parses options with `getopt_long_only`, so a
//! long option is also honoured with one dash (`-datadir`), and an unambiguous prefix of a long
//! option is that option (`-excludef` is `--excludefile`): every spelling is matched here, and the
//! refusal names the option nmap would really read.

use std::borrow::Cow;

/// `(flag, reason)`: never allowed, whatever the catalog says.
const NEVER: &[(&str, &str)] = &[
    ("-iL", "it reads targets from a file"),
    ("-iR", "it scans random targets"),
    ("-oN", "it writes an output file"),
    ("-oX", "it writes an output file"),
    ("-oG", "it writes an output file"),
    ("-oA", "it writes output files"),
    ("-oS", "it writes an output file"),
    ("-oM", "it writes an output file"),
    ("--append-output", "it appends to output files"),
    ("--resume", "it reads a file and resumes another scan"),
    ("--stylesheet", "it points the XML output at a file or URL"),
    (
        "--webxml",
        "it points the XML output at a remote stylesheet",
    ),
    (
        "--datadir",
        "it loads nmap data files from a chosen directory",
    ),
    ("--servicedb", "it loads a services file from a chosen path"),
    (
        "--versiondb",
        "it loads a version-probe file from a chosen path",
    ),
    (
        "--script-args-file",
        "it reads script arguments from a file",
    ),
    (
        "--script-args",
        "script arguments can add targets (newtargets) and name files",
    ),
    ("--excludefile", "it reads a file"),
    ("-S", "it spoofs the source address"),
    ("-D", "it sends decoy traffic as other hosts"),
    ("--spoof-mac", "it spoofs the source MAC address"),
    ("--proxies", "it relays the scan through other hosts"),
    ("-e", "it picks the network interface"),
    (
        "-b",
        "an FTP bounce scan sends traffic through another host",
    ),
    ("-sI", "an idle scan sends traffic through a zombie host"),
    ("--dns-servers", "it sends DNS queries to chosen servers"),
    (
        "--ip-options",
        "it can source-route packets through other hosts",
    ),
    ("-6", "the target policy has no IPv6"),
    (
        "--privileged",
        "it assumes root privileges (the worker adds it itself for a raw-socket run on a confining worker)",
    ),
    (
        "--send-eth",
        "it sends raw ethernet frames past the scan engine's choice",
    ),
    (
        "--send-ip",
        "it forces raw IP sends past the scan engine's choice",
    ),
];

/// `(flag, reason)`: refused unless the operator's policy lists them.
const RAW: &[(&str, &str)] = &[
    ("-sS", "a SYN scan needs raw packets (root)"),
    ("-sU", "a UDP scan needs raw packets (root)"),
    ("-sA", "an ACK scan needs raw packets (root)"),
    ("-sW", "a window scan needs raw packets (root)"),
    ("-sM", "a Maimon scan needs raw packets (root)"),
    ("-sN", "a NULL scan needs raw packets (root)"),
    ("-sF", "a FIN scan needs raw packets (root)"),
    ("-sX", "an Xmas scan needs raw packets (root)"),
    ("-sO", "an IP protocol scan needs raw packets (root)"),
    ("-sY", "an SCTP scan needs raw packets (root)"),
    ("-sZ", "an SCTP scan needs raw packets (root)"),
    ("--scanflags", "custom TCP flags need raw packets (root)"),
    ("--traceroute", "traceroute needs raw packets (root)"),
];

/// Strips a `=value` and lets a single-dash spelling match a long option.
fn lookup(table: &'static [(&'static str, &'static str)], token: &str) -> Option<&'static str> {
    let name = token.split_once('=').map_or(token, |(name, _)| name);
    table.iter().find_map(|(flag, reason)| {
        let same =
            name == *flag || (flag.starts_with("--") && name.len() > 2 && name == &flag[1..]);
        same.then_some(*reason)
    })
}

/// nmap long options that are themselves a prefix of a never-allowed one: spelled in full they
/// are that option, not an abbreviation (`--script` is not `--script-args`).
const EXACT_LONG: &[&str] = &["script", "exclude", "data"];

/// The never-allowed long option that `token` abbreviates (`-excludef`, `--datad=/x`), if any.
fn abbreviation(token: &str) -> Option<(&'static str, &'static str)> {
    let name = token.split_once('=').map_or(token, |(name, _)| name);
    let body = name.strip_prefix("--").or_else(|| name.strip_prefix('-'))?;
    if body.len() < 2 || EXACT_LONG.contains(&body) {
        return None;
    }
    NEVER.iter().copied().find(|(flag, _)| {
        flag.strip_prefix("--")
            .is_some_and(|long| long.len() > body.len() && long.starts_with(body))
    })
}

/// The reason a flag may never be allowed, if it is on the never-allowed list in any spelling.
pub(crate) fn never_reason(token: &str) -> Option<Cow<'static, str>> {
    if let Some(reason) = lookup(NEVER, token) {
        return Some(Cow::Borrowed(reason));
    }
    // nmap matches long options (and their prefixes) before short ones, so this comes first:
    // `-excludef` reads a file; it does not pick the interface `xcludef` with `-e`.
    if let Some((flag, reason)) = abbreviation(token) {
        let name = token.split_once('=').map_or(token, |(name, _)| name);
        return Some(Cow::Owned(format!(
            "nmap reads `{name}` as an abbreviation of `{flag}`, and {reason}"
        )));
    }
    // `-iL/etc/passwd`, `-oN/tmp/x`, `-S10.0.0.1`: short options with an attached value.
    NEVER.iter().find_map(|(flag, reason)| {
        let short = !flag.starts_with("--") && flag.len() <= 3;
        (short && token.starts_with(flag) && token.len() > flag.len())
            .then_some(Cow::Borrowed(*reason))
    })
}

/// The reason a raw-packet flag is refused when the policy does not list it.
pub(crate) fn raw_reason(token: &str) -> Option<&'static str> {
    lookup(RAW, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_allowed_flags_are_found_in_every_spelling() {
        for token in [
            "-iL",
            "-iL/etc/passwd",
            "-oN",
            "-oN/tmp/x",
            "--datadir",
            "-datadir",
            "--datadir=/tmp",
            "--script-args-file",
            "-S",
            "-S10.0.0.1",
            "-D",
            "-e",
            "-eeth0",
            "--proxies",
            "-proxies",
        ] {
            assert!(never_reason(token).is_some(), "{token}");
        }
    }

    #[test]
    fn ordinary_flags_are_not_on_the_never_list() {
        for token in [
            "-sV", "-sT", "-p", "--script", "-Pn", "-v", "--open", "-sC", "-T4",
        ] {
            assert_eq!(never_reason(token), None, "{token}");
        }
    }

    #[test]
    fn an_abbreviated_long_option_is_refused_for_what_it_really_is() {
        for token in [
            "-excludef",
            "--excludef",
            "-excludefi=/tmp/x",
            "-datad",
            "--proxi",
            "-resu",
        ] {
            let reason = never_reason(token).expect(token);
            assert!(reason.contains("abbreviation of `--"), "{token}: {reason}");
            assert!(!reason.contains("interface"), "{token}: {reason}");
        }
        assert!(
            never_reason("-excludef")
                .unwrap()
                .contains("`--excludefile`, and it reads a file")
        );
        // Attached short values are still what they were.
        assert!(never_reason("-eeth0").unwrap().contains("interface"));
    }

    #[test]
    fn full_long_options_that_prefix_a_forbidden_one_are_not_abbreviations() {
        for token in [
            "--script",
            "-script",
            "--exclude",
            "--data",
            "--script-timeout",
            "--reason",
        ] {
            assert_eq!(never_reason(token), None, "{token}");
        }
    }

    #[test]
    fn raw_scans_have_their_own_reason() {
        assert!(raw_reason("-sS").unwrap().contains("root"));
        assert!(never_reason("-privileged").is_some());
        assert!(never_reason("--send-ip").is_some());
        assert!(never_reason("--send-eth").is_some());
        assert_eq!(raw_reason("-sT"), None);
    }
}
