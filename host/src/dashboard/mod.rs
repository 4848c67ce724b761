//! The operator listener (default 127.0.0.1:3100): `/api/health` is open;
//! every other `/api/*` route sits behind the bearer `api_secret`. The UI and
//! the operator API routes mount here as they are built. Errors are JSON
//! `{error, code}`.

mod approvals;
mod audit;
mod live;
mod tools;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::header::WWW_AUTHENTICATE;
use http::StatusCode;
use serde_json::json;

use tokio_util::sync::CancellationToken;

use crate::approvals::Approvals;
use crate::audit::query::AuditReader;
use crate::audit::Audit;
use crate::auth::BearerSecret;
use crate::config::Config;
use crate::pipeline::Active;
use crate::state::StateInspection;
use crate::tools::ToolCatalog;

struct Operator {
    /// `None` only in explicit open mode on a loopback host.
    secret: Option<BearerSecret>,
    started: tokio::time::Instant,
    /// Read-only access to the audit trail at `audit.path`.
    audit: Arc<AuditReader>,
    /// The records being written, for the live feed.
    live: Arc<Audit>,
    /// Governance state, for `/api/limits`.
    state: Arc<dyn StateInspection>,
    /// The chain in force, whose stages describe their keys.
    pipeline: Active,
    /// Held calls' tickets.
    approvals: Option<Arc<Approvals>>,
    /// The upstream's tools: baselines and drift.
    tools: Arc<ToolCatalog>,
    /// `dashboard.sse_heartbeat_interval`.
    heartbeat: std::time::Duration,
    /// Ends live streams at shutdown.
    shutdown: CancellationToken,
}

/// The operator routes. `audit` is the writer whose records the live feed
/// sends; `state` is what `/api/limits` shows, labelled by what `pipeline`'s
/// stages say of their keys; `shutdown` ends live streams.
pub fn router(
    config: &Config,
    audit: Arc<Audit>,
    state: Arc<dyn StateInspection>,
    pipeline: Active,
    approvals: Option<Arc<Approvals>>,
    tools: Arc<ToolCatalog>,
    shutdown: CancellationToken,
) -> Router {
    let state = Arc::new(Operator {
        secret: config
            .dashboard
            .api_secret
            .as_ref()
            .map(|s| BearerSecret::new(s.expose())),
        started: tokio::time::Instant::now(),
        audit: Arc::new(AuditReader::new(&config.audit.path)),
        live: audit,
        state,
        pipeline,
        approvals,
        tools,
        heartbeat: config.dashboard.sse_heartbeat_interval,
        shutdown,
    });
    let protected = Router::new()
        .route("/api/{*rest}", axum::routing::any(not_found))
        .merge(approvals::routes())
        .merge(audit::routes())
        .merge(live::routes())
        .merge(tools::routes())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_secret,
        ));
    Router::new()
        .route("/api/health", get(health))
        .merge(protected)
        .fallback(not_found)
        .with_state(state)
}

async fn health(State(state): State<Arc<Operator>>) -> Json<serde_json::Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime": state.started.elapsed().as_secs(),
        // Times a call waited for room in the audit writer's queue (the
        // writer fell behind); records are never dropped.
        "audit": { "queue_full_waits": state.live.full_waits() },
    }))
}

async fn require_secret(
    State(state): State<Arc<Operator>>,
    request: Request,
    next: Next,
) -> Response {
    match &state.secret {
        Some(secret) if !secret.admits(request.headers()) => (
            StatusCode::UNAUTHORIZED,
            [(WWW_AUTHENTICATE, "Bearer")],
            Json(json!({ "error": "Unauthorized", "code": "unauthorized" })),
        )
            .into_response(),
        _ => next.run(request).await,
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": "Not found", "code": "not_found" })),
    )
        .into_response()
}
