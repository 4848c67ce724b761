//! The MCP door's shared state, and the Origin guard that runs before
//! anything else on `/mcp`.

use std::sync::Arc;
use std::time::Instant;

use axum::response::Response;
use http::header::ORIGIN;
use http::HeaderMap;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::govern::{Door, Governor, Refused};

use super::render::{self, Refusal};
use super::upstream::Upstream;
use crate::tools::ToolCatalog;

/// Shared state of the MCP listener.
pub struct Relay {
    pub(super) upstream: Upstream,
    pub(super) allowed_origins: Vec<String>,
    /// The governance core every `tools/call` goes to.
    pub(super) core: std::sync::Arc<Governor>,
    /// Resolves each call's governance session.
    pub(super) identity: super::identity::Identity,
    /// Which agent each MCP session belongs to, for the audit trail.
    pub(super) agents: super::agents::Agents,
    pub(super) tools: Arc<ToolCatalog>,
    /// Cancelled at shutdown: ends the long-lived `GET /mcp` streams.
    pub(super) shutdown: CancellationToken,
    pub(super) rejected_origins: super::OriginLog,
    /// `POST /slack/actions`, when a Slack approval channel is configured.
    pub(super) slack: Option<super::slack::Callbacks>,
    /// The legacy `/sse` door's open streams.
    pub(super) legacy: super::legacy::Streams,
    /// What the upstream's era is (the era bridge).
    pub(super) era: super::bridge::UpstreamEra,
    /// Handshake-era clients Helio serves on a 2026-07-28-only upstream.
    pub(super) legacy_clients: super::bridge::LegacyClients,
}

impl Relay {
    /// Refuses a request whose `Origin` is not allowlisted, before it reaches
    /// the transport. MCP clients are not browsers and send no Origin; one
    /// that arrives is a browser page trying to reach a local server (DNS
    /// rebinding). Checked before anything else on `/mcp`.
    pub(super) fn refuse_origin(&self, headers: &HeaderMap) -> Option<Response> {
        for origin in headers.get_all(ORIGIN) {
            let allowed = origin
                .to_str()
                .is_ok_and(|o| self.allowed_origins.iter().any(|a| a == o));
            if allowed {
                continue;
            }
            let origin = String::from_utf8_lossy(origin.as_bytes());
            self.rejected_origins.record(&origin);
            let refusal = Refusal::OriginNotAllowed;
            let agent = self.agents.of_call(headers, None);
            self.core.refused(Refused {
                door: Door::Mcp,
                received: Instant::now(),
                protocol_version: super::post::protocol_version(headers),
                tool_name: "<origin_rejected>",
                reason: refusal.reason(),
                tool_input: json!({ "origin": origin }).to_string(),
                identity: None,
                agent: agent.as_deref(),
            });
            return Some(render::refusal(None, &refusal));
        }
        None
    }
}
