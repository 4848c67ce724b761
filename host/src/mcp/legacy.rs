//! The legacy HTTP+SSE door (MCP 2024-11-05) for clients that predate
//! streamable HTTP: `GET /sse` opens a stream whose first event names the
//! URL to post to (`/sse?sessionId=…`); each `POST` there is one JSON-RPC
//! message, answered `202` at once, its reply pushed as `message` events
//! on the stream.
//!
//! A posted message goes through exactly what `POST /mcp` does
//! ([`super::post::handle`]): the Origin guard, envelope checks, governance
//! of `tools/call`, the audit trail. The stream's id is the governance
//! session of last resort (`session_source: transport`) when none of
//! `session.identity` resolves. Streams are capped ([`MAX_STREAMS`]: new
//! ones are refused `503`, none is evicted), kept alive with a comment every
//! [`KEEP_ALIVE`], and forgotten as soon as the client goes away.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, StatusCode};
use serde_json::json;
use tokio::sync::mpsc;

use crate::serve::TimedBody;
use crate::sse::EventScanner;

use super::relay::Relay;
use super::upstream::{Pool, MCP_PROTOCOL_VERSION, MCP_SESSION_ID};

/// Open legacy streams at most, across all clients.
pub const MAX_STREAMS: usize = 1024;
/// A comment this often keeps proxies from closing a quiet stream and tells
/// Helio when the client has gone.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Frames queued per stream before a slow reader holds replies back.
const FRAMES: usize = 64;
/// The protocol revision of this transport.
const LEGACY_PROTOCOL: &str = "2024-11-05";

#[derive(Default)]
pub(super) struct Streams {
    open: Mutex<HashMap<String, Stream>>,
    refusals: Mutex<Option<Instant>>,
}

struct Stream {
    events: mpsc::Sender<Bytes>,
    /// The upstream's `Mcp-Session-Id`, once the client's `initialize` got
    /// one: sent with its later messages.
    upstream_session: Option<HeaderValue>,
}

impl Streams {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Stream>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `GET /sse` and `POST /sse?sessionId=…`.
pub(super) async fn handle(
    relay: &Arc<Relay>,
    pool: &Pool,
    request: Request<TimedBody>,
) -> Response {
    if let Some(refused) = relay.refuse_origin(request.headers()) {
        return refused;
    }
    match *request.method() {
        Method::GET => open(relay),
        Method::POST => post(relay, pool, request).await,
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            [(http::header::ALLOW, "GET, POST")],
            Body::empty(),
        )
            .into_response(),
    }
}

fn open(relay: &Arc<Relay>) -> Response {
    let streams = &relay.legacy;
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "cannot create a session");
    }
    let id = hex::encode(bytes);
    let (events, received) = mpsc::channel(FRAMES);
    {
        let mut open = streams.lock();
        if open.len() >= MAX_STREAMS {
            drop(open);
            log_refusal(streams);
            return error(StatusCode::SERVICE_UNAVAILABLE, "session capacity reached");
        }
        open.insert(
            id.clone(),
            Stream {
                events,
                upstream_session: None,
            },
        );
    }
    let endpoint = Bytes::from(format!("event: endpoint\ndata: /sse?sessionId={id}\n\n"));
    let guard = Forget {
        relay: relay.clone(),
        id,
    };
    let keep_alive = tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
    let shutdown = relay.shutdown.clone();
    let body = stream::once(async move { Ok::<_, Infallible>(endpoint) }).chain(stream::unfold(
        (received, keep_alive, guard, shutdown),
        |(mut received, mut keep_alive, guard, shutdown)| async move {
            let frame = tokio::select! {
                frame = received.recv() => frame?,
                _ = keep_alive.tick() => Bytes::from_static(b": keep-alive\n\n"),
                () = shutdown.cancelled() => return None,
            };
            Some((Ok(frame), (received, keep_alive, guard, shutdown)))
        },
    ));
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Forgets a stream when its body is dropped (the client went away, or
/// Helio is shutting down).
struct Forget {
    relay: Arc<Relay>,
    id: String,
}

impl Drop for Forget {
    fn drop(&mut self) {
        self.relay.legacy.lock().remove(&self.id);
    }
}

async fn post(relay: &Arc<Relay>, pool: &Pool, request: Request<TimedBody>) -> Response {
    let received = Instant::now();
    let Some(id) = session_param(request.uri().query()) else {
        return error(StatusCode::BAD_REQUEST, "missing sessionId");
    };
    let (events, upstream_session) = match relay.legacy.lock().get(&id) {
        Some(stream) => (stream.events.clone(), stream.upstream_session.clone()),
        None => return error(StatusCode::NOT_FOUND, "unknown sessionId"),
    };
    let (parts, body) = request.into_parts();
    if !super::stream::is_json(&parts.headers) {
        return super::render::refusal(None, &super::render::Refusal::NotJson);
    }
    let bytes = match super::post::read_body(body).await {
        Ok(bytes) => bytes,
        Err(refusal) => return super::render::refusal(None, &refusal),
    };
    // What the upstream sees: the client's own headers, with the upstream
    // session this stream's `initialize` opened.
    let mut headers = parts.headers;
    headers.remove(MCP_SESSION_ID);
    if let Some(session) = upstream_session {
        headers.insert(MCP_SESSION_ID, session);
    }
    if !headers.contains_key(MCP_PROTOCOL_VERSION) {
        headers.insert(
            MCP_PROTOCOL_VERSION,
            HeaderValue::from_static(LEGACY_PROTOCOL),
        );
    }
    headers.insert(
        http::header::ACCEPT,
        HeaderValue::from_static("application/json, text/event-stream"),
    );
    let reply = super::post::handle(relay, pool, &headers, bytes, received, Some(&id)).await;
    if let Some(session) = reply.headers().get(MCP_SESSION_ID) {
        if let Some(stream) = relay.legacy.lock().get_mut(&id) {
            stream.upstream_session = Some(session.clone());
        }
    }
    tokio::spawn(push_reply(reply, events));
    StatusCode::ACCEPTED.into_response()
}

/// Pushes the JSON-RPC messages of a reply (one JSON body, or the events of
/// a stream) onto the client's stream.
async fn push_reply(reply: Response, events: mpsc::Sender<Bytes>) {
    let streamed = super::stream::is_event_stream(reply.headers());
    let mut body = reply.into_body().into_data_stream();
    if streamed {
        let mut scanner = EventScanner::new();
        while let Some(Ok(chunk)) = body.next().await {
            let mut frames = Vec::new();
            scanner.feed(&chunk, |data| frames.push(message_event(data)));
            for frame in frames {
                if events.send(frame).await.is_err() {
                    return;
                }
            }
        }
        return;
    }
    let mut whole = Vec::new();
    while let Some(Ok(chunk)) = body.next().await {
        whole.extend_from_slice(&chunk);
    }
    if !whole.is_empty() {
        let _ = events.send(message_event(&whole)).await;
    }
}

/// A `message` event with `data` (each line of it a `data:` line).
fn message_event(data: &[u8]) -> Bytes {
    let mut frame = Vec::with_capacity(data.len() + 32);
    frame.extend_from_slice(b"event: message\n");
    for line in data.split(|&b| b == b'\n') {
        frame.extend_from_slice(b"data: ");
        frame.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        frame.push(b'\n');
    }
    frame.push(b'\n');
    Bytes::from(frame)
}

/// `sessionId` of the query string.
fn session_param(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(key, _)| key == "sessionId")
        .map(|(_, value)| value.into_owned())
        .filter(|value| !value.is_empty())
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// One log line per 10 s about refused streams, however many there are.
fn log_refusal(streams: &Streams) {
    let mut last = streams.refusals.lock().unwrap_or_else(|e| e.into_inner());
    if last.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
        *last = Some(Instant::now());
        tracing::warn!(
            cap = MAX_STREAMS,
            "refused a legacy /sse stream: the session capacity is reached (existing streams are kept)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_become_message_events_line_by_line() {
        assert_eq!(
            &message_event(b"{\"a\":1}")[..],
            b"event: message\ndata: {\"a\":1}\n\n"
        );
        assert_eq!(
            &message_event(b"{\n\"a\":1\r\n}")[..],
            b"event: message\ndata: {\ndata: \"a\":1\ndata: }\n\n"
        );
        assert_eq!(
            session_param(Some("sessionId=abc&x=1")).as_deref(),
            Some("abc")
        );
        assert_eq!(session_param(Some("sessionId=")), None);
        assert_eq!(session_param(None), None);
    }
}
