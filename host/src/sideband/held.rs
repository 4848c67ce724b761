//! Adapter evaluations held for a human approval.
//!
//! `/evaluate` answers `require_approval` with the ticket
//! (`approval {id, channel, timeout_ms, timeout_at, resolve_path,
//! status_path}`); the ticket goes where the approval router sends it, as
//! an MCP call's does, so an operator can decide on the dashboard, in
//! Slack or through a webhook. Meanwhile the evaluation's holds stay
//! reserved. The adapter learns the outcome from `GET /evaluation/:id`
//! (long-polled with `wait_ms`), and may decide itself — a framework with
//! its own approval prompt — with `POST /approval/:id/resolve`; the ticket
//! then says the adapter token resolved it. Approved, the evaluation is
//! allowed and waits for its report (`sdk.evaluation_ttl` from then);
//! anything else ends it blocked, with the feedback for the model.
//!
//! Only tickets of adapter evaluations can be resolved here: an MCP call's
//! ticket is the operator's (`409 not_a_native_ticket`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Value};

use super::adapter::{allowed, blocked, error, Adapter};
use super::body::{ApiError, Fields};
use super::evaluations::{Ending, Finished, Standing, Subject};
use crate::approvals::{Approvals, Resolution, ResolveError, Resolver, Status, Ticket};
use crate::audit::query::Params;
use crate::govern::Held;
use tokio::sync::broadcast::error::RecvError;

/// The longest a status request may wait for a change.
const MAX_WAIT_MS: u64 = 60_000;
/// How a ticket resolved here says who resolved it.
const CREDENTIAL: &str = "adapter_token";

/// Keeps a held evaluation (its id is its record's and its first
/// ticket's) until its tickets are resolved; its `/evaluate` answer.
pub(super) fn hold(adapter: &Adapter, held: Held, subject: Subject) -> Value {
    let id = held.ticket().to_owned();
    let decision = &held.approval().decision;
    let mut answer = json!({
        "evaluation_id": id,
        "decision": "require_approval",
        "reason": "approval_required",
        "matched_rule": decision.rule,
        "matched_rule_index": decision.rule_index,
    });
    if let Some(limits) = held.limits() {
        answer["limits"] = limits;
    }
    let ticket = adapter.door.approvals.as_ref().and_then(|a| a.get(&id));
    if let Some(ticket) = ticket {
        answer["approval"] = approval_json(&ticket);
    }
    let evaluations = adapter.door.evaluations.clone();
    let wait_id = id.clone();
    let wait = async move {
        match held.resolved_deferred().await {
            Ok(pending) => {
                let answer = allowed(&wait_id, &pending);
                evaluations.approved(&wait_id, pending, answer);
            }
            Err(denial) => {
                evaluations.unrun(
                    wait_id.clone(),
                    Ending::Approval,
                    blocked(&wait_id, &denial),
                );
            }
        }
    };
    adapter
        .door
        .evaluations
        .hold(id, subject, answer.clone(), wait);
    answer
}

/// A ticket as the adapter sees it.
fn approval_json(ticket: &Ticket) -> Value {
    json!({
        "id": ticket.id,
        "status": ticket.status.as_str(),
        "channel": ticket.channel_name,
        "timeout_ms": ticket.timeout_ms,
        "timeout_at": ticket.timeout_at,
        "resolve_path": format!("/approval/{}/resolve", ticket.id),
        "status_path": format!("/evaluation/{}", ticket.call_id),
    })
}

/// `GET /evaluation/:id[?wait_ms=N]` → where the evaluation stands:
/// `awaiting_approval` (with the ticket open now), `awaiting_report` (it
/// may run), `finished` (blocked or simulated: its final answer),
/// `reported` or `expired`. With `wait_ms` (at most 60 000), an evaluation
/// awaiting approval is answered when that changes (decided, or its next
/// ticket opened) or the time is up, whichever comes first; any other at
/// once.
pub(super) async fn evaluation(
    State(adapter): State<Arc<Adapter>>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let Path(id) = path.map_err(|rejection| {
        ApiError::invalid(
            "evaluation_id",
            format!("invalid evaluation id: {rejection}"),
        )
    })?;
    let wait_ms = Params::from_query(query.as_deref())
        .and_then(|mut params| {
            let wait = params.integer("wait_ms", 0, MAX_WAIT_MS)?;
            params.finish().map(|()| wait.unwrap_or(0))
        })
        .map_err(|e| ApiError::invalid(&e.parameter, e.to_string()))?;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
    let mut ticket_events = adapter.door.approvals.as_ref().map(|a| a.subscribe());
    let first = view(&adapter, &id).ok();
    loop {
        let changed = adapter.door.evaluations.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let now = view(&adapter, &id);
        let waiting = now
            .as_ref()
            .is_ok_and(|v| v["status"] == "awaiting_approval");
        if !waiting
            || now.as_ref().ok() != first.as_ref()
            || tokio::time::Instant::now() >= deadline
        {
            return now.map(|v| Json(v).into_response());
        }
        let ticket_event = async {
            match &mut ticket_events {
                // Any ticket's event: look again (lagging behind is fine).
                Some(events) => match events.recv().await {
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = changed => {}
            () = ticket_event => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// The evaluation's standing as `GET /evaluation/:id` answers it.
fn view(adapter: &Adapter, id: &str) -> Result<Value, ApiError> {
    let (status, mut answer) = match adapter.door.evaluations.standing(id) {
        Standing::Held(mut answer) => {
            // The ticket open now: a budget's may follow a rule's.
            let open = adapter
                .door
                .approvals
                .as_ref()
                .and_then(|a| a.open_ticket_of(id));
            if let Some(ticket) = open {
                answer["approval"] = approval_json(&ticket);
            }
            ("awaiting_approval", answer)
        }
        Standing::Allowed(answer) => ("awaiting_report", answer),
        Standing::Finished(Finished::Unrun { answer, .. }) => ("finished", answer),
        Standing::Finished(Finished::Reported {
            record_id, answer, ..
        }) => (
            "reported",
            json!({ "evaluation_id": id, "decision": "allow",
                    "audit_record_id": record_id, "report": answer }),
        ),
        Standing::Finished(Finished::Expired) => (
            "expired",
            json!({ "evaluation_id": id, "decision": "deny", "reason": "evaluation_expired" }),
        ),
        Standing::Unknown => {
            return Err(error(
                StatusCode::NOT_FOUND,
                "evaluation_unknown",
                "no evaluation has this id",
            ))
        }
    };
    answer["status"] = status.into();
    Ok(answer)
}

/// `POST /approval/:id/resolve {resolution: approved|denied|timeout|
/// cancelled, resolved_by (for approved and denied), reason?, scope?}` →
/// `{ok: true}`. `timeout` and `cancelled` mean the adapter gave up
/// waiting: the ticket ends `timeout` or `client_disconnected` and the
/// call is blocked.
pub(super) async fn resolve(
    State(adapter): State<Arc<Adapter>>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = path
        .map_err(|rejection| ApiError::invalid("id", format!("invalid ticket id: {rejection}")))?;
    let fields = Fields::parse(body)?;
    let resolution = fields.optional_text("resolution", 32)?;
    let resolved_by = fields.optional_text("resolved_by", 128)?;
    let reason = fields.optional_text("reason", 1024)?;
    match fields.optional_text("scope", 16)?.as_deref() {
        None | Some("once" | "always") => {}
        Some(_) => return Err(ApiError::invalid("scope", "scope must be once or always")),
    }
    let Some(approvals) = &adapter.door.approvals else {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "governance_unavailable",
            "this Helio collects no approvals",
        ));
    };
    let named = |name: Option<String>| {
        name.filter(|n| !n.trim().is_empty()).ok_or_else(|| {
            ApiError::invalid(
                "resolved_by",
                "resolved_by is required to approve or deny: who decided",
            )
        })
    };
    let settlement = match resolution.as_deref() {
        Some("approved") => Settlement::Decided(Resolution::Approved, named(resolved_by)?),
        Some("denied") => Settlement::Decided(Resolution::Denied { reason }, named(resolved_by)?),
        Some("timeout") => Settlement::Withdrawn(Status::Timeout, resolved_by),
        Some("cancelled") => Settlement::Withdrawn(Status::ClientDisconnected, resolved_by),
        _ => {
            return Err(ApiError::invalid(
                "resolution",
                "resolution must be approved, denied, timeout or cancelled",
            ))
        }
    };
    let ticket = approvals.get(&id).ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            "ticket_not_found",
            "no approval ticket has this id",
        )
    })?;
    if ticket.origin == "mcp" {
        return Err(error(
            StatusCode::CONFLICT,
            "not_a_native_ticket",
            "this ticket holds an MCP call: an operator resolves it",
        ));
    }
    settlement.apply(approvals, &id).map_err(|e| match e {
        ResolveError::NotFound => error(
            StatusCode::NOT_FOUND,
            "ticket_not_found",
            "no approval ticket has this id",
        ),
        ResolveError::AlreadyResolved(status) => error(
            StatusCode::CONFLICT,
            "already_resolved",
            format!("the ticket is already {}", status.as_str()),
        ),
    })?;
    Ok(Json(json!({ "ok": true })).into_response())
}

/// What a resolution does to its ticket.
enum Settlement {
    Decided(Resolution, String),
    Withdrawn(Status, Option<String>),
}

impl Settlement {
    fn apply(self, approvals: &Arc<Approvals>, id: &str) -> Result<(), ResolveError> {
        let by = |name: Option<String>| Resolver {
            name: name.unwrap_or_else(|| "adapter".into()),
            credential: CREDENTIAL.into(),
        };
        match self {
            Settlement::Decided(resolution, name) => {
                approvals.resolve(id, resolution, by(Some(name)))
            }
            Settlement::Withdrawn(status, name) => approvals.withdraw(id, status, &by(name)),
        }
    }
}
