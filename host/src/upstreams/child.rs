//! The stdio upstream's process: spawned with its command, arguments,
//! environment and working directory; newline-delimited JSON-RPC on its
//! stdin and stdout; its stderr drained line by line into Helio's log (a
//! pipe nobody reads fills up and stalls the child). Helio initializes it
//! once per start. When it exits, requests in flight get an error and it is
//! restarted with backoff (1, 2, 4, 8, 16 s); after [`MAX_RESTARTS`]
//! failed starts in a row Helio gives up and says so on every request. At
//! shutdown it gets SIGTERM, then SIGKILL after [`TERMINATE_GRACE`].

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::mux::{Link, Mux};
use crate::config::Upstream;

/// Failed starts (or runs shorter than [`STABLE_RUN`]) in a row before
/// Helio stops restarting the server.
pub const MAX_RESTARTS: u32 = 5;
/// A run this long counts as a success: the restart count starts over.
const STABLE_RUN: Duration = Duration::from_secs(30);
/// SIGTERM, then this long before SIGKILL.
pub const TERMINATE_GRACE: Duration = Duration::from_secs(5);
/// Longest line read from the child (a message, or a stderr line).
const MAX_LINE_BYTES: usize = 64 << 20;
/// Longest stderr line written to the log; the rest is cut.
const LOGGED_STDERR_CHARS: usize = 4096;

/// The MCP revision Helio speaks to a stdio server.
const PROTOCOL_VERSION: &str = "2025-06-18";

/// Runs the child for as long as Helio runs: starts, initializes, relays,
/// restarts. Returns once `shutdown` is cancelled and the child is gone.
pub async fn run(
    config: Upstream,
    mux: Arc<Mux>,
    mut outbox: mpsc::UnboundedReceiver<String>,
    shutdown: CancellationToken,
) {
    let mut failures = 0u32;
    loop {
        let started = Instant::now();
        let ended = match spawn(&config) {
            Ok(child) => serve(child, &config, &mux, &mut outbox, &shutdown).await,
            Err(error) => {
                Ended::Failed(format!("cannot start `{}`: {error}", command_line(&config)))
            }
        };
        let why = match ended {
            Ended::Shutdown => return,
            Ended::Exited(why) | Ended::Failed(why) => why,
        };
        // What was queued for the child that died is not sent to the next
        // one: its callers are told it failed, so it must not run later.
        while outbox.try_recv().is_ok() {}
        mux.lost(&why);
        failures = if started.elapsed() >= STABLE_RUN {
            1
        } else {
            failures + 1
        };
        if failures > MAX_RESTARTS {
            let dead = format!("{why}; gave up after {MAX_RESTARTS} restarts");
            tracing::error!("stdio upstream: {dead}");
            mux.set_link(Link::Dead(dead));
            // Nothing is sent to a dead server: answer what arrives.
            loop {
                tokio::select! {
                    message = outbox.recv() => if message.is_none() { return },
                    () = shutdown.cancelled() => return,
                }
            }
        }
        mux.set_link(Link::Down(Some(why.clone())));
        crate::metrics::get().upstream_restarted();
        let delay = Duration::from_secs(1 << (failures - 1).min(4));
        tracing::warn!(
            "stdio upstream: {why}; restarting in {}s (attempt {failures} of {MAX_RESTARTS})",
            delay.as_secs()
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

enum Ended {
    Shutdown,
    Exited(String),
    Failed(String),
}

fn spawn(config: &Upstream) -> std::io::Result<Child> {
    let program = config.command.as_deref().unwrap_or_default();
    let mut command = Command::new(program);
    command
        .args(&config.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, value) in &config.env {
        command.env(name, value.expose());
    }
    if let Some(cwd) = &config.cwd {
        command.current_dir(cwd);
    }
    command.spawn()
}

/// Drives one child until it exits or Helio shuts down.
async fn serve(
    mut child: Child,
    config: &Upstream,
    mux: &Arc<Mux>,
    outbox: &mut mpsc::UnboundedReceiver<String>,
    shutdown: &CancellationToken,
) -> Ended {
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Ended::Failed("the child's pipes were not set up".into());
    };
    let pid = child.id();
    tracing::info!(pid, "stdio upstream started: {}", command_line(config));
    tokio::spawn(drain_stderr(stderr));
    let reader = tokio::spawn(read_messages(stdout, mux.clone()));
    let initialize = initialize(mux, config.connect_timeout);
    tokio::pin!(initialize);
    let mut initialized = false;
    let ended = loop {
        tokio::select! {
            message = outbox.recv() => {
                let Some(message) = message else { break Ended::Shutdown };
                let written = async {
                    stdin.write_all(message.as_bytes()).await?;
                    stdin.write_all(b"\n").await?;
                    stdin.flush().await
                };
                if let Err(error) = written.await {
                    break Ended::Exited(format!("writing to the server failed: {error}"));
                }
            }
            result = &mut initialize, if !initialized => {
                initialized = true;
                match result {
                    Ok(init) => {
                        tracing::info!("stdio upstream initialized");
                        mux.set_link(Link::Up(init));
                    }
                    Err(why) => break Ended::Failed(why),
                }
            }
            status = child.wait() => {
                break Ended::Exited(match status {
                    Ok(status) => format!("the server exited ({status})"),
                    Err(error) => format!("the server could not be waited on: {error}"),
                });
            }
            () = shutdown.cancelled() => break Ended::Shutdown,
        }
    };
    reader.abort();
    mux.set_link(Link::Down(None));
    match ended {
        Ended::Shutdown => {
            drop(stdin);
            terminate(&mut child, pid).await;
            Ended::Shutdown
        }
        Ended::Exited(why) | Ended::Failed(why) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            Ended::Exited(why)
        }
    }
}

/// Helio's `initialize`, then `notifications/initialized`; the result's
/// JSON text.
pub(super) async fn initialize(mux: &Arc<Mux>, within: Duration) -> Result<Arc<str>, String> {
    let answer = mux.own_request(
        "initialize",
        json!({
            "protocolVersion": PROTOCOL_VERSION,
            // What Helio's clients may do: the server's requests are
            // routed to the client they belong to.
            "capabilities": { "sampling": {}, "elicitation": {}, "roots": { "listChanged": true } },
            "clientInfo": { "name": "helio", "version": env!("CARGO_PKG_VERSION") },
        }),
    );
    let message = tokio::time::timeout(within, answer)
        .await
        .map_err(|_| {
            format!(
                "the server did not answer initialize within {}s",
                within.as_secs()
            )
        })?
        .map_err(|_| "the server stopped before answering initialize".to_owned())?;
    let Some(result) = message.get("result") else {
        let error = message
            .get("error")
            .map(|e| e.get().to_owned())
            .unwrap_or_default();
        return Err(format!("the server refused initialize: {error}"));
    };
    mux.notify_own("notifications/initialized");
    Ok(Arc::from(result.get()))
}

/// Each stdout line is one JSON-RPC message.
async fn read_messages(stdout: impl AsyncRead + Unpin, mux: Arc<Mux>) {
    let mut lines = BufReader::new(stdout);
    let mut line = Vec::new();
    loop {
        line.clear();
        match read_line(&mut lines, &mut line).await {
            Ok(0) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim();
                if !text.is_empty() {
                    mux.received(text);
                }
            }
            Err(error) => {
                tracing::warn!(%error, "stdio upstream: reading its output failed");
                return;
            }
        }
    }
}

/// Reads one line, at most [`MAX_LINE_BYTES`]; a longer one is an error.
async fn read_line(
    reader: &mut (impl AsyncBufReadExt + Unpin),
    line: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let mut total = 0;
    loop {
        let buffer = reader.fill_buf().await?;
        if buffer.is_empty() {
            return Ok(total);
        }
        let (take, done) = match buffer.iter().position(|&b| b == b'\n') {
            Some(at) => (at + 1, true),
            None => (buffer.len(), false),
        };
        if line.len() + take > MAX_LINE_BYTES {
            return Err(std::io::Error::other(format!(
                "a line longer than {} MiB",
                MAX_LINE_BYTES >> 20
            )));
        }
        line.extend_from_slice(&buffer[..take]);
        reader.consume(take);
        total += take;
        if done {
            return Ok(total);
        }
    }
}

async fn drain_stderr(stderr: impl AsyncRead + Unpin) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match read_line(&mut reader, &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let text: String = text.trim_end().chars().take(LOGGED_STDERR_CHARS).collect();
                if !text.is_empty() {
                    tracing::info!(target: "helio::upstream::stderr", "{text}");
                }
            }
        }
    }
}

/// SIGTERM, then SIGKILL if it is still there after [`TERMINATE_GRACE`].
async fn terminate(child: &mut Child, pid: Option<u32>) {
    #[cfg(unix)]
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill(2) with a pid this process spawned and has not yet
        // reaped (the child is waited on below), so it names that child.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        if tokio::time::timeout(TERMINATE_GRACE, child.wait())
            .await
            .is_ok()
        {
            return;
        }
        tracing::warn!(pid, "stdio upstream did not exit on SIGTERM; killing it");
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
}

fn command_line(config: &Upstream) -> String {
    let mut line = config.command.clone().unwrap_or_default();
    for arg in &config.args {
        line.push(' ');
        line.push_str(arg);
    }
    line
}
