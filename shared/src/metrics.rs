//! Prometheus metrics (DESIGN §7), declared once here; call sites use these typed handles.
//! Histograms use exponential buckets from 1 ms to ~9 h so both 10 ms no-op jobs and hour-long
//! scans get useful quantiles. Job and breaker metrics carry `zone` beside `tool` (DESIGN §13:
//! a queue, and its breaker, is a tool in a zone; a worker labels with its own zone).

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

fn job_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.001, 2.5, 20).expect("valid buckets")
}

/// Metrics of one process (API or worker). Each gets its own registry so tests can run several
/// services in one process.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    pub jobs_submitted: IntCounterVec,
    pub jobs_finished: IntCounterVec,
    pub queue_wait: HistogramVec,
    pub run_time: HistogramVec,
    pub jobs_running: IntGaugeVec,
    pub queue_depth: IntGaugeVec,
    pub queue_oldest_age: IntGaugeVec,
    pub breaker_state: IntGaugeVec,
    pub breaker_transitions: IntCounterVec,
    pub breaker_calls: IntCounterVec,
    pub http_requests: IntCounterVec,
    /// SIGHUP reloads of config, catalog and target scope, by `result` (`ok`, `refused`).
    pub config_reloads: IntCounterVec,
    pub http_duration: HistogramVec,
    pub workers_alive: IntGauge,
    /// Packets of confined tool runs that the kernel refused (worker; docs/sandbox.md).
    pub egress_refused: IntCounterVec,
    /// Tool runs the seccomp filter killed (worker; docs/sandbox.md).
    pub sandbox_violations: IntCounterVec,
    /// Claimed schedule slots by `result`: fired, skipped, held, missed, refused, parked.
    pub schedule_runs: IntCounterVec,
    /// Schedules this process parked, by `reason`: unfit, slot, panic, revoked, engagement.
    pub schedules_parked: IntCounterVec,
    /// Webhook delivery attempts by `outcome`: delivered, failed, gave_up, dropped.
    pub webhook_deliveries: IntCounterVec,
    /// Jobs this worker's claims parked because their target group ran its cap (politeness).
    pub group_parked: IntCounterVec,
    /// Jobs an enqueue started directly on this worker's offer (worker; docs/queue.md
    /// "Direct start").
    pub direct_starts: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: Vec<f64>| {
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
                .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let workers_alive = IntGauge::new("scanq_workers_alive", "Workers with a live heartbeat")
            .expect("valid metric");
        registry
            .register(Box::new(workers_alive.clone()))
            .expect("unique metric");
        Self {
            jobs_submitted: counter(
                "scanq_jobs_submitted_total",
                "Jobs accepted",
                &["tool", "zone"],
            ),
            schedule_runs: counter(
                "scanq_schedule_runs_total",
                "Schedule slots this process claimed, by result",
                &["result"],
            ),
            schedules_parked: counter(
                "scanq_schedules_parked_total",
                "Schedules this process parked (taken out of firing), by reason",
                &["reason"],
            ),
            webhook_deliveries: counter(
                "scanq_webhook_deliveries_total",
                "Webhook delivery attempts this process made, by outcome",
                &["outcome"],
            ),
            jobs_finished: counter(
                "scanq_jobs_finished_total",
                "Jobs that reached a terminal state",
                &["tool", "zone", "state", "error_type"],
            ),
            queue_wait: histogram(
                "scanq_job_queue_wait_seconds",
                "Time from ready to started",
                &["tool", "zone"],
                job_buckets(),
            ),
            run_time: histogram(
                "scanq_job_run_seconds",
                "Time the tool ran",
                &["tool", "zone"],
                job_buckets(),
            ),
            jobs_running: gauge("scanq_jobs_running", "Jobs running", &["tool", "zone"]),
            queue_depth: gauge(
                "scanq_queue_depth",
                "Jobs queued or scheduled",
                &["tool", "zone"],
            ),
            queue_oldest_age: gauge(
                "scanq_queue_oldest_age_seconds",
                "Age of the oldest queued job",
                &["tool", "zone"],
            ),
            breaker_state: gauge(
                "scanq_breaker_state",
                "Breaker state: 0 closed, 1 open, 2 half-open",
                &["tool", "zone"],
            ),
            breaker_transitions: counter(
                "scanq_breaker_transitions_total",
                "Breaker state changes",
                &["tool", "zone", "from", "to"],
            ),
            breaker_calls: counter(
                "scanq_breaker_calls_total",
                "Breaker decisions and outcomes",
                &["tool", "zone", "result"],
            ),
            config_reloads: {
                let c = counter(
                    "scanq_config_reloads_total",
                    "Configuration reloads (SIGHUP) by result",
                    &["result"],
                );
                for result in ["ok", "refused"] {
                    c.with_label_values(&[result]);
                }
                c
            },
            http_requests: counter(
                "scanq_http_requests_total",
                "HTTP requests",
                &["route", "method", "status"],
            ),
            http_duration: histogram(
                "scanq_http_request_duration_seconds",
                "HTTP request latency",
                &["route"],
                prometheus::exponential_buckets(0.0001, 2.0, 20).expect("valid buckets"),
            ),
            workers_alive,
            egress_refused: counter(
                "scanq_egress_refused_packets_total",
                "Packets of confined tool runs refused by the kernel (nftables counters)",
                &["tool"],
            ),
            sandbox_violations: counter(
                "scanq_sandbox_violations_total",
                "Tool runs killed by the seccomp filter for a forbidden system call",
                &["tool"],
            ),
            group_parked: counter(
                "scanq_group_parked_total",
                "Jobs parked by this worker's claims because their target group ran its cap",
                &["tool"],
            ),
            direct_starts: counter(
                "scanq_direct_starts_total",
                "Jobs an enqueue started directly on this idle worker",
                &["tool", "zone"],
            ),
            registry,
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding never fails");
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Metrics {
    /// Counts one claimed schedule slot (`scanq_schedule_runs_total{result}`) and, when the
    /// schedule was parked, `scanq_schedules_parked_total{reason}`.
    pub fn count_schedule_result(&self, r: &crate::schedule::FireResult) {
        self.schedule_runs.with_label_values(&[r.label()]).inc();
        if let Some(reason) = r.parked() {
            self.schedules_parked
                .with_label_values(&[reason.label()])
                .inc();
        }
    }
}
