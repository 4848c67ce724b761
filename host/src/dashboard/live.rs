//! The live operator routes: `GET /api/events` (each audit record as a
//! server-sent event once it is written, approval tickets as they are
//! requested and resolved, heartbeats) and
//! `GET /api/limits` (the rate windows, spend ledgers and budget pots as
//! they stand).

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::StatusCode;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;

use super::Operator;
use crate::pipeline::Pipeline;
use crate::plugins::checks::decimal_json;
use crate::state::{now_ms, WindowSnapshot};
use crate::time::iso_utc;

pub(super) fn routes() -> Router<Arc<Operator>> {
    Router::new()
        .route("/api/events", get(events))
        .route("/api/limits", get(limits))
        .route("/api/evidence/{session_id}", get(evidence))
}

async fn events(State(op): State<Arc<Operator>>) -> Response {
    let records = op.live.subscribe();
    let tickets = op.approvals.as_ref().map(|a| a.subscribe());
    let mut heartbeat = tokio::time::interval(op.heartbeat);
    heartbeat.reset(); // the first beat after one interval, not at once
    let connected =
        stream::once(async { Ok::<_, Infallible>(Bytes::from_static(b": connected\n\n")) });
    let rest = stream::unfold(
        (records, tickets, heartbeat, op.shutdown.clone()),
        |(mut records, mut tickets, mut heartbeat, shutdown)| async move {
            let event = tokio::select! {
                () = shutdown.cancelled() => return None,
                _ = heartbeat.tick() => Bytes::from_static(b"event: heartbeat\ndata: {}\n\n"),
                received = records.recv() => match received {
                    Ok(record) => Bytes::from(format!("event: audit\ndata: {record}\n\n")),
                    Err(RecvError::Lagged(missed)) => lagged(missed),
                    Err(RecvError::Closed) => return None,
                },
                received = next_ticket_event(&mut tickets) => match received {
                    Ok((name, data)) => Bytes::from(format!("event: {name}\ndata: {data}\n\n")),
                    Err(RecvError::Lagged(missed)) => lagged(missed),
                    Err(RecvError::Closed) => return None,
                },
            };
            Some((Ok(event), (records, tickets, heartbeat, shutdown)))
        },
    );
    (
        [
            (CONTENT_TYPE, "text/event-stream"),
            (CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(connected.chain(rest)),
    )
        .into_response()
}

/// A subscriber too slow for the backlog is told how many events it
/// missed (records are in /api/audit, tickets in /api/approvals).
fn lagged(missed: u64) -> Bytes {
    Bytes::from(format!(
        "event: lagged\ndata: {}\n\n",
        json!({ "missed": missed })
    ))
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
        return (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response();
    }
    match op.state.session_state(session, now_ms()) {
        Ok(state) => {
            Json(json!({ "data": crate::sideband::state_json(session, state) })).into_response()
        }
        Err(error) => {
            tracing::error!(%error, "GET /api/evidence: governance state could not be read");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": "state_unavailable" })),
            )
                .into_response()
        }
    }
}

async fn limits(State(op): State<Arc<Operator>>) -> Response {
    let now = now_ms();
    let windows = match op.state.windows(now) {
        Ok(windows) => windows,
        Err(error) => {
            tracing::error!(%error, "GET /api/limits: governance state could not be read");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": "state_unavailable" })),
            )
                .into_response();
        }
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
                "total": number(&window),
                "window_seconds": window.window_ms.map(|w| w / 1000),
                "reset_at": window.reset_at_ms.map(iso_utc),
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
    let amount = if kind == "rate" {
        "current_calls"
    } else {
        "spent"
    };
    let mut entry = described.describe();
    entry.insert(amount.into(), number(window));
    entry.insert(
        "window_seconds".into(),
        window.window_ms.map(|w| w / 1000).into(),
    );
    entry.insert("reset_at".into(), window.reset_at_ms.map(iso_utc).into());
    Some((kind, entry.into()))
}

fn number(window: &WindowSnapshot) -> Value {
    decimal_json(&window.total)
}
