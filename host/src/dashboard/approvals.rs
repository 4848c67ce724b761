//! The approval routes, in the original's shapes: `GET /api/approvals`,
//! `GET /api/approvals/:id`, `POST /api/approvals/:id/{approve,deny,break-glass}`.
//! `resolved_by` is the name the request gives (the original's contract);
//! the ticket also records which credential authenticated the request.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Extension;
use axum::{Json, Router};
use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Map, Value};

use super::session::Access;
use super::Operator;
use crate::approvals::{Resolution, ResolveError, Resolver, Status};

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

pub(super) fn routes() -> Router<Arc<Operator>> {
    Router::new()
        .route("/api/approvals", get(list))
        .route("/api/approvals/{id}", get(one))
        .route("/api/approvals/{id}/approve", post(approve))
        .route("/api/approvals/{id}/deny", post(deny))
        .route("/api/approvals/{id}/break-glass", post(break_glass))
}

async fn list(
    State(op): State<Arc<Operator>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    // As in the original: an unknown status is ignored, the limit clamped.
    let status = query.get("status").and_then(|s| Status::parse(s));
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(DEFAULT_LIMIT)
        .clamp(1, MAX_LIMIT);
    let offset = query
        .get("offset")
        .and_then(|o| o.parse::<usize>().ok())
        .unwrap_or(0);
    let (data, total) = match &op.approvals {
        Some(approvals) => approvals.list(status, limit, offset),
        None => (Vec::new(), 0),
    };
    Json(json!({ "data": data, "total": total, "limit": limit, "offset": offset })).into_response()
}

async fn one(State(op): State<Arc<Operator>>, Path(id): Path<String>) -> Response {
    match op.approvals.as_ref().and_then(|a| a.get(&id)) {
        Some(ticket) => Json(json!({ "data": ticket })).into_response(),
        None => not_found(),
    }
}

async fn approve(
    State(op): State<Arc<Operator>>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body = match read(&body, &[("approved_by", true)]) {
        Ok(body) => body,
        Err(error) => return bad_request(error),
    };
    let by = resolver(access, &body, "approved_by");
    resolve(&op, &id, Resolution::Approved, by)
}

async fn deny(
    State(op): State<Arc<Operator>>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body = match read(&body, &[("denied_by", true), ("reason", false)]) {
        Ok(body) => body,
        Err(error) => return bad_request(error),
    };
    let reason = body
        .get("reason")
        .and_then(Value::as_str)
        .filter(|r| !r.trim().is_empty())
        .map(str::to_owned);
    let by = resolver(access, &body, "denied_by");
    resolve(&op, &id, Resolution::Denied { reason }, by)
}

async fn break_glass(
    State(op): State<Arc<Operator>>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body = match read(&body, &[("approved_by", true), ("reason", true)]) {
        Ok(body) => body,
        Err(error) => return bad_request(error),
    };
    let reason = text(&body, "reason");
    let by = resolver(access, &body, "approved_by");
    resolve(&op, &id, Resolution::BreakGlass { reason }, by)
}

/// The name the request gives, and the credential that admitted it.
fn resolver(access: Access, body: &Map<String, Value>, field: &str) -> Resolver {
    Resolver {
        name: text(body, field),
        credential: access.credential().into(),
    }
}

fn resolve(op: &Operator, id: &str, resolution: Resolution, by: Resolver) -> Response {
    let Some(approvals) = &op.approvals else {
        return not_found();
    };
    match approvals.resolve(id, resolution, by) {
        Ok(()) => Json(json!({ "ok": true })).into_response(),
        Err(ResolveError::NotFound) => not_found(),
        Err(ResolveError::AlreadyResolved(status)) => (
            StatusCode::CONFLICT,
            Json(json!({ "error": "Ticket already resolved", "status": status.as_str() })),
        )
            .into_response(),
    }
}

/// The JSON object body, with each `(field, required)` a string (required
/// ones non-empty); otherwise the original's 400 body.
pub(super) fn read(body: &[u8], fields: &[(&str, bool)]) -> Result<Map<String, Value>, Value> {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) else {
        return Err(json!({ "error": "Invalid JSON" }));
    };
    let details: Vec<Value> = fields
        .iter()
        .filter_map(|&(field, required)| {
            let message = match object.get(field) {
                None | Some(Value::Null) if required => "Required",
                None | Some(Value::Null) => return None,
                Some(Value::String(s)) if required && s.trim().is_empty() => "Must not be empty",
                Some(Value::String(_)) => return None,
                Some(_) => "Expected a string",
            };
            Some(json!({ "path": [field], "message": message }))
        })
        .collect();
    if details.is_empty() {
        Ok(object)
    } else {
        Err(json!({ "error": "Validation error", "details": details }))
    }
}

pub(super) fn text(body: &Map<String, Value>, field: &str) -> String {
    body.get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_owned()
}

pub(super) fn bad_request(body: Value) -> Response {
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn not_found() -> Response {
    super::error(StatusCode::NOT_FOUND, "Ticket not found")
}
