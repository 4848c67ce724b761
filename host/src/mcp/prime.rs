//! Priming the tool catalog with Helio's own `tools/list`, on a session of
//! its own (a caller's `Mcp-Session-Id` is never reused for this), then
//! listing again every `policies.tool_revalidation.interval` so that a
//! definition that changes is caught even if no client lists the tools.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use http_body_util::{BodyExt, Limited};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::bridge::Learnt;
use super::jsonrpc;
use super::relay::Relay;
use super::upstream::{stamp_method_headers, Pool, MCP_PROTOCOL_VERSION, MCP_SESSION_ID};
use crate::govern::Era;
use crate::sse::EventScanner;

const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);
/// A `tools/list` that pages further than this is cut off (and logged).
const MAX_PAGES: usize = 100;
/// The handshake-era revision Helio asks for.
pub(super) const PROTOCOL_VERSION: &str = "2025-06-18";
const MODERN_PROTOCOL_VERSION: &str = "2026-07-28";

pub(super) async fn prime(relay: &Relay, shutdown: &CancellationToken) {
    let pool = relay.upstream.pool();
    let mut delay = FIRST_RETRY;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        // A listing under way when Helio stops is dropped with its
        // connections, so shutdown never waits on the upstream for it.
        let listed = tokio::select! {
            listed = list_tools(relay, &pool) => listed,
            () = shutdown.cancelled() => return,
        };
        crate::metrics::get().upstream_up(listed.is_ok());
        match listed {
            Ok(count) => {
                tracing::info!(
                    tools = count,
                    "annotation cache primed from the upstream's tools/list"
                );
                return revalidate(relay, &pool, shutdown).await;
            }
            Err(error) if attempts == 1 => tracing::warn!(
                %error,
                "cannot list the upstream's tools yet; retrying in the background (until then, unseen tools count as destructive)"
            ),
            Err(error) => {
                tracing::debug!(%error, attempts, "priming the annotation cache failed again")
            }
        }
        // Jitter so that many gateways do not retry in step.
        let jitter = Duration::from_millis(u64::from(attempts.wrapping_mul(37) % 250));
        tokio::select! {
            () = tokio::time::sleep(delay + jitter) => {}
            () = shutdown.cancelled() => return,
        }
        delay = (delay * 2).min(MAX_RETRY);
    }
}

/// Lists the tools again whenever `policies.tool_revalidation.interval` has
/// passed since the last listing. The settings are read every second, so
/// a reload that changes them takes effect at once. A failed listing is
/// logged and changes nothing (baselines and drift stay as they are).
async fn revalidate(relay: &Relay, pool: &Pool, shutdown: &CancellationToken) {
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = shutdown.cancelled() => return,
        }
        let settings = relay.core.tool_revalidation();
        if !settings.enabled || last.elapsed() < settings.interval {
            continue;
        }
        last = tokio::time::Instant::now();
        let listed = tokio::select! {
            listed = list_tools(relay, pool) => listed,
            () = shutdown.cancelled() => return,
        };
        crate::metrics::get().upstream_up(listed.is_ok());
        match listed {
            Ok(count) => tracing::debug!(tools = count, "tool definitions revalidated"),
            Err(error) => tracing::warn!(
                %error,
                "revalidating the upstream's tool definitions failed; baselines are kept and it is tried again after the interval"
            ),
        }
    }
}

/// One full priming run, in the upstream's era (as pinned by
/// `upstream.protocol_version`, or else probed): a server that answers
/// `server/discover` with MCP 2026-07-28 is listed with sessionless
/// requests; otherwise (or if that fails) the handshake era's initialize,
/// initialized, every page of `tools/list`, then the session's end.
async fn list_tools(relay: &Relay, pool: &Pool) -> Result<usize, String> {
    match relay.upstream.pinned_era() {
        // No probe: the era bridge asks `server/discover` itself if it
        // ever needs the answer.
        Some(Era::Stateless) => return list_tools_stateless(relay, pool).await,
        Some(Era::Handshake) => return list_tools_handshake(relay, pool, true).await,
        None => {}
    }
    if let Some(discovered) = discovers_modern(relay, pool).await {
        relay.era.learnt(Learnt::Modern(discovered));
        match list_tools_stateless(relay, pool).await {
            Ok(count) => return Ok(count),
            Err(error) => {
                tracing::debug!(%error, "the upstream discovered as 2026-07-28 but a sessionless tools/list failed; priming with a handshake")
            }
        }
        return list_tools_handshake(relay, pool, false).await;
    }
    list_tools_handshake(relay, pool, true).await
}

/// The `_meta` every 2026-07-28 request carries.
fn modern_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN_PROTOCOL_VERSION,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": { "name": "helio", "version": env!("CARGO_PKG_VERSION") },
    })
}

fn modern_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        MCP_PROTOCOL_VERSION,
        HeaderValue::from_static(MODERN_PROTOCOL_VERSION),
    );
    headers
}

/// The upstream's `server/discover` result, when it supports 2026-07-28.
pub(super) async fn discovers_modern(relay: &Relay, pool: &Pool) -> Option<Value> {
    let discover = json!({
        "jsonrpc": "2.0",
        "id": "helio-prime-discover",
        "method": "server/discover",
        "params": { "_meta": modern_meta() },
    });
    let (_, reply) = exchange(relay, pool, &modern_headers(), &discover)
        .await
        .ok()?;
    let mut reply = serde_json::from_slice::<Value>(&reply).ok()?;
    let modern = reply["result"]["supportedVersions"]
        .as_array()
        .is_some_and(|versions| versions.iter().any(|v| v == MODERN_PROTOCOL_VERSION));
    modern.then(|| reply["result"].take())
}

/// Every page of a sessionless 2026-07-28 `tools/list`.
async fn list_tools_stateless(relay: &Relay, pool: &Pool) -> Result<usize, String> {
    let headers = modern_headers();
    let before = relay.tools.count();
    let mut cursor: Option<String> = None;
    for page in 0..MAX_PAGES {
        let mut params = json!({ "_meta": modern_meta() });
        if let Some(cursor) = &cursor {
            params["cursor"] = cursor.as_str().into();
        }
        let list = json!({ "jsonrpc": "2.0", "id": format!("helio-prime-tools-{page}"), "method": "tools/list", "params": params });
        let (_, reply) = exchange(relay, pool, &headers, &list).await?;
        refused(&reply, "tools/list")?;
        cursor = relay.tools.observe(&reply);
        if cursor.is_none() {
            return Ok(relay.tools.count().max(before));
        }
    }
    tracing::warn!(
        pages = MAX_PAGES,
        "the upstream's tools/list pages on and on; priming stopped there"
    );
    Ok(relay.tools.count())
}

/// An error reply to `what`, as an error.
fn refused(reply: &[u8], what: &str) -> Result<(), String> {
    match serde_json::from_slice::<Value>(reply) {
        Ok(Value::Object(map)) => match map.get("error") {
            Some(error) => Err(format!("{what} was refused: {error}")),
            None => Ok(()),
        },
        Ok(_) | Err(_) => Err(format!("{what}: the reply is not a JSON-RPC object")),
    }
}

/// Priming with the handshake era's session. `handshake_only`: the server
/// did not answer `server/discover` (or is pinned to the handshake era),
/// so 2026-07-28 clients are bridged to it ([`super::bridge`]).
async fn list_tools_handshake(
    relay: &Relay,
    pool: &Pool,
    handshake_only: bool,
) -> Result<usize, String> {
    let init = json!({
        "jsonrpc": "2.0",
        "id": "helio-prime-init",
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": { "name": "helio", "version": env!("CARGO_PKG_VERSION") }
        }
    });
    let (headers, reply) = exchange(relay, pool, &HeaderMap::new(), &init).await?;
    let reply: Value =
        serde_json::from_slice(&reply).map_err(|e| format!("initialize reply: {e}"))?;
    if let Some(error) = reply.get("error") {
        return Err(format!("initialize was refused: {error}"));
    }
    let version = reply["result"]["protocolVersion"]
        .as_str()
        .unwrap_or(PROTOCOL_VERSION)
        .to_owned();
    if handshake_only {
        relay
            .era
            .learnt(Learnt::HandshakeOnly(reply["result"].clone()));
    }
    let mut session = HeaderMap::new();
    if let Some(id) = headers.get(MCP_SESSION_ID) {
        session.insert(MCP_SESSION_ID, id.clone());
    }
    if let Ok(value) = HeaderValue::from_str(&version) {
        session.insert(MCP_PROTOCOL_VERSION, value);
    }
    let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    notify(relay, pool, &session, &initialized).await?;

    let before = relay.tools.count();
    let mut cursor: Option<String> = None;
    for page in 0..MAX_PAGES {
        let params = match &cursor {
            Some(cursor) => json!({ "cursor": cursor }),
            None => json!({}),
        };
        let list = json!({ "jsonrpc": "2.0", "id": format!("helio-prime-tools-{page}"), "method": "tools/list", "params": params });
        let (_, reply) = exchange(relay, pool, &session, &list).await?;
        refused(&reply, "tools/list")?;
        cursor = relay.tools.observe(&reply);
        if cursor.is_none() {
            end_session(relay, pool, &session).await;
            return Ok(relay.tools.count().max(before));
        }
    }
    end_session(relay, pool, &session).await;
    tracing::warn!(
        pages = MAX_PAGES,
        "the upstream's tools/list pages on and on; priming stopped there"
    );
    Ok(relay.tools.count())
}

/// Sends a request and returns the response headers and the JSON-RPC reply
/// to it, whether the upstream answered with JSON or an event stream.
pub(super) async fn exchange(
    relay: &Relay,
    pool: &Pool,
    session: &HeaderMap,
    message: &Value,
) -> Result<(HeaderMap, Vec<u8>), ExchangeError> {
    let id: Box<RawValue> =
        RawValue::from_string(message["id"].to_string()).map_err(|e| e.to_string())?;
    let response = send(relay, pool, session, message).await?;
    let status = response.status();
    let (parts, body) = response.into_parts();
    let timeout = relay.upstream.request_timeout();
    let bytes = tokio::time::timeout(timeout, Limited::new(body, 16 << 20).collect())
        .await
        .map_err(|_| format!("no reply within {} s", timeout.as_secs()))?
        .map_err(|e| e.to_string())?
        .to_bytes();
    if !status.is_success() {
        return Err(ExchangeError::Status {
            status,
            headers: parts.headers,
            body: bytes,
        });
    }
    let is_stream = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_stream {
        return Ok((parts.headers, bytes.to_vec()));
    }
    let mut found = None;
    EventScanner::new().feed(&bytes, |event| {
        if found.is_none() && jsonrpc::is_response_to(event, &id) {
            found = Some(event.to_vec());
        }
    });
    let reply = found.ok_or("the event stream ended without a reply")?;
    Ok((parts.headers, reply))
}

/// Why an exchange got no JSON-RPC reply.
pub(super) enum ExchangeError {
    /// The upstream answered with an HTTP error.
    Status {
        status: http::StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
    Failed(String),
}

impl From<String> for ExchangeError {
    fn from(why: String) -> Self {
        ExchangeError::Failed(why)
    }
}

impl From<&str> for ExchangeError {
    fn from(why: &str) -> Self {
        ExchangeError::Failed(why.to_owned())
    }
}

impl From<ExchangeError> for String {
    fn from(error: ExchangeError) -> Self {
        match error {
            ExchangeError::Status { status, body, .. } => format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ),
            ExchangeError::Failed(why) => why,
        }
    }
}

pub(super) async fn notify(
    relay: &Relay,
    pool: &Pool,
    session: &HeaderMap,
    message: &Value,
) -> Result<(), String> {
    let response = send(relay, pool, session, message).await?;
    let status = response.status();
    let _ = response.into_body().collect().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("notifications/initialized got HTTP {status}"))
    }
}

pub(super) async fn end_session(relay: &Relay, pool: &Pool, session: &HeaderMap) {
    if session.get(MCP_SESSION_ID).is_none() {
        return;
    }
    let request = relay.upstream.request(
        Method::DELETE,
        session,
        "application/json, text/event-stream",
        Bytes::new(),
    );
    if let Ok(response) = relay.upstream.send(pool, request).await {
        let _ = response.into_body().collect().await;
    }
}

async fn send(
    relay: &Relay,
    pool: &Pool,
    session: &HeaderMap,
    message: &Value,
) -> Result<http::Response<hyper::body::Incoming>, String> {
    let body = Bytes::from(message.to_string());
    let mut request = relay.upstream.request(
        Method::POST,
        session,
        "application/json, text/event-stream",
        body,
    );
    if let Some(method) = message["method"].as_str() {
        stamp_method_headers(request.headers_mut(), method, None);
    }
    relay
        .upstream
        .send(pool, request)
        .await
        .map_err(|e| e.to_string())
}
