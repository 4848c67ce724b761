//! The `helio` command line: a drop-in for the original's commands and flags.

mod demo;
mod export;
mod healthcheck;
mod init;
mod plugin;
mod scaffold;
mod start;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "helio",
    version,
    about = "Helio: a governance gateway for MCP tool calls"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a commented helio.yaml with a freshly generated dashboard secret.
    Init {
        /// Where to write the configuration.
        #[arg(short, long, default_value = "helio.yaml")]
        output: PathBuf,
        /// Overwrite the file if it exists.
        #[arg(short, long)]
        force: bool,
    },
    /// Check a configuration file and list every problem by its YAML path.
    Validate {
        #[arg(short, long, default_value = "helio.yaml")]
        config: PathBuf,
    },
    /// Run the gateway.
    Start {
        #[arg(short, long, default_value = "helio.yaml")]
        config: PathBuf,
        /// Pin the configuration for the life of the process.
        #[arg(long)]
        no_hot_reload: bool,
    },
    /// Run Helio in front of a built-in demo MCP server with an example policy.
    Demo {
        /// How Helio reaches the demo server: over HTTP, or as a child
        /// process over stdio.
        #[arg(long, value_enum, default_value_t = DemoTransport::StreamableHttp)]
        transport: DemoTransport,
        /// Also run a small scripted agent against the demo, so the
        /// dashboard shows calls, a held refund and the budget at once.
        #[arg(long)]
        drive: bool,
    },
    /// The demo MCP server alone, over stdio (what `demo --transport stdio`
    /// spawns), or over streamable HTTP at `/mcp` with `--listen` (the
    /// compose demo's second service).
    #[command(hide = true)]
    DemoServer {
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Export audit records (or a budget's ledger) as JSON or CSV.
    Export(Box<export::ExportArgs>),
    /// Try a policy plugin offline: what it is, what it says of a
    /// configuration, what it decides on a call.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Exit 0 if a running Helio answers GET /healthz with 200 (for a
    /// container's HEALTHCHECK; no shell needed).
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:3000/healthz")]
        url: String,
    },
}

/// How `helio demo` reaches its demo server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoTransport {
    StreamableHttp,
    Stdio,
}

/// Parses the command line, runs the command, and maps the outcome to the
/// exit code: 0 on success, 1 on any failure.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Init { output, force } => init::run(&output, force),
        Command::Validate { config } => validate::run(&config),
        Command::Start {
            config,
            no_hot_reload,
        } => start::run(&config, no_hot_reload),
        Command::Demo { transport, drive } => demo::run(transport, drive),
        Command::DemoServer { listen: None } => demo::serve_stdio(),
        Command::DemoServer {
            listen: Some(address),
        } => demo::serve_http(address),
        Command::Export(args) => export::run(&args),
        Command::Healthcheck { url } => healthcheck::run(&url),
        Command::Plugin(command) => plugin::run(command),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; `HELIO_LOG` (or `RUST_LOG`) sets the filter,
/// `HELIO_LOG_FORMAT=json` makes each line one JSON object. Read from the
/// environment, not helio.yaml: logging starts before the configuration is
/// read (its errors are logged too), and the environment is where container
/// platforms choose log formats.
fn init_logging() -> anyhow::Result<()> {
    let json = std::env::var("HELIO_LOG_FORMAT").is_ok_and(|f| f.trim() == "json");
    let _ = JSON_LOGS.set(json);
    use std::io::IsTerminal;
    let filter = std::env::var("HELIO_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| {
            "info,rmcp=warn,opentelemetry=warn,opentelemetry_sdk=warn,opentelemetry_otlp=warn"
                .into()
        });
    let format = std::env::var("HELIO_LOG_FORMAT").unwrap_or_default();
    let filter = tracing_subscriber::EnvFilter::new(filter);
    let _ = match format.trim() {
        "" | "text" => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .try_init(),
        // `{"timestamp", "level", "message", <the event's fields>, "target"}`.
        "json" => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init(),
        other => anyhow::bail!("HELIO_LOG_FORMAT must be text or json, not {other:?}"),
    };
    Ok(())
}

/// Whether logs are JSON (`HELIO_LOG_FORMAT=json`).
static JSON_LOGS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// A line of the start banner: on stderr as text, or as a log event when
/// logs are JSON (so every line there is one JSON object).
fn say(line: impl std::fmt::Display) {
    if JSON_LOGS.get().copied().unwrap_or(false) {
        tracing::info!("{line}");
    } else {
        eprintln!("{line}");
    }
}

/// A banner line that shows a secret Helio generated: with JSON logs,
/// which are shipped and kept, `withheld` is said instead.
fn say_secret(shown: impl std::fmt::Display, withheld: &str) {
    if JSON_LOGS.get().copied().unwrap_or(false) {
        if !withheld.is_empty() {
            tracing::warn!("{withheld}");
        }
    } else {
        eprintln!("{shown}");
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled: a Ctrl-C that comes right
/// after the banner (which says Ctrl-C stops Helio) must still shut down
/// cleanly, never kill the process mid-write.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        match (interrupt, terminate) {
            (Ok(mut interrupt), Ok(mut terminate)) => tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            },
            (Err(error), _) | (_, Err(error)) => {
                tracing::error!(%error, "cannot listen for SIGINT and SIGTERM");
                std::future::pending::<()>().await;
            }
        }
        tracing::info!("shutting down: finishing in-flight calls");
    }
}
