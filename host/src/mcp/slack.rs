//! `POST /slack/actions`: Slack's callback when someone presses a ticket's
//! Approve or Deny button. Served on the MCP port (Slack must reach it) only
//! while a Slack approval channel is configured; nothing else about
//! approvals is reachable from this port.
//!
//! A callback resolves a ticket only when it is signed by a configured
//! channel's signing secret (`x-slack-signature` v0, compared in constant
//! time) within five minutes of its `x-slack-request-timestamp`, names a
//! ticket routed to that channel, and comes from one of the channel's
//! `approvers` (when the channel lists them). Every authentication failure
//! is the same opaque `401 {"error":"Unauthorized"}`; the reason goes to the
//! log. Presses Helio does not act on are acknowledged with `200` so Slack
//! does not retry them.

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde_json::json;

use crate::approvals::slack::{callback_payload, pressed, signed_by, CALLBACK_WINDOW};
use crate::approvals::{Approvals, Resolution, ResolveError, Resolver};
use crate::config::{Channel, Config, Secret};
use crate::serve::TimedBody;

/// Slack's interaction payloads are a few kilobytes.
const MAX_CALLBACK_BYTES: usize = 256 * 1024;

struct SlackChannel {
    key: String,
    signing_secret: Secret<String>,
    approvers: Option<Vec<String>>,
}

pub(super) struct Callbacks {
    channels: Vec<SlackChannel>,
    approvals: Arc<Approvals>,
}

impl Callbacks {
    /// The route, when some approval channel is a Slack one.
    pub fn new(config: &Config, approvals: Arc<Approvals>) -> Option<Self> {
        let channels: Vec<SlackChannel> = config
            .approval
            .channels
            .iter()
            .filter_map(|channel| match channel {
                Channel::Slack {
                    signing_secret,
                    approvers,
                    ..
                } => Some(SlackChannel {
                    key: channel.key().to_owned(),
                    signing_secret: signing_secret.clone(),
                    approvers: approvers.clone(),
                }),
                Channel::Dashboard { .. } | Channel::Webhook { .. } => None,
            })
            .collect();
        (!channels.is_empty()).then_some(Self {
            channels,
            approvals,
        })
    }

    pub async fn handle(&self, request: Request<TimedBody>) -> Response {
        if request.method() != Method::POST {
            return (
                StatusCode::METHOD_NOT_ALLOWED,
                [(http::header::ALLOW, "POST")],
                Body::empty(),
            )
                .into_response();
        }
        let (parts, body) = request.into_parts();
        let Ok(collected) = Limited::new(body, MAX_CALLBACK_BYTES).collect().await else {
            return unauthorized("unreadable_body");
        };
        let body = collected.to_bytes();
        let signers = match self.signers(&parts.headers, &body) {
            Ok(signers) => signers,
            Err(reason) => return unauthorized(reason),
        };
        let Some((ticket_id, approve, user_id, user_name)) =
            callback_payload(&body).as_ref().and_then(pressed)
        else {
            return acknowledged();
        };
        let Some(ticket) = self.approvals.get(&ticket_id) else {
            return acknowledged();
        };
        let routes: Vec<&str> = std::iter::once(ticket.channel_name.as_str())
            .chain(ticket.escalated_to.iter().flatten().map(String::as_str))
            .collect();
        let allowed = signers.iter().any(|channel| {
            routes.contains(&channel.key.as_str())
                && channel
                    .approvers
                    .as_ref()
                    .is_none_or(|approvers| approvers.contains(&user_id))
        });
        if !allowed {
            tracing::warn!(ticket = %ticket_id, user = %user_id, "a Slack user not allowed to decide this ticket pressed its button; ignored");
            return acknowledged();
        }
        let resolution = if approve {
            Resolution::Approved
        } else {
            Resolution::Denied { reason: None }
        };
        let by = Resolver {
            name: user_name.unwrap_or_else(|| user_id.clone()),
            credential: format!("slack:{user_id}"),
        };
        match self.approvals.resolve(&ticket_id, resolution, by) {
            Ok(()) | Err(ResolveError::AlreadyResolved(_)) | Err(ResolveError::NotFound) => {
                acknowledged()
            }
        }
    }

    /// The channels whose signing secret signed this callback, within the
    /// replay window; the reason it is refused otherwise.
    fn signers(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Vec<&SlackChannel>, &'static str> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(timestamp), Some(signature)) = (
            header("x-slack-request-timestamp"),
            header("x-slack-signature"),
        ) else {
            return Err("missing_headers");
        };
        let sent: u64 = timestamp.parse().map_err(|_| "invalid_timestamp")?;
        let now = crate::state::now_ms() / 1000;
        if now.abs_diff(sent) > CALLBACK_WINDOW.as_secs() {
            return Err("stale_timestamp");
        }
        let signers: Vec<&SlackChannel> = self
            .channels
            .iter()
            .filter(|c| signed_by(c.signing_secret.expose(), timestamp, body, signature))
            .collect();
        if signers.is_empty() {
            return Err("invalid_signature");
        }
        Ok(signers)
    }
}

fn unauthorized(reason: &'static str) -> Response {
    tracing::warn!(reason, "refused a Slack callback on /slack/actions");
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "error": "Unauthorized" })),
    )
        .into_response()
}

fn acknowledged() -> Response {
    Json(json!({ "ok": true })).into_response()
}
