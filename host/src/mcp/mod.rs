//! The MCP listener: streamable HTTP on `/mcp`, relayed to the upstream, and
//! an open `/healthz` for container health checks. Operator endpoints are
//! never mounted here: this port faces agents.

mod agents;
mod agreement;
mod bridge;
mod call_params;
mod held;
mod identity;
mod jsonrpc;
mod legacy;
mod listener;
mod observe;
mod post;
mod prime;
mod relay;
mod render;
mod slack;
mod stream;
mod upstream;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::serve::TimedBody;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::header::ALLOW;
use http::{Method, Request, StatusCode};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::govern::Governor;
use crate::tools::ToolCatalog;

pub use upstream::UpstreamSetupError;

use relay::Relay;
use upstream::Pool;

/// The MCP listener, ready to serve.
pub struct McpServer {
    relay: Arc<Relay>,
    bounds: crate::config::Connections,
    shutdown: CancellationToken,
}

impl McpServer {
    /// Builds the listener from the configuration. `shutdown` stops accepting,
    /// ends long-lived `GET /mcp` streams, and lets in-flight calls finish.
    /// `tools` is what Helio knows of the upstream's tools; `approvals` is
    /// where Slack's button presses resolve tickets.
    pub fn new(
        config: &Config,
        core: Arc<Governor>,
        tools: Arc<ToolCatalog>,
        approvals: Option<Arc<crate::approvals::Approvals>>,
        shutdown: CancellationToken,
    ) -> Result<Self, UpstreamSetupError> {
        let relay = Arc::new(Relay {
            upstream: upstream::Upstream::new(&config.upstream)?,
            allowed_origins: config.listen.allowed_origins.clone(),
            core,
            identity: identity::Identity::new(&config.session.identity),
            agents: agents::Agents::default(),
            tools,
            shutdown: shutdown.clone(),
            rejected_origins: OriginLog::default(),
            slack: approvals.and_then(|approvals| slack::Callbacks::new(config, approvals)),
            legacy: legacy::Streams::default(),
            era: bridge::UpstreamEra::default(),
            legacy_clients: bridge::LegacyClients::default(),
        });
        Ok(Self {
            relay,
            bounds: config.connections.clone(),
            shutdown,
        })
    }

    /// Serves until shutdown. Alongside, learns the upstream's tools with
    /// Helio's own `tools/list`, retrying in the background until the
    /// upstream answers (until then, unseen tools get the MCP default
    /// annotations, which fail closed), then lists them again every
    /// `policies.tool_revalidation.interval` to catch definitions that
    /// change.
    pub async fn serve(self, listener: tokio::net::TcpListener) {
        let (relay, shutdown) = (self.relay.clone(), self.shutdown.clone());
        tokio::spawn(async move { prime::prime(&relay, &shutdown).await });
        listener::serve(listener, self.relay, self.bounds, self.shutdown).await;
    }
}

/// The listener's two paths. Routed by hand: `/mcp` is the hot path and a
/// general router would add a layer to every relayed message.
async fn route(relay: &Arc<Relay>, pool: &Pool, request: Request<TimedBody>) -> Response {
    match request.uri().path() {
        "/slack/actions" => match &relay.slack {
            Some(slack) => slack.handle(request).await,
            None => (StatusCode::NOT_FOUND, Json(json!({ "error": "Not found" }))).into_response(),
        },
        "/mcp" => {
            if let Some(refused) = relay.refuse_origin(request.headers()) {
                return refused;
            }
            match *request.method() {
                Method::POST => post::post(relay, pool, request).await,
                Method::GET => stream::get(relay, pool, request).await,
                Method::DELETE => stream::delete(relay, pool, request).await,
                _ => (
                    StatusCode::METHOD_NOT_ALLOWED,
                    [(ALLOW, "GET, POST, DELETE")],
                    Body::empty(),
                )
                    .into_response(),
            }
        }
        "/sse" => legacy::handle(relay, pool, request).await,
        "/healthz" if request.method() == Method::GET => {
            Json(json!({ "status": "ok" })).into_response()
        }
        _ => (StatusCode::NOT_FOUND, Json(json!({ "error": "Not found" }))).into_response(),
    }
}

/// Logs refused origins without letting a hostile page flood the log: the
/// first few distinct origins by name, then a periodic count.
#[derive(Default)]
struct OriginLog {
    seen: Mutex<HashSet<String>>,
    refused: AtomicU64,
}

impl OriginLog {
    const NAMED: usize = 20;
    const SUMMARY_EVERY: u64 = 50;

    fn record(&self, origin: &str) {
        let total = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let origin: String = origin.chars().take(256).collect();
        let newly_named = match self.seen.lock() {
            Ok(mut seen) if seen.len() < Self::NAMED => seen.insert(origin.clone()),
            _ => false,
        };
        if newly_named {
            tracing::warn!(%origin, "refused a request on /mcp: Origin not in listen.allowed_origins");
        } else if total.is_multiple_of(Self::SUMMARY_EVERY) {
            tracing::warn!(
                refused = total,
                "refused requests on /mcp with disallowed Origin headers so far"
            );
        }
    }
}
