//! The upstream's tools as Helio baselined them: `GET /api/tools` (each
//! tool's baseline fingerprint, who accepted it and when, and its drift),
//! and `POST /api/tools/accept`, which makes the drifted tools' current
//! definitions their new baselines (audited with the name the request
//! gives, as approvals are). `origin` (query, or body field) picks an
//! adapter's tools instead of the upstream's.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Value};

use super::approvals::{bad_request, read, text};
use super::audit::ApiError;
use super::Operator;
use crate::audit::query::Params;
use crate::tools::{AcceptError, ToolCatalog};

pub(super) fn routes() -> Router<Arc<Operator>> {
    Router::new()
        .route("/api/tools", get(list))
        .route("/api/tools/accept", post(accept))
}

async fn list(
    State(op): State<Arc<Operator>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut params = Params::from_query(query.as_deref())?;
    let origin = params.word("origin")?;
    params.finish()?;
    let data = match catalog(&op, origin.as_deref()) {
        Some(catalog) => catalog.describe(),
        None => Vec::new(),
    };
    Ok(Json(json!({ "data": data })).into_response())
}

/// The catalog of `origin`: the upstream's for none or `mcp`, else the
/// adapter's (none before it sent a definition).
fn catalog(op: &Operator, origin: Option<&str>) -> Option<Arc<ToolCatalog>> {
    match origin {
        None | Some("mcp") => Some(op.tools.clone()),
        Some(origin) => op.adapter_tools.as_ref()?.get(origin),
    }
}

/// `{"accepted_by": "…", "tools": ["name", …]}`; without `tools`, every
/// drifted tool is accepted.
async fn accept(State(op): State<Arc<Operator>>, body: Bytes) -> Response {
    let body = match read(&body, &[("accepted_by", true), ("origin", false)]) {
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
    let origin = body.get("origin").and_then(Value::as_str);
    let Some(catalog) = catalog(&op, origin) else {
        let name = names.first().cloned().unwrap_or_default();
        return super::error(
            StatusCode::NOT_FOUND,
            AcceptError::Unknown(name).to_string(),
        );
    };
    match catalog.accept(&names, &text(&body, "accepted_by")) {
        Ok(accepted) => Json(json!({ "accepted": accepted })).into_response(),
        Err(error @ AcceptError::Unknown(_)) => {
            super::error(StatusCode::NOT_FOUND, error.to_string())
        }
        Err(error @ AcceptError::Duplicate(_)) => {
            super::error(StatusCode::CONFLICT, error.to_string())
        }
    }
}
