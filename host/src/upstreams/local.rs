//! The stdio server as Helio's relay sees it: a streamable-HTTP MCP endpoint
//! on a loopback port of its own, in front of the [`Mux`]. The relay (and
//! with it governance, sessions, priming, audit) speaks to it exactly as to
//! a streamable-HTTP server; only this endpoint knows there is a child
//! process behind it.
//!
//! - `initialize` opens a session (`Mcp-Session-Id`) answered with the
//!   child's own `initialize` result; `notifications/initialized` is
//!   absorbed (Helio initialized the child itself).
//! - A request is answered as an event stream: whatever the server sends
//!   that belongs to it (progress, its requests to the client), then the
//!   response.
//! - `GET` opens the session's stream for what concerns every client;
//!   `DELETE` ends the session.
//!
//! The endpoint is on loopback, where other local processes can reach it:
//! every request must carry this start's random token
//! ([`BRIDGE_TOKEN`], sent by the relay as a static upstream header), so
//! nothing on the host talks to the server around governance.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use futures_util::stream;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::json;
use tokio::sync::mpsc;

use super::mux::{method_of, Link, Message, Mux, Refused, STREAM_FRAMES};
use crate::era::{claims_modern, discover_result};

const MCP_SESSION_ID: http::HeaderName = http::HeaderName::from_static("mcp-session-id");

/// The header carrying the endpoint's token.
pub const BRIDGE_TOKEN: http::HeaderName = http::HeaderName::from_static("x-helio-bridge-token");

pub struct Local {
    pub mux: Arc<Mux>,
    /// This start's token (64 hex digits).
    pub token: String,
    /// How long a request waits for the server to be (re)started.
    pub wait_for_link: Duration,
}

/// Largest message the endpoint takes: above the 4 MiB a client may send
/// Helio, so whatever Helio relays fits.
const MAX_MESSAGE_BYTES: usize = 8 << 20;

pub fn router(local: Arc<Local>) -> Router {
    Router::new()
        .route("/mcp", post(posted).get(listen).delete(end))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_MESSAGE_BYTES))
        .route_layer(axum::middleware::from_fn_with_state(
            local.clone(),
            authorized,
        ))
        .with_state(local)
}

/// Refuses any request without this start's token (compared in constant
/// time).
async fn authorized(
    State(local): State<Arc<Local>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use subtle::ConstantTimeEq;
    let presented = request
        .headers()
        .get(BRIDGE_TOKEN)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if bool::from(presented.ct_eq(local.token.as_bytes())) {
        return next.run(request).await;
    }
    tracing::warn!("refused a request to the bridged upstream's endpoint without its token");
    StatusCode::UNAUTHORIZED.into_response()
}

async fn posted(State(local): State<Arc<Local>>, headers: HeaderMap, body: Bytes) -> Response {
    let message: Message = match serde_json::from_slice(&body) {
        Ok(message) => message,
        Err(error) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                -32700,
                &format!("Parse error: {error} (one JSON-RPC object per request)"),
            );
        }
    };
    let id = message.get("id").cloned();
    let method = method_of(&message);
    let init = match wait_for_link(&local).await {
        Ok(init) => init,
        Err(why) => return rpc_error(StatusCode::SERVICE_UNAVAILABLE, id.as_deref(), -32603, &why),
    };
    if method.as_deref() == Some("initialize") {
        let session = local.mux.open_session();
        let result = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{},\"result\":{init}}}",
            id.as_deref().map_or("null", |i| i.get())
        );
        let mut response = json_response(StatusCode::OK, result);
        if let Ok(value) = HeaderValue::from_str(&session) {
            response.headers_mut().insert(MCP_SESSION_ID, value);
        }
        return response;
    }
    let Some(session) = headers.get(MCP_SESSION_ID).and_then(|v| v.to_str().ok()) else {
        if claims_modern(&headers) {
            return sessionless(&local, &init, method.as_deref(), id.as_deref(), message);
        }
        return rpc_error(
            StatusCode::BAD_REQUEST,
            id.as_deref(),
            -32600,
            "Bad Request: Mcp-Session-Id header is required",
        );
    };
    let session = session.to_owned();
    let outcome = match (method.as_deref(), &id) {
        (Some("notifications/initialized"), None) => Ok(None),
        (Some(_), None) => local.mux.notify(&session, message).map(|()| None),
        (None, Some(_)) => local.mux.answer(&session, message).map(|()| None),
        (Some(_), Some(_)) => {
            let (events, received) = mpsc::channel(STREAM_FRAMES);
            local
                .mux
                .request(&session, message, events)
                .map(|()| Some(received))
        }
        (None, None) => Err(Refused::Malformed("neither a method nor an id".into())),
    };
    match outcome {
        Ok(Some(received)) => event_stream(received),
        Ok(None) => StatusCode::ACCEPTED.into_response(),
        Err(Refused::NoSession) => rpc_error(
            StatusCode::NOT_FOUND,
            id.as_deref(),
            -32001,
            &Refused::NoSession.to_string(),
        ),
        Err(refused @ Refused::Malformed(_)) => rpc_error(
            StatusCode::BAD_REQUEST,
            id.as_deref(),
            -32600,
            &refused.to_string(),
        ),
    }
}

/// A 2026-07-28 client speaks without a session; the server behind this
/// endpoint speaks the handshake era (Helio initialized it). `server/discover`
/// is answered from the server's `initialize` result; any other request is
/// carried on a session of its own ([`Mux::request_sessionless`]). A
/// notification or an answer outside any session has no request on the
/// server to concern and is accepted without being sent.
fn sessionless(
    local: &Local,
    init: &str,
    method: Option<&str>,
    id: Option<&serde_json::value::RawValue>,
    message: Message,
) -> Response {
    match (method, id) {
        (Some("server/discover"), Some(id)) => {
            let init: serde_json::Value = serde_json::from_str(init).unwrap_or_default();
            let result = discover_result(&init);
            let id: serde_json::Value = serde_json::from_str(id.get()).unwrap_or_default();
            let body = json!({ "jsonrpc": "2.0", "id": id, "result": result });
            json_response(StatusCode::OK, body.to_string())
        }
        (Some(_), Some(_)) => {
            let (events, received) = mpsc::channel(STREAM_FRAMES);
            match local.mux.request_sessionless(message, events) {
                Ok(()) => event_stream(received),
                Err(refused) => {
                    rpc_error(StatusCode::BAD_REQUEST, id, -32600, &refused.to_string())
                }
            }
        }
        (Some(_), None) | (None, Some(_)) => StatusCode::ACCEPTED.into_response(),
        (None, None) => rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            -32600,
            "neither a method nor an id",
        ),
    }
}

async fn listen(State(local): State<Arc<Local>>, headers: HeaderMap) -> Response {
    let Some(session) = headers.get(MCP_SESSION_ID).and_then(|v| v.to_str().ok()) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let (events, received) = mpsc::channel(STREAM_FRAMES);
    match local.mux.listen(session, events) {
        Ok(()) => event_stream(received),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn end(State(local): State<Arc<Local>>, headers: HeaderMap) -> Response {
    let session = headers.get(MCP_SESSION_ID).and_then(|v| v.to_str().ok());
    match session.map(|s| local.mux.close_session(s)) {
        Some(true) => StatusCode::OK.into_response(),
        Some(false) => StatusCode::NOT_FOUND.into_response(),
        None => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// The server's `initialize` result once it is up (waiting for a start or
/// restart); why not otherwise.
async fn wait_for_link(local: &Local) -> Result<Arc<str>, String> {
    let mut link = local.mux.link();
    let mut last_failure = None;
    let waited = tokio::time::timeout(local.wait_for_link, async {
        loop {
            match &*link.borrow_and_update() {
                Link::Up(init) => return Ok(init.clone()),
                Link::Dead(why) => return Err(why.clone()),
                Link::Down(why) => {
                    if why.is_some() {
                        last_failure.clone_from(why);
                    }
                }
            }
            if link.changed().await.is_err() {
                return Err("the stdio server is gone".to_owned());
            }
        }
    })
    .await;
    match waited {
        Ok(result) => {
            result.map_err(|why| format!("the upstream MCP server is not running ({why})"))
        }
        Err(_) => Err(
            match last_failure.or_else(|| match &*local.mux.link().borrow() {
                Link::Down(why) => why.clone(),
                Link::Up(_) | Link::Dead(_) => None,
            }) {
                Some(why) => {
                    format!("the upstream MCP server is not running ({why}); Helio keeps trying")
                }
                None => format!(
                    "the upstream MCP server is not running: it did not start within {} ms",
                    local.wait_for_link.as_millis()
                ),
            },
        ),
    }
}

fn event_stream(received: mpsc::Receiver<Bytes>) -> Response {
    let body = stream::unfold(received, |mut received| async move {
        let frame = received.recv().await?;
        Some((Ok::<_, Infallible>(frame), received))
    });
    let mut response = Response::new(Body::from_stream(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    response
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn rpc_error(
    status: StatusCode,
    id: Option<&serde_json::value::RawValue>,
    code: i64,
    message: &str,
) -> Response {
    let id: serde_json::Value = id
        .and_then(|id| serde_json::from_str(id.get()).ok())
        .unwrap_or(serde_json::Value::Null);
    let body = json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } });
    json_response(status, body.to_string())
}
