//! Telling a ticket's channel that a call waits for it.
//!
//! - `dashboard`: nothing to send; the operator API and the live feed show
//!   the ticket.
//! - `webhook`: `POST` of `{"event":"approval_requested","ticket":{…},
//!   "sent_at":…,"delivery_id":…}`. With a `secret`, `x-helio-signature:
//!   sha256=<hex HMAC-SHA256(secret, body)>` (the original's header, so its
//!   receivers keep verifying); the signed body carries `sent_at` and a
//!   `delivery_id`, also sent as `x-helio-timestamp` (Unix seconds) and
//!   `x-helio-delivery`, so a receiver can refuse stale or replayed
//!   deliveries. Retried with backoff while the ticket is pending; the
//!   outcome is recorded on the ticket (`notifications`, or
//!   `notification_failures` and an `approval_notification_failed` event).
//! - `slack`: not sent yet (named at start as not yet enforced); the ticket
//!   is resolved on the dashboard.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http::{Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use sha2::Sha256;

use super::{slack, Approvals, Status, Ticket};
use crate::config::{Channel, Secret};
use crate::state::now_ms;
use crate::time::iso_utc;

/// Delays before the second, third, … attempt.
const RETRY_DELAYS: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
];
/// One attempt's bound, from connecting to the end of the response.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of an answer read (Slack's are a few kilobytes).
const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// The most of a receiver's error response kept on the ticket.
const ERROR_BODY_BYTES: usize = 200;

/// Whether a notice is the ticket's first or its escalation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Initial,
    Escalation,
    /// The ticket ended (decided, timed out, cancelled).
    Resolution,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Initial => "initial",
            Phase::Escalation => "escalation",
            Phase::Resolution => "resolution",
        }
    }
}

enum Target {
    Dashboard,
    Webhook {
        uri: Uri,
        secret: Option<Secret<String>>,
    },
    Slack {
        /// Web API base, without a trailing slash.
        api: String,
        token: Secret<String>,
        /// The Slack channel messages go to.
        channel: String,
    },
}

/// One message to a channel.
enum Send {
    Webhook(Uri, Delivery),
    /// A Web API method and its JSON body.
    Slack {
        url: String,
        token: Secret<String>,
        body: Bytes,
    },
}

pub struct Notifier {
    targets: HashMap<String, Target>,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// Deliveries run on the main runtime, wherever the call was held.
    runtime: tokio::runtime::Handle,
}

#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    #[error("approval.channels: webhook url \"{0}\" cannot be used as a request URI")]
    Uri(String),
    #[error("approval.channels: TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
}

impl Notifier {
    /// Whether `channel` is one of its channels.
    pub fn has(&self, channel: &str) -> bool {
        self.targets.contains_key(channel)
    }

    /// Channels by key (`name`, else the type); `dashboard` is always there.
    /// Call on the runtime deliveries should run on.
    pub fn new(channels: &[Channel]) -> Result<Self, NotifierError> {
        let mut targets = HashMap::from([("dashboard".to_owned(), Target::Dashboard)]);
        let mut https = false;
        for channel in channels {
            let target = match channel {
                Channel::Dashboard { .. } => Target::Dashboard,
                Channel::Webhook { url, secret, .. } => {
                    let uri: Uri = url.parse().map_err(|_| NotifierError::Uri(url.clone()))?;
                    https |= uri.scheme_str() == Some("https");
                    Target::Webhook {
                        uri,
                        secret: secret.clone(),
                    }
                }
                Channel::Slack {
                    bot_token,
                    channel,
                    api_url,
                    ..
                } => {
                    https |= api_url.starts_with("https:");
                    Target::Slack {
                        api: api_url.trim_end_matches('/').to_owned(),
                        token: bot_token.clone(),
                        channel: channel.clone(),
                    }
                }
            };
            targets.insert(channel.key().to_owned(), target);
        }
        let client = Client::builder(TokioExecutor::new())
            .build(crate::outbound::connector(https, CONNECT_TIMEOUT)?);
        Ok(Self {
            targets,
            client,
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// Opens a Slack dialog (`views.open` with `body`) through `channel`'s
    /// workspace.
    pub(super) async fn open_dialog(&self, channel: &str, body: Value) -> Result<(), String> {
        let Some(Target::Slack { api, token, .. }) = self.targets.get(channel) else {
            return Err(format!("\"{channel}\" is not a Slack channel"));
        };
        let url = format!("{api}/views.open");
        let body = Bytes::from(body.to_string());
        let call = self.call_slack(&url, token, &body);
        match tokio::time::timeout(ATTEMPT_TIMEOUT, call).await {
            Ok(answer) => answer.map(|_| ()),
            Err(_) => Err(format!(
                "no response within {} s",
                ATTEMPT_TIMEOUT.as_secs()
            )),
        }
    }

    /// The runtime deliveries and escalations run on.
    pub(super) fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    /// Sends the ticket to `channel`, in the background.
    pub(super) fn requested(
        self: &Arc<Self>,
        approvals: &Arc<Approvals>,
        ticket: &Ticket,
        channel: &str,
        phase: Phase,
    ) {
        let send = match self.targets.get(channel) {
            Some(Target::Dashboard) => return,
            // The ending updates the message the request posted: first let
            // that request finish (a decision can come within milliseconds
            // of the post), or it would be posted as a second message.
            Some(Target::Slack { .. }) if phase == Phase::Resolution => {
                let (notifier, approvals) = (self.clone(), approvals.clone());
                let (id, channel) = (ticket.id.clone(), channel.to_owned());
                self.runtime.spawn(async move {
                    let Some(ticket) = told(&approvals, &id, &channel).await else {
                        return;
                    };
                    let Some(Target::Slack {
                        api,
                        token,
                        channel: slack_channel,
                    }) = notifier.targets.get(&channel)
                    else {
                        return;
                    };
                    let send = slack_send(api, token, slack_channel, &channel, &ticket, phase);
                    notifier
                        .deliver(&approvals, &id, &channel, phase, send)
                        .await;
                });
                return;
            }
            Some(Target::Webhook { uri, secret }) => {
                Send::Webhook(uri.clone(), Delivery::new(ticket, phase, secret.as_ref()))
            }
            Some(Target::Slack {
                api,
                token,
                channel: slack_channel,
            }) => slack_send(api, token, slack_channel, channel, ticket, phase),

            // Rules and budgets name known channels (validation) and a
            // router's channel is checked; an escalation target a router
            // named may still be unknown.
            None => {
                return approvals.notification_failed(
                    &ticket.id,
                    channel,
                    phase,
                    format!("unknown approval channel \"{channel}\""),
                )
            }
        };
        let (notifier, approvals) = (self.clone(), approvals.clone());
        let (id, channel) = (ticket.id.clone(), channel.to_owned());
        self.runtime.spawn(async move {
            notifier
                .deliver(&approvals, &id, &channel, phase, send)
                .await;
        });
    }

    /// Delivers `send`, retrying.
    async fn deliver(
        &self,
        approvals: &Approvals,
        id: &str,
        channel: &str,
        phase: Phase,
        send: Send,
    ) {
        let mut last_error = String::new();
        for attempt in 0..=RETRY_DELAYS.len() {
            if attempt > 0 {
                tokio::time::sleep(RETRY_DELAYS[attempt - 1]).await;
                // Nobody needs the call for a decision already made.
                let decided = approvals
                    .get(id)
                    .is_none_or(|t| t.status != Status::Pending);
                if decided && phase != Phase::Resolution {
                    return;
                }
            }
            match tokio::time::timeout(ATTEMPT_TIMEOUT, self.send(&send)).await {
                Ok(Ok(mut details)) => {
                    details["attempts"] = (attempt + 1).into();
                    approvals.notified(id, channel, phase, details);
                    return;
                }
                Ok(Err(error)) => last_error = error,
                Err(_) => {
                    last_error = format!("no response within {} s", ATTEMPT_TIMEOUT.as_secs())
                }
            }
            tracing::warn!(ticket = id, channel, attempt = attempt + 1, error = %last_error, "an approval notice could not be delivered");
        }
        approvals.notification_failed(
            id,
            channel,
            phase,
            format!("{last_error} (after {} attempts)", RETRY_DELAYS.len() + 1),
        );
    }

    /// One attempt; what the channel answered that the ticket keeps.
    async fn send(&self, send: &Send) -> Result<Value, String> {
        match send {
            Send::Webhook(uri, delivery) => {
                self.post(uri, delivery).await?;
                Ok(json!({ "delivery_id": delivery.id }))
            }
            Send::Slack { url, token, body } => self.call_slack(url, token, body).await,
        }
    }

    /// A Slack Web API call; its `channel` and `ts` (the message, to update
    /// it later) on success. Slack answers `200` with `ok: false` and an
    /// `error` code when it refuses.
    async fn call_slack(
        &self,
        url: &str,
        token: &Secret<String>,
        body: &Bytes,
    ) -> Result<Value, String> {
        let request = Request::post(url)
            .header(
                http::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", token.expose()),
            )
            .body(Full::new(body.clone()))
            .map_err(|e| e.to_string())?;
        let (status, bytes) = self.exchange(request, "Slack").await?;
        if !status.is_success() {
            return Err(format!("Slack answered HTTP {}", status.as_u16()));
        }
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if answer["ok"] != Value::Bool(true) {
            let code = answer["error"].as_str().unwrap_or("no ok in the answer");
            return Err(format!("Slack refused the message: {code}"));
        }
        Ok(json!({ "slack": { "channel": answer["channel"], "ts": answer["ts"] } }))
    }

    /// Sends a request and reads the answer, at most [`MAX_ANSWER_BYTES`]
    /// of it (a receiver cannot make Helio hold an unbounded body).
    async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
        peer: &str,
    ) -> Result<(http::StatusCode, Bytes), String> {
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("cannot reach {peer}: {e}"))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| format!("the answer of {peer} could not be read: {e}"))?;
        Ok((status, body))
    }

    async fn post(&self, uri: &Uri, delivery: &Delivery) -> Result<(), String> {
        let mut request = Request::post(uri.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("x-helio-timestamp", delivery.timestamp.to_string())
            .header("x-helio-delivery", &delivery.id);
        if let Some(signature) = &delivery.signature {
            request = request.header("x-helio-signature", signature);
        }
        let request = request
            .body(Full::new(delivery.body.clone()))
            .map_err(|e| e.to_string())?;
        let (status, body) = self.exchange(request, "the receiver").await?;
        if status.is_success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_BYTES)]).into_owned();
        Err(format!(
            "the receiver answered HTTP {}: {text}",
            status.as_u16()
        ))
    }
}

/// One delivery: the same bytes and id on every attempt, so a receiver can
/// recognise a retry of what it already processed.
struct Delivery {
    id: String,
    timestamp: u64,
    body: Bytes,
    signature: Option<String>,
}

impl Delivery {
    fn new(ticket: &Ticket, phase: Phase, secret: Option<&Secret<String>>) -> Self {
        let now = now_ms();
        let id = uuid::Uuid::now_v7().to_string();
        let event = match phase {
            Phase::Initial => "approval_requested",
            Phase::Escalation => "approval_escalated",
            Phase::Resolution => "approval_resolved",
        };
        let body = json!({
            "event": event,
            "ticket": ticket,
            "sent_at": iso_utc(now),
            "delivery_id": id,
        })
        .to_string();
        let signature =
            secret.and_then(|secret| signature(secret.expose().as_bytes(), body.as_bytes()));
        Self {
            id,
            timestamp: now / 1000,
            body: Bytes::from(body),
            signature,
        }
    }
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`. (HMAC takes a key of any
/// length, so `None` does not happen; a delivery without its signature is
/// refused by the receiver, never accepted unsigned.)
pub fn signature(secret: &[u8], body: &[u8]) -> Option<String> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).ok()?;
    mac.update(body);
    Some(format!(
        "sha256={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

/// The ticket once `channel` has been told of it (delivered or given up),
/// or as it stands after the longest a delivery can take; none if it is gone.
async fn told(approvals: &Approvals, id: &str, channel: &str) -> Option<Ticket> {
    let longest = ATTEMPT_TIMEOUT * (RETRY_DELAYS.len() as u32 + 1) + RETRY_DELAYS.iter().sum();
    let deadline = tokio::time::Instant::now() + longest;
    loop {
        let ticket = approvals.get(id)?;
        let settled = ticket
            .notifications
            .iter()
            .chain(&ticket.notification_failures)
            .any(|n| n["channel"] == channel);
        if settled || tokio::time::Instant::now() >= deadline {
            return Some(ticket);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The Slack call for a notice: a new message for a request or an
/// escalation; for the ending, an update of the message this channel got
/// (a new message if it never got one).
fn slack_send(
    api: &str,
    token: &Secret<String>,
    slack_channel: &str,
    key: &str,
    ticket: &Ticket,
    phase: Phase,
) -> Send {
    let posted = ticket
        .notifications
        .iter()
        .rev()
        .filter(|n| n["channel"] == key)
        .find_map(|n| Some((n["slack"]["channel"].as_str()?, n["slack"]["ts"].as_str()?)));
    let (method, body) = match (phase, posted) {
        (Phase::Resolution, Some((channel, ts))) => (
            "chat.update",
            slack::resolved_message(channel, Some(ts), ticket),
        ),
        (Phase::Resolution, None) => (
            "chat.postMessage",
            slack::resolved_message(slack_channel, None, ticket),
        ),
        (Phase::Initial | Phase::Escalation, _) => (
            "chat.postMessage",
            slack::request_message(slack_channel, ticket, phase == Phase::Escalation),
        ),
    };
    Send::Slack {
        url: format!("{api}/{method}"),
        token: token.clone(),
        body: Bytes::from(body.to_string()),
    }
}
