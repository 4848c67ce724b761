//! The adapter API (spec §12): agent frameworks that run tools in-process
//! ask Helio first (`POST /evaluate`) and report afterwards
//! (`POST /audit`), with their own token (`HELIO_ADAPTER_TOKEN`). Calls go
//! through the same governance core as MCP calls — one set of limits,
//! budgets and evidence for both doors — by its deferred path: an allowed
//! evaluation reserves what its stages took until the report (see
//! [`crate::govern::Pending`]), so concurrent evaluations never both get
//! the last slot, and one never reported gives everything back when it
//! expires. Records carry the adapter's `origin`.
//!
//! `POST /install-scan` asks install-time policy (`policies.install`, see
//! [`super::install`]) whether a package may be installed.
//!
//! A call that needs an approval is held (see [`super::held`]): its
//! ticket goes where the approval router sends it, and the adapter may
//! resolve it too.
//!
//! Not built yet: per-origin tool-definition drift (the tool's schema
//! fields are accepted and not yet compared).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::body::{self, ApiError, Fields};
use super::evaluations::{Ending, Evaluations, Finished, Found, Refusal, Subject};
use super::routes::Sideband;
use crate::approvals::Approvals;
use crate::govern::{
    CallFacts, Deferred, Denial, Door, Governor, InstallScan, Pending, Report, SessionIdentity,
    Simulation,
};
use crate::plugins::checks::decimal;
use crate::plugins::Annotations;
use crate::state::{now_ms, CallOutcome, Decimal, Evidence};
use crate::tools::{AdapterTools, ToolView};

/// Largest `arguments`, as JSON text.
const MAX_ARGUMENTS_BYTES: usize = 64 * 1024;
/// Largest `metadata`, as JSON text.
const MAX_METADATA_BYTES: usize = 4 * 1024;
/// Largest tool definition, as JSON text.
const MAX_DEFINITION_BYTES: usize = 64 * 1024;
/// Evidence entries one report may carry, and the largest one.
const MAX_REPORTED_EVIDENCE: usize = 16;
const MAX_EVIDENCE_BYTES: usize = 64 * 1024;

/// What the adapter routes share.
pub struct AdapterDoor {
    pub governor: Arc<Governor>,
    pub evaluations: Arc<Evaluations>,
    /// Each adapter's tool definitions, baselined (drift).
    pub tools: Arc<AdapterTools>,
    /// Where held evaluations' tickets are (none: approvals cannot be
    /// collected, and such calls are refused).
    pub approvals: Option<Arc<Approvals>>,
}

pub(super) struct Adapter {
    pub(super) door: AdapterDoor,
    sideband: Arc<Sideband>,
}

impl Adapter {
    pub fn new(door: AdapterDoor, sideband: Arc<Sideband>) -> Arc<Self> {
        Arc::new(Self { door, sideband })
    }
}

pub(super) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(status, json!({ "error": code, "message": message.into() }))
}

/// Who is asking: the fields every adapter request may carry.
struct Caller {
    origin: String,
    adapter_version: Option<String>,
    agent: Option<String>,
    session: Option<String>,
}

impl Caller {
    fn read(fields: &Fields) -> Result<Self, ApiError> {
        Ok(Self {
            origin: origin(fields)?,
            adapter_version: fields.optional_text("adapter_version", 64)?,
            agent: fields.optional_text("agent_id", 128)?,
            session: session(fields)?,
        })
    }
}

/// Why the registry could not take an evaluation, as the API says it.
fn refused(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::TooManyOrigins => error(
            StatusCode::BAD_REQUEST,
            "origin_limit_exceeded",
            format!(
                "at most {} adapter origins",
                super::evaluations::MAX_ORIGINS
            ),
        ),
        Refusal::BacklogFull => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "evaluation_backlog_full",
            format!(
                "too many evaluations are waiting for approvals or reports (at most {}, from at most {} MiB of requests)",
                super::evaluations::MAX_PENDING,
                super::evaluations::MAX_PENDING_BYTES / (1024 * 1024)
            ),
        ),
    }
}

/// An origin slug: `^[a-z0-9_-]{1,64}$`.
fn origin(fields: &Fields) -> Result<String, ApiError> {
    let origin = fields
        .optional_text("origin", 64)?
        .unwrap_or_else(|| "sideband".into());
    let fits = !origin.is_empty()
        && origin
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'));
    if !fits {
        return Err(ApiError::invalid(
            "origin",
            "origin must be 1-64 characters of a-z, 0-9, _ and -",
        ));
    }
    Ok(origin)
}

/// `session_id`: optional; blank means absent.
fn session(fields: &Fields) -> Result<Option<String>, ApiError> {
    match fields.get("session_id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(raw)) if raw.trim().is_empty() => Ok(None),
        Some(Value::String(raw)) => body::session_id(raw).map(|s| Some(s.to_owned())),
        Some(_) => Err(ApiError::invalid(
            "session_id",
            "session_id must be a string",
        )),
    }
}

/// An optional JSON object no larger than `max` bytes as text, taken out
/// of the body; with its text.
fn object(
    fields: &mut Fields,
    field: &str,
    max: usize,
) -> Result<Option<(Value, String)>, ApiError> {
    match fields.take(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value @ Value::Object(_)) => {
            let text = value.to_string();
            if text.len() > max {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    json!({ "error": format!("{field}_too_large"),
                            "message": format!("{field} must be at most {max} bytes as JSON") }),
                ));
            }
            Ok(Some((value, text)))
        }
        Some(_) => Err(ApiError::invalid(
            field,
            format!("{field} must be an object"),
        )),
    }
}

/// `tool.annotations`, as MCP defines them; absent ones fail closed as the
/// MCP defaults do.
fn annotations(tool: &Map<String, Value>) -> Result<Annotations, ApiError> {
    Annotations::of_mcp(tool.get("annotations"))
        .map_err(|bad| ApiError::invalid(&format!("tool.{}", bad.field), format!("tool.{bad}")))
}

/// The tool's definition, in MCP's shape, when the request sends more than
/// its name: what its origin's catalog baselines and compares.
fn definition(name: &str, tool: &Map<String, Value>) -> Result<Option<Value>, ApiError> {
    let mut definition = Map::new();
    for (field, mcp, object) in [
        ("title", "title", false),
        ("description", "description", false),
        ("input_schema", "inputSchema", true),
        ("output_schema", "outputSchema", true),
        ("annotations", "annotations", true),
    ] {
        let value = match tool.get(field) {
            None | Some(Value::Null) => continue,
            Some(value @ Value::Object(_)) if object => value,
            Some(value @ Value::String(_)) if !object => value,
            Some(_) => {
                let kind = if object { "an object" } else { "a string" };
                return Err(ApiError::invalid(
                    &format!("tool.{field}"),
                    format!("tool.{field} must be {kind}"),
                ));
            }
        };
        definition.insert(mcp.into(), value.clone());
    }
    if definition.is_empty() {
        return Ok(None);
    }
    definition.insert("name".into(), name.into());
    let definition = Value::Object(definition);
    if definition.to_string().len() > MAX_DEFINITION_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({ "error": "tool_too_large",
                    "message": format!("the tool definition must be at most {MAX_DEFINITION_BYTES} bytes as JSON") }),
        ));
    }
    Ok(Some(definition))
}

/// `POST /evaluate`.
pub(super) async fn evaluate(
    State(adapter): State<Arc<Adapter>>,
    headers: http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let received = Instant::now();
    let bytes = body.as_ref().map_or(0, Bytes::len);
    let mut fields = Fields::parse(body)?;
    let caller = Caller::read(&fields)?;
    let (origin, agent, session) = (caller.origin, caller.agent, caller.session);
    let adapter_version = caller.adapter_version;
    let Some(Value::Object(tool)) = fields.get("tool") else {
        return Err(ApiError::invalid(
            "tool",
            "tool is required: an object with a name",
        ));
    };
    let tool_name = match tool.get("name") {
        Some(Value::String(name)) if !name.is_empty() && name.chars().count() <= 256 => {
            name.clone()
        }
        _ => {
            return Err(ApiError::invalid(
                "tool.name",
                "tool.name must be a non-empty string of at most 256 characters",
            ))
        }
    };
    let declared = annotations(tool)?;
    let definition = definition(&tool_name, tool)?;
    let arguments = object(&mut fields, "arguments", MAX_ARGUMENTS_BYTES)?;
    let metadata = object(&mut fields, "metadata", MAX_METADATA_BYTES)?;
    if let Some((Value::Object(meta), _)) = &metadata {
        if meta.contains_key("agent_id") {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                json!({ "error": "reserved_metadata_key",
                        "message": "metadata.agent_id is reserved: send the agent as agent_id" }),
            ));
        }
    }
    let evaluations = &adapter.door.evaluations;
    evaluations.room(bytes).map_err(refused)?;
    evaluations
        .admit(&origin, adapter_version.as_deref())
        .map_err(refused)?;
    // Policy reads the baseline's annotations: an adapter cannot loosen a
    // rule by re-declaring a tool read-only.
    let view = match definition {
        Some(definition) => Some(
            adapter
                .door
                .tools
                .catalog(&origin)
                .learn(&tool_name, definition)
                .map_err(|full| {
                    error(
                        StatusCode::BAD_REQUEST,
                        "tool_baseline_limit",
                        full.to_string(),
                    )
                })?,
        ),
        None => adapter
            .door
            .tools
            .get(&origin)
            .map(|catalog| catalog.view(&tool_name))
            .filter(|view| view.annotations.known),
    };
    let (annotations, drift) = match view {
        Some(ToolView {
            annotations, drift, ..
        }) => (annotations, drift),
        None => (declared, None),
    };
    let drift_json = drift
        .as_ref()
        .map(|d| json!({ "aspects": d.aspects(), "changes": d.changes_json() }));

    let (arguments, raw_arguments) = match arguments {
        Some((value, text)) => (Some(Arc::new(value)), Some(text)),
        None => (None, None),
    };
    let facts = CallFacts {
        door: Door::Adapter(origin.as_str().into()),
        received,
        protocol_version: None,
        tool: tool_name.as_str().into(),
        arguments,
        raw_arguments: raw_arguments.as_deref(),
        annotations,
        drift,
        identity: session.as_ref().map(|id| SessionIdentity {
            id: id.as_str().into(),
            source: "sideband",
        }),
        agent: agent.map(|a| a.into()),
        metadata: metadata.and_then(|(value, _)| match value {
            Value::Object(object) => Some(Arc::new(object)),
            _ => None,
        }),
        trace: crate::traces::TraceContext::of_headers(&headers),
    };
    let subject = Subject {
        session,
        tool: tool_name,
        bytes,
    };
    let mut answer = match adapter.door.governor.decide_deferred(facts).await {
        Deferred::Allow(pending) => {
            let id = pending.record_id().to_owned();
            let answer = allowed(&id, &pending);
            evaluations.wait(id, pending, subject, answer.clone());
            answer
        }
        Deferred::Block(denial) => {
            let id = crate::audit::new_id();
            let answer = blocked(&id, &denial);
            evaluations.unrun(id, Ending::Evaluate, answer.clone());
            answer
        }
        Deferred::Simulate(simulation) => {
            let id = crate::audit::new_id();
            let answer = simulated(&id, &simulation);
            evaluations.unrun(id, Ending::Evaluate, answer.clone());
            answer
        }
        Deferred::Hold(held) => super::held::hold(&adapter, *held, subject),
    };
    if let Some(drift) = drift_json {
        answer["tool_drift"] = drift;
    }
    Ok(Json(answer).into_response())
}

/// The answer for an allowed evaluation.
pub(super) fn allowed(id: &str, pending: &Pending) -> Value {
    let (rule, rule_index) = pending
        .decision()
        .map_or((None, None), |d| (d.rule.clone(), d.rule_index));
    let mut answer = json!({
        "evaluation_id": id,
        "decision": "allow",
        "reason": null,
        "matched_rule": rule,
        "matched_rule_index": rule_index,
    });
    if let Some(limits) = pending.limits() {
        answer["limits"] = limits;
    }
    answer
}

/// The adapter's word for a blocked call: the limit that refused it, or
/// `deny`.
pub(super) fn blocked(id: &str, denial: &Denial) -> Value {
    let decision = match denial.reason.as_str() {
        "rate_limited" => "rate_limited",
        "spend_limited" => "spend_limited",
        "budget_exceeded" => "budget_exceeded",
        _ => "deny",
    };
    let mut feedback = match denial.data() {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    feedback.insert("message".into(), denial.message.clone().into());
    json!({
        "evaluation_id": id,
        "decision": decision,
        "reason": denial.reason,
        "matched_rule": denial.rule,
        "matched_rule_index": denial.rule_index,
        "feedback": feedback,
    })
}

fn simulated(id: &str, simulation: &Simulation) -> Value {
    json!({
        "evaluation_id": id,
        "decision": "dry_run",
        "reason": null,
        "matched_rule": simulation.rule,
        "matched_rule_index": simulation.rule_index,
        "dry_run": simulation.report,
    })
}

/// `POST /audit`.
pub(super) async fn report(
    State(adapter): State<Arc<Adapter>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let fields = Fields::parse(body)?;
    let id = fields.name("evaluation_id")?;
    let status = match fields.get("status") {
        Some(Value::String(s)) if matches!(s.as_str(), "success" | "error" | "not_executed") => {
            s.clone()
        }
        _ => {
            return Err(ApiError::invalid(
                "status",
                "status must be success, error or not_executed",
            ))
        }
    };
    let error_text = fields.optional_text("error", 4096)?;
    let took = match fields.get("duration_ms") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_f64().filter(|d| d.is_finite() && *d >= 0.0) {
            Some(ms) => Some(Duration::from_secs_f64(ms / 1e3)),
            None => {
                return Err(ApiError::invalid(
                    "duration_ms",
                    "duration_ms must be a number ≥ 0",
                ))
            }
        },
        Some(_) => {
            return Err(ApiError::invalid(
                "duration_ms",
                "duration_ms must be a number ≥ 0",
            ))
        }
    };
    let actual_amount = actual_amount(&fields, &status)?;
    let evidence = reported_evidence(&fields)?;
    // A replay must be the same report: its digest is that of the body as
    // read (keys sorted), so key order and spacing do not matter.
    let digest: [u8; 32] =
        Sha256::digest(serde_json::to_vec(fields.as_map()).unwrap_or_default()).into();

    if actual_amount.is_some() && adapter.door.evaluations.holds_spend(&id) == Some(false) {
        // Nothing was charged that the amount could replace; the
        // evaluation stays pending for a report without it.
        return Err(error(
            StatusCode::BAD_REQUEST,
            "no_spend_rule",
            "actual_amount replaces what spend limits and budgets charged, and none charged this call",
        ));
    }
    let waiting =
        match adapter.door.evaluations.take(&id) {
            Found::Waiting(waiting) => waiting,
            Found::Held => return Err(error(
                StatusCode::CONFLICT,
                "approval_unresolved",
                "the evaluation waits for an approval: run the tool only once it is allowed (GET /evaluation/:id), or resolve the ticket as cancelled",
            )),
            Found::Finished(Finished::Unrun { by, .. }) => {
                return Ok(Json(json!({ "ok": true, "finalized_by": by.as_str() })).into_response())
            }
            Found::Finished(Finished::Reported {
                digest: first,
                record_id,
                answer,
            }) => {
                if first == digest {
                    let mut answer = answer;
                    answer["already_finalized"] = true.into();
                    answer["audit_record_id"] = record_id.into();
                    return Ok((StatusCode::OK, Json(answer)).into_response());
                }
                return Err(error(
                    StatusCode::CONFLICT,
                    "evaluation_conflict",
                    "this evaluation was already reported differently",
                ));
            }
            Found::Finished(Finished::Expired) => return Err(error(
                StatusCode::NOT_FOUND,
                "evaluation_expired",
                "the evaluation expired before it was reported; its reservations were given back",
            )),
            Found::Unknown => {
                return Err(error(
                    StatusCode::NOT_FOUND,
                    "evaluation_unknown",
                    "no evaluation has this id",
                ))
            }
        };
    let record_id = waiting.pending.record_id().to_owned();
    let result = fields.get("result").map(|r| r.to_string());
    let outcome = match status.as_str() {
        "success" => Some(CallOutcome::Succeeded),
        "error" => Some(CallOutcome::Failed),
        _ => None,
    };
    let reported = match outcome {
        Some(outcome) => Report::Ran {
            outcome,
            result: result.as_deref().map(str::as_bytes),
            error: error_text,
            took,
            actual_amount,
        },
        None => Report::NotRun,
    };
    if let Err(denial) = waiting.pending.report(reported) {
        tracing::error!(reason = %denial.reason, "an adapter report could not be committed");
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "state_unavailable",
            "governance state could not be written; the call's spend was not recorded",
        ));
    }
    let stored = store_evidence(
        &adapter,
        waiting.subject.session.as_deref(),
        &waiting.subject.tool,
        evidence,
    )
    .await;
    let mut answer = json!({ "ok": true, "audit_record_id": record_id });
    if let Some(stored) = stored {
        answer["evidence"] = stored;
    }
    adapter.door.evaluations.finished(
        id,
        Finished::Reported {
            digest,
            record_id,
            answer: answer.clone(),
        },
    );
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `actual_amount`: what a call that ran actually cost, a JSON number
/// (finite, ≥ 0; a string is refused, as for spend amounts in policy).
fn actual_amount(fields: &Fields, status: &str) -> Result<Option<Decimal>, ApiError> {
    let invalid = |message: &str| error(StatusCode::BAD_REQUEST, "invalid_actual_amount", message);
    let amount = match fields.get("actual_amount") {
        None | Some(Value::Null) => return Ok(None),
        Some(value @ Value::Number(_)) => decimal(value)
            .filter(|a| !a.is_sign_negative() || a.is_zero())
            .ok_or_else(|| invalid("actual_amount must be a finite number ≥ 0"))?,
        Some(_) => {
            return Err(invalid(
                "actual_amount must be a JSON number (not a string), finite and ≥ 0",
            ))
        }
    };
    if status == "not_executed" {
        return Err(invalid(
            "actual_amount is what a call that ran cost; a call not executed costs nothing",
        ));
    }
    Ok(Some(amount))
}

/// `POST /install-scan {origin, agent_id?, session_id?, package {name,
/// version?, source?, spec?, url?}, metadata?}` → `{evaluation_id,
/// decision: allow|deny, reason, matched_rule, matched_rule_index,
/// feedback?}`; terminal (nothing to report), always audited.
pub(super) async fn install_scan(
    State(adapter): State<Arc<Adapter>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let received = Instant::now();
    let mut fields = Fields::parse(body)?;
    let caller = Caller::read(&fields)?;
    let (origin, agent, session) = (caller.origin, caller.agent, caller.session);
    let adapter_version = caller.adapter_version;
    let Some(Value::Object(package)) = fields.take("package") else {
        return Err(ApiError::invalid(
            "package",
            "package is required: an object with a name",
        ));
    };
    let package_fields = Fields::from_map(package);
    let name = package_fields.name("name").map_err(|_| {
        ApiError::invalid(
            "package.name",
            "package.name must be a non-empty string of at most 256 characters",
        )
    })?;
    let source = package_fields.optional_text("source", 64).map_err(|_| {
        ApiError::invalid(
            "package.source",
            "package.source must be a string of at most 64 characters",
        )
    })?;
    for field in ["version", "spec", "url"] {
        package_fields.optional_text(field, 2048).map_err(|_| {
            ApiError::invalid(
                &format!("package.{field}"),
                format!("package.{field} must be a string"),
            )
        })?;
    }
    let metadata = object(&mut fields, "metadata", MAX_METADATA_BYTES)?;
    adapter
        .door
        .evaluations
        .admit(&origin, adapter_version.as_deref())
        .map_err(refused)?;
    let pipeline = adapter.door.governor.pipeline();
    let verdict = super::install::scan(
        pipeline.install_policy(),
        &super::install::Package {
            name: &name,
            source: source.as_deref(),
        },
        metadata.as_ref().and_then(|(m, _)| m.as_object()),
    );
    let id = adapter.door.governor.install_scanned(InstallScan {
        origin: &origin,
        received,
        tool_name: format!("install:{}:{name}", source.as_deref().unwrap_or("pkg")),
        package: Value::Object(package_fields.into_map()).to_string(),
        allowed: verdict.allowed,
        rule: verdict.rule.clone(),
        rule_index: verdict.rule_index,
        session: session.as_deref(),
        agent: agent.as_deref(),
        metadata: metadata.as_ref().map(|(_, text)| text.as_str()),
        environment: pipeline.environment().map(|e| &**e),
    });
    let mut answer = json!({
        "evaluation_id": id,
        "decision": if verdict.allowed { "allow" } else { "deny" },
        "reason": if verdict.allowed { verdict.note } else { "install_denied" },
        "matched_rule": verdict.rule,
        "matched_rule_index": verdict.rule_index,
    });
    if !verdict.allowed {
        let (message, suggestion) = match &verdict.feedback {
            Some(feedback) => (feedback.message.clone(), feedback.suggestion.clone()),
            None => (
                format!("Installing {name} is not allowed by install-time policy"),
                None,
            ),
        };
        answer["feedback"] = json!({
            "blocked": true, "reason": "install_denied", "message": message,
            "suggestion": suggestion, "retry_allowed": false,
        });
    }
    adapter
        .door
        .evaluations
        .unrun(id, Ending::Evaluate, answer.clone());
    Ok(Json(answer).into_response())
}

/// One `evidence[]` entry of a report.
struct ReportedEvidence {
    key: String,
    data: Value,
    ttl_seconds: u64,
}

fn reported_evidence(fields: &Fields) -> Result<Option<Vec<ReportedEvidence>>, ApiError> {
    let entries = match fields.get("evidence") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(entries)) => entries,
        Some(_) => return Err(ApiError::invalid("evidence", "evidence must be an array")),
    };
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let at = format!("evidence[{i}]");
            let Value::Object(entry) = entry else {
                return Err(ApiError::invalid(&at, format!("{at} must be an object")));
            };
            let entry = Fields::from_map(entry.clone());
            Ok(ReportedEvidence {
                key: entry.name("evidence_key")?,
                data: entry.get("evidence_data").cloned().ok_or_else(|| {
                    ApiError::invalid(&at, format!("{at}.evidence_data is required"))
                })?,
                ttl_seconds: entry.ttl_seconds()?,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Stores a report's evidence for the evaluation's session, entry by entry:
/// each says whether it was stored and, if not, why (the report itself
/// stands either way).
async fn store_evidence(
    adapter: &Adapter,
    session: Option<&str>,
    tool: &str,
    evidence: Option<Vec<ReportedEvidence>>,
) -> Option<Value> {
    let evidence = evidence?;
    let allowed = adapter.sideband.allowlist();
    let mut answers = Vec::new();
    for (i, entry) in evidence.into_iter().enumerate() {
        let refused = if i >= MAX_REPORTED_EVIDENCE {
            Some("too_many")
        } else if !allowed.contains(&entry.key) {
            Some("key_not_in_policy_allowlist")
        } else if entry.data.to_string().len() > MAX_EVIDENCE_BYTES {
            Some("too_large")
        } else if session.is_none() {
            Some("no_session")
        } else {
            None
        };
        let key = entry.key.clone();
        let reason = match (refused, session) {
            (Some(reason), _) => Some(reason),
            (None, Some(session)) => {
                let recorded_ms = now_ms();
                let evidence = Evidence {
                    key: entry.key,
                    data: entry.data,
                    tool_name: tool.to_owned(),
                    recorded_ms,
                    expires_ms: recorded_ms.saturating_add(entry.ttl_seconds * 1000),
                };
                let session = session.to_owned();
                match adapter
                    .sideband
                    .blocking("/audit", move |state| {
                        state.record_evidence(&session, evidence)
                    })
                    .await
                {
                    Ok(Ok(())) => None,
                    Ok(Err(_)) | Err(_) => Some("evidence_unavailable"),
                }
            }
            (None, None) => Some("no_session"),
        };
        answers.push(match reason {
            None => json!({ "evidence_key": key, "stored": true }),
            Some(reason) => json!({ "evidence_key": key, "stored": false, "reason": reason }),
        });
    }
    Some(Value::Array(answers))
}
