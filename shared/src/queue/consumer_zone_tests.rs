//! A worker's zone: which keyspaces it claims and reaps (DESIGN §13).

use super::*;

#[tokio::test]
async fn a_worker_of_a_zone_reaps_every_zone_default_included() {
    let cfg = Config::default();
    let zone = |s: &str| Zone::parse(s).unwrap();
    let c = Consumer::new(
        &cfg,
        &Catalog::builtin(),
        "w".into(),
        Capabilities::default(),
    )
    .unwrap()
    .with_zones(zone("dmz"), &[zone("dmz"), zone("lab")]);
    let t = &c.tools[0];
    let reaped: Vec<String> = t.reaped.iter().map(|(z, _)| z.to_string()).collect();
    assert_eq!(reaped, ["dmz", "default", "lab"]);
    assert_eq!(
        t.parts.len(),
        t.reaped.len() / 3,
        "it claims from dmz's partitions"
    );
}
