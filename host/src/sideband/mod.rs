//! The SDK sideband listener (default 127.0.0.1:3200, when `sdk.enabled`).
//!
//! Only local processes holding the per-boot token may use it: any request
//! carrying an `Origin` header is refused (a browser page must never reach
//! it), and every route but `/healthz` needs `Authorization: Bearer <token>`.
//!
//! Behind the SDK token: `POST /evidence` and `POST /context` (what the SDK
//! attests for a session) and `GET /session/{session_id}/state`. Behind the
//! adapter token (each token opens only its own routes): the adapter API,
//! `POST /evaluate` and `POST /audit` ([`adapter`]). Every answer, errors
//! included, is a JSON object with `error` on failure.

mod adapter;
mod body;
mod evaluations;
mod held;
mod install;
mod routes;

pub use adapter::AdapterDoor;
pub(crate) use body::MAX_SESSION_CHARS;
pub use evaluations::Evaluations;
pub(crate) use routes::state_json;

/// The sideband's two bearer tokens.
pub struct Tokens {
    /// `HELIO_SDK_TOKEN`: evidence, context, session state.
    pub sdk: String,
    /// `HELIO_ADAPTER_TOKEN`: the adapter API.
    pub adapter: String,
}

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
pub fn router(
    tokens: &Tokens,
    state: Arc<dyn StateBackend>,
    pipeline: Active,
    adapter: AdapterDoor,
) -> Router {
    let allowlist: Allowlist = Arc::new(move || pipeline.current().evidence_keys().clone());
    let sideband = Sideband::new(state, allowlist);
    build(&tokens.sdk, sideband, Some((&tokens.adapter, adapter)))
}

/// The routes; the adapter API's only with its token and door.
fn build(sdk_token: &str, sideband: Arc<Sideband>, adapter: Option<(&str, AdapterDoor)>) -> Router {
    let sdk = Router::new()
        .route("/evidence", post(routes::post_evidence))
        .route("/context", post(routes::post_context))
        .route("/session/{session_id}/state", get(routes::session_state))
        .with_state(sideband.clone())
        .route_layer(middleware::from_fn_with_state(
            Arc::new(BearerSecret::new(sdk_token)),
            require_token,
        ));
    let mut routes = Router::new().route("/healthz", get(healthz)).merge(sdk);
    if let Some((token, door)) = adapter {
        routes = routes.merge(
            Router::new()
                .route("/evaluate", post(adapter::evaluate))
                .route("/audit", post(adapter::report))
                .route("/install-scan", post(adapter::install_scan))
                .route("/evaluation/{id}", get(held::evaluation))
                .route("/approval/{id}/resolve", post(held::resolve))
                .with_state(adapter::Adapter::new(door, sideband))
                .route_layer(middleware::from_fn_with_state(
                    Arc::new(BearerSecret::new(token)),
                    require_token,
                )),
        );
    }
    routes
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
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
