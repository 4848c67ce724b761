//! The upstream's tools as Helio baselined them: `GET /api/tools` (each
//! tool's baseline fingerprint, who accepted it and when, and its drift),
//! and `POST /api/tools/accept`, which makes the drifted tools' current
//! definitions their new baselines (audited with the name the request
//! gives, as approvals are).

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Value};

use super::approvals::{bad_request, read, text};
use super::Operator;
use crate::tools::AcceptError;

pub(super) fn routes() -> Router<Arc<Operator>> {
    Router::new()
        .route("/api/tools", get(list))
        .route("/api/tools/accept", post(accept))
}

async fn list(State(op): State<Arc<Operator>>) -> Response {
    Json(json!({ "data": op.tools.describe() })).into_response()
}

/// `{"accepted_by": "…", "tools": ["name", …]}`; without `tools`, every
/// drifted tool is accepted.
async fn accept(State(op): State<Arc<Operator>>, body: Bytes) -> Response {
    let body = match read(&body, &[("accepted_by", true)]) {
        Ok(body) => body,
        Err(error) => return bad_request(error),
    };
    let names = match body.get("tools") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(names)) if names.iter().all(Value::is_string) => names
            .iter()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect(),
        Some(_) => {
            return bad_request(json!({
                "error": "Validation error",
                "details": [{ "path": ["tools"], "message": "Expected an array of tool names" }],
            }))
        }
    };
    match op.tools.accept(&names, &text(&body, "accepted_by")) {
        Ok(accepted) => Json(json!({ "accepted": accepted })).into_response(),
        Err(error @ AcceptError::Unknown(_)) => {
            super::error(StatusCode::NOT_FOUND, error.to_string())
        }
        Err(error @ AcceptError::Duplicate(_)) => {
            super::error(StatusCode::CONFLICT, error.to_string())
        }
    }
}
