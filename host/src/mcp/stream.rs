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
/// arrived whole). `reshape`: what Helio changes in the response on the way
/// ([`Reshape`]).
pub(super) async fn relay_reply(
    relay: &Relay,
    response: http::Response<Incoming>,
    reply_id: Option<Box<RawValue>>,
    deadline: tokio::time::Instant,
    observer: Option<Observer>,
    reshape: Option<&Reshape>,
) -> Response {
    let timeout = relay.upstream.request_timeout();
    let streamed = is_event_stream(response.headers());
    match (reshape, streamed) {
        // Re-encoded message by message as it arrives, so the response can
        // be completed.
        (Some(reshape @ Reshape::Complete { .. }), true) => {
            let (parts, body) = response.into_parts();
            let stream = event_stream(body, reply_id, Some(timeout), observer, Some(reshape));
            return build(parts.status, &parts.headers, Body::from_stream(stream));
        }
        // A tools/list reply is read whole (it is bounded anyway) and
        // re-encoded only if its `ttlMs` must come down.
        (Some(reshape @ Reshape::ClampTtl(_)), true) => {
            let reply_id = reply_id.as_deref();
            return collected_stream(response, reply_id, timeout, deadline, observer, reshape)
                .await;
        }
        (Some(reshape), false) => {
            let reply_id = reply_id.as_deref();
            return buffered(
                response,
                reply_id,
                timeout,
                deadline,
                observer,
                Some(reshape),
            )
            .await;
        }
        (None, _) => {}
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
/// hang. With `reshape`, each message is re-encoded as its own event, the
/// response reshaped.
fn event_stream(
    body: Incoming,
    reply_id: Option<Box<RawValue>>,
    idle: Option<Duration>,
    observer: Option<Observer>,
    reshape: Option<&Reshape>,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    struct State {
        body: Incoming,
        scanner: EventScanner,
        reply_id: Option<Box<RawValue>>,
        observer: Option<Observer>,
        reshape: Option<Reshape>,
        done: bool,
    }
    let state = State {
        body,
        scanner: EventScanner::new(),
        reply_id,
        observer,
        reshape: reshape.cloned(),
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
                    if let Some(reshape) = &st.reshape {
                        let frames = reencode(
                            &mut st.scanner,
                            &mut st.reply_id,
                            &mut st.observer,
                            &data,
                            reshape,
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
/// response to the request reshaped (and shown to the observer).
fn reencode(
    scanner: &mut EventScanner,
    reply_id: &mut Option<Box<RawValue>>,
    observer: &mut Option<Observer>,
    data: &[u8],
    reshape: &Reshape,
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
                reshaped(message, reshape).unwrap_or_else(|| message.to_vec())
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

/// What Helio changes in a response it relays.
#[derive(Clone)]
pub(super) enum Reshape {
    /// The result of a request bridged for a 2026-07-28 client, completed
    /// as that revision's clients expect ([`crate::era::complete`]).
    Complete {
        method: String,
        server_info: Option<serde_json::Value>,
    },
    /// A `tools/list` result's `ttlMs` lowered to at most this many
    /// milliseconds (`policies.tool_revalidation.max_advertised_ttl`): a
    /// client does not cache the list past Helio's next revalidation. Never
    /// added, never raised.
    ClampTtl(u64),
}

/// A response message reshaped; none when nothing changed.
fn reshaped(message: &[u8], reshape: &Reshape) -> Option<Vec<u8>> {
    let mut value = serde_json::from_slice::<serde_json::Value>(message).ok()?;
    let result = value.get_mut("result")?;
    match reshape {
        Reshape::Complete {
            method,
            server_info,
        } => crate::era::complete(result, method, server_info.as_ref()),
        Reshape::ClampTtl(max) => {
            let ttl = result.get_mut("ttlMs")?;
            // Only a number above the maximum comes down (`5.0` stays).
            if !ttl.as_f64().is_some_and(|ttl| ttl > *max as f64) {
                return None;
            }
            *ttl = (*max).into();
        }
    }
    serde_json::to_vec(&value).ok()
}

/// Reads a streamed reply whole (by `deadline`), shows its response to
/// `observer`, and relays it: as it came, or re-encoded when the response
/// was reshaped.
async fn collected_stream(
    response: http::Response<Incoming>,
    reply_id: Option<&RawValue>,
    timeout: Duration,
    deadline: tokio::time::Instant,
    mut observer: Option<Observer>,
    reshape: &Reshape,
) -> Response {
    let (parts, body) = response.into_parts();
    let bytes = match whole(body, timeout, deadline).await {
        Ok(bytes) => bytes,
        Err(failure) => return render::upstream_failure(reply_id, &failure),
    };
    let mut messages = Vec::new();
    let mut changed = false;
    EventScanner::new().feed(&bytes, |message| {
        let is_response = reply_id.is_some_and(|id| jsonrpc::is_response_to(message, id));
        let reshaped = is_response.then(|| reshaped(message, reshape)).flatten();
        if is_response {
            if let Some(observer) = observer.take() {
                observer.response(message);
            }
        }
        changed |= reshaped.is_some();
        messages.push(reshaped.unwrap_or_else(|| message.to_vec()));
    });
    let body = match changed {
        false => bytes,
        true => Bytes::from(
            messages
                .iter()
                .flat_map(|m| [&b"event: message\ndata: "[..], m, b"\n\n"].concat())
                .collect::<Vec<u8>>(),
        ),
    };
    build(parts.status, &parts.headers, Body::from(body))
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
    reshape: Option<&Reshape>,
) -> Response {
    let (parts, body) = response.into_parts();
    let bytes = match whole(body, timeout, deadline).await {
        Ok(bytes) => bytes,
        Err(failure) => return render::upstream_failure(reply_id, &failure),
    };
    if let Some(observer) = observer {
        observer.buffered(parts.status, &bytes);
    }
    let bytes = match reshape.filter(|_| parts.status.is_success()) {
        Some(reshape) => reshaped(&bytes, reshape).map_or(bytes, Bytes::from),
        None => bytes,
    };
    build(parts.status, &parts.headers, Body::from(bytes))
}

/// A reply body read whole by `deadline` (`timeout`: what the deadline was
/// set from, for the error).
async fn whole(
    body: Incoming,
    timeout: Duration,
    deadline: tokio::time::Instant,
) -> Result<Bytes, UpstreamError> {
    match tokio::time::timeout_at(deadline, Limited::new(body, MAX_RESPONSE_BYTES).collect()).await
    {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) => Err(UpstreamError::Broken(error.to_string())),
        Err(_) => Err(UpstreamError::Timeout(timeout)),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn reshape(message: Value, reshape: &Reshape) -> Option<Value> {
        let bytes = reshaped(message.to_string().as_bytes(), reshape)?;
        Some(serde_json::from_slice(&bytes).expect("JSON"))
    }

    #[test]
    fn ttl_is_only_ever_lowered() {
        let clamp = Reshape::ClampTtl(60_000);
        let listed =
            |ttl: Value| json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": [], "ttlMs": ttl}});
        assert_eq!(
            reshape(listed(json!(86_400_000)), &clamp).map(|m| m["result"]["ttlMs"].clone()),
            Some(json!(60_000))
        );
        assert_eq!(reshape(listed(json!(5)), &clamp), None, "never raised");
        assert_eq!(reshape(listed(json!(5.0)), &clamp), None);
        assert_eq!(reshape(listed(json!("soon")), &clamp), None);
        let bare = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": []}});
        assert_eq!(reshape(bare, &clamp), None, "never added");
        let failed = json!({"jsonrpc": "2.0", "id": 1, "error": {"code": 1, "message": "x"}});
        assert_eq!(reshape(failed, &clamp), None);
    }
}
