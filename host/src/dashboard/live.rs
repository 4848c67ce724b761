//! The live operator routes: `GET /api/events` (the live feed: the
//! original's events, see [`super::events`], each with a unique `id:`, and
//! heartbeats), `GET /api/limits` (the rate and spend windows as they
//! stand) and `GET /api/evidence/:session_id`.
//!
//! Each live-feed client has its own producer task writing frames into a
//! small queue the response body drains. A client that stops reading fills
//! the queue; when no frame could be written for three heartbeats, the
//! producer gives up and the stream ends (the original's stale sweep), so a
//! vanished dashboard holds no subscription.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use futures_util::stream;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::StatusCode;
use serde_json::{json, Map, Value};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;
use tokio::sync::mpsc;

use super::events::{self, limit_key};
use super::Operator;
use crate::pipeline::Pipeline;
use crate::plugins::checks::decimal_json;
use crate::state::{now_ms, WindowSnapshot};
use crate::time::iso_utc;

/// Frames a client may have unread before its producer waits.
const QUEUED_FRAMES: usize = 64;
/// Heartbeats without a frame written before a client is dropped.
const STALE_HEARTBEATS: u32 = 3;

pub(super) fn routes() -> Router<Arc<Operator>> {
    Router::new()
        .route("/api/events", get(events))
        .route("/api/limits", get(limits))
        .route("/api/evidence/{session_id}", get(evidence))
}

async fn events(State(op): State<Arc<Operator>>) -> Response {
    let (frames, queue) = mpsc::channel::<Bytes>(QUEUED_FRAMES);
    tokio::spawn(produce(op, frames));
    let body = stream::unfold(queue, |mut queue| async move {
        let frame = queue.recv().await?;
        Some((Ok::<_, Infallible>(frame), queue))
    });
    (
        [
            (CONTENT_TYPE, "text/event-stream"),
            (CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// Writes one client's frames until it goes, goes stale, or Helio stops:
/// a heartbeat at once and every `sse_heartbeat_interval`, and the events
/// of each record written and each approval ticket change.
async fn produce(op: Arc<Operator>, out: mpsc::Sender<Bytes>) {
    let mut records = op.live.subscribe();
    let mut tickets = op.approvals.as_ref().map(|a| a.subscribe());
    let mut heartbeat = tokio::time::interval(op.heartbeat);
    // Beats missed while a slow client was being waited on are not sent
    // in a burst afterwards.
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let patience = op.heartbeat.saturating_mul(STALE_HEARTBEATS);
    loop {
        let frames = tokio::select! {
            () = op.shutdown.cancelled() => return,
            () = out.closed() => return,
            _ = heartbeat.tick() => vec![heartbeat_frame()],
            received = records.recv() => match received {
                Ok(record) => record_frames(&op, &record),
                Err(RecvError::Lagged(missed)) => vec![op.frame("lagged", &json!({ "missed": missed }))],
                Err(RecvError::Closed) => return,
            },
            received = next_ticket_event(&mut tickets) => match received {
                Ok((name, data)) => vec![op.frame_text(name, &data)],
                Err(RecvError::Lagged(missed)) => vec![op.frame("lagged", &json!({ "missed": missed }))],
                Err(RecvError::Closed) => return,
            },
        };
        for frame in frames {
            if !write(&out, frame, patience).await {
                return;
            }
        }
    }
}

/// False when the client is gone or has read nothing for `patience`.
async fn write(out: &mpsc::Sender<Bytes>, frame: Bytes, patience: Duration) -> bool {
    match tokio::time::timeout(patience, out.send(frame)).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            tracing::info!("a live-feed client read nothing for three heartbeats; dropped");
            false
        }
    }
}

fn heartbeat_frame() -> Bytes {
    Bytes::from(format!(
        "event: heartbeat\ndata: {}\n\n",
        json!({ "timestamp": iso_utc(now_ms()) })
    ))
}

impl Operator {
    /// A frame with the next id.
    fn frame(&self, name: &str, data: &Value) -> Bytes {
        self.frame_text(name, &data.to_string())
    }

    fn frame_text(&self, name: &str, data: &str) -> Bytes {
        let id = self.next_event_id.fetch_add(1, Ordering::Relaxed);
        Bytes::from(format!("id: {id}\nevent: {name}\ndata: {data}\n\n"))
    }
}

fn record_frames(op: &Operator, record: &str) -> Vec<Bytes> {
    let Ok(record) = serde_json::from_str::<Map<String, Value>>(record) else {
        return Vec::new();
    };
    events::of_record(&record, &op.pipeline.current())
        .into_iter()
        .map(|(name, data)| op.frame(name, &data))
        .collect()
}

/// The next approval event; never, without a ticket registry.
async fn next_ticket_event(
    tickets: &mut Option<Receiver<(&'static str, Arc<str>)>>,
) -> Result<(&'static str, Arc<str>), RecvError> {
    match tickets {
        Some(tickets) => tickets.recv().await,
        None => std::future::pending().await,
    }
}

/// `GET /api/evidence/:session_id`: the session's live evidence, context and
/// completed tools, as the SDK sideband shows them; an unknown session has
/// them empty.
async fn evidence(State(op): State<Arc<Operator>>, Path(raw): Path<String>) -> Response {
    let session = raw.trim();
    if session.is_empty() || session.chars().count() > crate::sideband::MAX_SESSION_CHARS {
        let error = format!(
            "session_id must be a non-empty string of at most {} characters",
            crate::sideband::MAX_SESSION_CHARS
        );
        return super::error(StatusCode::BAD_REQUEST, error);
    }
    match op.state.session_state(session, now_ms()) {
        Ok(state) => {
            Json(json!({ "data": crate::sideband::state_json(session, state) })).into_response()
        }
        Err(error) => super::state_unavailable("GET /api/evidence", &error),
    }
}

/// `GET /api/limits`: the original's `rate_limits` and `spend_limits`,
/// each entry `{key, current|current_spend, limit, window_ms, reset_at_ms}`
/// plus the rule, stage and bucket it belongs to; Helio adds the budgets'
/// pots and the windows of other stages' own kinds.
async fn limits(State(op): State<Arc<Operator>>) -> Response {
    let now = now_ms();
    let windows = match op.state.windows(now) {
        Ok(windows) => windows,
        Err(error) => return super::state_unavailable("GET /api/limits", &error),
    };
    let mut rate = Vec::new();
    let mut spend = Vec::new();
    let mut budgets = Vec::new();
    let mut other = Vec::new();
    let pipeline = op.pipeline.current();
    for window in windows {
        match describe(&pipeline, &window) {
            Some(("rate", entry)) => rate.push(entry),
            Some(("spend", entry)) => spend.push(entry),
            Some(("budget", entry)) => budgets.push(entry),
            _ => other.push(json!({
                "key": window.key,
                "total": decimal_json(&window.total),
                "limit": window.limit.as_ref().map(decimal_json),
                "window_ms": window.window_ms,
                "reset_at_ms": window.reset_at_ms,
            })),
        }
    }
    Json(json!({
        "rate_limits": rate,
        "spend_limits": spend,
        "budgets": budgets,
        "other": other,
    }))
    .into_response()
}

/// A window, described by the rule or budget it belongs to, as its stage
/// described its keys.
fn describe(pipeline: &Pipeline, window: &WindowSnapshot) -> Option<(&'static str, Value)> {
    let described = pipeline.describe(&window.key)?;
    let kind = described.kind()?;
    let mut entry = described.describe();
    let limit = window.limit.as_ref().map(decimal_json);
    let amount = decimal_json(&window.total);
    match kind {
        "rate" => {
            entry.insert(
                "key".into(),
                limit_key(described.bucket, &described.family.name).into(),
            );
            entry.insert("current".into(), amount);
        }
        "spend" => {
            let rule = &described.family.name;
            entry.insert("key".into(), limit_key(described.bucket, rule).into());
            entry.insert("current_spend".into(), amount);
            entry.insert("currency".into(), pipeline.spend_currency(rule).into());
        }
        _ => {
            entry.insert("spent".into(), amount);
        }
    }
    entry.insert("limit".into(), limit.into());
    entry.insert("window_ms".into(), window.window_ms.into());
    entry.insert("reset_at_ms".into(), window.reset_at_ms.into());
    Some((kind, entry.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_client_that_reads_nothing_is_given_up_after_the_patience() {
        let (out, mut queue) = mpsc::channel::<Bytes>(2);
        let patience = Duration::from_millis(50);
        assert!(write(&out, Bytes::from_static(b"1"), patience).await);
        assert!(write(&out, Bytes::from_static(b"2"), patience).await);
        // The queue is full and nobody reads: stale.
        assert!(!write(&out, Bytes::from_static(b"3"), patience).await);
        // A reader makes room: frames flow again.
        assert_eq!(queue.recv().await.as_deref(), Some(&b"1"[..]));
        assert!(write(&out, Bytes::from_static(b"4"), patience).await);
        drop(queue);
        assert!(
            !write(&out, Bytes::from_static(b"5"), patience).await,
            "gone"
        );
    }
}
