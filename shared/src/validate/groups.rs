//! The group of a target, for politeness per target network (docs/queue.md, "Politeness per
//! target network"): jobs of one group share `SCANQ_TARGET_GROUP_MAX_RUNNING` running places
//! across the fleet.
//!
//! | target | group (prefix 24) |
//! |---|---|
//! | `127.1.3.7` | `127.1.3.0/24` |
//! | `127.1.3.16/28` | `127.1.3.0/24` (the network of its first address) |
//! | `127.0.0.0/16` | `127.0.0.0/24` (wider than a group: grouped by its first address too) |
//! | `db1.lab.internal` | `db1.lab.internal` (names are grouped by name; the worker resolves later) |
//!
//! A CIDR wider than a group is one job that spans several groups; it counts in the group of its
//! first address only (big scans are split into chunks of at most `max_hosts`, each chunk in its
//! own group). Two names of one address, or a name and its address, are different groups.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::Target;

/// The group of `target` with groups of `/prefix` (clamped to 0..=32): an address or a CIDR →
/// the `/prefix` network of its first address (`127.1.3.0/24`); a hostname → itself.
pub fn target_group(target: &Target, prefix: u8) -> String {
    let first: Ipv4Addr = match target {
        Target::Ip(ip) => *ip,
        Target::Cidr(net) => net.network(),
        Target::Host(host) => return host.as_str().to_owned(),
    };
    Ipv4Net::new(first, prefix.min(32))
        .expect("a prefix of at most 32 is valid")
        .trunc()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(target: &str, prefix: u8) -> String {
        target_group(&target.parse().unwrap(), prefix)
    }

    #[test]
    fn an_address_falls_in_the_network_of_the_prefix() {
        assert_eq!(group("127.1.3.7", 24), "127.1.3.0/24");
        assert_eq!(group("127.1.3.255", 24), "127.1.3.0/24");
        assert_eq!(group("127.1.4.0", 24), "127.1.4.0/24");
        assert_eq!(group("127.1.3.7", 32), "127.1.3.7/32");
        assert_eq!(group("127.1.3.7", 16), "127.1.0.0/16");
        assert_eq!(group("127.1.3.7", 8), "127.0.0.0/8");
    }

    #[test]
    fn a_cidr_is_grouped_by_its_first_address_even_when_wider_than_a_group() {
        assert_eq!(group("127.1.3.16/28", 24), "127.1.3.0/24");
        assert_eq!(group("127.1.0.0/16", 24), "127.1.0.0/24");
        assert_eq!(group("127.2.0.0/23", 24), "127.2.0.0/24");
        assert_eq!(group("127.1.3.0/24", 24), group("127.1.3.9", 24));
    }

    #[test]
    fn a_hostname_is_its_own_group() {
        assert_eq!(group("db1.lab.internal", 24), "db1.lab.internal");
        assert_ne!(group("db1.lab.internal", 24), group("db2.lab.internal", 24));
    }

    #[test]
    fn an_out_of_range_prefix_is_clamped_not_a_panic() {
        assert_eq!(group("127.1.3.7", 40), "127.1.3.7/32");
    }
}
