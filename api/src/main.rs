//! `scanq-api` binary: load config, start telemetry, bind, run.

use clap::{Parser, Subcommand};
use scanq::boot::{Booted, boot, shutdown_signal};
use scanq_api::auth::new_token;

#[derive(Parser, Debug)]
#[command(name = "scanq-api", version, about = "scanq HTTP API (REST, SSE, MCP)")]
struct Cli {
    /// TOML configuration file (also SCANQ_CONFIG).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Print the effective configuration (secrets redacted) and exit.
    #[arg(long)]
    print_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Speak MCP on stdin/stdout and forward it to a scanq API's `/mcp` (for clients that
    /// launch MCP servers as subprocesses).
    McpStdio {
        /// Base URL of the scanq API (or its `/mcp` URL).
        #[arg(long, env = "SCANQ_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Bearer token for the API.
        #[arg(long, env = "SCANQ_TOKEN")]
        token: Option<String>,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        action: TokenCommand,
    },
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Make a fresh random token: prints it once, and the entry to add to the tokens file
    /// (which stores only its SHA-256).
    New {
        /// The token's name, shown in logs and audit lines (unique in the file).
        #[arg(long)]
        name: String,
        /// The tenant its jobs belong to.
        #[arg(long)]
        tenant: String,
        /// Comma-separated: submit, read, cancel, admin, approve.
        #[arg(long)]
        scopes: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::McpStdio { url, token }) = &cli.command {
        // stdout carries the protocol: no telemetry, no config file needed.
        return scanq_api::mcp::stdio::run(url, token.clone()).await;
    }
    if let Some(Command::Token {
        action:
            TokenCommand::New {
                name,
                tenant,
                scopes,
            },
    }) = &cli.command
    {
        print!(
            "{}",
            new_token(name, tenant, scopes).map_err(anyhow::Error::msg)?
        );
        return Ok(());
    }
    let Some(Booted { cfg, catalog }) = boot(cli.config.as_deref(), cli.print_config)? else {
        return Ok(());
    };
    let listener = tokio::net::TcpListener::bind(cfg.api_addr).await?;
    scanq_api::run(listener, cfg, catalog, shutdown_signal()).await
}
