//! Helio's own answers on the MCP wire. Every refusal, denial, simulated
//! result and upstream failure becomes a JSON-RPC message here and only
//! here; each mapping is exhaustive, so a new kind of answer cannot go out
//! unrendered.

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, StatusCode};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::govern::{Denial, Era, Simulation};
use crate::strict_json::Unreadable;

use super::agreement::Mismatch;
use super::jsonrpc::{self, code};
use super::upstream::UpstreamError;
use crate::sse::EventScanner;

/// Why the MCP door refused a message before governance could decide on it.
pub(super) enum Refusal<'a> {
    /// `Content-Type` is not `application/json`.
    NotJson,
    /// The body is larger than this many MiB.
    TooLarge(usize),
    /// The body did not arrive in time (the reason).
    BodyTimeout(String),
    BodyUnreadable,
    /// Not JSON.
    Parse,
    /// JSON, but not a JSON-RPC message (the reason).
    Invalid(&'static str),
    /// A browser page's `Origin` that is not allowlisted.
    OriginNotAllowed,
    /// A `tools/call` without a usable tool name.
    Nameless,
    /// A `tools/call` whose params Helio cannot read exactly.
    InvalidArguments(&'a Unreadable),
    /// A `tools/call` sent as a notification.
    MissingRequestId,
    /// `Mcp-Method`/`Mcp-Name` contradict the body.
    HeaderMismatch(&'a Mismatch),
}

impl Refusal<'_> {
    /// The machine-readable reason (the audit's `block_reason` where the
    /// refusal is recorded).
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::NotJson => "unsupported_media_type",
            Refusal::TooLarge(_) => "body_too_large",
            Refusal::BodyTimeout(_) => "body_timeout",
            Refusal::BodyUnreadable => "body_unreadable",
            Refusal::Parse => "parse_error",
            Refusal::Invalid(_) => "invalid_request",
            Refusal::OriginNotAllowed => "origin_not_allowed",
            Refusal::Nameless => "missing_tool_name",
            Refusal::InvalidArguments(_) => "invalid_arguments",
            Refusal::MissingRequestId => "missing_request_id",
            Refusal::HeaderMismatch(_) => "header_mismatch",
        }
    }
}

/// The response to a refused message (`id`: the request's, when it can be
/// answered by id).
pub(super) fn refusal(id: Option<&RawValue>, refusal: &Refusal<'_>) -> Response {
    let (status, code, message, data) = match refusal {
        Refusal::NotJson => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code::INVALID_REQUEST,
            "Content-Type must be application/json".to_owned(),
            None,
        ),
        Refusal::TooLarge(mib) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            code::INVALID_REQUEST,
            format!("request body is larger than {mib} MiB"),
            None,
        ),
        Refusal::BodyTimeout(why) => (
            StatusCode::REQUEST_TIMEOUT,
            code::INVALID_REQUEST,
            why.clone(),
            None,
        ),
        Refusal::BodyUnreadable => (
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            "the request body could not be read".to_owned(),
            None,
        ),
        Refusal::Parse => (
            StatusCode::BAD_REQUEST,
            code::PARSE_ERROR,
            "Parse error: invalid JSON".to_owned(),
            None,
        ),
        Refusal::Invalid(why) => (
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            format!("Invalid Request: {why}"),
            None,
        ),
        Refusal::OriginNotAllowed => (
            StatusCode::FORBIDDEN,
            code::INVALID_REQUEST,
            "Origin not allowed".to_owned(),
            None,
        ),
        Refusal::Nameless => (
            StatusCode::OK,
            code::INVALID_PARAMS,
            "Invalid params: tools/call needs params.name, a non-empty string".to_owned(),
            Some(json!({ "blocked": true, "reason": "missing_tool_name" })),
        ),
        Refusal::InvalidArguments(why) => (
            StatusCode::OK,
            code::INVALID_PARAMS,
            format!(
                "Invalid params: Helio cannot read this call exactly as the MCP server would ({} in params: {}), so it refuses the call rather than decide on a partial view",
                why.path, why.problem
            ),
            Some(json!({
                "blocked": true,
                "reason": "invalid_arguments",
                "rule": null,
                "rule_index": null,
                "action": "deny",
                "path": why.path,
                "problem": why.problem,
                "suggestion": "Send plain JSON: finite numbers, integers within ±2^53 (larger ones as strings), well-formed Unicode, each key once per object.",
                "retry_allowed": false,
            })),
        ),
        Refusal::MissingRequestId => (
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            "Invalid Request: tools/call must be a request with an id; Helio does not forward a tool call it cannot answer with its policy decision".to_owned(),
            Some(json!({ "blocked": true, "reason": "missing_request_id", "retry_allowed": true })),
        ),
        Refusal::HeaderMismatch(mismatch) => (
            StatusCode::BAD_REQUEST,
            code::HEADER_MISMATCH,
            format!("Header mismatch: {}", mismatch.reason),
            Some(json!({ "blocked": true, "reason": "header_mismatch" })),
        ),
    };
    error(status, id, code, &message, data.as_ref())
}

/// A blocked call: JSON-RPC error -32001 with the denial's `data`.
pub(super) fn denial(id: Option<&RawValue>, denial: &Denial) -> Response {
    error(
        StatusCode::OK,
        id,
        code::BLOCKED,
        &denial.message,
        Some(&denial.data()),
    )
}

/// A simulated call answers with a result, as the tool would, carrying the
/// report of what would have happened. For a tool that declares an
/// `outputSchema` (`structured`) the result is `isError` with the report as
/// its `structuredContent`: clients check a successful result against the
/// schema, and the report is not the tool's output, nor is any made up.
pub(super) fn simulation(
    id: Option<&RawValue>,
    simulation: &Simulation,
    era: Era,
    structured: bool,
) -> Response {
    let mut result =
        json!({ "content": [{ "type": "text", "text": simulation.report.to_string() }] });
    if structured {
        result["structuredContent"] = simulation.report.clone();
        result["isError"] = true.into();
    }
    match era {
        Era::Stateless => result["resultType"] = json!("complete"),
        Era::Handshake => {}
    }
    let id: Value = id
        .and_then(|id| serde_json::from_str(id.get()).ok())
        .unwrap_or(Value::Null);
    let body = json!({ "jsonrpc": "2.0", "id": id, "result": result });
    json_response(StatusCode::OK, body.to_string().into())
}

/// Helio's own answer when the upstream could not be reached or timed out:
/// a JSON-RPC error the client can read, never a hang or a bare 5xx. A
/// request gets HTTP 200 with the error under its id; anything else 502.
pub(super) fn upstream_failure(id: Option<&RawValue>, failure: &UpstreamError) -> Response {
    tracing::warn!(error = %failure, "upstream request failed");
    let status = if id.is_some() {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    };
    error(
        status,
        id,
        code::INTERNAL_ERROR,
        &failure.to_string(),
        Some(&failure_data(failure)),
    )
}

/// The same failure as an SSE event ending a streamed reply, terminating
/// any half-received upstream event first so it parses on its own.
pub(super) fn failure_event(
    scanner: &EventScanner,
    id: &RawValue,
    failure: &UpstreamError,
) -> Bytes {
    let mut event = Vec::new();
    if scanner.mid_event() {
        event.extend_from_slice(b"\n\n");
    }
    let body = jsonrpc::error_body(
        Some(id),
        code::INTERNAL_ERROR,
        &failure.to_string(),
        Some(&failure_data(failure)),
    );
    event.extend_from_slice(b"event: message\ndata: ");
    event.extend_from_slice(&body);
    event.extend_from_slice(b"\n\n");
    Bytes::from(event)
}

fn failure_data(failure: &UpstreamError) -> Value {
    json!({
        "failure_class": "upstream_forward_error",
        "failure_reason": failure.reason(),
    })
}

fn error(
    status: StatusCode,
    id: Option<&RawValue>,
    code: i64,
    message: &str,
    data: Option<&Value>,
) -> Response {
    json_response(status, jsonrpc::error_body(id, code, message, data))
}

fn json_response(status: StatusCode, body: Bytes) -> Response {
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response()
}
