//! The era bridge on the relay: a 2026-07-28 client (no session, the
//! envelope in `_meta`) in front of a streamable-HTTP server that speaks
//! only the handshake era (Helio's priming found no `server/discover`
//! there). Without it such a client gets the server's refusal ("session
//! required"); with it:
//!
//! - `server/discover` is answered by Helio from the server's `initialize`
//!   result ([`crate::era::discover_result`]);
//! - each request is carried on a session opened for it alone — an
//!   `initialize` made on the client's behalf (its `clientInfo` and
//!   capabilities from the envelope, its own credentials), the request
//!   without the envelope, then the session's `DELETE` once the reply is
//!   over — and its result completed as that revision's clients expect;
//! - a notification or an answer has no request on the server to concern
//!   and is accepted without being sent.
//!
//! Governance has already happened by then, on the request as the client
//! sent it: the bridge changes only what reaches the upstream.

use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::observe::Observer;
use super::post::Exchange;
use super::relay::Relay;
use super::stream::Completing;
use super::upstream::{Pool, MCP_METHOD, MCP_NAME, MCP_PROTOCOL_VERSION, MCP_SESSION_ID};
use crate::era::{claims_modern, discover_result, envelope_client, strip_envelope};

/// A server that answered Helio's `initialize` and not its
/// `server/discover`.
pub(super) struct Handshake {
    /// Its `initialize` result.
    pub init: Value,
}

/// What priming learnt of the upstream's era.
#[derive(Default)]
pub(super) struct UpstreamEra(RwLock<Option<Arc<Handshake>>>);

impl UpstreamEra {
    /// The upstream speaks only the handshake era (`Some`), or not.
    pub fn learnt(&self, handshake: Option<Handshake>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = handshake.map(Arc::new);
    }

    /// The handshake a message must be bridged onto: a 2026-07-28 message
    /// without a session, to a server that speaks only the handshake era.
    pub fn bridging(&self, headers: &HeaderMap) -> Option<Arc<Handshake>> {
        if headers.contains_key(MCP_SESSION_ID) || !claims_modern(headers) {
            return None;
        }
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Sends a bridged message (see the module's documentation).
pub(super) async fn send(
    exchange: Exchange<'_>,
    handshake: &Handshake,
    relay: &Arc<Relay>,
    pool: &Pool,
    reply_id: Option<Box<RawValue>>,
    observer: Option<Observer>,
) -> Response {
    let (Some(id), Some(method)) = (reply_id, exchange.method.as_deref()) else {
        return StatusCode::ACCEPTED.into_response();
    };
    if method == "server/discover" {
        let id: Value = serde_json::from_str(id.get()).unwrap_or_default();
        let body =
            json!({ "jsonrpc": "2.0", "id": id, "result": discover_result(&handshake.init) });
        return axum::Json(body).into_response();
    }
    let Ok(mut message) = serde_json::from_slice::<Value>(&exchange.bytes) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let session = match open_session(relay, pool, &exchange.headers, message.get("params")).await {
        Ok(session) => session,
        Err(why) => {
            tracing::warn!(error = %why, "the handshake-era upstream refused a session for a 2026-07-28 client's request");
            return super::render::upstream_failure(
                Some(&id),
                &super::upstream::UpstreamError::Broken(format!(
                    "the upstream speaks only the handshake era and refused a session for this request: {why}"
                )),
            );
        }
    };
    if let Some(params) = message.get_mut("params") {
        strip_envelope(params);
    }
    let completing = Completing {
        method: method.to_owned(),
        server_info: handshake.init.get("serverInfo").cloned(),
    };
    let mut headers = exchange.headers.into_owned();
    session.apply(&mut headers);
    let bridged = Exchange {
        headers: std::borrow::Cow::Owned(headers),
        bytes: Bytes::from(message.to_string()),
        method: exchange.method,
        target_name: exchange.target_name,
    };
    let mut reply = bridged
        .forward(relay, pool, Some(id), observer, None, Some(&completing))
        .await;
    // The client has no session: the one opened for it ends with the reply.
    reply.headers_mut().remove(MCP_SESSION_ID);
    let end = EndSession {
        relay: relay.clone(),
        pool: pool.clone(),
        session,
    };
    reply.map(|body| {
        let chunks = body.into_data_stream();
        Body::from_stream(stream::unfold(
            (chunks, end),
            |(mut chunks, end)| async move {
                let chunk = chunks.next().await?;
                Some((chunk, (chunks, end)))
            },
        ))
    })
}

/// The session opened for one bridged request.
struct Session {
    id: HeaderValue,
    version: HeaderValue,
}

impl Session {
    fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(MCP_SESSION_ID, self.id.clone());
        headers.insert(MCP_PROTOCOL_VERSION, self.version.clone());
    }
}

/// `initialize` and `notifications/initialized` on the client's behalf:
/// its credentials and forwarded headers, its `clientInfo` and
/// capabilities from the envelope.
async fn open_session(
    relay: &Relay,
    pool: &Pool,
    client: &HeaderMap,
    params: Option<&Value>,
) -> Result<Session, String> {
    let mut headers = client.clone();
    headers.remove(MCP_SESSION_ID);
    headers.remove(MCP_PROTOCOL_VERSION);
    headers.remove(MCP_METHOD);
    headers.remove(MCP_NAME);
    let params_headers: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("mcp-param-"))
        .cloned()
        .collect();
    for name in params_headers {
        headers.remove(name);
    }
    let (client_info, capabilities) = envelope_client(params);
    let initialize = json!({
        "jsonrpc": "2.0",
        "id": "helio-bridge-init",
        "method": "initialize",
        "params": {
            "protocolVersion": super::prime::PROTOCOL_VERSION,
            "capabilities": capabilities.unwrap_or_else(|| json!({})),
            "clientInfo": client_info.unwrap_or_else(|| json!({ "name": "helio", "version": env!("CARGO_PKG_VERSION") })),
        },
    });
    let (answered, reply) = super::prime::exchange(relay, pool, &headers, &initialize).await?;
    let reply: Value =
        serde_json::from_slice(&reply).map_err(|e| format!("initialize reply: {e}"))?;
    if let Some(error) = reply.get("error") {
        return Err(format!("initialize was refused: {error}"));
    }
    let id = answered
        .get(MCP_SESSION_ID)
        .cloned()
        .ok_or("the upstream's initialize answer names no session")?;
    let version = reply["result"]["protocolVersion"]
        .as_str()
        .and_then(|v| HeaderValue::from_str(v).ok())
        .ok_or("the upstream's initialize answer names no protocol version")?;
    let session = Session { id, version };
    session.apply(&mut headers);
    let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    super::prime::notify(relay, pool, &headers, &initialized).await?;
    Ok(session)
}

/// Ends a bridged request's session when its reply is over (or its client
/// went away).
struct EndSession {
    relay: Arc<Relay>,
    pool: Pool,
    session: Session,
}

impl Drop for EndSession {
    fn drop(&mut self) {
        let (relay, pool) = (self.relay.clone(), self.pool.clone());
        let mut headers = HeaderMap::new();
        self.session.apply(&mut headers);
        tokio::spawn(async move { super::prime::end_session(&relay, &pool, &headers).await });
    }
}
