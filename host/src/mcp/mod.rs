//! The MCP listener: streamable HTTP on `/mcp`, relayed to the upstream, and
//! an open `/healthz` for container health checks. Operator endpoints are
//! never mounted here: this port faces agents.

mod jsonrpc;
mod relay;
mod sse;
mod upstream;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use http::header::ORIGIN;
use http::StatusCode;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config};

pub use upstream::UpstreamSetupError;

use relay::{Refusal, Relay};

/// Builds the MCP listener's router from the configuration.
pub fn router(config: &Config, shutdown: CancellationToken) -> Result<Router, UpstreamSetupError> {
    let relay = Arc::new(Relay {
        upstream: upstream::Upstream::new(&config.upstream)?,
        allowed_origins: config.listen.allowed_origins.clone(),
        tool_calls_refused: refusal(config),
        shutdown,
        rejected_origins: OriginLog::default(),
    });
    let mcp = Router::new()
        .route(
            "/mcp",
            axum::routing::post(relay::post)
                .get(relay::get)
                .delete(relay::delete),
        )
        .route_layer(middleware::from_fn_with_state(relay.clone(), origin_guard));
    Ok(Router::new()
        .merge(mcp)
        .route("/healthz", get(healthz))
        .with_state(relay))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Refuses any request whose `Origin` is not allowlisted, before it reaches
/// the transport. MCP clients are not browsers and send no Origin; one that
/// arrives is a browser page trying to reach a local server (DNS rebinding).
async fn origin_guard(State(relay): State<Arc<Relay>>, request: Request, next: Next) -> Response {
    for origin in request.headers().get_all(ORIGIN) {
        let allowed = origin
            .to_str()
            .is_ok_and(|o| relay.allowed_origins.iter().any(|a| a == o));
        if !allowed {
            relay
                .rejected_origins
                .record(&String::from_utf8_lossy(origin.as_bytes()));
            return relay::error_response(
                StatusCode::FORBIDDEN,
                None,
                jsonrpc::code::INVALID_REQUEST,
                "Origin not allowed",
                None,
            );
        }
    }
    next.run(request).await
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
