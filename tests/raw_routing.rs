//! Capability routing (issue 20): a job whose arguments need raw sockets waits in its tool's raw
//! lane, which only a worker built with `raw_sockets: true` reads. Driven against a real Redis:
//! the worker's half of the queue ([`Consumer`]) directly, for the lanes through enqueue, claim,
//! retry, hand-back, reap and backlog refill; then the whole stack with real nmap on 127.0.0.1,
//! where a worker that cannot confine raw sockets leaves a `-sS` job queued with a visible
//! reason while it runs a `-sT` job submitted after it.

use std::collections::HashSet;
use std::time::Duration;

use scanq::catalog::Catalog;
use scanq::config::{Config, EgressConfinement};
use scanq::domain::{
    Capabilities, CorrelationId, JobState, Need, Outcome, TenantId, ToolName, Verdict,
};
use scanq::queue::{Consumer, Heartbeat, Queue, StartedJob};
use scanq::request::{JobSpec, Policy};
use scanq::scripts::Completion;
use scanq::stats::Stats;
use scanq::validate::TargetPolicy;
use scanq_tests::*;
use serde_json::{Value, json};

/// The in-process `sleep` tool with a flag marked `raw` (the tool ignores it), so raw routing
/// is exercised without running anything privileged.
const RAW_SLEEP: &str = r#"
[tools.sleep]
executor = "sleep"
default_timeout_sec = 60
[[tools.sleep.args.flags]]
name = "--ms"
value = { type = "int", min = 0, max = 3600000 }
[[tools.sleep.args.flags]]
name = "--raw"
raw = true
"#;

struct Engine {
    queue: Queue,
    plain: Consumer,
    raw: Consumer,
    catalog: Catalog,
    cfg: Config,
    tenant: TenantId,
    _fx: Fixture,
    redis: RedisServer,
}

async fn engine(name: &str, fair_window: u64) -> Engine {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let catalog = Catalog::load(Some(&fx.catalog(RAW_SLEEP))).unwrap();
    let mut cfg = test_config(&redis, name);
    cfg.fair_window = fair_window;
    let queue = Queue::with_catalog(scanq::queue::pool(&cfg).unwrap(), &cfg, &catalog);
    let caps = |raw_sockets| Capabilities {
        raw_sockets,
        ..Capabilities::default()
    };
    let plain = Consumer::new(&cfg, &catalog, "plain".into(), caps(false)).unwrap();
    let raw = Consumer::new(&cfg, &catalog, "raw".into(), caps(true)).unwrap();
    Engine {
        queue,
        plain,
        raw,
        catalog,
        cfg,
        tenant: TenantId::parse("blue").unwrap(),
        _fx: fx,
        redis,
    }
}

impl Engine {
    /// Submits a job (`cid` '' = let the queue make its ID); returns its ID.
    async fn submit_as(&self, tenant: &TenantId, cid: &str, args: &str) -> String {
        let targets = TargetPolicy::default();
        let policy = Policy {
            catalog: &self.catalog,
            targets: &targets,
            zones: &scanq::validate::ZoneMap::default(),
            allow_intrusive: false,
            default_max_attempts: 3,
            require_engagement: false,
            approval: scanq::engagement::Approval::Never,
        };
        let mut body = json!({"tool":"sleep","target":"10.0.0.5","args":args});
        if !cid.is_empty() {
            body["correlation_id"] = json!(cid);
        }
        let spec = JobSpec::from_json(&body, &policy).unwrap();
        assert_eq!(spec.needs_raw, args.contains("--raw"), "{args}");
        let out = self.queue.submit(tenant, &spec).await.unwrap();
        assert!(out.created);
        out.document.correlation_id
    }

    /// Entries in the plain lane's and the raw lane's ready streams (all priorities).
    async fn lanes(&self) -> (u64, u64) {
        let tk = self.queue.keys().tool(&ToolName::parse("sleep").unwrap());
        let mut con = self.redis.con().await;
        let mut len = async |keys: [String; 3]| {
            let mut n = 0;
            for k in keys {
                n += redis::cmd("XLEN")
                    .arg(k)
                    .query_async::<u64>(&mut con)
                    .await
                    .unwrap();
            }
            n
        };
        let plain = len(tk.streams()).await;
        (plain, len(tk.raw_streams()).await)
    }

    async fn submit(&self, cid: &str, args: &str) {
        self.submit_as(&self.tenant.clone(), cid, args).await;
    }

    async fn doc(&self, cid: &str) -> scanq::domain::JobDocument {
        let cid = CorrelationId::parse(cid).unwrap();
        self.queue.get(&self.tenant, &cid).await.unwrap().unwrap().1
    }

    /// Every job `c` claims over a dozen rounds (both lane orders, every priority order).
    async fn claim_rounds(&self, c: &Consumer) -> Vec<StartedJob> {
        let mut out = Vec::new();
        for round in 0..12 {
            out.extend(c.claim(10, round).await.unwrap().started);
        }
        out
    }

    async fn finish(&self, job: &StartedJob, outcome: Outcome, delay_ms: u64) {
        let done = self
            .raw
            .complete(
                &ToolName::parse("sleep").unwrap(),
                &[Completion {
                    job_ref: job.job.job_ref.clone(),
                    fence: job.job.fence,
                    outcome,
                    result_json: String::new(),
                    error_json: String::new(),
                    delay_ms,
                    verdict: Verdict::Ignored,
                    breaker_reason: String::new(),
                }],
            )
            .await
            .unwrap();
        assert_eq!(done.states.len(), 1);
    }
}

fn cids(jobs: &[StartedJob]) -> HashSet<String> {
    jobs.iter().map(|j| j.id.cid.to_string()).collect()
}

/// The plain consumer takes nothing over a dozen rounds; the raw one then takes `cid`.
async fn only_raw_claims(e: &Engine, cid: &str) -> StartedJob {
    assert_eq!(
        e.lanes().await,
        (0, 1),
        "{cid} waits in the raw lane, nothing in the plain one"
    );
    let plain = e.claim_rounds(&e.plain).await;
    assert!(
        plain.is_empty(),
        "a plain worker claimed {:?}",
        cids(&plain)
    );
    assert_eq!(e.doc(cid).await.state, JobState::Queued);
    let mut raw = e.raw.claim(10, 0).await.unwrap().started;
    assert_eq!(cids(&raw), HashSet::from([cid.to_owned()]));
    let job = raw.pop().unwrap();
    assert!(job.needs_raw && job.job.needs_raw);
    job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_jobs_go_only_to_raw_capable_consumers_through_retry_hand_back_and_reap() {
    let e = engine("rawlane", 0).await;
    e.submit("syn", "--raw --ms 1").await;
    e.submit("connect", "--ms 1").await;
    let doc = e.doc("syn").await;
    assert_eq!(doc.needs, vec![Need::RawSockets]);
    assert!(e.doc("connect").await.needs.is_empty());

    // The raw job's stream entry counts in the queue's depth and oldest age.
    let stats = Stats::new(scanq::queue::pool(&e.cfg).unwrap(), e.queue.keys().clone());
    let sleep = (ToolName::parse("sleep").unwrap(), Default::default());
    let gauge = stats.queues(std::slice::from_ref(&sleep)).await.unwrap();
    assert_eq!(gauge[0].depth, 2);
    assert!(gauge[0].oldest_age_ms.is_some());

    // The plain consumer takes the plain job only, however many rounds it claims.
    let plain = e.claim_rounds(&e.plain).await;
    assert_eq!(cids(&plain), HashSet::from(["connect".to_owned()]));
    assert!(!plain[0].needs_raw);
    e.finish(&plain[0], Outcome::Succeeded, 0).await;
    let gauge = stats.queues(std::slice::from_ref(&sleep)).await.unwrap();
    assert_eq!(gauge[0].depth, 1, "the raw job still waits");
    assert!(
        gauge[0].oldest_age_ms.is_some(),
        "its raw-lane entry is the oldest"
    );

    // The raw consumer takes it; and plain jobs too.
    let job = only_raw_claims(&e, "syn").await;
    e.submit("connect-2", "--ms 1").await;
    let more = e.raw.claim(10, 1).await.unwrap().started;
    assert_eq!(cids(&more), HashSet::from(["connect-2".to_owned()]));
    assert!(!more[0].needs_raw);
    e.finish(&more[0], Outcome::Succeeded, 0).await;

    // Failed, then retried: back in the raw lane.
    e.finish(&job, Outcome::Failed, 0).await;
    assert_eq!(e.doc("syn").await.state, JobState::Failed);
    e.queue
        .admit_retry(&e.tenant, &CorrelationId::parse("syn").unwrap(), None)
        .await
        .unwrap();
    let job = only_raw_claims(&e, "syn").await;

    // Handed back (a worker shutting down): back in the raw lane.
    e.finish(&job, Outcome::Handback, 0).await;
    let job = only_raw_claims(&e, "syn").await;

    // Retried after a delay: the reaper promotes it into the raw lane.
    e.finish(&job, Outcome::Retry, 50).await;
    assert_eq!(e.doc("syn").await.state, JobState::Scheduled);
    eventually(Duration::from_secs(10), "the retry promoted", || async {
        e.plain.reap(100).await.unwrap();
        (e.doc("syn").await.state == JobState::Queued).then_some(())
    })
    .await;
    let job = only_raw_claims(&e, "syn").await;

    // Its worker vanishes (the lease lapses): the reaper schedules it, then queues it again,
    // in the raw lane.
    let fence = job.job.fence;
    eventually(
        Duration::from_secs(20),
        "the lapsed lease taken over",
        || async {
            e.plain.reap(100).await.unwrap();
            (e.doc("syn").await.state == JobState::Queued).then_some(())
        },
    )
    .await;
    let job = only_raw_claims(&e, "syn").await;
    assert!(job.job.fence > fence, "a new attempt");
    e.finish(&job, Outcome::Succeeded, 0).await;
    assert_eq!(e.doc("syn").await.state, JobState::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_refill_keeps_raw_jobs_in_their_lane_and_they_never_hold_back_plain_ones() {
    // A fair-share window of one entry per tenant and lane.
    let e = engine("rawbacklog", 1).await;
    for i in 0..3 {
        e.submit(&format!("syn-{i}"), "--raw --ms 1").await;
    }
    // The tenant's three raw jobs fill its raw share; its plain job still goes straight to the
    // plain lane, and a plain worker takes it while the raw jobs wait.
    e.submit("connect", "--ms 1").await;
    let plain = e.claim_rounds(&e.plain).await;
    assert_eq!(cids(&plain), HashSet::from(["connect".to_owned()]));
    e.finish(&plain[0], Outcome::Succeeded, 0).await;

    // One at a time from the raw lane: each claim refills the next from the raw backlog, and
    // the plain consumer never sees one of them.
    let mut seen = HashSet::new();
    for round in 0..3 {
        assert_eq!(
            e.lanes().await,
            (0, 1),
            "round {round}: one raw entry (the window)"
        );
        let got = e.raw.claim(1, round).await.unwrap().started;
        assert_eq!(
            got.len(),
            1,
            "round {round}: the backlog refilled the raw lane"
        );
        assert!(got[0].needs_raw);
        seen.insert(got[0].id.cid.to_string());
        let plain = e.claim_rounds(&e.plain).await;
        assert!(
            plain.is_empty(),
            "a plain worker claimed {:?}",
            cids(&plain)
        );
    }
    assert_eq!(seen.len(), 3);
    assert!(e.raw.claim(10, 3).await.unwrap().started.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_capable_consumer_alternates_lanes_so_neither_starves() {
    let e = engine("rawturns", 0).await;
    for i in 0..4 {
        e.submit(&format!("syn-{i}"), "--raw --ms 1").await;
        e.submit(&format!("connect-{i}"), "--ms 1").await;
    }
    // One job per claim: an even round reads the plain lane first, an odd one the raw lane.
    let mut raw = 0;
    for round in 0..4 {
        let got = e.raw.claim(1, round).await.unwrap().started;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].needs_raw, round % 2 == 1, "round {round}");
        raw += usize::from(got[0].needs_raw);
    }
    assert_eq!(raw, 2);
}

/// A worker that cannot confine raw sockets, with real nmap and the built-in catalog.
async fn stack(name: &str) -> (RedisServer, Config, Tokens, Fixture) {
    let redis = RedisServer::start().await;
    let fx = Fixture::new();
    let tokens = Tokens::write(
        fx.dir.path(),
        &[("ops", "ops", "admin"), ("blue", "blue", "submit,read")],
        "",
    );
    let mut cfg = test_config(&redis, name);
    cfg.allowed_targets = "127.0.0.0/8".into();
    cfg.api_tokens_file = Some(tokens.path.clone());
    // SCANQ_EGRESS_CONFINEMENT=off, SCANQ_TOOL_USER=nobody: nothing that confines raw sockets.
    cfg.egress_confinement = EgressConfinement::Off;
    cfg.tool_user = Some("nobody".into());
    (redis, cfg, tokens, fx)
}

async fn get_as(base: &str, token: &str, path: &str) -> Value {
    http()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_syn_scan_waits_visibly_on_a_worker_that_cannot_confine_raw_sockets() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (_redis, cfg, tokens, _fx) = stack("rawwait").await;
    let catalog = Catalog::builtin();
    let (_api, base) = start_api(cfg.clone(), catalog.clone()).await;
    let _worker = start_worker(cfg, catalog).await;
    let blue = tokens.get("blue");
    let submit = |cid: &str, args: String| {
        http()
            .post(format!("{base}/v1/jobs"))
            .bearer_auth(tokens.get("blue"))
            .json(&json!({"tool":"nmap","target":"127.0.0.1","args":args,"correlation_id":cid}))
            .send()
    };
    let syn_args = format!("-sS -Pn -n -p {port}");
    let r = submit("syn", syn_args.clone()).await.unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let syn: Value = r.json().await.unwrap();
    assert_eq!(syn["needs"], json!(["raw_sockets"]), "{syn}");
    assert_eq!(syn["waiting_for"], "raw_capable_worker", "{syn}");
    // The same request is the same job; the need is part of its identity like its args.
    let again = submit("syn", syn_args).await.unwrap();
    assert_eq!(again.status(), 200);
    let r = submit("connect", format!("-sT -Pn -n -p {port}"))
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let connect: Value = r.json().await.unwrap();
    assert!(connect.get("needs").is_none(), "{connect}");

    // The connect scan, submitted after it, runs to the end on the same worker...
    let done = wait_done_as(&base, Some(blue), "connect", Duration::from_secs(60)).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    // ...while the SYN scan never started, and says why.
    let syn = eventually(Duration::from_secs(10), "the visible reason", || async {
        let doc = get_as(&base, blue, "/v1/jobs/syn").await;
        (doc["waiting_for"] == "raw_capable_worker").then_some(doc)
    })
    .await;
    assert_eq!(syn["state"], "queued", "{syn}");
    assert!(
        syn["started_at"].is_null() && syn["worker"].is_null(),
        "{syn}"
    );
    assert_eq!(syn["attempt"], 0);
    let listed = get_as(&base, blue, "/v1/jobs?state=queued").await;
    assert_eq!(
        listed["jobs"][0]["waiting_for"], "raw_capable_worker",
        "{listed}"
    );

    // The worker says it is not raw-capable: everyone sees it in /v1/workers, admins in /health.
    let workers = get_as(&base, blue, "/v1/workers").await;
    assert_eq!(workers["count"], 1, "{workers}");
    assert_eq!(workers["workers"][0]["capabilities"]["raw_sockets"], false);
    // (A cgroup per run needs only a writable cgroup v2; it says nothing about raw sockets.)
    assert!(workers["workers"][0]["capabilities"]["run_cgroups"].is_boolean());
    let check = |report: &Value| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "workers")
            .cloned()
            .unwrap()
    };
    let admin = check(&get_as(&base, tokens.get("ops"), "/health").await);
    assert!(
        admin["detail"].as_str().unwrap().contains("0 raw-capable"),
        "{admin}"
    );
    assert_eq!(
        admin["workers"][0]["capabilities"]["raw_sockets"], false,
        "{admin}"
    );
    let tenant = check(&get_as(&base, blue, "/health").await);
    assert!(
        tenant.get("workers").is_none(),
        "a tenant sees worker details: {tenant}"
    );
    let anonymous: Value = http()
        .get(format!("{base}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(check(&anonymous).get("workers").is_none());

    // MCP's job_status says the same (a stateless 2026 request).
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "job_status", "arguments": {"correlation_id": "syn"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}}}});
    let reply: Value = http()
        .post(format!("{base}/mcp"))
        .bearer_auth(blue)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "job_status")
        .json(&call)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let view = &reply["result"]["structuredContent"];
    assert_eq!(view["waiting_for"], "raw_capable_worker", "{reply}");
    assert_eq!(view["needs"], json!(["raw_sockets"]), "{reply}");

    // Still queued after the worker's further claim rounds.
    let later = get_as(&base, blue, "/v1/jobs/syn?wait=1").await;
    assert_eq!(later["state"], "queued");
    drop(listener);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_follows_the_heartbeats_of_raw_capable_workers() {
    let e = engine("rawbeat", 0).await;
    e.submit("syn", "--raw --ms 1").await;
    assert_eq!(
        e.doc("syn").await.waiting_for,
        Some(scanq::domain::WaitingFor::RawCapableWorker)
    );
    // A raw-capable worker serving `sleep` reports in: the job no longer says it waits for one.
    let beat = |raw_sockets, tool: &str| Heartbeat {
        id: "raw".into(),
        version: "test",
        pid: std::process::id(),
        started_ms: 0,
        concurrency: 1,
        zone: Default::default(),
        confinement: "nftables",
        running: vec![],
        tools: [(tool.to_owned(), true)].into_iter().collect(),
        capabilities: Capabilities {
            raw_sockets,
            ..Capabilities::default()
        },
    };
    e.raw
        .heartbeat(&beat(true, "noop"), Duration::from_secs(30))
        .await
        .unwrap();
    // (A fresh reader: nothing cached.)
    let fresh = Queue::with_catalog(scanq::queue::pool(&e.cfg).unwrap(), &e.cfg, &e.catalog);
    let cid = CorrelationId::parse("syn").unwrap();
    let doc = fresh.get(&e.tenant, &cid).await.unwrap().unwrap().1;
    assert!(
        doc.waiting_for.is_some(),
        "a raw-capable worker of another tool does not serve it"
    );
    e.raw
        .heartbeat(&beat(true, "sleep"), Duration::from_secs(30))
        .await
        .unwrap();
    eventually(Duration::from_secs(5), "the reason gone", || async {
        e.doc("syn").await.waiting_for.is_none().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_worker_never_starts_a_raw_job_found_in_a_plain_stream() {
    let e = engine("rawstray", 0).await;
    e.submit("syn", "--raw --ms 1").await;
    // Something else (not the scripts) puts the raw job's ref on a plain stream.
    let tk = e.queue.keys().tool(&ToolName::parse("sleep").unwrap());
    let mut con = e.redis.con().await;
    let _: String = redis::cmd("XADD")
        .arg(tk.stream(scanq::domain::Priority::Normal))
        .arg("*")
        .arg("ref")
        .arg("blue/syn")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(e.lanes().await, (1, 1));
    let plain = e.claim_rounds(&e.plain).await;
    assert!(
        plain.is_empty(),
        "a plain worker started {:?}",
        cids(&plain)
    );
    assert_eq!(
        e.lanes().await,
        (0, 2),
        "moved to the raw lane, not started"
    );
    assert_eq!(e.doc("syn").await.state, JobState::Queued);
    let raw = e.raw.claim(10, 0).await.unwrap().started;
    assert_eq!(
        cids(&raw),
        HashSet::from(["syn".to_owned()]),
        "started once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_raw_job_is_cancelled_and_listed_like_any_other() {
    let e = engine("rawcancel", 0).await;
    e.submit("syn", "--raw --ms 1").await;
    let listed = e
        .queue
        .list(&e.tenant, Some(JobState::Queued), None, 10, None, false)
        .await
        .unwrap()
        .jobs;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].needs, vec![Need::RawSockets]);
    assert_eq!(
        listed[0].waiting_for,
        Some(scanq::domain::WaitingFor::RawCapableWorker)
    );
    let cid = CorrelationId::parse("syn").unwrap();
    e.queue.cancel(&e.tenant, &cid).await.unwrap();
    assert_eq!(e.doc("syn").await.state, JobState::Cancelled);
    assert!(
        e.doc("syn").await.waiting_for.is_none(),
        "only a queued job waits"
    );
    // Its raw-lane entry is dropped by the next raw claim; nothing starts.
    assert!(e.raw.claim(10, 0).await.unwrap().started.is_empty());
    assert_eq!(e.lanes().await, (0, 0));
    let counts = e
        .queue
        .counts(&ToolName::parse("sleep").unwrap())
        .await
        .unwrap();
    assert_eq!(counts.get("queued").copied().unwrap_or(0), 0, "{counts:?}");
}

/// Calls of `cmd` since the last `CONFIG RESETSTAT` (from `INFO commandstats`).
async fn calls(con: &mut redis::aio::MultiplexedConnection, cmd: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(con)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_claim_costs_what_it_did_and_a_raw_capable_one_reads_both_lanes() {
    let e = engine("rawcost", 0).await;
    // Warm up: the consumer groups exist afterwards.
    e.plain.claim(10, 0).await.unwrap();
    e.raw.claim(10, 0).await.unwrap();
    let mut con = e.redis.con().await;
    let reset = |con: &mut redis::aio::MultiplexedConnection| {
        let mut c = con.clone();
        async move {
            let _: () = redis::cmd("CONFIG")
                .arg("RESETSTAT")
                .query_async(&mut c)
                .await
                .unwrap();
        }
    };
    // One script call per tool (the built-in nmap and the test's sleep), no other round trip.
    let tools = e.catalog.tools().filter(|(_, t)| t.enabled).count() as u64;
    reset(&mut con).await;
    e.plain.claim(10, 0).await.unwrap();
    assert_eq!(calls(&mut con, "evalsha").await, tools, "one call per tool");
    assert_eq!(
        calls(&mut con, "xreadgroup").await,
        3 * tools,
        "the three plain streams"
    );
    reset(&mut con).await;
    e.raw.claim(10, 0).await.unwrap();
    assert_eq!(calls(&mut con, "evalsha").await, tools, "one call per tool");
    assert_eq!(calls(&mut con, "xreadgroup").await, 6 * tools, "both lanes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_reads_no_clock_and_no_job_hash_for_a_fresh_id_on_its_stream_or_in_its_backlog() {
    // A window of one: the first job goes onto the stream, the second into the backlog.
    let e = engine("enqtime", 1).await;
    // Warm up (the tool's queue number, the scripts) with another tenant's job.
    e.submit_as(&TenantId::parse("green").unwrap(), "warm", "--ms 1")
        .await;
    let mut con = e.redis.con().await;
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut con)
        .await
        .unwrap();
    e.submit("first", "--ms 1").await;
    assert_eq!(calls(&mut con, "xadd").await, 1, "onto its stream");
    assert_eq!(
        calls(&mut con, "hmget").await,
        1,
        "a fresh ID: only the counts are read, not the job hash"
    );
    assert_eq!(
        calls(&mut con, "time").await,
        0,
        "stamped from the entry ID"
    );
    let tk = e.queue.keys().tool(&ToolName::parse("sleep").unwrap());
    let created: u64 = redis::cmd("HGET")
        .arg(tk.job(&format!("{}/first", e.tenant.as_str())))
        .arg("created_ms")
        .query_async(&mut con)
        .await
        .unwrap();
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(&tk.streams()[1])
        .arg("-")
        .arg("+")
        .query_async(&mut con)
        .await
        .unwrap();
    let id_ms: u64 = entries
        .last()
        .unwrap()
        .0
        .split('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(created, id_ms, "created_ms is the entry's time");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    e.submit("second", "--ms 1").await;
    assert_eq!(
        calls(&mut con, "time").await,
        0,
        "a backlogged job is stamped with the submitter's clock (its listing score's)"
    );
    assert_eq!(calls(&mut con, "rpush").await, 1, "into the backlog");
    let second: u64 = redis::cmd("HGET")
        .arg(tk.job(&format!("{}/second", e.tenant.as_str())))
        .arg("created_ms")
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(
        second >= before && second <= before + 60_000,
        "{second} vs {before}"
    );
    assert_eq!(e.doc("second").await.state, JobState::Queued);
    // An ID the queue makes (a UUID) waits in the backlog as 16 bytes, and runs as itself.
    let made = e.submit_as(&e.tenant.clone(), "", "--ms 1").await;
    let items: Vec<Vec<u8>> = redis::cmd("LRANGE")
        .arg(format!("{}{}", tk.backlog_prefix(), e.tenant.as_str()))
        .arg(0)
        .arg(-1)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!((items[1].len(), items[1][0]), (17, b'#'), "{:?}", items[1]);
    let started: Vec<String> = e
        .claim_rounds(&e.plain)
        .await
        .iter()
        .map(|j| j.id.cid.to_string())
        .collect();
    assert_eq!(started, ["warm", "first", "second", made.as_str()]);
}
