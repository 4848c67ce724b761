//! The reply to a `tools/call` held for a human approval: an event stream
//! opened at once, so the client knows its call is waiting instead of
//! meeting its own read timeout in silence.
//!
//! While the ticket is open the stream carries, every
//! [`WAITING_NOTICE_EVERY`] (the first at once): a `notifications/progress`
//! for the request's `_meta.progressToken` when it sent one, else an SSE
//! comment. Once the ticket is resolved, the call's answer follows as in any
//! other reply (the upstream's events as they come, or its JSON as one
//! event; a denial as a JSON-RPC error event), then the stream ends. A
//! client that goes away ends the wait: its call is not forwarded
//! (`client_disconnected`).
//!
//! No server-to-client request (elicitation, sampling) is ever sent for a
//! held call: the 2026-07-28 revision forbids them during `tools/call`, and
//! the handshake era does not need them to wait.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use serde_json::json;
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use crate::govern::{Held, Resolved};

use super::observe::Observer;
use super::post::Exchange;
use super::relay::Relay;
use super::render;
use super::stream::is_event_stream;
use super::upstream::Pool;

/// How often a waiting client hears that its call still waits.
pub const WAITING_NOTICE_EVERY: Duration = Duration::from_secs(10);

/// Frames between the waiting task and the client's connection.
const FRAMES: usize = 16;

pub(super) fn reply(
    relay: Arc<Relay>,
    pool: Pool,
    exchange: Exchange<'static>,
    reply_id: Option<Box<RawValue>>,
    held: Box<Held>,
    progress_token: Option<Box<RawValue>>,
) -> Response {
    let (frames, received) = mpsc::channel::<Bytes>(FRAMES);
    tokio::spawn(async move {
        let ticket = held.ticket().to_owned();
        let resolved = held.resolved();
        tokio::pin!(resolved);
        let mut notices = tokio::time::interval(WAITING_NOTICE_EVERY);
        let mut sent = 0u64;
        let outcome = loop {
            tokio::select! {
                outcome = &mut resolved => break outcome,
                _ = notices.tick() => {
                    let notice = waiting_notice(progress_token.as_deref(), &ticket, sent);
                    sent += 1;
                    // A client gone: dropping the wait drops the held call.
                    if frames.send(notice).await.is_err() {
                        return;
                    }
                }
                () = frames.closed() => return,
            }
        };
        let answer = match outcome {
            Resolved::Forward(call) => {
                exchange
                    .send(
                        &relay,
                        &pool,
                        reply_id,
                        Some(Observer::tool_call(call)),
                        None,
                    )
                    .await
            }
            Resolved::Block(denial) => render::denial(reply_id.as_deref(), &denial),
        };
        relay_as_events(answer, &frames).await;
    });
    let body = stream::unfold(received, |mut received| async move {
        let frame = received.recv().await?;
        Some((Ok::<_, Infallible>(frame), received))
    });
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(CACHE_CONTROL, http::HeaderValue::from_static("no-cache"));
    response
}

/// A progress notification for the request's token, or a comment that
/// keeps the stream alive.
fn waiting_notice(token: Option<&RawValue>, ticket: &str, sent: u64) -> Bytes {
    let message = format!("Waiting for a human approval (ticket {ticket})");
    match token {
        Some(token) => {
            let notification = json!({
                "jsonrpc": "2.0",
                "method": "notifications/progress",
                "params": { "progressToken": token, "progress": sent, "message": message },
            });
            Bytes::from(format!("event: message\ndata: {notification}\n\n"))
        }
        None => Bytes::from(format!(": {message}\n\n")),
    }
}

/// The answer's events: an event stream's bytes as they come, any other
/// body as one `message` event (each of its lines a `data:` line, so a
/// multi-line JSON text arrives whole).
async fn relay_as_events(answer: Response, frames: &mpsc::Sender<Bytes>) {
    let streamed = is_event_stream(answer.headers());
    let mut body = answer.into_body().into_data_stream();
    if streamed {
        while let Some(Ok(chunk)) = body.next().await {
            if frames.send(chunk).await.is_err() {
                return;
            }
        }
        return;
    }
    let mut whole = Vec::new();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => whole.extend_from_slice(&chunk),
            Err(error) => {
                tracing::warn!(%error, "a held call's answer could not be read");
                return;
            }
        }
    }
    let text = String::from_utf8_lossy(&whole);
    let mut event = String::from("event: message\n");
    for line in text.lines() {
        event.push_str("data: ");
        event.push_str(line);
        event.push('\n');
    }
    event.push('\n');
    let _ = frames.send(Bytes::from(event)).await;
}
