//! Upstreams that do not speak streamable HTTP. A stdio server is spawned as
//! a child process ([`child`]); a legacy HTTP+SSE server is reached over its
//! one stream ([`sse`]). Either is put behind a loopback streamable-HTTP
//! endpoint of Helio's own ([`local`]) that multiplexes every client onto
//! it ([`mux`]); the relay is then pointed at that endpoint, so governance,
//! sessions, priming and the audit trail work as for any other upstream.

mod child;
mod local;
mod mux;
mod sse;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Transport, Upstream};

/// A running bridged upstream: its link (the child process, or the SSE
/// connection) and its local endpoint.
pub struct Bridge {
    /// The local endpoint the relay sends to.
    pub url: String,
    /// Sent with every request to it ([`Self::authenticate`]).
    token: String,
    shutdown: CancellationToken,
    link: JoinHandle<()>,
    endpoint: JoinHandle<()>,
}

impl Bridge {
    /// Starts the link (spawns the server, or connects to it) and serves the
    /// local endpoint on a loopback port.
    pub async fn start(config: &Config) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/mcp", listener.local_addr()?);
        let token = crate::auth::generate_token().map_err(std::io::Error::other)?;
        let shutdown = CancellationToken::new();
        let (outbox, queued) = tokio::sync::mpsc::unbounded_channel();
        let mux = mux::Mux::new(outbox);
        let upstream = config.upstream.clone();
        let link = match config.upstream.transport {
            Transport::Sse => {
                tokio::spawn(sse::run(upstream, mux.clone(), queued, shutdown.clone()))
            }
            Transport::Stdio => {
                tokio::spawn(child::run(upstream, mux.clone(), queued, shutdown.clone()))
            }
            Transport::StreamableHttp => {
                return Err(std::io::Error::other(
                    "a streamable-HTTP upstream is relayed directly, not bridged",
                ))
            }
        };
        let local = Arc::new(local::Local {
            mux,
            token: token.clone(),
            wait_for_link: wait_for_link(&config.upstream),
        });
        tracing::info!(endpoint = %url, "the {} upstream is served to the relay on a loopback endpoint (token required)", config.upstream.transport.as_str());
        let endpoint = tokio::spawn(crate::gateway::serve_router(
            listener,
            "bridged-upstream",
            config,
            local::router(local),
            shutdown.clone(),
        ));
        Ok(Self {
            url,
            token,
            shutdown,
            link,
            endpoint,
        })
    }

    /// Points `upstream` at the local endpoint, with its token as a static
    /// header (which no caller header can override).
    pub fn authenticate(&self, upstream: &mut Upstream) {
        upstream.url = self.url.clone();
        if let Ok(value) = http::HeaderValue::from_str(&self.token) {
            upstream
                .headers
                .retain(|(name, _)| name != local::BRIDGE_TOKEN);
            upstream
                .headers
                .push((local::BRIDGE_TOKEN, crate::config::Secret::new(value)));
        }
    }

    /// Stops the endpoint and the link (a child gets SIGTERM, then SIGKILL).
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.endpoint.await;
        let _ = self.link.await;
    }
}

/// A request waits this long for the server to start, restart or
/// reconnect: up to `connect_timeout`, and short of the relay's own
/// `request_timeout`, so the caller learns why rather than only that the
/// upstream timed out.
fn wait_for_link(upstream: &Upstream) -> std::time::Duration {
    let margin = std::time::Duration::from_millis(250);
    upstream
        .connect_timeout
        .min(upstream.request_timeout.saturating_sub(margin))
        .max(margin)
}
