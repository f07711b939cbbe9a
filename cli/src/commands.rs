//! One function per subcommand: one or two REST calls, then a table (or the JSON with --json).

use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::client::{Api, Failure};
use crate::render::{self, cell, table};
use crate::{Cmd, Format};

pub async fn run(api: &Api, json: bool, cmd: &Cmd) -> Result<(), Failure> {
    match cmd {
        Cmd::Submit {
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
            watch: follow,
        } => {
            let mut body = Map::new();
            body.insert("tool".into(), json!(tool));
            body.insert("target".into(), json!(target));
            let optional = [
                ("template", template.as_ref().map(|v| json!(v))),
                ("args", args.as_ref().map(|v| json!(v))),
                ("timeout_sec", timeout_sec.map(|v| json!(v))),
                ("priority", priority.as_ref().map(|v| json!(v))),
                ("correlation_id", id.as_ref().map(|v| json!(v))),
                ("max_attempts", max_attempts.map(|v| json!(v))),
                ("delay_sec", delay_sec.map(|v| json!(v))),
                ("intrusive", intrusive.then_some(json!(true))),
            ];
            for (k, v) in optional {
                if let Some(v) = v {
                    body.insert(k.into(), v);
                }
            }
            let doc = api
                .json(Method::POST, "/v1/jobs", Some(&Value::Object(body)))
                .await?;
            let id = cell(&doc["correlation_id"]);
            if *follow {
                if !json {
                    eprintln!("submitted {id}");
                }
                return finish(watch(api, &id, json).await?, json);
            }
            print_doc(&doc, json);
            Ok(())
        }
        Cmd::Watch { id } => finish(watch(api, id, json).await?, json),
        Cmd::Jobs {
            state,
            tool,
            limit,
            tenant,
        } => {
            let mut q = format!("/v1/jobs?limit={limit}");
            for (k, v) in [("state", state), ("tool", tool), ("tenant", tenant)] {
                if let Some(v) = v {
                    q.push_str(&format!("&{k}={}", urlencode(v)));
                }
            }
            let page = api.get(&q).await?;
            if json {
                println!("{page}");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = page["jobs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|j| {
                    vec![
                        cell(&j["correlation_id"]),
                        cell(&j["tool"]),
                        cell(&j["target"]),
                        cell(&j["state"]),
                        progress(j),
                        cell(&j["created_at"]),
                    ]
                })
                .collect();
            println!(
                "{}",
                table(
                    &["ID", "TOOL", "TARGET", "STATE", "PROGRESS", "CREATED"],
                    &rows
                )
            );
            Ok(())
        }
        Cmd::Get { id } => {
            let doc = api.get(&format!("/v1/jobs/{}", urlencode(id))).await?;
            print_doc(&doc, json);
            Ok(())
        }
        Cmd::Cancel { id } => {
            let out = api
                .json(Method::DELETE, &format!("/v1/jobs/{}", urlencode(id)), None)
                .await?;
            match json {
                true => println!("{out}"),
                false => println!("{id}: {}", cell(&out["outcome"])),
            }
            Ok(())
        }
        Cmd::Retry { id } => {
            let doc = api
                .json(
                    Method::POST,
                    &format!("/v1/jobs/{}/retry", urlencode(id)),
                    None,
                )
                .await?;
            print_doc(&doc, json);
            Ok(())
        }
        Cmd::Result { id, format } => {
            let doc = api.get(&format!("/v1/jobs/{}", urlencode(id))).await?;
            if doc["state"] != "succeeded" {
                return Err(Failure::JobFailed(doc));
            }
            let format = if json { Format::Json } else { *format };
            match format {
                Format::Table => println!("{}", render::result_table(&doc)),
                Format::Json => println!("{}", doc["result"]["parsed"]),
                Format::Xml => print!("{}", doc["result"]["stdout"].as_str().unwrap_or_default()),
                Format::Csv => print!("{}", render::result_csv(&doc)),
            }
            Ok(())
        }
        Cmd::Tools => {
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
        Cmd::Workers => {
            listing(api, json, "/v1/workers", |v| {
                let rows = rows(&v["workers"], |w| {
                    vec![
                        cell(&w["id"]),
                        cell(&w["version"]),
                        cell(&w["pid"]),
                        format!("{}/{}", cell(&w["running"]), cell(&w["concurrency"])),
                    ]
                });
                table(&["WORKER", "VERSION", "PID", "RUNNING"], &rows)
            })
            .await
        }
        Cmd::Breakers => {
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
        Cmd::Stats => {
            listing(api, json, "/v1/stats", |v| {
                let rows = rows(&v["tools"], |t| {
                    let c = &t["counts"];
                    let ms = |p: &Value| cell(p);
                    vec![
                        cell(&t["tool"]),
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
        Cmd::Token { .. } | Cmd::Completions { .. } => Ok(()),
    }
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
async fn watch(api: &Api, id: &str, json: bool) -> Result<Value, Failure> {
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
    bar.set_message(format!("{id} waiting"));
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let doc = api
        .follow(&urlencode(id), |kind, data| match kind {
            "state" => {
                let state = data["state"].as_str().or(data.as_str()).unwrap_or("?");
                bar.set_message(format!("{id} {state}"));
            }
            "progress" => {
                let pct = data["percent"].as_f64().unwrap_or(0.0);
                bar.set_position(pct.clamp(0.0, 100.0) as u64);
                let phase = data["phase"].as_str().unwrap_or("running");
                let eta = data["eta_sec"]
                    .as_u64()
                    .map_or(String::new(), |s| format!(", ETA {s} s"));
                bar.set_message(format!("{id} {phase}{eta}"));
            }
            _ => {}
        })
        .await;
    bar.finish_and_clear();
    doc
}

/// Prints a finished job (its result table when it succeeded); a job that did not succeed is
/// exit 4.
fn finish(doc: Value, json: bool) -> Result<(), Failure> {
    if json {
        println!("{doc}");
    } else if doc["state"] == "succeeded" {
        println!(
            "{} succeeded in {} ms",
            cell(&doc["correlation_id"]),
            cell(&doc["duration_ms"])
        );
        println!("{}", render::result_table(&doc));
    }
    match doc["state"] == "succeeded" {
        true => Ok(()),
        false => Err(Failure::JobFailed(doc)),
    }
}

/// A job for people: its main fields, one per line.
fn print_doc(doc: &Value, json: bool) {
    if json {
        println!("{doc}");
        return;
    }
    let fields = [
        "correlation_id",
        "tool",
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
        .map(|f| vec![format!("{f}:"), cell(&doc[*f])])
        .chain([vec!["progress:".into(), progress(doc)]])
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

/// Percent-encodes a path segment or query value.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
