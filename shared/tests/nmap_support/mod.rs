//! Test support for nmap tests: loopback listeners that look like real services, and a
//! bounded runner for the real nmap binary. Every scan targets 127.0.0.1 only.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where fixtures live.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nmap")
}

/// Reads a fixture by file name.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The nmap binary on PATH, or `None` (callers skip with a message).
pub fn nmap_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("nmap"))
        .find(|candidate| candidate.is_file())
}

/// Returns the nmap binary or prints why the test is skipped.
pub fn nmap_or_skip(test: &str) -> Option<PathBuf> {
    let found = nmap_binary();
    if found.is_none() {
        eprintln!("SKIPPED {test}: nmap is not installed (apt-get install nmap)");
    }
    found
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// Listeners on 127.0.0.1 that answer like an HTTP server and an SSH server. Their threads
/// live until the test process ends.
pub struct Services {
    pub http: u16,
    pub ssh: u16,
}

impl Services {
    pub fn start() -> Self {
        let http = serve(|mut conn| {
            // nmap's NULL probe waits up to 6 s for a banner before it sends anything.
            let _ = conn.set_read_timeout(Some(Duration::from_secs(8)));
            let mut request = Vec::new();
            let mut chunk = [0u8; 512];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
                match conn.read(&mut chunk) {
                    Ok(0) => return,
                    Ok(n) => request.extend_from_slice(&chunk[..n]),
                    Err(_) if request.is_empty() => return,
                    Err(_) => break,
                }
                // Once a client speaks, answer soon even if it never ends a request.
                let _ = conn.set_read_timeout(Some(Duration::from_millis(300)));
            }
            let (status, body) = if request.starts_with(b"GET ") || request.starts_with(b"HEAD ") {
                (
                    "200 OK",
                    "<html><head><title>scanq fixture</title></head><body>hi</body></html>",
                )
            } else {
                ("400 Bad request", "<html><body>bad request</body></html>")
            };
            // The Server header matches nmap's signature for Python's http.server.
            let response = format!(
                "HTTP/1.0 {status}\r\nServer: SimpleHTTP/0.6 Python/3.11.7\r\n\
                 Content-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(response.as_bytes());
        });
        let ssh = serve(|mut conn| {
            let _ = conn.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n");
            let _ = conn.set_read_timeout(Some(Duration::from_millis(300)));
            let _ = conn.read(&mut [0u8; 256]);
        });
        Self { http, ssh }
    }
}

fn serve(handle: fn(TcpStream)) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || handle(conn));
        }
    });
    port
}

/// What one nmap run printed.
pub struct NmapRun {
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub success: bool,
}

/// Runs nmap with `args` against 127.0.0.1 (appended here, so no test can name another
/// target), killing it after `limit`.
pub fn run_nmap(nmap: &Path, args: &[&str], limit: Duration) -> NmapRun {
    run_nmap_targets(nmap, args, &["127.0.0.1"], limit)
}

/// Like [`run_nmap`], with loopback targets listed explicitly (each must be 127.0.0.1).
pub fn run_nmap_targets(nmap: &Path, args: &[&str], targets: &[&str], limit: Duration) -> NmapRun {
    run_nmap_streaming(nmap, args, targets, limit, |_| {})
}

/// Runs nmap like [`run_nmap_targets`], handing each stdout chunk to `on_chunk` as it
/// arrives (on a reader thread).
pub fn run_nmap_streaming(
    nmap: &Path,
    args: &[&str],
    targets: &[&str],
    limit: Duration,
    mut on_chunk: impl FnMut(&[u8]) + Send + 'static,
) -> NmapRun {
    assert!(
        targets.iter().all(|t| *t == "127.0.0.1"),
        "tests scan 127.0.0.1 only"
    );
    let mut child = Command::new(nmap)
        .args(args)
        .args(["-oX", "-"])
        .args(targets)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nmap");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = stdout.read(&mut chunk) {
            on_chunk(&chunk[..n]);
            all.extend_from_slice(&chunk[..n]);
        }
        all
    });
    let err = std::thread::spawn(move || {
        let mut buf = String::new();
        let _ = stderr.read_to_string(&mut buf);
        buf
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait nmap") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("nmap {args:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    NmapRun {
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
        success: status.success(),
    }
}
