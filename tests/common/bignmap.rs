//! `bignmap`: real nmap behind a wrapper, the tool of the big-scan tests (issue 21): output as
//! XML, parsed and progress like the catalog's nmap, `-sn -sT -n -p` allowed. The wrapper refuses
//! (exit 3) the chunk target `fail` until `<fixture>/ctl/healed` exists, then sleeps the seconds
//! written in `<fixture>/ctl/delay` (0 when absent) before it runs nmap, so a test can hold
//! chunks running, fail one for good, or heal it for a retry.

use scanq::catalog::Catalog;

use super::Fixture;

/// The catalog of the `bignmap` tool whose wrapper refuses `fail` (`"none"`: nothing).
pub fn bignmap(fx: &Fixture, fail: &str) -> Catalog {
    let dir = fx.path("ctl");
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    let command = fx.script(
        "bignmap",
        &format!(
            r#"#!/bin/bash
for a in "$@"; do
  if [ "$a" = "{fail}" ] && [ ! -e {d}/healed ]; then echo "chunk refused on purpose" >&2; exit 3; fi
done
d=$(cat {d}/delay 2>/dev/null || echo 0)
/bin/sleep "$d"
exec /usr/bin/nmap "$@"
"#
        ),
    );
    let toml = format!(
        r#"
[tools.bignmap]
executor = "exec"
command = "{}"
output_args = ["-oX", "-"]
default_timeout_sec = 120
max_timeout_sec = 600
parser = "nmap"
progress = "nmap"
[tools.bignmap.args]
max_bytes = 2048
[[tools.bignmap.args.flags]]
name = "-sn"
[[tools.bignmap.args.flags]]
name = "-sT"
[[tools.bignmap.args.flags]]
name = "-n"
[[tools.bignmap.args.flags]]
name = "-p"
value = {{ type = "ports", max_ports = 100 }}
"#,
        command.display()
    );
    Catalog::load(Some(&fx.catalog(&toml))).unwrap()
}
