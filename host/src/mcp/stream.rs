//! Relaying the upstream's replies: `GET /mcp` (the server-to-client
//! stream), `DELETE /mcp`, and the reply to each `POST`. Replies are relayed
//! as they arrive, whatever their content type, so progress, logging,
//! sampling and elicitation traffic reaches the client during the call and
//! a long-lived reply (MCP 2026-07-28's `subscriptions/listen`, a chunked
//! JSON body that stays open) is never held back. Only the reply to a call
//! Helio must record — a `tools/call` (its outcome settles state and the
//! audit record) or a `tools/list` (it teaches the tool catalog) — is
//! bounded beyond its head: a JSON body read whole by the deadline, an
//! event stream with no gap over `request_timeout` until the response has
//! gone by, which its [`Observer`] is shown on the way through.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::{self, Stream};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::value::RawValue;

use crate::serve::TimedBody;

use super::jsonrpc;
use super::observe::Observer;
use super::relay::Relay;
use super::render;
use super::upstream::{Pool, UpstreamError, MCP_PROTOCOL_VERSION, MCP_SESSION_ID};
use crate::sse::EventScanner;

/// Largest non-streamed upstream reply Helio buffers.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Upstream response headers relayed to the client; the rest describe the
/// upstream's connection, not the MCP exchange.
const RELAYED_RESPONSE_HEADERS: [HeaderName; 6] = [
    CONTENT_TYPE,
    CACHE_CONTROL,
    MCP_SESSION_ID,
    MCP_PROTOCOL_VERSION,
    WWW_AUTHENTICATE,
    RETRY_AFTER,
];

/// Relays the upstream's reply to a `POST` (`reply_id`: the request's id,
/// when it was a request; `deadline`: when a non-streamed reply must have
/// arrived whole). `completing`: the method of a request bridged for a
/// 2026-07-28 client, whose result is completed on the way
/// ([`crate::era::complete`]).
pub(super) async fn relay_reply(
    relay: &Relay,
    response: http::Response<Incoming>,
    reply_id: Option<Box<RawValue>>,
    deadline: tokio::time::Instant,
    observer: Option<Observer>,
    completing: Option<&Completing>,
) -> Response {
    let timeout = relay.upstream.request_timeout();
    let streamed = is_event_stream(response.headers());
    if let Some(completing) = completing {
        // Re-encoded message by message, so the response can be completed.
        return match streamed {
            true => {
                let (parts, body) = response.into_parts();
                let stream =
                    event_stream(body, reply_id, Some(timeout), observer, Some(completing));
                build(parts.status, &parts.headers, Body::from_stream(stream))
            }
            false => {
                let reply_id = reply_id.as_deref();
                buffered(
                    response,
                    reply_id,
                    timeout,
                    deadline,
                    observer,
                    Some(completing),
                )
                .await
            }
        };
    }
    let Some(observer) = observer else {
        // Nothing Helio records: relayed as it comes, bounded by the
        // client's patience as on a direct connection.
        let (parts, body) = response.into_parts();
        return match streamed {
            true => build(
                parts.status,
                &parts.headers,
                Body::from_stream(event_stream(body, reply_id, None, None, None)),
            ),
            false => build(parts.status, &parts.headers, Body::new(body)),
        };
    };
    if !streamed {
        return buffered(
            response,
            reply_id.as_deref(),
            timeout,
            deadline,
            Some(observer),
            None,
        )
        .await;
    }
    let (parts, body) = response.into_parts();
    let stream = event_stream(body, reply_id, Some(timeout), Some(observer), None);
    build(parts.status, &parts.headers, Body::from_stream(stream))
}

pub(super) async fn get(relay: &Relay, pool: &Pool, request: Request<TimedBody>) -> Response {
    if relay.legacy_clients.knows(request.headers()) {
        // A 2026-07-28 server has no stream to open: as the transport says
        // of a server without one.
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(http::header::ALLOW, "POST, DELETE")],
        )
            .into_response();
    }
    let upstream = &relay.upstream;
    let request = upstream.request(
        Method::GET,
        request.headers(),
        "text/event-stream",
        Bytes::new(),
    );
    let timeout = upstream.request_timeout();
    let deadline = tokio::time::Instant::now() + timeout;
    match upstream.send(pool, request).await {
        Err(error) => render::upstream_failure(None, &error),
        Ok(response) if is_event_stream(response.headers()) => {
            let (parts, body) = response.into_parts();
            let shutdown = relay.shutdown.clone();
            let stream = stream::unfold((body, shutdown), |(mut body, shutdown)| async move {
                loop {
                    let frame = tokio::select! {
                        frame = body.frame() => frame,
                        () = shutdown.cancelled() => return None,
                    };
                    match frame? {
                        Ok(frame) => match frame.into_data() {
                            Ok(data) if !data.is_empty() => {
                                return Some((Ok::<_, Infallible>(data), (body, shutdown)))
                            }
                            _ => continue,
                        },
                        Err(error) => {
                            tracing::debug!(%error, "upstream GET stream ended with an error");
                            return None;
                        }
                    }
                }
            });
            build(parts.status, &parts.headers, Body::from_stream(stream))
        }
        Ok(response) => buffered(response, None, timeout, deadline, None, None).await,
    }
}

pub(super) async fn delete(relay: &Relay, pool: &Pool, request: Request<TimedBody>) -> Response {
    relay.agents.forget(request.headers());
    if relay.legacy_clients.forget(request.headers()) {
        return StatusCode::OK.into_response();
    }
    let upstream = &relay.upstream;
    let request = upstream.request(
        Method::DELETE,
        request.headers(),
        "application/json, text/event-stream",
        Bytes::new(),
    );
    let timeout = upstream.request_timeout();
    let deadline = tokio::time::Instant::now() + timeout;
    match upstream.send(pool, request).await {
        Ok(response) => buffered(response, None, timeout, deadline, None, None).await,
        Err(error) => render::upstream_failure(None, &error),
    }
}

/// Relays an SSE reply chunk by chunk. While the final response to the
/// request is outstanding, a gap longer than `idle` (when bounded) between
/// chunks, or a broken upstream stream, ends the stream with a JSON-RPC
/// error event for the request, so the client gets an answer instead of a
/// hang. With `completing`, each message is re-encoded as its own event,
/// the response completed for a 2026-07-28 client.
fn event_stream(
    body: Incoming,
    reply_id: Option<Box<RawValue>>,
    idle: Option<Duration>,
    observer: Option<Observer>,
    completing: Option<&Completing>,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    struct State {
        body: Incoming,
        scanner: EventScanner,
        reply_id: Option<Box<RawValue>>,
        observer: Option<Observer>,
        completing: Option<Completing>,
        done: bool,
    }
    let state = State {
        body,
        scanner: EventScanner::new(),
        reply_id,
        observer,
        completing: completing.cloned(),
        done: false,
    };
    stream::unfold(state, move |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            let next = async {
                match idle {
                    Some(idle) => tokio::time::timeout(idle, st.body.frame()).await,
                    None => Ok(st.body.frame().await),
                }
            };
            let failure = match next.await {
                Ok(None) => return None,
                Ok(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if data.is_empty() {
                        continue;
                    }
                    if let Some(completing) = st.completing.clone() {
                        let frames = reencode(
                            &mut st.scanner,
                            &mut st.reply_id,
                            &mut st.observer,
                            &data,
                            &completing,
                        );
                        if frames.is_empty() {
                            continue;
                        }
                        return Some((Ok(frames), st));
                    }
                    if let Some(id) = &st.reply_id {
                        let mut answered = false;
                        st.scanner.feed(&data, |message| {
                            if jsonrpc::is_response_to(message, id) {
                                answered = true;
                                if let Some(observer) = st.observer.take() {
                                    observer.response(message);
                                }
                            }
                        });
                        if answered {
                            st.reply_id = None;
                        }
                    }
                    return Some((Ok(data), st));
                }
                Ok(Some(Err(error))) => UpstreamError::Broken(error.to_string()),
                Err(_) => UpstreamError::Timeout(idle.unwrap_or_default()),
            };
            st.done = true;
            let id = st.reply_id.take()?;
            tracing::warn!(error = %failure, "upstream event stream failed before the response");
            return Some((Ok(render::failure_event(&st.scanner, &id, &failure)), st));
        }
    })
}

/// The complete messages in `data` as `message` events of their own, the
/// response to the request completed (and shown to the observer).
fn reencode(
    scanner: &mut EventScanner,
    reply_id: &mut Option<Box<RawValue>>,
    observer: &mut Option<Observer>,
    data: &[u8],
    completing: &Completing,
) -> Bytes {
    let mut frames = Vec::new();
    scanner.feed(data, |message| {
        let is_response = reply_id
            .as_deref()
            .is_some_and(|id| jsonrpc::is_response_to(message, id));
        let text = match is_response {
            true => {
                if let Some(observer) = observer.take() {
                    observer.response(message);
                }
                completed(message, completing)
            }
            false => message.to_vec(),
        };
        frames.extend_from_slice(b"event: message\ndata: ");
        frames.extend_from_slice(&text);
        frames.extend_from_slice(b"\n\n");
        if is_response {
            *reply_id = None;
        }
    });
    Bytes::from(frames)
}

/// What a bridged request's result is completed with for a 2026-07-28
/// client ([`crate::era::complete`]).
#[derive(Clone)]
pub(super) struct Completing {
    pub method: String,
    pub server_info: Option<serde_json::Value>,
}

/// A response message with its result completed for a 2026-07-28 client.
fn completed(message: &[u8], completing: &Completing) -> Vec<u8> {
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(message) else {
        return message.to_vec();
    };
    if let Some(result) = value.get_mut("result") {
        crate::era::complete(result, &completing.method, completing.server_info.as_ref());
    }
    serde_json::to_vec(&value).unwrap_or_else(|_| message.to_vec())
}

/// Relays a non-streamed reply once it has fully arrived (by `deadline`),
/// showing it to `observer` first. If it never arrives whole, the observer
/// is dropped unanswered (an unknown outcome).
async fn buffered(
    response: http::Response<Incoming>,
    reply_id: Option<&RawValue>,
    timeout: Duration,
    deadline: tokio::time::Instant,
    observer: Option<Observer>,
    completing: Option<&Completing>,
) -> Response {
    let (parts, body) = response.into_parts();
    let collected =
        tokio::time::timeout_at(deadline, Limited::new(body, MAX_RESPONSE_BYTES).collect()).await;
    let bytes = match collected {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(error)) => {
            return render::upstream_failure(reply_id, &UpstreamError::Broken(error.to_string()))
        }
        Err(_) => return render::upstream_failure(reply_id, &UpstreamError::Timeout(timeout)),
    };
    if let Some(observer) = observer {
        observer.buffered(parts.status, &bytes);
    }
    let bytes = match completing {
        Some(completing) if parts.status.is_success() => Bytes::from(completed(&bytes, completing)),
        Some(_) | None => bytes,
    };
    build(parts.status, &parts.headers, Body::from(bytes))
}

fn build(status: StatusCode, upstream_headers: &HeaderMap, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for name in &RELAYED_RESPONSE_HEADERS {
        for value in upstream_headers.get_all(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    response
}

/// The media-type essence must be exactly `application/json`; substring
/// matches would let CORS-safelisted types through.
pub(super) fn is_json(headers: &HeaderMap) -> bool {
    media_type_is(headers, "application/json")
}

/// Whether the client's `Accept` admits an event stream.
pub(super) fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers.get_all(http::header::ACCEPT).iter().any(|value| {
        value.to_str().is_ok_and(|v| {
            v.split(',').any(|range| {
                let range = range.split(';').next().unwrap_or_default().trim();
                range.eq_ignore_ascii_case("text/event-stream")
                    || range == "text/*"
                    || range == "*/*"
            })
        })
    })
}

pub(super) fn is_event_stream(headers: &HeaderMap) -> bool {
    media_type_is(headers, "text/event-stream")
}

fn media_type_is(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(expected))
}
