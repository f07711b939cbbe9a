//! Turning what an attempt did into what the queue records (DESIGN §3), as pure functions:
//! spawn failures and resource exhaustion are retried; a timeout is retried only when the tool
//! says so; a missing binary, a validation failure and a tool that exits non-zero are final; a
//! cancelled job is never retried; a hand-back does not count; a taken-over attempt writes
//! nothing. The breaker hears a [`Verdict`] decided by the tool's `failure_kinds`.

use scanq::catalog::ToolSpec;
use scanq::domain::{ErrorInfo, ErrorType, FailureKind, JobResult, Outcome, StopReason, Verdict};
use scanq::scripts::Completion;

/// What the executor reported, before the stop reason is applied. A failure carries its
/// [`FailureKind`], or `None` when it says nothing about the tool's health (validation, a
/// cancel seen by the sandbox).
#[derive(Debug)]
pub enum Ran {
    Succeeded(JobResult),
    Failed(ErrorInfo, Option<JobResult>, Option<FailureKind>),
    Retry(ErrorInfo, Option<JobResult>, Option<FailureKind>),
}

/// Exponential back-off with full jitter in [0.5, 1.5) of the capped delay; `jitter` in [0, 1).
pub fn backoff_ms(base_ms: u64, max_ms: u64, attempt: u64, jitter: f64) -> u64 {
    let exp = base_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(30));
    let capped = exp.min(max_ms) as f64;
    (capped * (0.5 + jitter)) as u64
}

/// What the breaker hears about an attempt that ended with `kind` (None = success).
pub fn verdict(spec: &ToolSpec, failure: Option<Option<FailureKind>>) -> Verdict {
    match failure {
        None => Verdict::Success,
        Some(None) => Verdict::Ignored,
        Some(Some(k)) if spec.breaker.counts_as_failure(k) => Verdict::Failure,
        Some(Some(_)) => Verdict::Success,
    }
}

fn json<T: serde::Serialize>(v: Option<&T>) -> String {
    v.map(|v| serde_json::to_string(v).expect("serializable"))
        .unwrap_or_default()
}

/// A completion without breaker verdict (the breaker ignores it).
pub fn completion(
    job_ref: &str,
    fence: u64,
    outcome: Outcome,
    result: Option<&JobResult>,
    error: Option<&ErrorInfo>,
    delay_ms: u64,
) -> Completion {
    Completion {
        job_ref: job_ref.to_owned(),
        fence,
        outcome,
        result_json: result.map(JobResult::stored).unwrap_or_default(),
        error_json: json(error),
        delay_ms,
        verdict: Verdict::Ignored,
        breaker_reason: String::new(),
    }
}

/// The completion to write for an attempt (`None`: the attempt was taken over, write nothing).
/// `delay_ms` is the back-off a retry waits.
pub fn classify(
    spec: &ToolSpec,
    job_ref: &str,
    fence: u64,
    stopped: Option<StopReason>,
    ran: Ran,
    delay_ms: u64,
) -> Option<Completion> {
    match stopped {
        Some(StopReason::Lost) => return None,
        Some(StopReason::Handback) => {
            return Some(completion(job_ref, fence, Outcome::Handback, None, None, 0));
        }
        Some(reason @ (StopReason::Cancel | StopReason::WindowClosed)) => {
            // Both keep what the tool produced so far; neither is retried automatically.
            let e = match reason {
                StopReason::WindowClosed => ErrorInfo::new(
                    ErrorType::WindowClosed,
                    "stopped at the end of its engagement's window (stop_at_window_end)",
                ),
                _ => ErrorInfo::new(ErrorType::Cancelled, "cancelled on request"),
            };
            let result = match &ran {
                Ran::Succeeded(r) => Some(r),
                Ran::Failed(_, r, _) | Ran::Retry(_, r, _) => r.as_ref(),
            };
            return Some(completion(
                job_ref,
                fence,
                Outcome::Cancelled,
                result,
                Some(&e),
                0,
            ));
        }
        None => {}
    }
    let (mut c, failure, reason) = match ran {
        Ran::Succeeded(r) => (
            completion(job_ref, fence, Outcome::Succeeded, Some(&r), None, 0),
            None,
            String::new(),
        ),
        Ran::Failed(e, r, kind) => (
            completion(job_ref, fence, Outcome::Failed, r.as_ref(), Some(&e), 0),
            Some(kind),
            e.message,
        ),
        Ran::Retry(e, r, kind) => (
            completion(
                job_ref,
                fence,
                Outcome::Retry,
                r.as_ref(),
                Some(&e),
                delay_ms,
            ),
            Some(kind),
            e.message,
        ),
    };
    c.verdict = verdict(spec, failure);
    if c.verdict == Verdict::Failure
        && let Some(Some(k)) = failure
    {
        c.breaker_reason = format!("{k}: {reason}");
    }
    Some(c)
}

/// How a sandboxed run ended, as the executor classifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub cancelled: bool,
    /// The limit the tool hit (`cpu`, `memory`, …), if any.
    pub resource_exhausted: Option<String>,
}

/// Classifies a finished subprocess: the order matters (a killed-on-timeout process also
/// has a signal).
pub fn classify_exit(
    exit: Exit,
    result: JobResult,
    timeout_sec: u64,
    retry_on_timeout: bool,
) -> Ran {
    if exit.cancelled {
        return Ran::Failed(
            ErrorInfo::new(ErrorType::Cancelled, "cancelled"),
            Some(result),
            None,
        );
    }
    if exit.timed_out {
        let e = ErrorInfo::new(
            ErrorType::Timeout,
            format!("the tool ran longer than {timeout_sec} s and was killed"),
        );
        return if retry_on_timeout {
            Ran::Retry(e, Some(result), Some(FailureKind::Timeout))
        } else {
            Ran::Failed(e, Some(result), Some(FailureKind::Timeout))
        };
    }
    if let Some(limit) = &exit.resource_exhausted {
        return Ran::Retry(
            ErrorInfo::new(
                ErrorType::ResourceExhausted,
                format!("the tool hit its {limit} limit"),
            ),
            Some(result),
            Some(FailureKind::ResourceExhausted),
        );
    }
    match (exit.exit_code, exit.signal) {
        (Some(0), _) => Ran::Succeeded(result),
        (Some(code), _) => Ran::Failed(
            ErrorInfo::new(
                ErrorType::ExecutionError,
                format!("the tool exited with code {code}"),
            ),
            Some(result),
            Some(FailureKind::ExitNonzero),
        ),
        (None, Some(sig)) if sig == crate::sandbox::seccomp::KILL_SIGNAL => {
            let mut e = ErrorInfo::new(
                ErrorType::ExecutionError,
                "sandbox violation: the tool made a system call the sandbox forbids (seccomp) \
                 and was killed",
            );
            e.recovery_suggestion = "Not retried: the tool tried something a scanner never \
                needs (see docs/sandbox.md, Seccomp). Check the tool and its arguments; an \
                operator can read the worker log for the call."
                .into();
            Ran::Failed(e, Some(result), Some(FailureKind::SandboxViolation))
        }
        (None, Some(sig)) => Ran::Failed(
            ErrorInfo::new(
                ErrorType::ExecutionError,
                format!("the tool was killed by signal {sig}"),
            ),
            Some(result),
            Some(FailureKind::Signal),
        ),
        (None, None) => Ran::Failed(
            ErrorInfo::new(ErrorType::Unknown, "the tool ended without an exit status"),
            Some(result),
            Some(FailureKind::Signal),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scanq::catalog::Catalog;

    fn spec() -> ToolSpec {
        let cat = Catalog::builtin();
        cat.get(&scanq::domain::ToolName::parse("nmap").unwrap())
            .unwrap()
            .clone()
    }

    fn exit(code: Option<i32>, signal: Option<i32>) -> Exit {
        Exit {
            exit_code: code,
            signal,
            timed_out: false,
            cancelled: false,
            resource_exhausted: None,
        }
    }

    fn outcome(ran: Ran, stopped: Option<StopReason>) -> Option<(Outcome, Verdict)> {
        classify(&spec(), "t/c", 7, stopped, ran, 1234).map(|c| (c.outcome, c.verdict))
    }

    #[test]
    fn exit_codes_signals_timeouts_and_limits_are_classified() {
        let r = JobResult::default;
        assert!(matches!(
            classify_exit(exit(Some(0), None), r(), 5, false),
            Ran::Succeeded(_)
        ));
        assert!(matches!(
            classify_exit(exit(Some(2), None), r(), 5, false),
            Ran::Failed(e, _, Some(FailureKind::ExitNonzero)) if e.kind == ErrorType::ExecutionError
        ));
        assert!(matches!(
            classify_exit(exit(None, Some(9)), r(), 5, false),
            Ran::Failed(_, _, Some(FailureKind::Signal))
        ));
        assert!(matches!(
            classify_exit(exit(None, Some(libc::SIGSYS)), r(), 5, false),
            Ran::Failed(e, _, Some(FailureKind::SandboxViolation)) if e.message.starts_with("sandbox violation")
        ));
        let timed = Exit {
            timed_out: true,
            ..exit(None, Some(9))
        };
        assert!(matches!(
            classify_exit(timed.clone(), r(), 5, false),
            Ran::Failed(e, _, Some(FailureKind::Timeout)) if e.kind == ErrorType::Timeout
        ));
        assert!(matches!(
            classify_exit(timed, r(), 5, true),
            Ran::Retry(_, _, Some(FailureKind::Timeout))
        ));
        let limited = Exit {
            resource_exhausted: Some("cpu".into()),
            ..exit(None, Some(24))
        };
        assert!(matches!(
            classify_exit(limited, r(), 5, false),
            Ran::Retry(e, _, Some(FailureKind::ResourceExhausted)) if e.kind == ErrorType::ResourceExhausted
        ));
        let cancelled = Exit {
            cancelled: true,
            ..exit(None, Some(15))
        };
        assert!(matches!(
            classify_exit(cancelled, r(), 5, false),
            Ran::Failed(_, _, None)
        ));
    }

    #[test]
    fn the_stop_reason_decides_before_the_result() {
        let ok = || Ran::Succeeded(JobResult::default());
        assert_eq!(outcome(ok(), Some(StopReason::Lost)), None);
        assert_eq!(
            outcome(ok(), Some(StopReason::Handback)),
            Some((Outcome::Handback, Verdict::Ignored))
        );
        assert_eq!(
            outcome(ok(), Some(StopReason::Cancel)),
            Some((Outcome::Cancelled, Verdict::Ignored))
        );
        assert_eq!(
            outcome(ok(), None),
            Some((Outcome::Succeeded, Verdict::Success))
        );
    }

    #[test]
    fn a_window_end_cancels_with_window_closed_and_keeps_the_partial_result() {
        let partial = JobResult {
            stdout: "<nmaprun><host/>".into(),
            ..JobResult::default()
        };
        let e = ErrorInfo::new(ErrorType::ExecutionError, "killed");
        let c = classify(
            &spec(),
            "t/c",
            7,
            Some(StopReason::WindowClosed),
            Ran::Failed(e, Some(partial), Some(FailureKind::Signal)),
            1234,
        )
        .expect("written");
        assert_eq!(
            c.outcome,
            Outcome::Cancelled,
            "final: never retried by itself"
        );
        assert_eq!(c.verdict, Verdict::Ignored);
        assert_eq!(c.delay_ms, 0);
        let error: ErrorInfo = serde_json::from_str(&c.error_json).unwrap();
        assert_eq!(error.kind, ErrorType::WindowClosed);
        assert!(error.recovery_suggestion.contains("next window"));
        let result: JobResult = serde_json::from_str(&c.result_json).unwrap();
        assert_eq!(result.stdout, "<nmaprun><host/>");
    }

    #[test]
    fn the_breaker_hears_only_the_tools_failure_kinds() {
        let e = || ErrorInfo::new(ErrorType::ExecutionError, "x");
        // Default kinds: spawn_error, signal, resource_exhausted.
        assert_eq!(
            outcome(Ran::Retry(e(), None, Some(FailureKind::SpawnError)), None),
            Some((Outcome::Retry, Verdict::Failure))
        );
        assert_eq!(
            outcome(Ran::Failed(e(), None, Some(FailureKind::ExitNonzero)), None),
            Some((Outcome::Failed, Verdict::Success))
        );
        assert_eq!(
            outcome(Ran::Failed(e(), None, Some(FailureKind::Timeout)), None),
            Some((Outcome::Failed, Verdict::Success))
        );
        assert_eq!(
            outcome(Ran::Failed(e(), None, None), None),
            Some((Outcome::Failed, Verdict::Ignored))
        );
        let c = classify(
            &spec(),
            "t/c",
            7,
            None,
            Ran::Retry(e(), None, Some(FailureKind::Signal)),
            99,
        )
        .unwrap();
        assert_eq!(c.delay_ms, 99);
        assert!(
            c.breaker_reason.starts_with("signal: "),
            "{}",
            c.breaker_reason
        );
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        assert_eq!(backoff_ms(1000, 60_000, 1, 0.5), 1000);
        assert_eq!(backoff_ms(1000, 60_000, 3, 0.5), 4000);
        assert_eq!(backoff_ms(1000, 60_000, 30, 0.5), 60_000);
        assert_eq!(backoff_ms(1000, 60_000, 1, 0.0), 500);
        assert!(backoff_ms(1000, 60_000, 1, 0.999) < 1500);
        assert_eq!(
            backoff_ms(u64::MAX, u64::MAX, 64, 0.5),
            u64::MAX as f64 as u64
        );
    }
}
