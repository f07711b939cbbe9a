//! Exports (`result.xml`, `result.csv`) and `GET /v1/jobs/{id}/diff`, on two real nmap scans of
//! 127.0.0.1 with local listeners opened, closed and changed between the runs; every difference
//! nmap's own `ndiff` reports on the exported XML, scanq reports too.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use scanq::catalog::Catalog;
use scanq_tests::*;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;

/// A loopback listener that greets every connection with the current banner (an SSH banner,
/// which nmap's `-sV` recognises from its first read).
fn serve(listener: tokio::net::TcpListener, banner: Arc<Mutex<String>>) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let line = banner.lock().unwrap().clone();
            tokio::spawn(async move {
                let _ = conn.write_all(line.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    })
}

async fn listen(port: u16) -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap()
}

async fn scan(base: &str, cid: &str, ports: &str) -> Value {
    let args = format!("-sT -Pn -n -sV --version-light -p {ports}");
    let r = post_json(
        base,
        "/v1/jobs",
        &json!({"tool":"nmap","target":"127.0.0.1","args":args,"correlation_id":cid}),
    )
    .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let done = wait_done(base, cid, Duration::from_secs(60)).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    done
}

async fn get_text(base: &str, path: &str) -> (u16, String, String) {
    let r = http().get(format!("{base}{path}")).send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, r.text().await.unwrap())
}

/// Hosts and `port/protocol` specs that ndiff's text output marks with `-` or `+`.
fn ndiff_changes(out: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut hosts = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for line in out.lines() {
        let body = line.get(1..).unwrap_or("");
        if let Some(host) = body.strip_suffix(':')
            && !body.contains(' ')
        {
            hosts.insert(host.to_owned());
        }
        if line.starts_with(['-', '+'])
            && let Some(spec) = body.split_whitespace().next()
            && spec.contains('/')
            && spec.split('/').next().unwrap().parse::<u16>().is_ok()
        {
            ports.insert(spec.to_owned());
        }
    }
    (hosts, ports)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_of_two_real_scans_reports_everything_ndiff_reports() {
    // Arrange: A changes its version, B closes, C opens between the runs.
    let v1 = "SSH-2.0-OpenSSH_8.4p1 Debian-5\r\n".to_owned();
    let v2 = "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n".to_owned();
    let banner_a = Arc::new(Mutex::new(v1.clone()));
    let a = listen(0).await;
    let b = listen(0).await;
    let c_port = listen(0).await.local_addr().unwrap().port();
    let (a_port, b_port) = (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    );
    let serve_a = serve(a, banner_a.clone());
    let serve_b = serve(b, Arc::new(Mutex::new(v1.clone())));
    let ports = format!("{a_port},{b_port},{c_port}");

    let redis = RedisServer::start().await;
    let cfg = test_config(&redis, "diff");
    let catalog = Catalog::builtin();
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;

    // Act
    let first = scan(&base, "run-1", &ports).await;
    *banner_a.lock().unwrap() = v2;
    serve_b.abort();
    let _ = serve_b.await;
    let serve_c = serve(listen(c_port).await, Arc::new(Mutex::new(v1)));
    let second = scan(&base, "run-2", &ports).await;

    // Assert: the XML export is the tool's stdout byte for byte.
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (cid, doc) in [("run-1", &first), ("run-2", &second)] {
        let (status, ct, xml) = get_text(&base, &format!("/v1/jobs/{cid}/result.xml")).await;
        assert_eq!(status, 200, "{xml}");
        assert!(ct.starts_with("application/xml"), "{ct}");
        assert_eq!(xml, doc["result"]["stdout"].as_str().unwrap());
        let path = dir.path().join(format!("{cid}.xml"));
        std::fs::write(&path, &xml).unwrap();
        files.push(path);
    }
    let ndiff = std::process::Command::new("ndiff")
        .args([&files[0], &files[1]])
        .output()
        .expect("ndiff is installed by scripts/install-deps.sh");
    let text = String::from_utf8_lossy(&ndiff.stdout);
    assert_eq!(ndiff.status.code(), Some(1), "ndiff saw no change:\n{text}");
    let (nd_hosts, nd_ports) = ndiff_changes(&text);

    let diff = get_json(&base, "/v1/jobs/run-2/diff?against=run-1").await;
    assert_eq!(diff["changed"], true, "{diff}");
    let hosts: BTreeSet<String> = diff["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap().to_owned())
        .collect();
    let our_ports: BTreeSet<String> = diff["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|h| h["ports"].as_array().cloned().unwrap_or_default())
        .map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap()))
        .collect();
    assert_eq!(hosts, nd_hosts, "ndiff:\n{text}\nscanq: {diff}");
    assert_eq!(our_ports, nd_ports, "ndiff:\n{text}\nscanq: {diff}");
    let expected: BTreeSet<String> = [a_port, b_port, c_port]
        .iter()
        .map(|p| format!("{p}/tcp"))
        .collect();
    assert_eq!(our_ports, expected, "ndiff:\n{text}");
    let s = &diff["summary"];
    assert_eq!(
        (&s["ports_opened"], &s["ports_closed"], &s["ports_changed"]),
        (&json!(1), &json!(1), &json!(1)),
        "{diff}"
    );
    let port_a = diff["hosts"][0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == a_port)
        .unwrap()
        .clone();
    assert_eq!(port_a["change"], "changed");
    assert_ne!(
        port_a["from"]["version"], port_a["to"]["version"],
        "{port_a}"
    );

    // A scan compared with itself: ndiff and scanq both see nothing.
    let same = get_json(&base, "/v1/jobs/run-2/diff?against=run-2").await;
    assert_eq!(same["changed"], false, "{same}");
    assert!(same["hosts"].as_array().unwrap().is_empty());

    // The CSV export: the header, then one row per listed port.
    let (status, ct, csv) = get_text(&base, "/v1/jobs/run-2/result.csv").await;
    assert_eq!(status, 200, "{csv}");
    assert!(ct.starts_with("text/csv"), "{ct}");
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "host,port,protocol,state,service,product,version");
    assert!(
        rows.contains(&format!("127.0.0.1,{b_port},tcp,closed,,,").as_str())
            || rows
                .iter()
                .any(|r| r.starts_with(&format!("127.0.0.1,{b_port},tcp,closed,"))),
        "{csv}"
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with(&format!("127.0.0.1,{c_port},tcp,open,ssh,OpenSSH,"))),
        "{csv}"
    );
    serve_a.abort();
    serve_c.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_and_diffs_of_unfinished_or_non_nmap_jobs_are_refused_with_a_reason() {
    let redis = RedisServer::start().await;
    let cfg = test_config(&redis, "diffrefuse");
    let fx = Fixture::new();
    let catalog = Catalog::load(Some(&fx.catalog(INPROCESS_TOOLS))).unwrap();
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;
    let r = post_json(
        &base,
        "/v1/jobs",
        &json!({"tool":"noop","target":"10.0.0.5","correlation_id":"plain"}),
    )
    .await;
    assert_eq!(r.status(), 202);
    let r = post_json(
        &base,
        "/v1/jobs",
        &json!({"tool":"sleep","target":"10.0.0.5","args":"--ms 60000","correlation_id":"long"}),
    )
    .await;
    assert_eq!(r.status(), 202);
    wait_done(&base, "plain", Duration::from_secs(20)).await;

    // A job without nmap output: 409 that says so.
    for path in ["result.xml", "result.csv"] {
        let (status, _, body) = get_text(&base, &format!("/v1/jobs/plain/{path}")).await;
        assert_eq!(status, 409, "{body}");
        assert!(body.contains("no parsed nmap report"), "{body}");
    }
    // A job that has not finished: 409 naming its state.
    let (status, _, body) = get_text(&base, "/v1/jobs/long/result.xml").await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("only succeeded jobs"), "{body}");
    let (status, _, body) = get_text(&base, "/v1/jobs/plain/diff?against=long").await;
    assert_eq!(status, 409, "{body}");
    // No `against`, or a malformed one: 422 naming the field.
    for q in ["", "?against=", "?against=bad%20id"] {
        let (status, _, body) = get_text(&base, &format!("/v1/jobs/plain/diff{q}")).await;
        assert_eq!(status, 422, "{q}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["field"], "against", "{body}");
    }
    // Unknown jobs on either side: 404.
    let (status, _, _) = get_text(&base, "/v1/jobs/nope/result.csv").await;
    assert_eq!(status, 404);
    let (status, _, _) = get_text(&base, "/v1/jobs/plain/diff?against=nope").await;
    assert_eq!(status, 404);
    let _ = http()
        .delete(format!("{base}/v1/jobs/long"))
        .send()
        .await
        .unwrap();
}
