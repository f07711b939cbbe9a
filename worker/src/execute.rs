//! One attempt of one job: re-check what was read from Redis, run the tool's executor, and turn
//! the outcome into a [`Completion`] (or nothing, when the attempt was taken over).
//!
//! Classification (DESIGN §3): spawn failures and resource exhaustion are retried; a timeout is
//! retried only when the tool says so; a missing binary, a validation failure and a tool that
//! exits non-zero are final; a cancelled job is never retried.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use scanq::catalog::{Executor, ToolSpec};
use scanq::domain::{ErrorInfo, ErrorType, JobResult};
use scanq::request::{StoredRequest, recheck};
use scanq::scripts::{ClaimedJob, Completion, RenewStatus};
use tokio_util::sync::CancellationToken;

use crate::runner::{RunningJob, Worker, stop};
use crate::sandbox::{self, Limits, SandboxSpec, SpawnError};

/// What the executor reported, before the stop reason is applied. The `&str` is the failure
/// kind the breaker is told about (`spawn_error`, `signal`, `resource_exhausted`, `timeout`,
/// `exit_nonzero`, …; `ignored` for outcomes that say nothing about the tool's health); the
/// tool's `breaker.failure_kinds` decide which of them count as failures.
enum Ran {
    Succeeded(JobResult),
    Failed(ErrorInfo, Option<JobResult>, &'static str),
    Retry(ErrorInfo, Option<JobResult>, &'static str),
}

const IGNORED: &str = "ignored";

pub fn binary_present(command: &str) -> bool {
    if command.contains('/') {
        return Path::new(command).is_file();
    }
    sandbox::DEFAULT_PATH
        .split(':')
        .any(|dir| Path::new(dir).join(command).is_file())
}

fn backoff_ms(worker: &Worker, attempt: u64) -> u64 {
    let cfg = &worker.inner.cfg;
    let exp = cfg
        .retry_base_ms
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(30));
    let capped = exp.min(cfg.retry_max_ms) as f64;
    (capped * (0.5 + fastrand::f64())) as u64
}

/// What the breaker hears about an attempt.
fn breaker_verdict(spec: Option<&ToolSpec>, kind: Option<&str>) -> &'static str {
    match (spec, kind) {
        (_, None) => "success",
        (_, Some(IGNORED)) | (None, _) => "ignored",
        (Some(spec), Some(k)) if spec.breaker.counts_as_failure(k) => "failure",
        _ => "success",
    }
}

fn completion(
    job: &RunningJob,
    outcome: &'static str,
    result: Option<&JobResult>,
    error: Option<&ErrorInfo>,
    delay_ms: u64,
) -> Completion {
    Completion {
        job_ref: job.job_ref.clone(),
        fence: job.fence,
        outcome,
        result_json: result
            .map(|r| serde_json::to_string(r).expect("serializable"))
            .unwrap_or_default(),
        error_json: error
            .map(|e| serde_json::to_string(e).expect("serializable"))
            .unwrap_or_default(),
        delay_ms,
        breaker_outcome: "ignored",
        breaker_reason: String::new(),
    }
}

/// Runs one attempt; `None` when the attempt is no longer ours (its result must not be written).
pub async fn attempt(
    worker: &Worker,
    job: &RunningJob,
    claimed: &ClaimedJob,
) -> Option<Completion> {
    let f = &claimed.fields;
    let field = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    let attempt: u64 = field("attempt").parse().unwrap_or(1);
    let Some(spec) = worker.inner.catalog.get(&job.tool) else {
        let e = ErrorInfo::new(
            ErrorType::NotFound,
            format!("tool {} is not in this worker's catalog", job.tool),
        );
        return Some(completion(job, "failed", None, Some(&e), 0));
    };
    let stored = StoredRequest {
        target: field("target"),
        template: Some(field("template")),
        raw_args: field("args_raw"),
        intrusive: field("intrusive") == "1",
    };
    let checked = recheck(
        spec,
        &worker.inner.targets,
        worker.inner.cfg.allow_intrusive,
        &stored,
    );
    let (target, args) = match checked {
        Ok(ok) => ok,
        Err(e) => {
            tracing::warn!(field = %e.field, error = %e.message, "Job refused by the worker's check");
            let info = ErrorInfo::new(ErrorType::ValidationError, e.to_string());
            return Some(completion(job, "failed", None, Some(&info), 0));
        }
    };
    let timeout = Duration::from_secs(
        field("timeout_sec")
            .parse()
            .unwrap_or(spec.default_timeout_sec),
    );
    tracing::info!(attempt, "Job started");

    let watcher = (spec.executor != Executor::Noop)
        .then(|| tokio::spawn(watch_cancel(worker.clone(), job.clone())));
    let ran = match spec.executor {
        Executor::Noop => Ran::Succeeded(JobResult {
            exit_code: Some(0),
            ..JobResult::default()
        }),
        Executor::Sleep => sleep_executor(args.as_slice(), timeout, &job.cancel).await,
        Executor::Exec => {
            let resolved = scanq::validate::resolve_for_scan(
                &worker.inner.targets,
                worker.inner.resolver.as_ref(),
                &target,
                spec.max_hosts,
            )
            .await;
            match resolved {
                Ok(address) => exec(worker, spec, args.as_slice(), &address, timeout, job).await,
                Err(e) => Ran::Failed(
                    ErrorInfo::new(ErrorType::ValidationError, e.to_string()),
                    None,
                    "ignored",
                ),
            }
        }
    };
    if let Some(w) = watcher {
        w.abort();
    }

    match job.reason.load(Ordering::SeqCst) {
        stop::LOST => {
            tracing::warn!("Attempt taken over by another worker; result dropped");
            return None;
        }
        stop::HANDBACK => return Some(completion(job, "handback", None, None, 0)),
        stop::CANCEL => {
            let e = ErrorInfo::new(ErrorType::Cancelled, "cancelled on request");
            let result = match &ran {
                Ran::Succeeded(r) => Some(r),
                Ran::Failed(_, r, _) | Ran::Retry(_, r, _) => r.as_ref(),
            };
            tracing::info!("Job cancelled");
            return Some(completion(job, "cancelled", result, Some(&e), 0));
        }
        _ => {}
    }
    let (mut c, kind, reason) = match ran {
        Ran::Succeeded(r) => {
            tracing::info!("Job succeeded");
            (
                completion(job, "succeeded", Some(&r), None, 0),
                None,
                String::new(),
            )
        }
        Ran::Failed(e, r, kind) => {
            tracing::info!(error_type = %e.kind, error = %e.message, "Job failed");
            (
                completion(job, "failed", r.as_ref(), Some(&e), 0),
                Some(kind),
                e.message,
            )
        }
        Ran::Retry(e, r, kind) => {
            let delay = backoff_ms(worker, attempt);
            tracing::info!(error_type = %e.kind, error = %e.message, delay_ms = delay, "Job will be retried");
            (
                completion(job, "retry", r.as_ref(), Some(&e), delay),
                Some(kind),
                e.message,
            )
        }
    };
    c.breaker_outcome = breaker_verdict(Some(spec), kind);
    c.breaker_reason = match kind {
        Some(k) if c.breaker_outcome == "failure" => format!("{k}: {reason}"),
        _ => String::new(),
    };
    Some(c)
}

/// Wakes on the cancel channel for this job and asks Redis what happened (a wake-up may also
/// be a reconnect); lease renewal is the fallback if a message is missed.
async fn watch_cancel(worker: Worker, job: RunningJob) {
    let tag = format!("{}/{}", job.tool, job.job_ref);
    let mut sub = worker.inner.listener.subscribe(&tag);
    loop {
        if !sub.wait(Duration::from_secs(3600)).await {
            continue;
        }
        let Ok(mut con) = worker.inner.pool.get().await else {
            continue;
        };
        let status = worker
            .inner
            .scripts
            .renew(
                &mut con,
                &worker.inner.keys.tool(&job.tool),
                &worker.inner.settings,
                &[(job.job_ref.clone(), job.fence)],
            )
            .await;
        match status.ok().and_then(|s| s.first().copied()) {
            Some(RenewStatus::Cancel) => {
                job.stop(stop::CANCEL);
                return;
            }
            Some(RenewStatus::Lost) => {
                job.stop(stop::LOST);
                return;
            }
            _ => {}
        }
    }
}

/// The in-process `sleep` executor: `--ms N` (default 100), `--fail` to fail.
async fn sleep_executor(args: &[String], timeout: Duration, cancel: &CancellationToken) -> Ran {
    let mut ms = 100u64;
    let mut fail = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--ms" => ms = it.next().and_then(|v| v.parse().ok()).unwrap_or(ms),
            "--fail" => fail = true,
            _ => {}
        }
    }
    let wanted = Duration::from_millis(ms);
    tokio::select! {
        _ = tokio::time::sleep(wanted.min(timeout)) => {}
        _ = cancel.cancelled() => {}
    }
    if wanted > timeout {
        return Ran::Failed(
            ErrorInfo::new(ErrorType::Timeout, "sleep exceeded timeout_sec"),
            None,
            "timeout",
        );
    }
    if fail {
        return Ran::Failed(
            ErrorInfo::new(ErrorType::ExecutionError, "asked to fail"),
            None,
            "exit_nonzero",
        );
    }
    Ran::Succeeded(JobResult {
        exit_code: Some(0),
        ..JobResult::default()
    })
}

fn sandbox_spec(
    worker: &Worker,
    spec: &ToolSpec,
    args: &[String],
    address: &str,
    timeout: Duration,
) -> SandboxSpec {
    let mut argv: Vec<String> = args.to_vec();
    argv.extend(spec.output_args.iter().cloned());
    argv.push(address.to_owned());
    let mut s = SandboxSpec::new(spec.command.clone(), argv);
    s.timeout = timeout;
    s.stdout_cap = spec.stdout_cap;
    s.stderr_cap = spec.stderr_cap;
    s.run_as = worker.inner.cfg.tool_user.clone();
    let mb = |v: Option<u64>| v.map(|m| m * 1024 * 1024);
    s.limits = Limits {
        cpu_sec: spec.limits.cpu_sec,
        address_space_bytes: mb(spec.limits.address_space_mb),
        open_files: spec.limits.open_files,
        processes: spec.limits.processes,
        file_size_bytes: mb(spec.limits.file_size_mb),
    };
    s
}

/// How many addresses a target covers (for progress across host groups).
fn expected_hosts(address: &str) -> u64 {
    match address.parse::<ipnet::Ipv4Net>() {
        Ok(net) => 1u64 << (32 - net.prefix_len()),
        Err(_) => 1,
    }
}

/// The tool's structured result (catalog `parser = "nmap"`), also from truncated output.
fn parse_output(spec: &ToolSpec, stdout: &[u8]) -> Option<serde_json::Value> {
    match spec.parser.as_deref() {
        Some("nmap") => match scanq::nmap::parse_xml_bytes(stdout) {
            Ok(report) => serde_json::to_value(report).ok(),
            Err(err) => {
                tracing::warn!(error = %err, "nmap output could not be parsed");
                None
            }
        },
        _ => None,
    }
}

async fn exec(
    worker: &Worker,
    spec: &ToolSpec,
    args: &[String],
    address: &str,
    timeout: Duration,
    job: &RunningJob,
) -> Ran {
    let sb = sandbox_spec(worker, spec, args, address, timeout);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let live = crate::live::Live {
        parser: spec.progress.clone(),
        expected_hosts: Some(expected_hosts(address)),
    };
    let reporter = tokio::spawn(crate::live::report(worker.clone(), job.clone(), live, rx));
    let ran = sandbox::run(&sb, job.cancel.clone(), Some(tx)).await;
    let _ = reporter.await;
    let out = match ran {
        Ok(out) => out,
        Err(SpawnError::NotFound { program }) => {
            return Ran::Failed(
                ErrorInfo::new(
                    ErrorType::NotFound,
                    format!("`{program}` is not installed on worker {}", worker.id()),
                ),
                None,
                "spawn_error",
            );
        }
        Err(SpawnError::ResourceExhausted(what)) => {
            return Ran::Retry(
                ErrorInfo::new(
                    ErrorType::ResourceExhausted,
                    format!("could not start the tool: {what} exhausted"),
                ),
                None,
                "resource_exhausted",
            );
        }
        Err(err) => {
            return Ran::Retry(
                ErrorInfo::new(
                    ErrorType::ExecutionError,
                    format!("could not start the tool: {err}"),
                ),
                None,
                "spawn_error",
            );
        }
    };
    let result = JobResult {
        exit_code: out.exit_code,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        truncated_stdout: out.truncated_stdout,
        truncated_stderr: out.truncated_stderr,
        timed_out: out.timed_out,
        parsed: parse_output(spec, &out.stdout),
    };
    if out.cancelled {
        return Ran::Failed(
            ErrorInfo::new(ErrorType::Cancelled, "cancelled"),
            Some(result),
            "ignored",
        );
    }
    if out.timed_out {
        let e = ErrorInfo::new(
            ErrorType::Timeout,
            format!(
                "the tool ran longer than {} s and was killed",
                timeout.as_secs()
            ),
        );
        return if spec.retry_on_timeout {
            Ran::Retry(e, Some(result), "timeout")
        } else {
            Ran::Failed(e, Some(result), "timeout")
        };
    }
    if let Some(limit) = out.resource_exhausted {
        return Ran::Retry(
            ErrorInfo::new(
                ErrorType::ResourceExhausted,
                format!("the tool hit its {limit} limit"),
            ),
            Some(result),
            "resource_exhausted",
        );
    }
    match (out.exit_code, out.signal) {
        (Some(0), _) => Ran::Succeeded(result),
        (Some(code), _) => Ran::Failed(
            ErrorInfo::new(
                ErrorType::ExecutionError,
                format!("the tool exited with code {code}"),
            ),
            Some(result),
            "exit_nonzero",
        ),
        (None, Some(sig)) => Ran::Failed(
            ErrorInfo::new(
                ErrorType::ExecutionError,
                format!("the tool was killed by signal {sig}"),
            ),
            Some(result),
            "signal",
        ),
        (None, None) => Ran::Failed(
            ErrorInfo::new(ErrorType::Unknown, "the tool ended without an exit status"),
            Some(result),
            "signal",
        ),
    }
}
