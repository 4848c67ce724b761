//! The SDK sideband listener (default 127.0.0.1:3200, when `sdk.enabled`).
//!
//! Only local processes holding the per-boot token may use it: any request
//! carrying an `Origin` header is refused (a browser page must never reach
//! it), and every route but `/healthz` needs `Authorization: Bearer <token>`.
//!
//! Behind the token: `POST /evidence` and `POST /context` (what the SDK
//! attests for a session) and `GET /session/{session_id}/state`. Every
//! answer, errors included, is a JSON object with `error` on failure.

mod body;
mod routes;

pub(crate) use body::MAX_SESSION_CHARS;
pub(crate) use routes::state_json;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::header::ORIGIN;
use http::{Method, StatusCode};
use serde_json::json;

use crate::auth::BearerSecret;
use crate::pipeline::Active;
use crate::state::StateBackend;
use routes::{Allowlist, Sideband};

/// Largest request body the sideband accepts.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// `state` is where evidence and context go; `pipeline` says which
/// evidence keys the policy in force uses (the allowlist, read per request
/// so a hot reload applies at once).
pub fn router(token: &str, state: Arc<dyn StateBackend>, pipeline: Active) -> Router {
    let allowlist: Allowlist = Arc::new(move || pipeline.current().evidence_keys().clone());
    build(token, Sideband::new(state, allowlist))
}

fn build(token: &str, sideband: Arc<Sideband>) -> Router {
    let secret = Arc::new(BearerSecret::new(token));
    let protected = Router::new()
        .route("/evidence", post(routes::post_evidence))
        .route("/context", post(routes::post_context))
        .route("/session/{session_id}/state", get(routes::session_state))
        .with_state(sideband)
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(secret, require_token));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(protected)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(refuse_browsers))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn refuse_browsers(request: Request, next: Next) -> Response {
    if request.headers().contains_key(ORIGIN) || request.method() == Method::OPTIONS {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({ "error": "Cross-origin requests are not allowed" })),
        )
            .into_response();
    }
    next.run(request).await
}

async fn require_token(
    State(secret): State<Arc<BearerSecret>>,
    request: Request,
    next: Next,
) -> Response {
    if !secret.admits(request.headers()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "Unauthorized" })),
        )
            .into_response();
    }
    next.run(request).await
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({ "error": "Not found" }))).into_response()
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({ "error": "Method not allowed" })),
    )
        .into_response()
}

#[cfg(test)]
mod tests;
