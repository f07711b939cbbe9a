use super::*;
use crate::domain::Priority;

fn slot_tag(key: &str) -> &str {
    let open = key.find('{').unwrap();
    let close = key[open..].find('}').unwrap() + open;
    &key[open + 1..close]
}

#[test]
fn every_tool_key_shares_the_tools_hash_tag() {
    let keys = Keys::new("scanq");
    let t = keys.tool(&ToolName::parse("nmap").unwrap());
    let r = "blue/scan-1";
    for k in [
        t.stream(Priority::Low),
        t.lane_stream(Priority::High, true),
        t.job(r),
        t.events(r),
        t.scheduled(),
        t.leases(),
        t.dead(),
        t.counts(),
        t.backlog_prefix(),
        t.breaker(),
        t.breaker_history(),
        t.breaker_probes(),
        t.breaker_window(),
        t.wait_samples(),
        t.run_samples(),
        t.disabled(),
        t.running_by_tenant(),
        t.group_running(),
        t.group_wait("127.2.0.0/24"),
    ] {
        assert_eq!(slot_tag(&k), "nmap", "{k}");
        assert!(k.starts_with("scanq:"), "{k}");
    }
    assert_eq!(t.job(r), format!("{}job:{r}", t.job_prefix()));
    assert_eq!(t.raw_streams()[1], "scanq:{nmap}:q:normal:raw");
    assert_eq!(t.lane_stream(Priority::Low, false), t.stream(Priority::Low));
    assert_eq!(t.claimable_streams(true).len(), 6);
}

#[test]
fn partitions_spread_over_equal_slot_ranges_and_jobs_stay_put() {
    let nmap = ToolName::parse("nmap").unwrap();
    let keys = Keys::new("scanq").with_partitions(Default::default(), 3);
    let ranges: std::collections::HashSet<u32> = keys
        .partitions_of(&nmap, &Zone::default())
        .iter()
        .map(|t| u32::from(slot(t.counts().as_bytes())) * 3 / 16384)
        .collect();
    assert_eq!(ranges.len(), 3, "one partition per third of the slots");
    assert_eq!(
        keys.partition(&nmap, &Zone::default(), 0).counts(),
        "scanq:{nmap}:counts"
    );
    let id = crate::domain::JobId::new(
        nmap.clone(),
        Zone::default(),
        TenantId::parse("blue").unwrap(),
        CorrelationId::parse("scan-1").unwrap(),
    );
    assert_eq!(keys.job(&id), keys.job(&id));
    assert!(keys.partition_of(&id) < 3);
    let one = Keys::new("scanq");
    assert_eq!(one.job(&id), "scanq:{nmap}:job:blue/scan-1");
    assert_eq!(one.partition_of_group(&nmap, "127.2.0.0/24"), 0);
    let g = keys.partition_of_group(&nmap, "127.2.0.0/24");
    assert!(g < 3);
    assert_eq!(g, keys.partition_of_group(&nmap, "127.2.0.0/24"));
    let spread: std::collections::HashSet<u16> = (0..32)
        .map(|i| keys.partition_of_group(&nmap, &format!("127.{i}.0.0/24")))
        .collect();
    assert_eq!(spread.len(), 3, "groups spread over the partitions");
}

#[test]
fn tenant_keys_are_the_tenant_prefix_plus_the_tenant() {
    let keys = Keys::new("scanq");
    let blue = TenantId::parse("blue").unwrap();
    assert_eq!(keys.tenant_limits(&blue), "scanq:tenant:{blue}");
    assert_eq!(keys.tenant_queued(&blue), "scanq:tenant:{blue}:queued");
    assert_eq!(keys.tenant_running(&blue), "scanq:tenant:{blue}:running");
    assert_eq!(keys.rate_limit("ci"), "scanq:rl:ci");
}

#[test]
fn a_zone_is_its_own_keyspace_and_a_fleet_without_zones_keeps_its_keys() {
    let nmap = ToolName::parse("nmap").unwrap();
    let dmz = Zone::parse("dmz").unwrap();
    let keys = Keys::new("scanq").with_partitions(Default::default(), 3);
    assert_eq!(
        keys.home(&nmap, &Zone::default()).counts(),
        "scanq:{nmap}:counts"
    );
    assert_eq!(keys.home(&nmap, &dmz).counts(), "scanq:{nmap@dmz}:counts");
    assert_eq!(crate::keys::queue_tag(&nmap, &dmz), "nmap@dmz");
    let parts = keys.partitions_of(&nmap, &dmz);
    assert_eq!(parts.len(), 3);
    for tk in &parts[1..] {
        assert!(
            tk.counts().starts_with("scanq:{nmap@dmz~"),
            "{}",
            tk.counts()
        );
    }
    let id = crate::domain::JobId::new(
        nmap.clone(),
        dmz,
        TenantId::parse("blue").unwrap(),
        CorrelationId::parse("scan-1").unwrap(),
    );
    assert!(keys.job(&id).contains("{nmap@dmz"), "{}", keys.job(&id));
}
