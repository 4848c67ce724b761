//! The era bridge on the relay, both ways round.
//!
//! **A 2026-07-28 client** (no session, the envelope in `_meta`) in front of
//! a streamable-HTTP server that speaks only the handshake era (Helio's
//! priming found no `server/discover` there). Without the bridge such a
//! client gets the server's refusal ("session required"); with it:
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
//! **A handshake-era client** in front of a server that speaks only
//! 2026-07-28 (it answered Helio's `server/discover`, and it refuses the
//! client's `initialize`). Helio answers that `initialize` itself (the
//! server's capabilities, instructions and `serverInfo` from its discover
//! result) with a session of Helio's own, which carries the client's
//! `clientInfo` and capabilities; each of the client's later requests goes
//! to the server sessionless, with the 2026-07-28 headers and envelope (and
//! the `Mcp-Param-*` headers the tool's schema asks for). A server that
//! accepts the client's `initialize` (it speaks both eras) is relayed to
//! as it is.
//!
//! Governance has already happened by then, on the request as the client
//! sent it: the bridge changes only what reaches the upstream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::observe::Observer;
use super::post::Exchange;
use super::prime::ExchangeError;
use super::relay::Relay;
use super::stream::Reshape;
use super::upstream::{Pool, MCP_METHOD, MCP_NAME, MCP_PROTOCOL_VERSION, MCP_SESSION_ID};
use crate::era::{claims_modern, discover_result, envelope_client, strip_envelope, MODERN};

/// What priming learnt of the upstream's era.
pub(super) enum Learnt {
    /// It answered `initialize` and not `server/discover`: its `initialize`
    /// result.
    HandshakeOnly(Value),
    /// It answered `server/discover` with 2026-07-28: that result.
    Modern(Value),
}

#[derive(Default)]
pub(super) struct UpstreamEra(RwLock<Option<Arc<Learnt>>>);

impl UpstreamEra {
    pub fn learnt(&self, learnt: Learnt) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(learnt));
    }

    fn get(&self) -> Option<Arc<Learnt>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The server's `initialize` result when a message must be bridged onto
    /// a handshake: a 2026-07-28 message without a session, to a server
    /// that speaks only the handshake era.
    pub fn bridging(&self, headers: &HeaderMap) -> Option<Value> {
        if headers.contains_key(MCP_SESSION_ID) || !claims_modern(headers) {
            return None;
        }
        match self.get().as_deref() {
            Some(Learnt::HandshakeOnly(init)) => Some(init.clone()),
            Some(Learnt::Modern(_)) | None => None,
        }
    }

    /// The server's `server/discover` result, when it speaks 2026-07-28.
    pub fn discovered(&self) -> Option<Value> {
        match self.get().as_deref() {
            Some(Learnt::Modern(discovered)) => Some(discovered.clone()),
            Some(Learnt::HandshakeOnly(_)) | None => None,
        }
    }
}

/// Sends a bridged message (see the module's documentation).
pub(super) async fn send(
    exchange: Exchange<'_>,
    init: &Value,
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
        let body = json!({ "jsonrpc": "2.0", "id": id, "result": discover_result(init) });
        return axum::Json(body).into_response();
    }
    let Ok(mut message) = serde_json::from_slice::<Value>(&exchange.bytes) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let session = match open_session(relay, pool, &exchange.headers, message.get("params")).await {
        Ok(session) => session,
        // The client's credentials were refused: it sees that refusal, as
        // it would directly (an OAuth client starts its flow from it).
        Err(ExchangeError::Status {
            status: status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN),
            headers,
            body,
        }) => {
            if let Some(observer) = observer {
                observer.no_response(&super::upstream::UpstreamError::Unreachable {
                    url: relay.upstream.url().to_owned(),
                    reason: format!("the upstream refused the client's credentials ({status})"),
                });
            }
            let mut refused = (status, body).into_response();
            for name in [http::header::WWW_AUTHENTICATE, http::header::CONTENT_TYPE] {
                if let Some(value) = headers.get(&name) {
                    refused.headers_mut().insert(name, value.clone());
                }
            }
            return refused;
        }
        Err(why) => {
            let why = String::from(why);
            tracing::warn!(error = %why, "the handshake-era upstream refused a session for a 2026-07-28 client's request");
            // The request itself never went: a governed call did not happen.
            let error = super::upstream::UpstreamError::Unreachable {
                url: relay.upstream.url().to_owned(),
                reason: format!("it speaks only the handshake era and refused a session for this request: {why}"),
            };
            if let Some(observer) = observer {
                observer.no_response(&error);
            }
            return super::render::upstream_failure(Some(&id), &error);
        }
    };
    if let Some(params) = message.get_mut("params") {
        strip_envelope(params);
    }
    let completing = Reshape::Complete {
        method: method.to_owned(),
        server_info: init.get("serverInfo").cloned(),
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
) -> Result<Session, ExchangeError> {
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
        return Err(format!("initialize was refused: {error}").into());
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

/// The sessions Helio gives handshake-era clients start so.
const SESSION_PREFIX: &str = "helio-";

/// How many handshake-era clients Helio serves at once on a 2026-07-28-only
/// server; past that, a new `initialize` is refused (none is evicted).
const LEGACY_CLIENTS: usize = 10_000;
/// A client unheard of for this long is forgotten (it gets `404` and
/// initializes again, as the transport expects).
const LEGACY_IDLE: Duration = Duration::from_secs(60 * 60);

/// The handshake-era clients Helio serves on a 2026-07-28-only server, by
/// the session Helio gave each.
#[derive(Default)]
pub(super) struct LegacyClients(Mutex<HashMap<String, LegacyClient>>);

struct LegacyClient {
    client_info: Value,
    capabilities: Value,
    last_used: Instant,
}

impl LegacyClients {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LegacyClient>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A session for a client, or none when the table is full.
    fn admit(&self, client_info: Value, capabilities: Value) -> Option<String> {
        let mut clients = self.lock();
        clients.retain(|_, c| c.last_used.elapsed() < LEGACY_IDLE);
        if clients.len() >= LEGACY_CLIENTS {
            return None;
        }
        let id = format!("{SESSION_PREFIX}{}", uuid::Uuid::new_v4().simple());
        clients.insert(
            id.clone(),
            LegacyClient {
                client_info,
                capabilities,
                last_used: Instant::now(),
            },
        );
        Some(id)
    }

    /// The session `headers` carry, if it is one Helio gives (checked
    /// before any lock: every relayed message passes here).
    fn session(headers: &HeaderMap) -> Option<&str> {
        let session = headers.get(MCP_SESSION_ID)?.to_str().ok()?;
        session.starts_with(SESSION_PREFIX).then_some(session)
    }

    /// The envelope of the client whose session `headers` carry.
    fn envelope(&self, headers: &HeaderMap) -> Option<(Value, Value)> {
        let mut clients = self.lock();
        let client = clients.get_mut(Self::session(headers)?)?;
        client.last_used = Instant::now();
        Some((client.client_info.clone(), client.capabilities.clone()))
    }

    /// Whether `headers` carry a session Helio gave.
    pub fn knows(&self, headers: &HeaderMap) -> bool {
        Self::session(headers).is_some_and(|s| self.lock().contains_key(s))
    }

    /// Ends the session `headers` carry (its client's `DELETE`).
    pub fn forget(&self, headers: &HeaderMap) -> bool {
        Self::session(headers).is_some_and(|s| self.lock().remove(s).is_some())
    }
}

/// A handshake-era client's `initialize` to a server that discovered as
/// 2026-07-28: relayed, and answered by Helio if the server refuses the
/// handshake itself ([`refuses_handshake`]).
pub(super) async fn initialize(
    exchange: Exchange<'_>,
    discovered: Option<Value>,
    relay: &Arc<Relay>,
    pool: &Pool,
    reply_id: Option<Box<RawValue>>,
    introduced: Option<Arc<str>>,
) -> Response {
    let params = serde_json::from_slice::<Value>(&exchange.bytes)
        .ok()
        .and_then(|mut m| m.get_mut("params").map(Value::take));
    let reply = exchange
        .forward(
            relay,
            pool,
            reply_id.clone(),
            None,
            introduced.clone(),
            None,
        )
        .await;
    let (parts, body) = reply.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, INITIALIZE_REPLY_BYTES).await else {
        return super::render::upstream_failure(
            reply_id.as_deref(),
            &super::upstream::UpstreamError::Broken("the initialize reply was cut off".into()),
        );
    };
    let streamed = super::stream::is_event_stream(&parts.headers);
    if !refuses_handshake(parts.status, &bytes, streamed) {
        return Response::from_parts(parts, Body::from(bytes));
    }
    // Pinned to 2026-07-28 without a probe at start: asked now.
    let discovered = match discovered {
        Some(discovered) => discovered,
        None => match super::prime::discovers_modern(relay, pool).await {
            Some(discovered) => {
                relay.era.learnt(Learnt::Modern(discovered.clone()));
                discovered
            }
            None => json!({}),
        },
    };
    let params = params.unwrap_or_default();
    let client_info = params.get("clientInfo").cloned().unwrap_or_default();
    let capabilities = params
        .get("capabilities")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let Some(session) = relay.legacy_clients.admit(client_info, capabilities) else {
        tracing::warn!(
            limit = LEGACY_CLIENTS,
            "refused a handshake-era client: the bridge serves as many as it keeps"
        );
        return super::render::upstream_failure(
            reply_id.as_deref(),
            &super::upstream::UpstreamError::Broken(
                "the upstream speaks only MCP 2026-07-28 and Helio bridges no more handshake-era clients now; retry later".into(),
            ),
        );
    };
    let version = params
        .get("protocolVersion")
        .and_then(Value::as_str)
        .filter(|v| HANDSHAKE_VERSIONS.contains(v))
        .unwrap_or(super::prime::PROTOCOL_VERSION);
    let mut result = json!({
        "protocolVersion": version,
        "capabilities": discovered.get("capabilities").cloned().unwrap_or_else(|| json!({})),
        "serverInfo": discovered["_meta"]["io.modelcontextprotocol/serverInfo"].as_object().cloned()
            .map_or_else(|| json!({ "name": "helio", "version": env!("CARGO_PKG_VERSION") }), Value::Object),
    });
    if let Some(instructions) = discovered.get("instructions") {
        result["instructions"] = instructions.clone();
    }
    let id: Value = reply_id
        .as_deref()
        .and_then(|id| serde_json::from_str(id.get()).ok())
        .unwrap_or_default();
    let mut response =
        axum::Json(json!({ "jsonrpc": "2.0", "id": id, "result": result })).into_response();
    if let Ok(value) = HeaderValue::from_str(&session) {
        if let Some(agent) = introduced {
            relay.agents.remember(&value, agent);
        }
        response.headers_mut().insert(MCP_SESSION_ID, value);
    }
    response
}

/// The handshake-era protocol versions Helio answers an `initialize` with.
const HANDSHAKE_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// Largest `initialize` reply Helio reads to tell whether it was refused.
const INITIALIZE_REPLY_BYTES: usize = 1 << 20;

/// Whether the reply to a relayed `initialize` says the server does not
/// speak the handshake era: a JSON-RPC error "method not found" (-32601) or
/// "unsupported protocol version" (-32022), outside an authentication
/// refusal. Anything else (a success, `401`, a server error) is the
/// client's to see, as on a direct connection: Helio never answers for a
/// server that refused the client itself.
fn refuses_handshake(status: StatusCode, bytes: &[u8], streamed: bool) -> bool {
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        return false;
    }
    let mut messages = Vec::new();
    match streamed {
        true => crate::sse::EventScanner::new().feed(bytes, |m| messages.push(m.to_vec())),
        false => messages.push(bytes.to_vec()),
    }
    messages.iter().any(|m| {
        serde_json::from_slice::<Value>(m)
            .is_ok_and(|m| matches!(m["error"]["code"].as_i64(), Some(-32601 | -32022)))
    })
}

/// Whether a message comes from a handshake-era client Helio serves on a
/// 2026-07-28-only server, and if so how it is sent: sessionless, with the
/// revision's headers and envelope.
pub(super) async fn as_modern(
    exchange: Exchange<'_>,
    relay: &Arc<Relay>,
    pool: &Pool,
    reply_id: Option<Box<RawValue>>,
    observer: Option<Observer>,
) -> Option<Response> {
    let (client_info, capabilities) = relay.legacy_clients.envelope(&exchange.headers)?;
    let method = exchange.method.as_deref();
    if method.is_none() || method == Some("notifications/initialized") {
        // An answer (a 2026-07-28 server asks nothing), or the end of a
        // handshake Helio answered.
        return Some(StatusCode::ACCEPTED.into_response());
    }
    let Ok(mut message) = serde_json::from_slice::<Value>(&exchange.bytes) else {
        return Some(StatusCode::BAD_REQUEST.into_response());
    };
    let params = message
        .as_object_mut()
        .map(|m| m.entry("params").or_insert_with(|| json!({})));
    let mut mirrored = Vec::new();
    if let Some(params) = params.filter(|p| p.is_object()) {
        let meta = params
            .as_object_mut()
            .map(|p| p.entry("_meta").or_insert_with(|| json!({})));
        if let Some(meta) = meta.and_then(Value::as_object_mut) {
            meta.insert(
                "io.modelcontextprotocol/protocolVersion".into(),
                MODERN.into(),
            );
            meta.insert("io.modelcontextprotocol/clientInfo".into(), client_info);
            meta.insert(
                "io.modelcontextprotocol/clientCapabilities".into(),
                capabilities,
            );
        }
        if method == Some("tools/call") {
            let tool = params
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let marks = relay.tools.view(tool).param_headers;
            mirrored = super::agreement::mirror_params(&marks, params.get("arguments"));
        }
    }
    let mut headers = exchange.headers.into_owned();
    headers.remove(MCP_SESSION_ID);
    headers.insert(MCP_PROTOCOL_VERSION, HeaderValue::from_static(MODERN));
    for (name, value) in mirrored {
        headers.entry(name).or_insert(value);
    }
    let modern = Exchange {
        headers: std::borrow::Cow::Owned(headers),
        bytes: Bytes::from(message.to_string()),
        method: exchange.method,
        target_name: exchange.target_name,
    };
    Some(
        modern
            .forward(relay, pool, reply_id, observer, None, None)
            .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refused_handshake_is_answered_by_helio() {
        let error = |code: i64| {
            json!({"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": "x"}}).to_string()
        };
        assert!(refuses_handshake(
            StatusCode::OK,
            error(-32601).as_bytes(),
            false
        ));
        assert!(refuses_handshake(
            StatusCode::BAD_REQUEST,
            error(-32022).as_bytes(),
            false
        ));
        let streamed = format!("event: message\ndata: {}\n\n", error(-32601));
        assert!(refuses_handshake(StatusCode::OK, streamed.as_bytes(), true));
        // The client's own refusal stays the client's: never answered for.
        assert!(!refuses_handshake(
            StatusCode::UNAUTHORIZED,
            error(-32601).as_bytes(),
            false
        ));
        assert!(!refuses_handshake(
            StatusCode::OK,
            error(-32603).as_bytes(),
            false
        ));
        let ok = json!({"jsonrpc": "2.0", "id": 1, "result": {}}).to_string();
        assert!(!refuses_handshake(StatusCode::OK, ok.as_bytes(), false));
    }
}
