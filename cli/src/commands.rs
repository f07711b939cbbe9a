//! One small function per subcommand: one typed call of the client (`client.rs`, over the
//! shared document types), then a table (or the JSON with --json).

use indicatif::{ProgressBar, ProgressStyle};
use scanq::domain::{JobDocument, Priority};
use scanq::request::SubmitBody;
use serde_json::Value;

use crate::client::{Api, Failure, urlencode};
use crate::render::{self, cell, table};
use crate::{Cmd, Format};

pub async fn run(api: &Api, json: bool, cmd: &Cmd) -> Result<(), Failure> {
    match cmd {
        Cmd::Submit { watch, .. } => submit(api, json, submit_body(cmd)?, *watch).await,
        Cmd::Watch { id, poll_ms: None } => finish(follow(api, id, json).await?, json),
        Cmd::Watch {
            id,
            poll_ms: Some(ms),
        } => finish(poll(api, id, json, *ms).await?, json),
        Cmd::Jobs {
            state,
            tool,
            limit,
            tenant,
        } => jobs(api, json, state, tool, *limit, tenant).await,
        Cmd::Get { id } => get(api, json, id).await,
        Cmd::Chunks { id, cursor, limit } => {
            crate::chunks::list(api, json, id, *cursor, *limit).await
        }
        Cmd::Cancel { id } => cancel(api, json, id).await,
        Cmd::Retry { id } => retry(api, json, id).await,
        Cmd::Approve { id, reason } => decide(api, json, id, "approve", reason).await,
        Cmd::Reject { id, reason } => decide(api, json, id, "reject", reason).await,
        Cmd::Result { id, format } => result(api, json, id, *format).await,
        Cmd::Tools => tools(api, json).await,
        Cmd::Workers => workers(api, json).await,
        Cmd::Breakers => breakers(api, json).await,
        Cmd::Stats => stats(api, json).await,
        Cmd::Token { .. } | Cmd::Completions { .. } => Ok(()),
    }
}

/// The submit body of `scanq submit`, as the shared type the API reads.
fn submit_body(cmd: &Cmd) -> Result<SubmitBody, Failure> {
    let Cmd::Submit {
        tool,
        target,
        template,
        args,
        timeout_sec,
        priority,
        id,
        max_attempts,
        intrusive,
        delay_sec,
        chunk_hosts,
        zone,
        ..
    } = cmd
    else {
        unreachable!("called for submit only");
    };
    let priority = match priority {
        None => None,
        Some(p) => Some(p.parse::<Priority>().map_err(|e| {
            Failure::Other(format!("--priority: {e}; accepted: high, normal, low"))
        })?),
    };
    Ok(SubmitBody {
        tool: tool.clone(),
        target: target.clone(),
        template: template.clone(),
        args: args.clone(),
        timeout_sec: *timeout_sec,
        priority,
        correlation_id: id.clone(),
        max_attempts: max_attempts.map(u64::from),
        intrusive: intrusive.then_some(true),
        delay_sec: *delay_sec,
        chunk_hosts: *chunk_hosts,
        zone: zone.clone(),
        ..SubmitBody::default()
    })
}

async fn submit(api: &Api, json: bool, body: SubmitBody, watch: bool) -> Result<(), Failure> {
    let doc = api.submit(&body).await?;
    if watch {
        if !json {
            eprintln!("submitted {}", doc.correlation_id);
        }
        return finish(follow(api, &doc.correlation_id, json).await?, json);
    }
    print_doc(&doc, json);
    Ok(())
}

async fn jobs(
    api: &Api,
    json: bool,
    state: &Option<String>,
    tool: &Option<String>,
    limit: u32,
    tenant: &Option<String>,
) -> Result<(), Failure> {
    let page = api
        .jobs(&[
            ("limit", Some(limit.to_string())),
            ("state", state.clone()),
            ("tool", tool.clone()),
            ("tenant", tenant.clone()),
        ])
        .await?;
    if json {
        println!("{}", serde_json::to_value(&page).expect("a page is JSON"));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = page
        .jobs
        .iter()
        .map(|j| {
            vec![
                j.correlation_id.clone(),
                j.tool.clone(),
                j.zone.to_string(),
                j.target.clone(),
                match &j.waiting_for {
                    Some(w) => format!("{} ({})", j.state, render::waiting_short(&w.as_str())),
                    None => j.state.to_string(),
                },
                progress(&serde_json::to_value(j).expect("a summary is JSON")),
                j.created_at.clone(),
            ]
        })
        .collect();
    let header = [
        "ID", "TOOL", "ZONE", "TARGET", "STATE", "PROGRESS", "CREATED",
    ];
    println!("{}", table(&header, &rows));
    Ok(())
}

async fn get(api: &Api, json: bool, id: &str) -> Result<(), Failure> {
    print_doc(&api.job(id).await?, json);
    Ok(())
}

async fn cancel(api: &Api, json: bool, id: &str) -> Result<(), Failure> {
    let out = api.cancel(id).await?;
    match json {
        true => println!("{}", serde_json::to_value(&out).expect("a reply is JSON")),
        false => println!("{id}: {}", out.outcome),
    }
    Ok(())
}

async fn retry(api: &Api, json: bool, id: &str) -> Result<(), Failure> {
    print_doc(&api.retry(id).await?, json);
    Ok(())
}

/// `scanq approve|reject ID [--reason ..]`: prints the job as it is now.
async fn decide(
    api: &Api,
    json: bool,
    id: &str,
    action: &str,
    reason: &Option<String>,
) -> Result<(), Failure> {
    print_doc(&api.decide(id, action, reason.as_deref()).await?, json);
    Ok(())
}

async fn result(api: &Api, json: bool, id: &str, format: Format) -> Result<(), Failure> {
    let doc = as_value(&api.job(id).await?);
    if doc["state"] != "succeeded" {
        return Err(Failure::JobFailed(doc));
    }
    let format = if json { Format::Json } else { format };
    match format {
        Format::Table => println!("{}", render::result_table(&doc)),
        Format::Json => println!("{}", doc["result"]["parsed"]),
        Format::Xml => print!("{}", doc["result"]["stdout"].as_str().unwrap_or_default()),
        Format::Csv => print!("{}", render::result_csv(&doc)),
    }
    Ok(())
}

async fn tools(api: &Api, json: bool) -> Result<(), Failure> {
    listing(api, json, "/v1/tools", |v| {
        let rows = rows(&v["tools"], |t| {
            let templates: Vec<&str> = t["templates"]
                .as_object()
                .map(|m| m.keys().map(String::as_str).collect())
                .unwrap_or_default();
            vec![
                cell(&t["name"]),
                cell(&t["enabled"]),
                cell(&t["executor"]),
                templates.join(","),
                cell(&t["description"]),
            ]
        });
        table(
            &["TOOL", "ENABLED", "EXECUTOR", "TEMPLATES", "DESCRIPTION"],
            &rows,
        )
    })
    .await
}

async fn workers(api: &Api, json: bool) -> Result<(), Failure> {
    listing(api, json, "/v1/workers", |v| {
        let rows = rows(&v["workers"], |w| {
            vec![
                cell(&w["id"]),
                w["zone"].as_str().unwrap_or("default").to_owned(),
                cell(&w["version"]),
                cell(&w["pid"]),
                format!("{}/{}", cell(&w["running"]), cell(&w["concurrency"])),
            ]
        });
        table(&["WORKER", "ZONE", "VERSION", "PID", "RUNNING"], &rows)
    })
    .await
}

async fn breakers(api: &Api, json: bool) -> Result<(), Failure> {
    listing(api, json, "/v1/breakers", |v| {
        let rows: Vec<Vec<String>> = v["breakers"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(tool, b)| {
                vec![
                    tool.clone(),
                    cell(&b["state"]),
                    cell(&b["consecutive_failures"]),
                    format!("{}", b["retry_after_ms"].as_u64().unwrap_or(0) / 1000),
                    b["history"].as_array().map_or(0, Vec::len).to_string(),
                ]
            })
            .collect();
        table(
            &["TOOL", "STATE", "FAILURES", "RETRY_AFTER_S", "TRANSITIONS"],
            &rows,
        )
    })
    .await
}

async fn stats(api: &Api, json: bool) -> Result<(), Failure> {
    listing(api, json, "/v1/stats", |v| {
        let rows = rows(&v["tools"], |t| {
            let c = &t["counts"];
            let ms = |p: &Value| cell(p);
            vec![
                cell(&t["tool"]),
                t["zone"].as_str().unwrap_or("default").to_owned(),
                cell(&c["queued"]),
                cell(&c["scheduled"]),
                cell(&c["running"]),
                cell(&c["succeeded"]),
                cell(&c["failed"]),
                cell(&c["cancelled"]),
                cell(&t["oldest_queued_age_ms"]),
                format!(
                    "{}/{}",
                    ms(&t["queue_wait"]["p50_ms"]),
                    ms(&t["queue_wait"]["p95_ms"])
                ),
                format!(
                    "{}/{}",
                    ms(&t["run_time"]["p50_ms"]),
                    ms(&t["run_time"]["p95_ms"])
                ),
            ]
        });
        let header = [
            "TOOL",
            "ZONE",
            "QUEUED",
            "SCHED",
            "RUNNING",
            "OK",
            "FAILED",
            "CANCELLED",
            "OLDEST_MS",
            "WAIT_P50/95_MS",
            "RUN_P50/95_MS",
        ];
        format!("scope: {}\n{}", cell(&v["scope"]), table(&header, &rows))
    })
    .await
}

/// GET `path` and print it as JSON or through `render`.
async fn listing(
    api: &Api,
    json: bool,
    path: &str,
    render: impl FnOnce(&Value) -> String,
) -> Result<(), Failure> {
    let v = api.get(path).await?;
    match json {
        true => println!("{v}"),
        false => println!("{}", render(&v)),
    }
    Ok(())
}

fn rows(list: &Value, row: impl Fn(&Value) -> Vec<String>) -> Vec<Vec<String>> {
    list.as_array().into_iter().flatten().map(row).collect()
}

fn progress(doc: &Value) -> String {
    match doc["progress"]["percent"].as_f64() {
        Some(p) => format!("{p:.0}%"),
        None => "-".into(),
    }
}

/// Follows a job with a progress bar (on stderr, only on a terminal) until it finishes.
async fn follow(api: &Api, id: &str, json: bool) -> Result<Value, Failure> {
    let bar = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(100)
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos:>3}% {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    // A big scan's hosts and chunks (from its document first, then from its progress events),
    // kept in the message when a state event comes after them. A job is named with its zone,
    // and says why it waits when it does (no live worker of its zone, …).
    // Its summary (DESIGN §15): everything the bar needs, without reading the result.
    let first = api
        .job_summary(id)
        .await
        .ok()
        .map(|s| serde_json::to_value(s).expect("a summary is JSON"));
    let mut chunks = first
        .as_ref()
        .and_then(|doc| crate::chunks::doc_progress(id, doc));
    let label = match &first {
        Some(doc) => format!("{id} (zone {})", render::zone(doc)),
        None => id.to_owned(),
    };
    let waiting = first
        .as_ref()
        .and_then(|doc| doc["waiting_for"].as_str())
        .map_or(String::new(), |w| format!(", {}", render::waiting_short(w)));
    bar.set_message(
        chunks
            .clone()
            .unwrap_or_else(|| format!("{label} waiting{waiting}")),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let doc = api
        .follow(&urlencode(id), |kind, data| match kind {
            "state" => {
                let state = data["state"].as_str().or(data.as_str()).unwrap_or("?");
                bar.set_message(match &chunks {
                    Some(c) => format!("{c} ({state})"),
                    None => format!("{label} {state}"),
                });
            }
            "progress" => {
                let pct = data["percent"].as_f64().unwrap_or(0.0);
                bar.set_position(pct.clamp(0.0, 100.0) as u64);
                let phase = data["phase"].as_str().unwrap_or("running");
                let eta = data["eta_sec"]
                    .as_u64()
                    .map_or(String::new(), |s| format!(", ETA {s} s"));
                // A big scan is followed as its parent: one bar, hosts and chunks in its message.
                chunks = crate::chunks::progress_message(id, data);
                let message = chunks
                    .clone()
                    .unwrap_or_else(|| format!("{label} {phase}{eta}"));
                bar.set_message(message);
            }
            _ => {}
        })
        .await;
    bar.finish_and_clear();
    doc
}

/// Follows a job by polling its summary with `If-None-Match` (a 304 while nothing changed)
/// every `every_ms`, with the same bar, until it finishes; then reads its document once.
async fn poll(api: &Api, id: &str, json: bool, every_ms: u64) -> Result<Value, Failure> {
    let bar = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(100)
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos:>3}% {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut tag: Option<String> = None;
    loop {
        if let Some((summary, etag)) = api.summary_if_changed(id, tag.as_deref()).await? {
            tag = etag;
            let pct = summary["progress"]["percent"].as_f64().unwrap_or(0.0);
            bar.set_position(pct.clamp(0.0, 100.0) as u64);
            let state = summary["state"].as_str().unwrap_or("?").to_owned();
            bar.set_message(format!("{id} (zone {}) {state}", render::zone(&summary)));
            if matches!(state.as_str(), "succeeded" | "failed" | "cancelled") {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(every_ms)).await;
    }
    bar.finish_and_clear();
    api.get(&format!("/v1/jobs/{}", urlencode(id))).await
}

/// Prints a finished job (its result table when it succeeded); a job that did not succeed is
/// exit 4.
fn finish(doc: Value, json: bool) -> Result<(), Failure> {
    if json {
        println!("{doc}");
    } else if doc["state"] == "succeeded" {
        println!(
            "{} succeeded in {} ms (zone {})",
            cell(&doc["correlation_id"]),
            cell(&doc["duration_ms"]),
            render::zone(&doc)
        );
        println!("{}", render::result_table(&doc));
    }
    match doc["state"] == "succeeded" {
        true => Ok(()),
        false => Err(Failure::JobFailed(doc)),
    }
}

/// A job as the JSON the API sent (the renderers read it field by field).
fn as_value(doc: &JobDocument) -> Value {
    serde_json::to_value(doc).expect("a job document is JSON")
}

/// A job for people: its main fields, one per line.
fn print_doc(doc: &JobDocument, json: bool) {
    let doc = &as_value(doc);
    if json {
        println!("{doc}");
        return;
    }
    let fields = [
        "correlation_id",
        "tool",
        "zone",
        "target",
        "args",
        "state",
        "attempt",
        "priority",
        "created_at",
        "started_at",
        "finished_at",
        "worker",
    ];
    let rows: Vec<Vec<String>> = fields
        .iter()
        .map(|f| match *f {
            "zone" => vec!["zone:".into(), render::zone(doc)],
            _ => vec![format!("{f}:"), cell(&doc[*f])],
        })
        .chain([vec!["progress:".into(), progress(doc)]])
        .chain(crate::chunks::doc_rows(doc))
        // What it needs of a worker and why it waits, when it says so.
        .chain((!doc["needs"].is_null()).then(|| vec!["needs:".into(), cell(&doc["needs"])]))
        .chain(
            doc["waiting_for"]
                .as_str()
                .map(|w| vec!["waiting_for:".into(), render::waiting(w)]),
        )
        .chain(
            doc["error"]["message"]
                .as_str()
                .map(|m| vec!["error:".into(), m.to_owned()]),
        )
        .collect();
    println!(
        "{}",
        table(&["", ""], &rows)
            .trim_start_matches('\n')
            .trim_start()
    );
}
