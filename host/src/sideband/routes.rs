//! The SDK routes: `POST /evidence`, `POST /context`,
//! `GET /session/{session_id}/state`. Wire shapes are those of the original
//! Helio, which the published Python SDK (`helio-client`) parses.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Map, Value};

use super::body::{self, ApiError, Fields};
use crate::state::{now_ms, Evidence, SessionState, StateBackend};
use crate::time::iso_utc;

/// How many allowed keys an allowlist rejection lists.
const ALLOWLIST_PREVIEW: usize = 20;
/// Distinct rejected keys that get their own warning; past this, rejections
/// are counted and summarised (a misbehaving client cannot flood the log or
/// grow the dedup set without bound).
const MAX_WARNED_KEYS: usize = 64;
/// A summary line every this many suppressed rejections.
const SUPPRESSED_SUMMARY_EVERY: u64 = 100;
/// Longest rejected key quoted in a log line, in characters.
const LOGGED_KEY_CHARS: usize = 128;

/// The evidence keys the policy in force accepts (read per request: it
/// changes on hot reload).
pub(super) type Allowlist = Arc<dyn Fn() -> Arc<BTreeSet<String>> + Send + Sync>;

/// What the SDK routes share.
pub(super) struct Sideband {
    state: Arc<dyn StateBackend>,
    allowlist: Allowlist,
    rejections: RejectionLog,
}

impl Sideband {
    pub fn new(state: Arc<dyn StateBackend>, allowlist: Allowlist) -> Arc<Self> {
        Arc::new(Self {
            state,
            allowlist,
            rejections: RejectionLog::default(),
        })
    }

    /// The evidence keys the policy in force accepts.
    pub fn allowlist(&self) -> Arc<BTreeSet<String>> {
        (self.allowlist)()
    }

    /// Runs a state-store call off the async workers (the store may write
    /// to SQLite before it returns).
    pub(super) async fn blocking<T: Send + 'static>(
        &self,
        route: &'static str,
        f: impl FnOnce(&dyn StateBackend) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || f(state.as_ref()))
            .await
            .map_err(|error| {
                tracing::error!(%error, route, "sideband state task failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({ "error": "internal_error" }),
                )
            })
    }
}

fn created() -> Response {
    (StatusCode::CREATED, Json(json!({ "ok": true }))).into_response()
}

fn write_failed(route: &'static str, error: &dyn std::fmt::Display) -> ApiError {
    tracing::error!(%error, route, "could not store sideband state; the client was told to retry");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({ "error": "state_write_failed" }),
    )
}

/// `POST /evidence {session_id, tool_name, evidence_key, evidence_data,
/// ttl_seconds?}` → `201 {"ok":true}`.
pub(super) async fn post_evidence(
    State(sideband): State<Arc<Sideband>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mut fields = Fields::parse(body)?;
    let session = fields.session_id()?;
    let tool_name = fields.name("tool_name")?;
    let key = fields.name("evidence_key")?;
    let data = fields.take_value("evidence_data")?;
    let ttl = fields.ttl_seconds()?;

    let allowed = (sideband.allowlist)();
    if !allowed.contains(&key) {
        return Err(sideband.rejections.reject(&key, &allowed));
    }

    let recorded_ms = now_ms();
    let evidence = Evidence {
        key,
        data,
        tool_name,
        recorded_ms,
        expires_ms: recorded_ms.saturating_add(ttl * 1000),
    };
    sideband
        .blocking("/evidence", move |state| {
            state.record_evidence(&session, evidence)
        })
        .await?
        .map_err(|error| write_failed("/evidence", &error))?;
    Ok(created())
}

/// `POST /context {session_id, key, value}` → `201 {"ok":true}`. Context is
/// informational: policy never reads it.
pub(super) async fn post_context(
    State(sideband): State<Arc<Sideband>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mut fields = Fields::parse(body)?;
    let session = fields.session_id()?;
    let key = fields.name("key")?;
    let value = fields.take_value("value")?;
    sideband
        .blocking("/context", move |state| {
            state.set_context(&session, &key, value, crate::state::now_ms())
        })
        .await?
        .map_err(|error| write_failed("/context", &error))?;
    Ok(created())
}

/// `GET /session/{session_id}/state` → the session's live evidence, its
/// context and its completed tools; an unknown session has them empty.
pub(super) async fn session_state(
    State(sideband): State<Arc<Sideband>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(raw) = path.map_err(|rejection| {
        ApiError::invalid(
            "session_id",
            format!("invalid session id in the path: {rejection}"),
        )
    })?;
    let session = body::session_id(&raw)?.to_owned();
    let lookup = session.clone();
    let state = sideband
        .blocking("/session/state", move |state| {
            state.session_state(&lookup, now_ms())
        })
        .await?
        .map_err(|error| {
            tracing::error!(%error, "could not read sideband state");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "error": "state_unavailable" }),
            )
        })?;
    Ok(Json(state_json(&session, state)).into_response())
}

/// The payload the SDK's `_parse_session_state` splats into its frozen
/// dataclasses: entries carry exactly these fields, no more. The operator
/// API shows a session the same way (`GET /api/evidence/:session_id`).
pub(crate) fn state_json(session: &str, state: SessionState) -> Value {
    let evidence: Map<String, Value> = state
        .evidence
        .into_iter()
        .map(|e| {
            let entry = json!({
                "evidence_key": e.key,
                "data": e.data,
                "tool_name": e.tool_name,
                "timestamp": iso_utc(e.recorded_ms),
                "expires_at": e.expires_ms,
            });
            (e.key, entry)
        })
        .collect();
    let context: Map<String, Value> = state.context.into_iter().collect();
    let completed: Vec<Value> = state
        .completed
        .into_iter()
        .map(|(tool, c)| {
            json!({
                "tool_name": tool,
                "timestamp": iso_utc(c.at_ms),
                "succeeded": c.succeeded,
            })
        })
        .collect();
    json!({
        "session_id": session,
        "evidence": evidence,
        "context": context,
        "completed_tools": completed,
    })
}

/// Warns about allowlist rejections once per key.
#[derive(Default)]
struct RejectionLog {
    warned: Mutex<HashSet<String>>,
    suppressed: AtomicU64,
}

impl RejectionLog {
    /// The 400 for `key`, logging it the first time it is seen.
    fn reject(&self, key: &str, allowed: &BTreeSet<String>) -> ApiError {
        let preview: Vec<&String> = allowed.iter().take(ALLOWLIST_PREVIEW).collect();
        let truncated = allowed.len() > preview.len();
        self.warn(key, &preview, allowed.len());
        ApiError::new(
            StatusCode::BAD_REQUEST,
            json!({
                "error": "Evidence key is not in policy allowlist (no rule's evidence.requires names it)",
                "code": "evidence_key_not_in_policy_allowlist",
                "key": key,
                "allowed_keys": preview,
                "allowed_key_count": allowed.len(),
                "truncated": truncated,
            }),
        )
    }

    fn warn(&self, key: &str, preview: &[&String], count: usize) {
        let first_time = {
            let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
            if warned.contains(key) {
                return;
            }
            warned.len() < MAX_WARNED_KEYS && warned.insert(key.to_owned())
        };
        if first_time {
            let shown: String = key.chars().take(LOGGED_KEY_CHARS).collect();
            tracing::warn!(
                key = ?shown,
                allowed = ?preview,
                allowed_count = count,
                "SDK evidence rejected: the key is not named by any rule's evidence.requires; add it to a rule or fix the SDK call site (logged once per key)"
            );
            return;
        }
        let suppressed = self.suppressed.fetch_add(1, Ordering::Relaxed) + 1;
        if suppressed == 1 || suppressed.is_multiple_of(SUPPRESSED_SUMMARY_EVERY) {
            tracing::warn!(
                distinct_keys_logged = MAX_WARNED_KEYS,
                suppressed,
                "SDK evidence rejections: further unknown keys are no longer logged individually"
            );
        }
    }
}
