//! `wrk` beside `scanq-bench`'s own load loop (`--reads`): the same case run by a load generator
//! that spends far less CPU per request, when it is installed (`scripts/install-deps.sh`).

/// What wrk measured for one case.
#[derive(Debug, Clone, Copy)]
pub struct Wrk {
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Answers that were neither 2xx nor 3xx.
    pub bad: u64,
}

/// A wrk duration (`512.00us`, `2.10ms`, `1.02s`, `1.50m`) in ms.
fn wrk_ms(v: &str) -> Option<f64> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => return None,
    })
}

/// Runs wrk against `url` (None when wrk is not installed or its output is unreadable). A
/// `url` with `{i}` has it replaced, for each request, by a random one of `spread` job numbers
/// (a wrk Lua script).
pub async fn wrk(
    url: &str,
    tag: Option<&str>,
    connections: u32,
    secs: u64,
    spread: u64,
) -> Option<Wrk> {
    let script = match url.split_once("{i}") {
        Some((head, tail)) => {
            let path = head.splitn(4, '/').nth(3).unwrap_or_default();
            let lua = format!(
                "math.randomseed(os.time())\nrequest = function()\n  return wrk.format(nil, string.format(\"/{path}%05d{tail}\", math.random(0, {})))\nend\n",
                spread.saturating_sub(1)
            );
            let file = tempfile::Builder::new().suffix(".lua").tempfile().ok()?;
            std::fs::write(file.path(), lua).ok()?;
            Some(file)
        }
        None => None,
    };
    let mut cmd = std::process::Command::new("wrk");
    if let Some(f) = &script {
        cmd.arg("-s").arg(f.path());
    }
    cmd.args([
        "-t2",
        &format!("-c{connections}"),
        &format!("-d{secs}s"),
        "--latency",
    ]);
    if let Some(t) = tag {
        cmd.args(["-H", &format!("If-None-Match: {t}")]);
    }
    cmd.arg(url.replace("{i}", "00000"));
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.trim().to_owned()))
    };
    Some(Wrk {
        per_sec: field("Requests/sec:")?.parse().ok()?,
        p50_ms: wrk_ms(&field("50%")?)?,
        p99_ms: wrk_ms(&field("99%")?)?,
        bad: field("Non-2xx or 3xx responses:").map_or(Some(0), |n| n.parse().ok())?,
    })
}
