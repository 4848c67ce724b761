//! The operator listener (default 127.0.0.1:3100): the dashboard UI and
//! the operator API, a drop-in for the original's (spec §10). `/api/health`
//! and sign-in are open; every other `/api/*` route admits the bearer
//! `api_secret` or a signed-in browser's session (see [`session`]). Errors
//! are JSON `{error, details?}`; an unknown `/api/*` path is a JSON 404,
//! never the UI's page. Every response carries a strict
//! Content-Security-Policy.

mod approvals;
mod audit;
mod budgets;
mod events;
mod live;
mod session;
mod tools;
mod ui;

use std::sync::Arc;

use axum::extract::State;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::header::{
    CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{HeaderValue, StatusCode};
use serde_json::json;

use tokio_util::sync::CancellationToken;

use crate::approvals::Approvals;
use crate::audit::query::AuditReader;
use crate::audit::Audit;
use crate::config::Config;
use crate::pipeline::Active;
use crate::state::StateInspection;
use crate::tools::{AdapterTools, ToolCatalog};

struct Operator {
    /// Who may use the API: the secret, signed-in browsers.
    gate: session::Gate,
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
    /// The adapters the adapter API has seen (with the SDK sideband on).
    evaluations: Option<Arc<crate::sideband::Evaluations>>,
    /// Their tools (with the SDK sideband on).
    adapter_tools: Option<Arc<AdapterTools>>,
    /// `dashboard.sse_heartbeat_interval`.
    heartbeat: std::time::Duration,
    /// The next live-feed frame's `id:`, unique across clients.
    next_event_id: std::sync::atomic::AtomicU64,
    /// Ends live streams at shutdown.
    shutdown: CancellationToken,
}

/// What the operator listener shows and acts on.
pub struct Sources {
    /// The writer whose records the live feed sends.
    pub audit: Arc<Audit>,
    /// What `/api/limits` and `/api/budgets` show, labelled by what the
    /// `pipeline`'s stages say of their keys.
    pub state: Arc<dyn StateInspection>,
    pub pipeline: Active,
    pub approvals: Option<Arc<Approvals>>,
    pub tools: Arc<ToolCatalog>,
    /// The adapter API's (with the SDK sideband on).
    pub evaluations: Option<Arc<crate::sideband::Evaluations>>,
    pub adapter_tools: Option<Arc<AdapterTools>>,
}

/// The operator routes; `shutdown` ends live streams.
pub fn router(config: &Config, sources: Sources, shutdown: CancellationToken) -> Router {
    let Sources {
        audit,
        state,
        pipeline,
        approvals,
        tools,
        evaluations,
        adapter_tools,
    } = sources;
    let state = Arc::new(Operator {
        gate: session::Gate::new(
            config
                .dashboard
                .api_secret
                .as_ref()
                .map(|s| s.expose().as_str()),
        ),
        started: tokio::time::Instant::now(),
        audit: Arc::new(AuditReader::new(&config.audit.path)),
        live: audit,
        state,
        pipeline,
        approvals,
        tools,
        evaluations,
        adapter_tools,
        heartbeat: config.dashboard.sse_heartbeat_interval,
        next_event_id: std::sync::atomic::AtomicU64::new(1),
        shutdown,
    });
    let scrape = Router::new().route("/metrics", get(metrics));
    let (protected, public) = match config.dashboard.metrics_public {
        true => (Router::new(), scrape),
        false => (scrape, Router::new()),
    };
    let protected = protected
        .route("/api/{*rest}", axum::routing::any(not_found))
        .merge(approvals::routes())
        .merge(audit::routes())
        .merge(budgets::routes())
        .merge(live::routes())
        .merge(tools::routes())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            session::require_access,
        ));
    Router::new()
        .route("/api/health", get(health))
        .merge(public)
        .merge(session::routes())
        .merge(protected)
        .merge(ui::routes())
        .fallback(not_found)
        .layer(middleware::map_response(protective_headers))
        .with_state(state)
}

/// What the page may load: its own files and API, nothing inline, nothing
/// from another host; and no framing, no sniffing, no referrer.
const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

async fn protective_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
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

/// `GET /metrics`: Prometheus metrics (OpenMetrics text).
async fn metrics(State(state): State<Arc<Operator>>) -> Response {
    let pending = state.approvals.as_ref().map_or(0, |approvals| {
        approvals
            .list(Some(crate::approvals::Status::Pending), 0, 0)
            .1
    });
    (
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics::get().encode(pending),
    )
        .into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Not found")
}

/// `{error}` with a status: the shape of the operator API's errors.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Governance state could not be read: logged, and `503 state_unavailable`.
fn state_unavailable(route: &str, error: &crate::state::StateError) -> Response {
    tracing::error!(%error, route, "governance state could not be read");
    self::error(StatusCode::SERVICE_UNAVAILABLE, "state_unavailable")
}
