//! `scanq`: the operator's command line. It talks to the REST API only (`SCANQ_URL`,
//! `SCANQ_TOKEN`), prints tables for people and JSON with `--json`.
//!
//! Exit codes: 0 ok; 1 the API could not be reached; 2 usage; 3 refused by the server (its
//! problem's `detail` and `hint` are printed); 4 the job failed or was cancelled.

mod chunks;
mod client;
mod commands;
mod render;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use client::{Api, Failure};

#[derive(Parser, Debug)]
#[command(
    name = "scanq",
    version,
    about = "Submit and watch scans, inspect the scanq fleet"
)]
pub struct Cli {
    /// Base URL of the scanq API.
    #[arg(
        long,
        global = true,
        env = "SCANQ_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// Bearer token (not needed when the API runs open on loopback).
    #[arg(long, global = true, env = "SCANQ_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the server's JSON instead of tables (for scripts).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Submit a job; with --watch, follow it with a progress bar and print its result.
    Submit {
        tool: String,
        target: String,
        #[arg(long)]
        template: Option<String>,
        /// Extra flags, e.g. "-p 22,80 -sV".
        #[arg(long, allow_hyphen_values = true)]
        args: Option<String>,
        #[arg(long)]
        timeout_sec: Option<u64>,
        /// high, normal or low.
        #[arg(long)]
        priority: Option<String>,
        /// The job's correlation ID (made by the server when absent).
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        max_attempts: Option<u32>,
        #[arg(long)]
        intrusive: bool,
        #[arg(long)]
        delay_sec: Option<u64>,
        /// For a big scan: the most hosts one chunk scans (a bigger target is split).
        #[arg(long)]
        chunk_hosts: Option<u64>,
        /// The zone the target must be in (a zone of the server's map, GET /v1/zones, or
        /// `default`): the server places every job by its target anyway; naming a zone makes
        /// a target outside it a refusal (exit 3).
        #[arg(long)]
        zone: Option<String>,
        /// Follow the job until it finishes (exit 4 unless it succeeds); a big scan shows one
        /// bar for the whole scan (hosts done, chunks by state).
        #[arg(long)]
        watch: bool,
    },
    /// List jobs, newest first.
    Jobs {
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        tool: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Admins: another tenant's jobs.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Show one job (a big scan's parent: its hosts and chunk tally).
    Get { id: String },
    /// List a big scan's chunks (state, target, worker, attempt), a page at a time.
    Chunks {
        id: String,
        /// The chunk number to start from (printed with the previous page).
        #[arg(long)]
        cursor: Option<u64>,
        /// Chunks per page (1-1000).
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
    /// Cancel a job.
    Cancel { id: String },
    /// Re-run a failed or cancelled job.
    Retry { id: String },
    /// Approve a job awaiting approval (needs a token with `approve`, not the submitter's).
    Approve {
        id: String,
        /// Why (kept on the job and in the audit log; at most 500 characters).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Reject a job awaiting approval: it is cancelled with the reason.
    Reject {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Print a finished job's result.
    Result {
        id: String,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Follow a job until it finishes, with a progress bar (exit 4 unless it succeeds).
    Watch {
        id: String,
        /// Poll its summary every this many ms instead of following its event stream (for
        /// proxies that cut streams); each poll sends `If-None-Match`, so an unchanged job
        /// costs a 304 with no body.
        #[arg(long, value_parser = clap::value_parser!(u64).range(100..=60_000))]
        poll_ms: Option<u64>,
    },
    /// The tool catalog.
    Tools,
    /// Live workers (and the zone each one claims from).
    Workers,
    /// Circuit breakers.
    Breakers,
    /// Queue statistics, one row per tool and zone (a tenant's own; the fleet's for admins).
    Stats,
    /// Manage API tokens (offline: prints a new token and its tokens-file entry).
    Token {
        #[command(subcommand)]
        action: TokenCmd,
    },
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Make a fresh random token (same as `scanq-api token new`).
    New {
        #[arg(long)]
        name: String,
        #[arg(long)]
        tenant: String,
        /// Comma-separated: submit, read, cancel, admin, approve.
        #[arg(long)]
        scopes: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Xml,
    Csv,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    let code = match &cli.command {
        Cmd::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(*shell, &mut cmd, "scanq", &mut std::io::stdout());
            0
        }
        Cmd::Token {
            action:
                TokenCmd::New {
                    name,
                    tenant,
                    scopes,
                },
        } => match scanq::tokens::new_token(name, tenant, scopes) {
            Ok(text) => {
                print!("{text}");
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                2
            }
        },
        _ => match run(&cli).await {
            Ok(()) => 0,
            Err(f) => report(f, cli.json),
        },
    };
    std::process::exit(code);
}

async fn run(cli: &Cli) -> Result<(), Failure> {
    let api = Api::new(&cli.url, cli.token.clone())?;
    commands::run(&api, cli.json, &cli.command).await
}

/// Prints a failure and returns its exit code.
fn report(f: Failure, json: bool) -> i32 {
    match f {
        Failure::Refused { status, problem } => {
            if json {
                println!("{problem}");
            }
            eprintln!("{}", render::problem(status, &problem));
            3
        }
        Failure::JobFailed(doc) => {
            eprintln!("{}", render::job_failure(&doc));
            4
        }
        Failure::Other(msg) => {
            eprintln!("error: {msg}");
            1
        }
    }
}
