//! Big scans (issue 21, DESIGN §12): one submit over a /20 of loopback becomes a parent job and
//! 16 chunks of 256 addresses that real workers scan with real nmap; the parent is what the
//! client reads (state, progress, chunk tally, one merged nmap run), cancels and retries.
//! Loopback only: `127.1.0.0/20` answers locally.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use scanq::config::Config;
use scanq_tests::*;
use serde_json::{Value, json};

fn worker_cfg(cfg: &Config, id: &str, concurrency: u32) -> Config {
    Config {
        worker_id: Some(id.to_owned()),
        worker_concurrency: concurrency,
        worker_metrics_addr: ([127, 0, 0, 1], free_port()).into(),
        ..cfg.clone()
    }
}

fn submit_body(target: &str, args: &str, extra: Value) -> Value {
    let mut body = json!({"tool": "bignmap", "target": target, "args": args, "chunk_hosts": 256});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

async fn submit(base: &str, body: &Value) -> Value {
    let resp = post_json(base, "/v1/jobs", body).await;
    let status = resp.status().as_u16();
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(status, 202, "{doc}");
    doc
}

async fn chunks(base: &str, id: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = 0;
    loop {
        let page = get_json(
            base,
            &format!("/v1/jobs/{id}/chunks?cursor={cursor}&limit=7"),
        )
        .await;
        out.extend(page["chunks"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_u64() {
            Some(c) => cursor = c,
            None => return out,
        }
    }
}

async fn text(base: &str, path: &str) -> String {
    let resp = http().get(format!("{base}{path}")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{path}");
    resp.text().await.unwrap()
}

fn host_addrs(doc: &Value) -> Vec<String> {
    doc["result"]["parsed"]["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            h["addresses"][0]["addr"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slash_20_is_sixteen_chunks_over_two_workers_merged_into_one_run_that_ndiff_reads() {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let catalog = bignmap(&fx, "none");
    let cfg = test_config(&redis, "big-slash20");
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let w1 = start_worker(worker_cfg(&cfg, "w1", 2), catalog.clone()).await;
    let w2 = start_worker(worker_cfg(&cfg, "w2", 2), catalog.clone()).await;
    let listener_port = free_port();

    let a = submit(
        &base,
        &submit_body(
            "127.1.0.0/20",
            &format!("-sT -n -p {listener_port}"),
            json!({}),
        ),
    )
    .await;
    let id_a = a["correlation_id"].as_str().unwrap().to_owned();
    assert_eq!(a["chunks"]["total"], 16, "{a}");
    assert_eq!(a["progress"]["hosts_total"], 4096, "{a}");
    let a = wait_done(&base, &id_a, Duration::from_secs(180)).await;
    assert_eq!(a["state"], "succeeded", "{a}");
    assert_eq!(a["chunks"]["succeeded"], 16, "{a}");
    assert_eq!(a["progress"]["hosts_done"], 4096, "{a}");
    let hosts = host_addrs(&a);
    assert_eq!(hosts.len(), 4096);
    assert_eq!(
        hosts.iter().collect::<HashSet<_>>().len(),
        4096,
        "every host once"
    );
    assert!(
        a["result"].get("partial").is_none(),
        "{}",
        a["result"]["partial"]
    );

    let list = chunks(&base, &id_a).await;
    assert_eq!(list.len(), 16);
    let workers: BTreeSet<&str> = list.iter().filter_map(|c| c["worker"].as_str()).collect();
    assert!(workers.len() >= 2, "chunks ran on {workers:?}");
    for (n, c) in list.iter().enumerate() {
        assert_eq!(c["correlation_id"], format!("{id_a}:{n}"));
        assert_eq!(c["parent"], id_a.as_str());
        assert_eq!(c["state"], "succeeded");
        assert_eq!(c["target"], format!("127.1.{n}.0/24"));
    }
    // A chunk is an ordinary job, readable by its own ID.
    let one = get_json(&base, &format!("/v1/jobs/{id_a}:3")).await;
    assert_eq!(one["parent"], id_a.as_str());

    // The same scan once a port answers on one address of the /20.
    let listener = std::net::TcpListener::bind(("127.1.3.7", listener_port)).unwrap();
    let b = submit(
        &base,
        &submit_body(
            "127.1.0.0/20",
            &format!("-sT -n -p {listener_port}"),
            json!({}),
        ),
    )
    .await;
    let id_b = b["correlation_id"].as_str().unwrap().to_owned();
    let b = wait_done(&base, &id_b, Duration::from_secs(180)).await;
    assert_eq!(b["state"], "succeeded", "{b}");
    drop(listener);

    // One nmaprun each, that nmap's own ndiff reads; scanq's diff agrees with it.
    let xml_a = text(&base, &format!("/v1/jobs/{id_a}/result.xml")).await;
    let xml_b = text(&base, &format!("/v1/jobs/{id_b}/result.xml")).await;
    assert_eq!(xml_a.matches("<nmaprun").count(), 1);
    assert_eq!(
        xml_a.matches("<host ").count() + xml_a.matches("<host>").count(),
        4096
    );
    let (pa, pb) = (fx.path("a.xml"), fx.path("b.xml"));
    std::fs::write(&pa, &xml_a).unwrap();
    std::fs::write(&pb, &xml_b).unwrap();
    let nd = std::process::Command::new("ndiff")
        .arg(&pa)
        .arg(&pb)
        .output()
        .unwrap();
    let nd_text = String::from_utf8_lossy(&nd.stdout).into_owned();
    assert_eq!(
        nd.status.code(),
        Some(1),
        "ndiff sees a difference: {nd_text}"
    );
    let changed: Vec<&str> = nd_text
        .lines()
        .filter(|l| l.starts_with('+') || l.starts_with('-'))
        .collect();
    assert!(
        changed
            .iter()
            .any(|l| l.contains(&format!("{listener_port}/tcp")) && l.contains("open")),
        "{nd_text}"
    );
    assert!(nd_text.contains("127.1.3.7"), "{nd_text}");
    let diff = get_json(&base, &format!("/v1/jobs/{id_b}/diff?against={id_a}")).await;
    let changed_hosts: Vec<&str> = diff["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["address"].as_str().or(h["host"].as_str()))
        .collect();
    assert_eq!(changed_hosts, ["127.1.3.7"], "{diff}");
    let same = std::process::Command::new("ndiff")
        .arg(&pa)
        .arg(&pa)
        .status()
        .unwrap();
    assert_eq!(same.code(), Some(0));

    // The parent is listed once; its chunks are not.
    let listed = get_json(&base, "/v1/jobs?limit=100").await;
    let ids: Vec<&str> = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|j| j["correlation_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");

    w1.shutdown().await;
    w2.shutdown().await;
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chunk_that_fails_for_good_fails_the_parent_with_the_others_hosts_and_retry_reruns_only_it()
 {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let catalog = bignmap(&fx, "127.1.0.32/28");
    let cfg = test_config(&redis, "big-partial");
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let worker = start_worker(worker_cfg(&cfg, "w1", 4), catalog.clone()).await;

    let doc = submit(
        &base,
        &json!({"tool": "bignmap", "target": "127.1.0.0/26", "args": "-sn -n",
                "chunk_hosts": 16, "max_attempts": 1}),
    )
    .await;
    let id = doc["correlation_id"].as_str().unwrap().to_owned();
    let failed = wait_done(&base, &id, Duration::from_secs(120)).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(failed["result"]["partial"], true, "{failed}");
    assert_eq!(failed["chunks"]["failed"], 1);
    assert_eq!(failed["chunks"]["succeeded"], 3);
    assert_eq!(host_addrs(&failed).len(), 48);
    let message = failed["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("{id}:2")), "{message}");
    // The hosts found are exportable although the parent failed.
    let xml = text(&base, &format!("/v1/jobs/{id}/result.xml")).await;
    assert!(xml.contains("127.1.0.5") && !xml.contains("\"127.1.0.33\""));
    let csv = http()
        .get(format!("{base}/v1/jobs/{id}/result.csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status().as_u16(), 200);
    let before = chunks(&base, &id).await;

    std::fs::write(fx.path("ctl/healed"), "").unwrap();
    let resp = post_json(&base, &format!("/v1/jobs/{id}/retry"), &json!({})).await;
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    let done = wait_done(&base, &id, Duration::from_secs(120)).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(done["result"].get("partial").is_none());
    assert!(done.get("error").is_none_or(Value::is_null), "{done}");
    assert_eq!(host_addrs(&done).len(), 64);
    let after = chunks(&base, &id).await;
    for n in [0, 1, 3] {
        assert_eq!(
            before[n]["started_at"], after[n]["started_at"],
            "chunk {n} did not run again"
        );
    }
    assert_ne!(before[2]["started_at"], after[2]["started_at"]);

    worker.shutdown().await;
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_worker_s_chunks_alone_run_again_and_every_host_is_found_once() {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let catalog = bignmap(&fx, "none");
    std::fs::write(fx.path("ctl/delay"), "1").unwrap();
    let mut cfg = test_config(&redis, "big-kill");
    cfg.catalog = Some(fx.path("catalog.toml"));
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let mut doomed = Proc::spawn("scanq-worker", &worker_cfg(&cfg, "doomed", 2), &[]);
    let survivor = Proc::spawn("scanq-worker", &worker_cfg(&cfg, "survivor", 2), &[]);

    let doc = submit(&base, &submit_body("127.1.0.0/21", "-sn -n", json!({}))).await;
    let id = doc["correlation_id"].as_str().unwrap().to_owned();
    // Kill -9 the first worker while it runs a chunk.
    eventually(
        Duration::from_secs(30),
        "a chunk running on the doomed worker",
        || {
            let base = base.clone();
            let id = id.clone();
            async move {
                chunks(&base, &id)
                    .await
                    .iter()
                    .any(|c| c["state"] == "running" && c["worker"] == "doomed")
                    .then_some(())
            }
        },
    )
    .await;
    doomed.signal(nix::sys::signal::Signal::SIGKILL);
    doomed.wait_exit(Duration::from_secs(10)).await;

    let done = wait_done(&base, &id, Duration::from_secs(120)).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let hosts = host_addrs(&done);
    assert_eq!(hosts.len(), 2048);
    assert_eq!(
        hosts.iter().collect::<HashSet<_>>().len(),
        2048,
        "every host once"
    );
    let list = chunks(&base, &id).await;
    let rerun: Vec<&Value> = list.iter().filter(|c| c["attempt"] != 1).collect();
    assert!(!rerun.is_empty(), "the doomed worker's chunks ran again");
    for c in &list {
        if c["attempt"] == 1 {
            continue;
        }
        assert_eq!(c["attempt"], 2, "{c}");
        assert_eq!(c["worker"], "survivor", "{c}");
    }
    drop(survivor);
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_a_running_parent_cancels_every_chunk_within_seconds() {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let catalog = bignmap(&fx, "none");
    std::fs::write(fx.path("ctl/delay"), "60").unwrap();
    let cfg = test_config(&redis, "big-cancel");
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let worker = start_worker(worker_cfg(&cfg, "w1", 3), catalog.clone()).await;

    let doc = submit(&base, &submit_body("127.1.0.0/21", "-sn -n", json!({}))).await;
    let id = doc["correlation_id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(30), "the parent running", || {
        let base = base.clone();
        let id = id.clone();
        async move {
            let d = get_json(&base, &format!("/v1/jobs/{id}")).await;
            (d["state"] == "running" && d["chunks"]["running"] == 3).then_some(())
        }
    })
    .await;
    let resp = http()
        .delete(format!("{base}/v1/jobs/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let started = std::time::Instant::now();
    let done = wait_done(&base, &id, Duration::from_secs(20)).await;
    assert_eq!(done["state"], "cancelled", "{done}");
    assert!(started.elapsed() < Duration::from_secs(15));
    let list = chunks(&base, &id).await;
    assert_eq!(list.len(), 8);
    assert!(list.iter().all(|c| c["state"] == "cancelled"), "{list:?}");
    // A second cancel: the parent is final.
    let again = http()
        .delete(format!("{base}/v1/jobs/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 409);
    worker.shutdown().await;
    api.shutdown().await;
}

#[tokio::test]
async fn over_limit_malformed_and_mixed_big_targets_are_refused_naming_the_field() {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let catalog = bignmap(&fx, "none");
    let cfg = test_config(&redis, "big-refused");
    let (api, base) = start_api(cfg, catalog).await;
    let cases = [
        (json!({"target": "127.0.0.0/8"}), "target", "65536"),
        (
            json!({"target": "127.1.0.0/20,127.1.16.0/24,bad!"}),
            "target",
            "entry 3",
        ),
        (
            json!({"target": "127.1.0.0/20,db1.lab.internal"}),
            "target",
            "mixes",
        ),
        (
            json!({"target": "127.1.0.0/20,127.1.8.0/24"}),
            "target",
            "overlap",
        ),
        (
            json!({"target": "127.1.0.0/20", "chunk_hosts": 0}),
            "chunk_hosts",
            "1 to 1024",
        ),
        (
            json!({"target": "127.1.0.0/20", "chunk_hosts": 5000}),
            "chunk_hosts",
            "1 to 1024",
        ),
        (
            json!({"target": "127.1.0.0/20", "correlation_id": "x".repeat(60)}),
            "correlation_id",
            "56",
        ),
        (
            json!({"target": "127.1.0.0/20,127.2.0.0/16"}),
            "target",
            "69632 hosts",
        ),
    ];
    for (extra, field, words) in cases {
        let mut body = json!({"tool": "bignmap", "args": "-sn"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let resp = post_json(&base, "/v1/jobs", &body).await;
        assert_eq!(resp.status().as_u16(), 422, "{body}");
        let problem: Value = resp.json().await.unwrap();
        assert_eq!(problem["field"], field, "{body}: {problem}");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(words), "{body}: {problem}");
    }
    // Nothing was queued by any of them.
    let listed = get_json(&base, "/v1/jobs").await;
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 0);
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_list_of_hostnames_is_split_into_chunks_of_names_each_resolved_by_its_worker() {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let catalog = bignmap(&fx, "none");
    let cfg = test_config(&redis, "big-names");
    let (api, base) = start_api(cfg.clone(), catalog.clone()).await;
    // 40 names under the allowed `.lab.internal`, each answering on its own loopback address.
    let names: Vec<String> = (0..40).map(|i| format!("h{i}.lab.internal")).collect();
    let mut resolver = scanq::validate::StaticResolver::new();
    for (i, n) in names.iter().enumerate() {
        resolver = resolver.with(n, [std::net::IpAddr::from([127, 1, 5, i as u8])]);
    }
    let worker = scanq_worker::Worker::connect_with_resolver(
        worker_cfg(&cfg, "names", 4),
        catalog.clone(),
        std::sync::Arc::new(resolver),
    )
    .await
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        worker
            .run(async move {
                let _ = stopped.await;
            })
            .await
    });

    let doc = submit(
        &base,
        &json!({"tool": "bignmap", "target": names.join(","), "args": "-sn -n", "chunk_hosts": 16}),
    )
    .await;
    let id = doc["correlation_id"].as_str().unwrap().to_owned();
    assert_eq!(doc["chunks"]["total"], 3, "{doc}");
    assert_eq!(doc["progress"]["hosts_total"], 40, "{doc}");
    let done = wait_done(&base, &id, Duration::from_secs(120)).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let mut hosts = host_addrs(&done);
    hosts.sort();
    let mut want: Vec<String> = (0..40).map(|i| format!("127.1.5.{i}")).collect();
    want.sort();
    assert_eq!(hosts, want, "every name's address once");
    let list = chunks(&base, &id).await;
    assert_eq!(list[0]["target"], names[..16].join(","));
    assert_eq!(list[2]["target"], names[32..].join(","));

    let _ = stop.send(());
    running.await.unwrap();
    api.shutdown().await;
}

#[tokio::test]
async fn a_big_scan_that_does_not_fit_the_queue_is_refused_whole_and_leaves_nothing_queued() {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let catalog = bignmap(&fx, "none");
    let mut cfg = test_config(&redis, "big-full");
    cfg.max_queue_len = 5;
    // No worker: nothing may run, whatever is queued.
    let (api, base) = start_api(cfg, catalog).await;
    let body = submit_body(
        "127.1.0.0/20",
        "-sn -n",
        json!({"correlation_id": "too-big"}),
    );
    let resp = post_json(&base, "/v1/jobs", &body).await;
    assert_eq!(resp.status().as_u16(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    // The parent says why; the five chunks that fitted were cancelled with it.
    let parent = get_json(&base, "/v1/jobs/too-big").await;
    assert_eq!(parent["state"], "cancelled", "{parent}");
    assert_eq!(parent["chunks"]["cancelled"], 5, "{parent}");
    assert_eq!(parent["chunks"]["queued"], 0, "{parent}");
    let list = chunks(&base, "too-big").await;
    assert_eq!(list.len(), 5);
    assert!(list.iter().all(|c| c["state"] == "cancelled"), "{list:?}");
    // The queue has room again: a plain job fits.
    let plain = post_json(
        &base,
        "/v1/jobs",
        &json!({"tool": "bignmap", "target": "127.1.0.1", "args": "-sn"}),
    )
    .await;
    assert_eq!(plain.status().as_u16(), 202);
    api.shutdown().await;
}
