//! The SDK sideband listener (default 127.0.0.1:3200, when `sdk.enabled`).
//!
//! Only local processes holding the per-boot token may use it: any request
//! carrying an `Origin` header is refused (a browser page must never reach
//! it), and every route but `/healthz` needs `Authorization: Bearer <token>`.
//! The evidence and context routes mount here as they are built.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::header::ORIGIN;
use http::{Method, StatusCode};
use serde_json::json;

use crate::auth::BearerSecret;

/// Largest request body the sideband accepts.
const MAX_BODY_BYTES: usize = 1024 * 1024;

pub fn router(token: &str) -> Router {
    let secret = Arc::new(BearerSecret::new(token));
    let protected = Router::new()
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
