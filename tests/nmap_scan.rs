//! Real nmap through the whole stack, against ports this test opens on 127.0.0.1 only.

use std::time::Duration;

use scanq::catalog::Catalog;
use scanq_tests::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nmap_finds_the_ports_the_test_opened_and_parses_them() {
    let open_a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open_b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (a, b) = (
        open_a.local_addr().unwrap().port(),
        open_b.local_addr().unwrap().port(),
    );
    let redis = RedisServer::start().await;
    let cfg = test_config(&redis, "nmap");
    let catalog = Catalog::builtin();
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;

    let r = http()
        .post(format!("{base}/v1/jobs"))
        .json(&json!({"tool":"nmap","target":"127.0.0.1","args":format!("-sT -Pn -n -p {a},{b}"),"correlation_id":"scan"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let done = wait_done(&base, "scan", Duration::from_secs(60)).await;

    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(
        done["result"]["stdout"]
            .as_str()
            .unwrap()
            .contains(&format!("portid=\"{a}\""))
    );
    let ports: Vec<(u64, String)> = done["result"]["parsed"]["hosts"][0]["ports"]
        .as_array()
        .expect("parsed ports")
        .iter()
        .map(|p| {
            (
                p["port"].as_u64().unwrap(),
                p["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(ports.contains(&(u64::from(a), "open".into())), "{ports:?}");
    assert!(ports.contains(&(u64::from(b), "open".into())), "{ports:?}");
    drop((open_a, open_b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_real_scan_reports_increasing_progress() {
    let redis = RedisServer::start().await;
    let cfg = test_config(&redis, "nmapprog");
    let catalog = Catalog::builtin();
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;

    let r = http()
        .post(format!("{base}/v1/jobs"))
        .json(&json!({"tool":"nmap","target":"127.0.0.1","args":"-sT -Pn -n -p 1-30 --max-rate 5","correlation_id":"slow"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let events = read_sse(
        &format!("{base}/v1/jobs/slow/events"),
        None,
        Duration::from_secs(60),
        |e| e.event == "done",
    )
    .await;

    let percents: Vec<f64> = events
        .iter()
        .filter(|e| e.event == "progress")
        .map(|e| {
            serde_json::from_str::<Value>(&e.data).unwrap()["percent"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert!(percents.len() >= 2, "{percents:?}");
    assert!(percents.windows(2).all(|w| w[0] < w[1]), "{percents:?}");
    assert_eq!(events.last().unwrap().event, "done");
}
