//! `POST /slack/actions`: Slack's callback when someone presses a ticket's
//! Approve or Deny button, or submits the dialog Deny opens (which asks
//! for the reason the agent is told). Served on the MCP port (Slack must reach it) only
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

use crate::approvals::slack::{
    callback_payload, interaction, signed_by, Interaction, SlackUser, CALLBACK_WINDOW,
};
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
        match callback_payload(&body).as_ref().and_then(interaction) {
            Some(Interaction::Pressed {
                ticket,
                approve,
                user,
                trigger_id,
            }) => {
                let Some(channel) = self.deciding_channel(&signers, &ticket, &user) else {
                    return acknowledged();
                };
                let by = resolver(&user);
                if approve {
                    let _ = self.approvals.resolve(&ticket, Resolution::Approved, by);
                } else {
                    self.approvals
                        .ask_deny_reason(&ticket, channel, &trigger_id, by);
                }
                acknowledged()
            }
            Some(Interaction::DenyReason {
                ticket,
                reason,
                user,
            }) => {
                if self.deciding_channel(&signers, &ticket, &user).is_none() {
                    return dialog_error("You may not decide this ticket.");
                }
                let denied = Resolution::Denied { reason };
                match self.approvals.resolve(&ticket, denied, resolver(&user)) {
                    // Slack closes the dialog on an empty 200.
                    Ok(()) => StatusCode::OK.into_response(),
                    Err(ResolveError::AlreadyResolved(status)) => dialog_error(&format!(
                        "This ticket was already resolved ({}).",
                        status.as_str()
                    )),
                    Err(ResolveError::NotFound) => dialog_error("This ticket no longer exists."),
                }
            }
            None => acknowledged(),
        }
    }

    /// The channel through which `user` may decide `ticket`: one whose
    /// secret signed the callback, that the ticket was routed (or
    /// escalated) to, and whose approvers (if listed) include the user.
    fn deciding_channel<'c>(
        &'c self,
        signers: &[&'c SlackChannel],
        ticket_id: &str,
        user: &SlackUser,
    ) -> Option<&'c str> {
        let ticket = self.approvals.get(ticket_id)?;
        let routes: Vec<&str> = std::iter::once(ticket.channel_name.as_str())
            .chain(ticket.escalated_to.iter().flatten().map(String::as_str))
            .collect();
        let channel = signers.iter().find(|channel| {
            routes.contains(&channel.key.as_str())
                && channel
                    .approvers
                    .as_ref()
                    .is_none_or(|approvers| approvers.contains(&user.id))
        });
        if channel.is_none() {
            tracing::warn!(ticket = %ticket_id, user = %user.id, "a Slack user not allowed to decide this ticket acted on it; ignored");
        }
        channel.map(|c| c.key.as_str())
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

/// Keeps the dialog open with `message` under its reason field.
fn dialog_error(message: &str) -> Response {
    Json(json!({ "response_action": "errors", "errors": { "reason": message } })).into_response()
}

/// Who resolves: the Slack name the callback gives (else the id), and the
/// Slack user id as the credential.
fn resolver(user: &SlackUser) -> Resolver {
    Resolver {
        name: user.name.clone().unwrap_or_else(|| user.id.clone()),
        credential: format!("slack:{}", user.id),
    }
}
