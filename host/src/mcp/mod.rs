//! The MCP listener: streamable HTTP on `/mcp`, relayed to the upstream, and
//! an open `/healthz` for container health checks. Operator endpoints are
//! never mounted here: this port faces agents.

mod jsonrpc;
mod listener;
mod relay;
mod sse;
mod upstream;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::header::ALLOW;
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config};

pub use upstream::UpstreamSetupError;

use relay::{Refusal, Relay};
use upstream::Pool;

/// The MCP listener, ready to serve.
pub struct McpServer {
    relay: Arc<Relay>,
    shutdown: CancellationToken,
}

impl McpServer {
    /// Builds the listener from the configuration. `shutdown` stops accepting,
    /// ends long-lived `GET /mcp` streams, and lets in-flight calls finish.
    pub fn new(config: &Config, shutdown: CancellationToken) -> Result<Self, UpstreamSetupError> {
        let relay = Arc::new(Relay {
            upstream: upstream::Upstream::new(&config.upstream)?,
            allowed_origins: config.listen.allowed_origins.clone(),
            tool_calls_refused: refusal(config),
            shutdown: shutdown.clone(),
            rejected_origins: OriginLog::default(),
        });
        Ok(Self { relay, shutdown })
    }

    pub async fn serve(self, listener: tokio::net::TcpListener) {
        listener::serve(listener, self.relay, self.shutdown).await;
    }
}

/// The listener's two paths. Routed by hand: `/mcp` is the hot path and a
/// general router would add a layer to every relayed message.
async fn route(relay: &Relay, pool: &Pool, request: Request<Incoming>) -> Response {
    match request.uri().path() {
        "/mcp" => {
            if let Some(refused) = relay.refuse_origin(request.headers()) {
                return refused;
            }
            match *request.method() {
                Method::POST => relay::post(relay, pool, request).await,
                Method::GET => relay::get(relay, pool, request).await,
                Method::DELETE => relay::delete(relay, pool, request).await,
                _ => (
                    StatusCode::METHOD_NOT_ALLOWED,
                    [(ALLOW, "GET, POST, DELETE")],
                    Body::empty(),
                )
                    .into_response(),
            }
        }
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

/// When the configuration asks for a restriction this build cannot enforce
/// yet, `tools/call` is refused rather than let through unchecked.
fn refusal(config: &Config) -> Option<Refusal> {
    let keys: Vec<&str> = config::not_yet_enforced(config)
        .into_iter()
        .filter(|n| n.blocks_tool_calls)
        .map(|n| n.key)
        .collect();
    if keys.is_empty() {
        return None;
    }
    let list = keys.join(", ");
    Some(Refusal {
        message: format!(
            "Blocked: helio.yaml configures {list}, which this version of Helio accepts but cannot enforce yet, so tools/call is refused rather than let through unchecked"
        ),
        data: json!({
            "blocked": true,
            "reason": "not_yet_enforced",
            "rule": null,
            "rule_index": null,
            "action": "deny",
            "suggestion": format!("An operator must remove {list} from helio.yaml or run a Helio release that enforces it."),
            "retry_allowed": false,
            "not_yet_enforced": keys,
        }),
    })
}
