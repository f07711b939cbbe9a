//! The nftables side of confinement: running `nft` (JSON in, JSON out) and the rule sets.
//!
//! - `inet scanq`: the `output` hook chain (`meta skuid vmap @runs`) and one chain per run uid
//!   (`run_<uid>`), which both confines that uid's sockets in the worker's namespace and *claims*
//!   the uid host-wide (creating the chain fails when it exists). Its first rule names its owner
//!   (`scanq owner=<pidns>.<pid>.<start>`). With raw confinement, also a `postrouting` NAT chain
//!   that masquerades the run namespaces' addresses towards other hosts.
//! - `netdev scanq`: one ingress chain per raw run, on the worker's end of its veth, policy
//!   drop: only IPv4 from the run's address to the job's targets passes.
//!
//! A run may reach a list of addresses (a chunk of a big scan): its rules match them as one
//! anonymous set; a one-entry list is matched as the address (or CIDR) itself.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::ConfineError;
use super::netns::POOL;

/// The tables scanq owns (one `inet`, one `netdev`).
pub const TABLE: &str = "scanq";
const MAP: &str = "runs";
const HOOK_CHAIN: &str = "output";
const NAT_CHAIN: &str = "postrouting";
pub const OWNER_TAG: &str = "scanq owner=";
/// Written by workers before owners carried a pid namespace.
pub const LEGACY_OWNER_TAG: &str = "scanq pid=";

#[derive(Debug)]
pub struct Nft {
    bin: PathBuf,
}

impl Nft {
    pub fn find() -> Result<Self, String> {
        ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .map(|bin| Self { bin })
            .ok_or_else(|| "the `nft` binary is not installed (apt-get install nftables)".into())
    }

    pub fn bin(&self) -> &std::path::Path {
        &self.bin
    }

    pub async fn apply(&self, commands: Value) -> Result<(), ConfineError> {
        let input = json!({"nftables": commands}).to_string();
        self.run(&["-j", "-f", "-"], Some(input)).await.map(drop)
    }

    pub async fn list(&self, what: &[&str]) -> Result<Vec<Value>, ConfineError> {
        let mut args = vec!["-j"];
        args.extend_from_slice(what);
        let out = self.run(&args, None).await?;
        let v: Value =
            serde_json::from_slice(&out).map_err(|e| ConfineError::Nft(e.to_string()))?;
        Ok(v["nftables"].as_array().cloned().unwrap_or_default())
    }

    async fn run(&self, args: &[&str], stdin: Option<String>) -> Result<Vec<u8>, ConfineError> {
        let err = |e: std::io::Error| ConfineError::Nft(e.to_string());
        let mut child = tokio::process::Command::new(&self.bin)
            .args(args)
            .env_clear()
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(err)?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes()).await.map_err(err)?;
        }
        let out = child.wait_with_output().await.map_err(err)?;
        if !out.status.success() {
            let msg = String::from_utf8_lossy(&out.stderr);
            return Err(ConfineError::Nft(msg.trim().to_owned()));
        }
        Ok(out.stdout)
    }
}

/// Creates the `inet` table, map and hook chain if missing and (re)writes the hook's one rule;
/// runs of other workers are untouched.
pub fn ensure_table() -> Value {
    json!([
        {"add": {"table": {"family": "inet", "name": TABLE}}},
        {"add": {"map": {"family": "inet", "table": TABLE, "name": MAP,
                          "type": "uid", "map": "verdict"}}},
        {"add": {"chain": {"family": "inet", "table": TABLE, "name": HOOK_CHAIN,
                            "type": "filter", "hook": "output", "prio": 0,
                            "policy": "accept"}}},
        {"flush": {"chain": {"family": "inet", "table": TABLE, "name": HOOK_CHAIN}}},
        {"add": {"rule": {"family": "inet", "table": TABLE, "chain": HOOK_CHAIN,
                           "expr": [{"vmap": {"key": {"meta": {"key": "skuid"}},
                                              "data": format!("@{MAP}")}}]}}},
    ])
}

/// The raw-confinement tables: the `netdev` table for the per-run ingress chains, and the NAT
/// chain that gives run namespaces the worker's address towards other hosts.
pub fn ensure_raw_tables() -> Value {
    let nat = json!({"family": "inet", "table": TABLE, "name": NAT_CHAIN});
    json!([
        {"add": {"table": {"family": "netdev", "name": TABLE}}},
        {"add": {"chain": {"family": "inet", "table": TABLE, "name": NAT_CHAIN,
                            "type": "nat", "hook": "postrouting", "prio": 100,
                            "policy": "accept"}}},
        {"flush": {"chain": nat}},
        {"add": {"rule": {"family": "inet", "table": TABLE, "chain": NAT_CHAIN, "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                       "right": {"prefix": {"addr": POOL.0.to_string(), "len": POOL.1}}}},
            {"match": {"op": "!=", "left": {"meta": {"key": "oifname"}}, "right": "sq*"}},
            {"masquerade": null}]}}},
    ])
}

pub fn run_chain(uid: u32) -> String {
    format!("run_{uid}")
}

pub fn run_uid(chain: &str) -> Option<u32> {
    chain.strip_prefix("run_")?.parse().ok()
}

/// An nftables match value for one address (a plain value) or CIDR (a prefix).
fn one_daddr(address: &str) -> Value {
    match address.split_once('/') {
        Some((addr, len)) => {
            json!({"prefix": {"addr": addr, "len": len.parse::<u32>().unwrap_or(32)}})
        }
        None => json!(address),
    }
}

/// The match value for the addresses a run may reach: one address or CIDR as itself, several
/// as an anonymous set (`{ 127.0.0.1, 127.1.0.0/26 }`; nft makes it an interval set when it
/// holds prefixes). The list is never empty (a run has a target).
fn daddr(allowed: &[String]) -> Value {
    match allowed {
        [one] => one_daddr(one),
        many => json!({"set": many.iter().map(|a| one_daddr(a)).collect::<Vec<_>>()}),
    }
}

/// The transaction that claims `uid` (`create` fails if its chain exists) and confines its
/// sockets in the worker's namespace to the `allowed` addresses and CIDRs, owned by `owner`.
pub fn run_rules(uid: u32, allowed: &[String], owner: &str) -> Value {
    let chain = run_chain(uid);
    let rule = |expr: Value, comment: Option<String>| {
        let mut r = json!({"family": "inet", "table": TABLE, "chain": chain, "expr": expr});
        if let Some(c) = comment {
            r["comment"] = json!(c);
        }
        json!({"add": {"rule": r}})
    };
    json!([
        {"create": {"chain": {"family": "inet", "table": TABLE, "name": chain}}},
        rule(
            json!([{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                              "right": daddr(allowed)}}, {"accept": null}]),
            Some(format!("{OWNER_TAG}{owner}")),
        ),
        // TCP gets a reset, so a refused connect fails at once instead of timing out.
        rule(
            json!([{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}},
                   {"counter": {"packets": 0, "bytes": 0}}, {"reject": {"type": "tcp reset"}}]),
            None,
        ),
        rule(
            json!([{"counter": {"packets": 0, "bytes": 0}},
                   {"reject": {"type": "icmpx", "expr": "port-unreachable"}}]),
            None,
        ),
        {"add": {"element": {"family": "inet", "table": TABLE, "name": MAP,
                             "elem": [[uid, {"jump": {"target": chain}}]]}}},
    ])
}

/// The ingress chain on the worker's end of `uid`'s veth (`device`): IPv4 from the run's
/// address `from` to the `allowed` addresses and CIDRs passes; every other frame (any
/// protocol, ARP and IPv6 included) is counted and dropped.
pub fn raw_rules(uid: u32, device: &str, from: Ipv4Addr, allowed: &[String]) -> Value {
    let chain = run_chain(uid);
    let rule = |expr: Value| json!({"add": {"rule": {"family": "netdev", "table": TABLE, "chain": chain, "expr": expr}}});
    json!([
        {"create": {"chain": {"family": "netdev", "table": TABLE, "name": chain,
                              "type": "filter", "hook": "ingress", "dev": device, "prio": 0,
                              "policy": "drop"}}},
        rule(json!([
            {"match": {"op": "==", "left": {"meta": {"key": "protocol"}}, "right": "ip"}},
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                       "right": from.to_string()}},
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                       "right": daddr(allowed)}},
            {"accept": null}])),
        rule(json!([{"counter": {"packets": 0, "bytes": 0}}, {"drop": null}])),
    ])
}

/// Removes parts of `uid`'s run: its map entry, `inet` chain, `netdev` chain.
pub fn remove_run(uid: u32, entry: bool, inet: bool, netdev: bool) -> Value {
    let chain = json!({"family": "inet", "table": TABLE, "name": run_chain(uid)});
    let mut cmds = Vec::new();
    if entry {
        cmds.push(json!({"delete": {"element": {"family": "inet", "table": TABLE, "name": MAP, "elem": [uid]}}}));
    }
    if inet {
        cmds.push(json!({"flush": {"chain": chain}}));
        cmds.push(json!({"delete": {"chain": chain}}));
    }
    if netdev {
        cmds.push(json!({"delete": {"chain": {"family": "netdev", "table": TABLE, "name": run_chain(uid)}}}));
    }
    Value::Array(cmds)
}

/// The sum of the counters in a listing of one chain.
pub fn counted(listing: &[Value]) -> u64 {
    listing
        .iter()
        .filter_map(|i| i.get("rule"))
        .flat_map(|r| r["expr"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["counter"]["packets"].as_u64())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_chains_name_their_uid() {
        assert_eq!(run_uid(&run_chain(61003)), Some(61003));
        assert_eq!(run_uid("output"), None);
    }

    #[test]
    fn a_cidr_becomes_a_prefix_match_and_an_address_a_plain_one() {
        let cidr = run_rules(61000, &["127.0.0.0/30".to_owned()], "1.2.3").to_string();
        assert!(
            cidr.contains(r#"{"prefix":{"addr":"127.0.0.0","len":30}}"#),
            "{cidr}"
        );
        let one = run_rules(61000, &["127.0.0.1".to_owned()], "1.2.3").to_string();
        assert!(one.contains(r#""right":"127.0.0.1""#), "{one}");
        assert!(
            one.contains(r#""create""#) && one.contains("scanq owner=1.2.3"),
            "{one}"
        );
    }

    #[test]
    fn the_raw_chain_drops_by_default_and_matches_source_and_target() {
        let r = raw_rules(
            61000,
            "sq61000h",
            Ipv4Addr::new(169, 254, 64, 0),
            &["127.0.0.1".to_owned()],
        )
        .to_string();
        assert!(r.contains(r#""policy":"drop""#), "{r}");
        assert!(r.contains(r#""dev":"sq61000h""#), "{r}");
        assert!(r.contains(r#""right":"169.254.64.0""#), "{r}");
    }

    #[test]
    fn several_addresses_become_one_anonymous_set_in_both_chains() {
        let allowed = ["127.0.0.1".to_owned(), "127.1.0.0/26".to_owned()];
        let set = r#"{"set":["127.0.0.1",{"prefix":{"addr":"127.1.0.0","len":26}}]}"#;
        let plain = run_rules(61000, &allowed, "1.2.3").to_string();
        assert!(plain.contains(&format!(r#""right":{set}"#)), "{plain}");
        let raw = raw_rules(61000, "sq61000h", Ipv4Addr::new(169, 254, 64, 0), &allowed);
        let raw = raw.to_string();
        assert!(raw.contains(&format!(r#""right":{set}"#)), "{raw}");
    }
}
