//! CSV injection (issue 19, item 3): a service on 127.0.0.1 whose banner nmap's `-sV` copies
//! into the port's `version` as a spreadsheet formula. Real nmap, real worker, real API and the
//! real `scanq` binary: neither `result.csv` nor `scanq result --format csv` writes a cell that
//! a spreadsheet would evaluate, and the exports carry `nosniff` and a sandboxing CSP.

use std::time::Duration;

use scanq::catalog::Catalog;
use scanq_tests::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// nmap's `match ftp m|^220 vsFTPd (.*) ready\.\.\.\r\n| p/vsftpd/ v/$1/` puts the formula in
/// `version` (checked by hand with `nmap -sV -p PORT 127.0.0.1 -oX -`).
const BANNER: &str = "220 vsFTPd =HYPERLINK(\"http://x.invalid\",\"x\") ready...\r\n";
const FORMULA: &str = "=HYPERLINK(\"http://x.invalid\",\"x\")";

/// The cells of a CSV document as a spreadsheet reads them (RFC 4180: quoted cells may hold
/// commas, doubled quotes and line breaks).
fn cells(csv: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = csv.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') if cell.is_empty() => quoted = true,
            (false, ',' | '\n') => out.push(std::mem::take(&mut cell)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, c) => cell.push(c),
        }
    }
    if !cell.is_empty() {
        out.push(cell);
    }
    out
}

fn assert_no_formula(what: &str, csv: &str) {
    let cells = cells(csv);
    for c in &cells {
        assert!(
            !c.starts_with(['=', '+', '-', '@', '\t', '\r']),
            "{what}: cell {c:?} starts a formula in\n{csv}"
        );
    }
    let neutral = format!("'{FORMULA}");
    assert!(
        cells.contains(&neutral),
        "{what}: the banner's version is kept, as text: {cells:?}"
    );
}

fn assert_sandboxed(h: &reqwest::header::HeaderMap) {
    assert_eq!(h["x-content-type-options"], "nosniff", "{h:?}");
    assert_eq!(
        h["content-security-policy"], "sandbox; default-src 'none'",
        "{h:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banner_formula_is_text_in_both_csv_exports() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let listener = tokio::spawn(async move {
        while let Ok((mut sock, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = sock.write_all(BANNER.as_bytes()).await;
                let mut buf = [0u8; 256];
                let _ = tokio::time::timeout(Duration::from_secs(2), sock.read(&mut buf)).await;
            });
        }
    });
    let redis = RedisServer::start().await;
    let cfg = test_config(&redis, "csvinj");
    let catalog = Catalog::builtin();
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;

    let args = format!("-sT -sV -Pn -n -p {port}");
    let r = post_json(
        &base,
        "/v1/jobs",
        &json!({"tool":"nmap","target":"127.0.0.1","args":args,"correlation_id":"ftp"}),
    )
    .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let done = wait_done(&base, "ftp", Duration::from_secs(90)).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    // The attack is real: the formula reached the parsed result.
    let service = &done["result"]["parsed"]["hosts"][0]["ports"][0]["service"];
    assert_eq!(service["version"], FORMULA, "{service}");

    // REST export.
    let resp = http()
        .get(format!("{base}/v1/jobs/ftp/result.csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_sandboxed(resp.headers());
    assert_no_formula("result.csv", &resp.text().await.unwrap());
    // The raw XML holds the banner too: never sniffed as HTML, sandboxed if opened directly.
    let resp = http()
        .get(format!("{base}/v1/jobs/ftp/result.xml"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_sandboxed(resp.headers());
    assert!(resp.text().await.unwrap().contains("HYPERLINK"));

    // The CLI, as the real binary.
    let mut cmd = std::process::Command::new(bin("scanq"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SCANQ_URL", &base)
        .args(["result", "ftp", "--format", "csv"]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap());
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("scanq finished")
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_no_formula("scanq result", &String::from_utf8_lossy(&out.stdout));
    listener.abort();
}

#[test]
fn the_test_reader_splits_quoted_cells_like_a_spreadsheet() {
    assert_eq!(
        cells("a,\"b,\"\"c\"\"\"\r\n'=1,\n"),
        vec!["a", "b,\"c\"", "'=1", ""]
    );
}
