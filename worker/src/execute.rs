//! One attempt of one job: re-check what was read from Redis, run the tool's executor, and turn
//! the outcome into a [`Completion`] (or nothing, when the attempt was taken over) with the
//! rules of [`crate::classify`].

use std::path::Path;
use std::time::Duration;

use scanq::catalog::{Executor, ToolSpec};
use scanq::domain::{ErrorInfo, ErrorType, FailureKind, JobResult, Outcome, StopReason};
use scanq::request::{StoredRequest, recheck};
use scanq::scripts::{ClaimedJob, Completion, RenewStatus};
use scanq::untrusted;
use tokio_util::sync::CancellationToken;

use crate::classify::{self, Exit, Ran};
use crate::sandbox::{self, Limits, SandboxSpec, SpawnError};
use crate::state::{RunningJob, SharedRef};
use crate::window;

pub fn binary_present(command: &str) -> bool {
    if command.contains('/') {
        return Path::new(command).is_file();
    }
    sandbox::DEFAULT_PATH
        .split(':')
        .any(|dir| Path::new(dir).join(command).is_file())
}

/// Runs one attempt; `None` when the attempt is no longer ours (its result must not be written).
pub async fn attempt(w: &SharedRef, job: &RunningJob, claimed: &ClaimedJob) -> Option<Completion> {
    let job_ref = claimed.job_ref.as_str();
    // One set for the whole attempt, whatever a reload swaps in meanwhile; a job queued before
    // a reload is checked against the scope in force when it is claimed.
    let live = w.live.current();
    let Some(spec) = live.catalog.get(&job.id.tool) else {
        let e = ErrorInfo::new(
            ErrorType::NotFound,
            format!("tool {} is not in this worker's catalog", job.id.tool),
        );
        let c = classify::completion(job_ref, job.fence, Outcome::Failed, None, Some(&e), 0);
        return Some(c);
    };
    let stored = StoredRequest {
        target: &claimed.target,
        template: Some(&claimed.template),
        raw_args: &claimed.args_raw,
        intrusive: claimed.intrusive,
    };
    let (target, args) = match recheck(spec, &live.targets, live.cfg.allow_intrusive, &stored) {
        Ok(ok) => ok,
        Err(e) => {
            tracing::warn!(field = %e.field, error = %e.message, "Job refused by the worker's check");
            let info = ErrorInfo::new(ErrorType::ValidationError, e.to_string());
            let c = classify::completion(job_ref, job.fence, Outcome::Failed, None, Some(&info), 0);
            return Some(c);
        }
    };
    // Judged again against its engagement, if it names one (DESIGN §14).
    let window_end = match window::before_run(w, job, claimed, &target).await {
        Ok(end) => end,
        Err(c) => return Some(c),
    };
    let timeout = Duration::from_secs(claimed.timeout_sec.unwrap_or(spec.default_timeout_sec));
    tracing::info!(attempt = claimed.attempt, "Job started");
    let window_timer = window_end.map(|end| window::arm(w.clone(), job.clone(), end));

    let watcher = (spec.executor != Executor::Noop)
        .then(|| tokio::spawn(watch_cancel(w.clone(), job.clone())));
    let ran = match spec.executor {
        Executor::Noop => Ran::Succeeded(JobResult {
            exit_code: Some(0),
            ..JobResult::default()
        }),
        Executor::Sleep => sleep_executor(args.as_slice(), timeout, &job.cancel).await,
        Executor::Exec => {
            let scope = if target.is_names() {
                crate::name_scope::of(w, &job.id, &claimed.engagement, &live.targets).await
            } else {
                Ok(std::borrow::Cow::Borrowed(&live.targets))
            };
            let resolved = match &scope {
                Ok(scope) => scanq::validate::resolve_list(
                    scope,
                    w.resolver.as_ref(),
                    &target,
                    spec.max_hosts,
                )
                .await
                .map_err(|e| ErrorInfo::new(ErrorType::ValidationError, e.to_string())),
                Err(e) => Err(e.clone()),
            }
            .and_then(|addresses| {
                let zone = &w.cfg.worker_zone;
                crate::zone_check::check(&live.zones, zone, &target, &addresses).map(|()| addresses)
            });
            match resolved {
                Ok(addresses) => {
                    // Decided again from the arguments that will run, whatever the job
                    // document says.
                    let raw = spec.args.needs_raw(&args);
                    if raw != claimed.needs_raw {
                        tracing::warn!(
                            document = claimed.needs_raw,
                            arguments = raw,
                            "The job's stored need for raw sockets disagrees with its arguments; the arguments decide"
                        );
                    }
                    exec(w, spec, args.as_slice(), &addresses, timeout, job, raw).await
                }
                Err(e) => Ran::Failed(e, None, None),
            }
        }
    };
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    if let Some(timer) = window_timer {
        timer.abort();
    }
    let delay = classify::backoff_ms(
        w.cfg.retry_base_ms,
        w.cfg.retry_max_ms,
        claimed.attempt,
        fastrand::f64(),
    );
    let stopped = job.stopped();
    match (&stopped, &ran) {
        (Some(StopReason::Lost), _) => {
            tracing::warn!("Attempt taken over by another worker; result dropped")
        }
        (Some(StopReason::Cancel), _) => tracing::info!("Job cancelled"),
        (Some(StopReason::WindowClosed), _) => {
            tracing::info!("Job stopped at its engagement's window end")
        }
        (Some(StopReason::Handback), _) => tracing::info!("Job handed back"),
        (None, Ran::Succeeded(_)) => tracing::info!("Job succeeded"),
        (None, Ran::Failed(e, _, Some(FailureKind::SandboxViolation))) => {
            w.metrics
                .sandbox_violations
                .with_label_values(&[job.id.tool.as_str()])
                .inc();
            tracing::warn!(error = %e.message, "Sandbox violation: the tool was killed")
        }
        (None, Ran::Failed(e, _, _)) => {
            tracing::info!(error_type = %e.kind, error = %e.message, "Job failed")
        }
        (None, Ran::Retry(e, _, _)) => {
            tracing::info!(error_type = %e.kind, error = %e.message, delay_ms = delay, "Job will be retried")
        }
    }
    classify::classify(spec, job_ref, job.fence, stopped, ran, delay)
}

/// Wakes on the cancel channel for this job and asks Redis what happened (a wake-up may also
/// be a reconnect); lease renewal is the fallback if a message is missed.
async fn watch_cancel(w: SharedRef, job: RunningJob) {
    let mut sub = w.cancels.subscribe(&job.id.tag());
    loop {
        if !sub.wait(Duration::from_secs(3600)).await {
            continue;
        }
        let status = w.queue.renew(&[(job.id.clone(), job.fence)]).await;
        match status.ok().and_then(|s| s.first().copied()) {
            Some(RenewStatus::Cancel) => {
                job.stop(StopReason::Cancel);
                return;
            }
            Some(RenewStatus::Lost) => {
                job.stop(StopReason::Lost);
                return;
            }
            Some(RenewStatus::WindowClosed) => {
                job.stop(StopReason::WindowClosed);
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
            Some(FailureKind::Timeout),
        );
    }
    if fail {
        return Ran::Failed(
            ErrorInfo::new(ErrorType::ExecutionError, "asked to fail"),
            None,
            Some(FailureKind::ExitNonzero),
        );
    }
    Ran::Succeeded(JobResult {
        exit_code: Some(0),
        ..JobResult::default()
    })
}

fn sandbox_spec(
    w: &SharedRef,
    spec: &ToolSpec,
    args: &[String],
    addresses: &[String],
    timeout: Duration,
    raw: bool,
) -> SandboxSpec {
    let mut argv: Vec<String> = args.to_vec();
    if raw {
        // Not root, only CAP_NET_RAW: the tool may need telling (nmap: --privileged). After
        // the request's arguments, so it also wins over an `--unprivileged` there.
        argv.extend(spec.raw_args.iter().cloned());
    }
    argv.extend(spec.output_args.iter().cloned());
    // Every address of the target list, each its own argument, in the list's order.
    argv.extend(addresses.iter().cloned());
    let mut s = SandboxSpec::new(spec.command.clone(), argv);
    s.timeout = timeout;
    s.stdout_cap = spec.stdout_cap;
    s.stderr_cap = spec.stderr_cap;
    s.run_as = w.cfg.tool_user.clone();
    s.seccomp = crate::sandbox::seccomp::Seccomp::for_tool(&spec.seccomp);
    s.cgroups = w.cgroups.clone();
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

/// How many addresses the tool is given (for progress across host groups): a CIDR counts its
/// addresses, an address one.
fn expected_hosts(addresses: &[String]) -> u64 {
    addresses
        .iter()
        .map(|a| match a.parse::<ipnet::Ipv4Net>() {
            Ok(net) => 1u64 << (32 - net.prefix_len()),
            Err(_) => 1,
        })
        .sum()
}

/// The tool's structured result (catalog `parser = "nmap"`), also from truncated output.
fn parse_output(spec: &ToolSpec, stdout: &[u8]) -> Option<serde_json::Value> {
    match spec.parser.as_deref() {
        Some("nmap") => match scanq::nmap::parse_xml_bytes(stdout) {
            Ok(report) => serde_json::to_value(report).ok().map(|mut v| {
                untrusted::clean_json(&mut v, untrusted::MAX_FIELD_CHARS);
                v
            }),
            Err(err) => {
                tracing::warn!(error = %err, "nmap output could not be parsed");
                None
            }
        },
        _ => None,
    }
}

async fn exec(
    w: &SharedRef,
    spec: &ToolSpec,
    args: &[String],
    addresses: &[String],
    timeout: Duration,
    job: &RunningJob,
    raw: bool,
) -> Ran {
    let mut sb = sandbox_spec(w, spec, args, addresses, timeout, raw);
    let lease = match &w.egress {
        Some(egress) => match egress.confine(addresses, raw).await {
            Ok(lease) => Some(lease),
            Err(e) => {
                tracing::error!(error = %e, "Could not confine the tool");
                return Ran::Retry(
                    ErrorInfo::new(
                        ErrorType::ExecutionError,
                        format!("could not confine the tool's network: {e}"),
                    ),
                    None,
                    Some(FailureKind::SpawnError),
                );
            }
        },
        // Never unconfined: a raw-socket job goes back to the queue for a worker that can.
        None if raw => {
            return Ran::Retry(
                ErrorInfo::new(
                    ErrorType::ExecutionError,
                    format!(
                        "worker {} cannot confine raw-socket scans; the job waits for one that can",
                        w.queue.id()
                    ),
                ),
                None,
                Some(FailureKind::SpawnError),
            );
        }
        None => None,
    };
    sb.run_as_uid = lease.as_ref().map(crate::confine::Lease::uid);
    sb.net_ns = lease.as_ref().and_then(crate::confine::Lease::net_ns);
    sb.raw_sockets = raw;
    let command: Vec<String> = std::iter::once(sb.program.clone())
        .chain(sb.args.iter().cloned())
        .collect();
    // The audit trail's record of what ran (the API's lines record what was asked).
    tracing::info!(audit = "exec", argv = ?command, run_as = ?sb.run_as, uid = ?sb.run_as_uid, "Audit");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let live = crate::live::Live {
        parser: spec.progress.clone(),
        expected_hosts: Some(expected_hosts(addresses)),
    };
    let reporter = tokio::spawn(crate::live::report(w.clone(), job.clone(), live, rx));
    let ran = sandbox::run(&sb, job.cancel.clone(), Some(tx)).await;
    let _ = reporter.await;
    let confinement = match lease {
        Some(lease) => Some(lease.release().await),
        None => None,
    };
    if let Some(c) = confinement.as_ref().filter(|c| c.refused_attempts > 0) {
        w.metrics
            .egress_refused
            .with_label_values(&[job.id.tool.as_str()])
            .inc_by(c.refused_attempts);
        tracing::warn!(refused = c.refused_attempts, allowed = ?c.allowed, "The tool tried to reach addresses outside its target");
    }
    let out = match ran {
        Ok(out) => out,
        Err(SpawnError::NotFound { program }) => {
            return Ran::Failed(
                ErrorInfo::new(
                    ErrorType::NotFound,
                    format!("`{program}` is not installed on worker {}", w.queue.id()),
                ),
                None,
                Some(FailureKind::SpawnError),
            );
        }
        Err(SpawnError::ResourceExhausted(what)) => {
            return Ran::Retry(
                ErrorInfo::new(
                    ErrorType::ResourceExhausted,
                    format!("could not start the tool: {what} exhausted"),
                ),
                None,
                Some(FailureKind::ResourceExhausted),
            );
        }
        Err(err) => {
            return Ran::Retry(
                ErrorInfo::new(
                    ErrorType::ExecutionError,
                    format!("could not start the tool: {err}"),
                ),
                None,
                Some(FailureKind::SpawnError),
            );
        }
    };
    let result = JobResult {
        exit_code: out.exit_code,
        // Untrusted: the scanned hosts write into it (docs/sandbox.md, "Untrusted output").
        stdout: untrusted::clean(&String::from_utf8_lossy(&out.stdout), usize::MAX),
        stderr: untrusted::clean(&String::from_utf8_lossy(&out.stderr), usize::MAX),
        truncated_stdout: out.truncated_stdout,
        truncated_stderr: out.truncated_stderr,
        timed_out: out.timed_out,
        parsed: parse_output(spec, &out.stdout),
        command,
        confinement,
        partial: false,
    };
    let exit = Exit {
        exit_code: out.exit_code,
        signal: out.signal,
        timed_out: out.timed_out,
        cancelled: out.cancelled,
        resource_exhausted: out.resource_exhausted,
    };
    classify::classify_exit(exit, result, timeout.as_secs(), spec.retry_on_timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_hosts_sums_the_addresses_of_every_entry() {
        let list = ["127.1.0.0/26", "127.1.0.64/27", "10.0.0.5"].map(str::to_owned);
        assert_eq!(expected_hosts(&list), 64 + 32 + 1);
        assert_eq!(expected_hosts(&["10.0.0.5".to_owned()]), 1);
    }
}
