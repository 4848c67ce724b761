//! The streamable-HTTP relay: `POST`, `GET` and `DELETE /mcp`.
//!
//! Every message is parsed only as far as needed (its kind, id, method and
//! target name) and its original bytes are forwarded. Upstream replies are
//! relayed with their status: JSON bodies whole, `text/event-stream` bodies
//! chunk by chunk as they arrive, so progress, logging, sampling and
//! elicitation traffic reaches the client during the call.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::{self, Stream};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, ORIGIN, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde_json::json;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use std::time::Instant;

use crate::audit::Audit;
use crate::pipeline::{Active, Outcome};
use crate::plugins::Runtime;
use crate::serve::{BodyTimeout, TimedBody};
use crate::state::{CallOutcome, Settlement};

use super::agents::meta_client_info;
use super::agreement::{self, Mismatch};
use super::call_params::{raw_arguments, stated_name, CallParams, ParamsError};
use super::jsonrpc::{self, code, Envelope, EnvelopeError, Kind};
use super::recording::{self, CallAudit, CallFacts, Rejection};
use super::sse::EventScanner;
use super::tools::ToolCatalog;
use super::upstream::{
    stamp_method_headers, Pool, Upstream, UpstreamError, MCP_PROTOCOL_VERSION, MCP_SESSION_ID,
};

/// Largest JSON-RPC message Helio accepts from a client.
const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// Largest non-streamed upstream reply Helio buffers.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Upstream response headers relayed to the client; the rest describe the
/// upstream's connection, not the MCP exchange.
const RELAYED_RESPONSE_HEADERS: [HeaderName; 6] = [
    CONTENT_TYPE,
    CACHE_CONTROL,
    MCP_SESSION_ID,
    MCP_PROTOCOL_VERSION,
    WWW_AUTHENTICATE,
    RETRY_AFTER,
];

/// Shared state of the MCP listener.
pub struct Relay {
    pub(super) upstream: Upstream,
    pub(super) allowed_origins: Vec<String>,
    /// The stage chain every `tools/call` passes through.
    pub(super) pipeline: Active,
    pub(super) runtime: Arc<Runtime>,
    /// Resolves each call's governance session.
    pub(super) identity: super::identity::Identity,
    /// Which agent each MCP session belongs to, for the audit trail.
    pub(super) agents: super::agents::Agents,
    pub(super) audit: Arc<Audit>,
    /// helio.yaml's `environment`, for audit records.
    pub(super) environment: Option<String>,
    pub(super) tools: Arc<ToolCatalog>,
    /// Cancelled at shutdown: ends the long-lived `GET /mcp` streams.
    pub(super) shutdown: CancellationToken,
    pub(super) rejected_origins: super::OriginLog,
}

impl Relay {
    /// Waits (yielding, never blocking the worker) while the audit or state
    /// writer is too far behind to take another call's changes.
    async fn writers_ready(&self) {
        self.audit.ready().await;
        if let Some(room) = self.runtime.state().room() {
            room.ready().await;
        }
    }

    /// Refuses a request whose `Origin` is not allowlisted, before it reaches
    /// the transport. MCP clients are not browsers and send no Origin; one
    /// that arrives is a browser page trying to reach a local server (DNS
    /// rebinding). Checked before anything else on `/mcp`.
    pub(super) fn refuse_origin(&self, headers: &HeaderMap) -> Option<Response> {
        for origin in headers.get_all(ORIGIN) {
            let allowed = origin
                .to_str()
                .is_ok_and(|o| self.allowed_origins.iter().any(|a| a == o));
            if !allowed {
                self.rejected_origins
                    .record(&String::from_utf8_lossy(origin.as_bytes()));
                recording::rejected(
                    &self.audit,
                    Instant::now(),
                    headers,
                    Rejection {
                        tool_name: "<origin_rejected>",
                        reason: "origin_not_allowed",
                        tool_input: json!({ "origin": String::from_utf8_lossy(origin.as_bytes()) })
                            .to_string(),
                        session: None,
                        agent: self.agents.of_call(headers, None).as_deref(),
                    },
                );
                return Some(error_response(
                    StatusCode::FORBIDDEN,
                    None,
                    code::INVALID_REQUEST,
                    "Origin not allowed",
                    None,
                ));
            }
        }
        None
    }
}

pub(super) async fn post(relay: &Relay, pool: &Pool, request: Request<TimedBody>) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    if !is_json(headers) {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            code::INVALID_REQUEST,
            "Content-Type must be application/json",
            None,
        );
    }
    let bytes = match Limited::new(body, MAX_REQUEST_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                code::INVALID_REQUEST,
                &format!(
                    "request body is larger than {} MiB",
                    MAX_REQUEST_BYTES >> 20
                ),
                None,
            )
        }
        Err(error) if error.is::<BodyTimeout>() => {
            return error_response(
                StatusCode::REQUEST_TIMEOUT,
                None,
                code::INVALID_REQUEST,
                &error.to_string(),
                None,
            )
        }
        Err(error) => {
            tracing::debug!(%error, "reading a request body failed");
            return error_response(
                StatusCode::BAD_REQUEST,
                None,
                code::INVALID_REQUEST,
                "the request body could not be read",
                None,
            );
        }
    };
    let envelope = match Envelope::parse(&bytes) {
        Ok(envelope) => envelope,
        Err(EnvelopeError::Parse) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                None,
                code::PARSE_ERROR,
                "Parse error: invalid JSON",
                None,
            )
        }
        Err(EnvelopeError::Invalid(why)) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                None,
                code::INVALID_REQUEST,
                &format!("Invalid Request: {why}"),
                None,
            )
        }
    };
    // An id of `null` cannot be answered by id; echo only usable ids.
    let reply_id: Option<Box<RawValue>> = envelope
        .id
        .filter(|id| envelope.kind == Kind::Request && id.get() != "null")
        .map(ToOwned::to_owned);
    // Read once: checked against the client's headers, then stamped on ours.
    let target_name = envelope.target_name();
    if let Err(mismatch) = agreement::check(headers, &envelope, target_name.as_deref()) {
        return refuse_mismatch(
            relay,
            &envelope,
            reply_id.as_deref(),
            headers,
            started,
            mismatch,
        );
    }

    let is_request = envelope.kind == Kind::Request;
    let mut observer = None;
    if envelope.method.as_deref() == Some("tools/call") {
        if !is_request {
            return refuse_tool_notification(relay, &envelope, headers, started);
        }
        relay.writers_ready().await;
        match govern(relay, &envelope, reply_id.as_deref(), headers, started) {
            Governed::Answer(answer) => return answer,
            Governed::Forward(call) => observer = Some(Observer::ToolCall(call)),
        }
    }
    // Every relayed tools/list teaches Helio the tools' annotations.
    if is_request && envelope.method.as_deref() == Some("tools/list") {
        observer = Some(Observer::ToolList(relay.tools.clone()));
    }
    let introduced = (is_request && envelope.method.as_deref() == Some("initialize"))
        .then(|| super::agents::of_initialize(envelope.params))
        .flatten();

    let upstream = &relay.upstream;
    let mut request = upstream.request(
        Method::POST,
        headers,
        "application/json, text/event-stream",
        bytes.clone(),
    );
    if let Some(method) = envelope.method.as_deref() {
        stamp_method_headers(request.headers_mut(), method, target_name.as_deref());
    }
    let timeout = upstream.request_timeout();
    let deadline = tokio::time::Instant::now() + timeout;
    let response = match upstream.send(pool, request).await {
        Ok(response) => response,
        Err(error) => {
            if let Some(observer) = observer {
                observer.no_response(&error);
            }
            return upstream_failure(reply_id.as_deref(), &error);
        }
    };
    if let Some(observer) = &mut observer {
        observer.head(response.status());
    }
    if let (Some(agent), Some(session)) = (introduced, response.headers().get(MCP_SESSION_ID)) {
        relay.agents.remember(session, agent);
    }
    if !is_event_stream(response.headers()) {
        return buffered(response, reply_id.as_deref(), timeout, deadline, observer).await;
    }
    let (parts, body) = response.into_parts();
    let stream = event_stream(body, reply_id, timeout, observer);
    build(parts.status, &parts.headers, Body::from_stream(stream))
}

/// What Helio learns from an upstream's answer to a request.
enum Observer {
    /// A `tools/list` page: the tools' annotations.
    ToolList(Arc<ToolCatalog>),
    /// A forwarded `tools/call`: its outcome settles its governance state
    /// and completes its audit record.
    ToolCall(Box<Forwarded>),
}

struct Forwarded {
    settlement: Option<Settlement>,
    audit: CallAudit,
    status: StatusCode,
}

impl Observer {
    /// The upstream's response head arrived.
    fn head(&mut self, status: StatusCode) {
        if let Observer::ToolCall(call) = self {
            call.status = status;
        }
    }

    /// The final JSON-RPC response to the request.
    fn response(self, message: &[u8]) {
        match self {
            Observer::ToolList(catalog) => {
                catalog.observe(message);
            }
            Observer::ToolCall(call) => {
                if let Some(settlement) = call.settlement {
                    settlement.settle(CallOutcome::of_response(message));
                }
                call.audit.answered(call.status, message);
            }
        }
    }

    /// The upstream refused the request before running it (`body` is what
    /// it said).
    fn refused(self, body: &[u8]) {
        if let Observer::ToolCall(call) = self {
            if let Some(settlement) = call.settlement {
                settlement.settle(CallOutcome::Failed);
            }
            call.audit.answered(call.status, body);
        }
    }

    /// No answer came. Unreachable means never delivered, so the call did
    /// not happen; anything else leaves the outcome unknown.
    fn no_response(self, error: &UpstreamError) {
        if let Observer::ToolCall(call) = self {
            if let (Some(settlement), UpstreamError::Unreachable { .. }) = (call.settlement, error)
            {
                settlement.settle(CallOutcome::Failed);
            }
            call.audit.failed(&error.to_string());
        }
    }
}

enum Governed {
    /// Answer with this instead of forwarding.
    Answer(Response),
    /// Forward; settle and record this when the upstream answers.
    Forward(Box<Forwarded>),
}

/// Runs the stage chain on a `tools/call`. `None` means relay it; otherwise
/// the answer to send instead.
fn govern(
    relay: &Relay,
    envelope: &Envelope<'_>,
    id: Option<&RawValue>,
    headers: &HeaderMap,
    started: Instant,
) -> Governed {
    let call = match CallParams::parse(envelope.params) {
        Ok(call) => call,
        Err(ParamsError::Nameless) => {
            let raw_params = envelope
                .params
                .and_then(|p| serde_json::from_str::<serde_json::Value>(p.get()).ok());
            reject(
                relay,
                envelope,
                headers,
                started,
                "<nameless>",
                "missing_tool_name",
                json!({ "raw_params": raw_params }).to_string(),
            );
            return Governed::Answer(error_response(
                StatusCode::OK,
                id,
                code::INVALID_PARAMS,
                "Invalid params: tools/call needs params.name, a non-empty string",
                Some(&json!({ "blocked": true, "reason": "missing_tool_name" })),
            ));
        }
        Err(ParamsError::Unreadable(why)) => {
            let raw = envelope.params.map_or("", RawValue::get);
            reject_call(
                relay,
                envelope,
                headers,
                started,
                "invalid_arguments",
                relay.audit.unreadable_input(raw, &why),
            );
            return Governed::Answer(error_response(
                StatusCode::OK,
                id,
                code::INVALID_PARAMS,
                &format!(
                    "Invalid params: Helio cannot read this call exactly as the MCP server would ({} in params: {}), so it refuses the call rather than decide on a partial view",
                    why.path, why.problem
                ),
                Some(&json!({
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
            ));
        }
    };
    let annotations = relay.tools.annotations(&call.name);
    let session = relay.identity.resolve(headers, call.client_info.as_ref());
    let pipeline = relay.pipeline.current();
    let mut audit = CallAudit::begin(
        &relay.audit,
        started,
        headers,
        CallFacts {
            tool: &call.name,
            arguments: call.raw_arguments,
            parsed_arguments: call.arguments.as_deref(),
            session: session.as_ref().map(|(s, source)| (&**s, *source)),
            agent: relay
                .agents
                .of_call(headers, call.client_info.as_ref())
                .as_deref(),
            environment: relay.environment.as_deref(),
            stages: pipeline.stage_names(),
        },
    );
    let decided = pipeline.evaluate(
        &relay.runtime,
        call.name.into(),
        annotations,
        call.arguments,
        session.map(|(s, _)| s),
    );
    audit.checked(decided.checks, decided.flagged_destructive);
    match decided.outcome {
        Outcome::Forward => {
            audit.forwarding(decided.decision.as_ref());
            Governed::Forward(Box::new(Forwarded {
                settlement: decided.settlement,
                audit,
                status: StatusCode::OK,
            }))
        }
        Outcome::Block { message, data } => {
            audit.blocked(&data);
            Governed::Answer(error_response(
                StatusCode::OK,
                id,
                code::BLOCKED,
                &message,
                Some(&data),
            ))
        }
        Outcome::DryRun { report, rule_index } => {
            audit.simulated(&report, rule_index);
            Governed::Answer(dry_run_response(id, &report, headers))
        }
    }
}

/// Records a `tools/call` (or any message, for a header mismatch) refused
/// before any stage ran.
fn reject(
    relay: &Relay,
    envelope: &Envelope<'_>,
    headers: &HeaderMap,
    started: Instant,
    tool_name: &str,
    reason: &str,
    tool_input: String,
) {
    // Read leniently: these only label the record of a refusal.
    let client_info = meta_client_info(envelope.params);
    let session = relay.identity.resolve(headers, client_info.as_ref());
    recording::rejected(
        &relay.audit,
        started,
        headers,
        Rejection {
            tool_name,
            reason,
            tool_input,
            session: session.as_ref().map(|(s, source)| (&**s, *source)),
            agent: relay
                .agents
                .of_call(headers, client_info.as_ref())
                .as_deref(),
        },
    );
}

/// Records a `tools/call` refused before any stage ran, under the tool name
/// its params state (`<nameless>` when none can be read).
fn reject_call(
    relay: &Relay,
    envelope: &Envelope<'_>,
    headers: &HeaderMap,
    started: Instant,
    reason: &str,
    tool_input: String,
) {
    let name = stated_name(envelope.params);
    let name = name.as_deref().unwrap_or("<nameless>");
    reject(relay, envelope, headers, started, name, reason, tool_input);
}

/// A `tools/call` without an id is a notification: there is no reply to
/// carry a policy decision, and a generic JSON-RPC server would still run
/// it. Refused and recorded, never forwarded.
fn refuse_tool_notification(
    relay: &Relay,
    envelope: &Envelope<'_>,
    headers: &HeaderMap,
    started: Instant,
) -> Response {
    reject_call(
        relay,
        envelope,
        headers,
        started,
        "missing_request_id",
        relay
            .audit
            .tool_input(raw_arguments(envelope.params), None)
            .0,
    );
    error_response(
        StatusCode::BAD_REQUEST,
        None,
        code::INVALID_REQUEST,
        "Invalid Request: tools/call must be a request with an id; Helio does not forward a tool call it cannot answer with its policy decision",
        Some(&json!({ "blocked": true, "reason": "missing_request_id", "retry_allowed": true })),
    )
}

/// A refused message's `params.arguments` as its record keeps them
/// (redacted).
fn stored_arguments(relay: &Relay, params: Option<&RawValue>) -> serde_json::Value {
    let (text, _) = relay.audit.tool_input(raw_arguments(params), None);
    serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
}

/// Headers that contradict the body: `400`, `-32020`, recorded.
fn refuse_mismatch(
    relay: &Relay,
    envelope: &Envelope<'_>,
    id: Option<&RawValue>,
    headers: &HeaderMap,
    started: Instant,
    mismatch: Mismatch,
) -> Response {
    let method = envelope.method.as_deref().unwrap_or_default();
    let name = (method == "tools/call")
        .then(|| stated_name(envelope.params))
        .flatten();
    reject(
        relay,
        envelope,
        headers,
        started,
        name.as_deref().unwrap_or("<header_mismatch>"),
        "header_mismatch",
        json!({
            "body_method": method,
            "arguments": stored_arguments(relay, envelope.params),
            "mismatch_reason": mismatch.reason,
            "headers": {
                "mcp-method": mismatch.method_header,
                "mcp-name": mismatch.name_header,
            },
        })
        .to_string(),
    );
    error_response(
        StatusCode::BAD_REQUEST,
        id,
        code::HEADER_MISMATCH,
        &format!("Header mismatch: {}", mismatch.reason),
        Some(&json!({ "blocked": true, "reason": "header_mismatch" })),
    )
}

/// A dry run answers with a result, as the tool would, carrying a report of
/// what would have happened.
fn dry_run_response(
    id: Option<&RawValue>,
    report: &serde_json::Value,
    headers: &HeaderMap,
) -> Response {
    let mut result = json!({ "content": [{ "type": "text", "text": report.to_string() }] });
    let modern = headers
        .get(MCP_PROTOCOL_VERSION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').map(str::trim).any(|v| v == "2026-07-28"));
    if modern {
        result["resultType"] = json!("complete");
    }
    let id: serde_json::Value = id
        .and_then(|id| serde_json::from_str(id.get()).ok())
        .unwrap_or(serde_json::Value::Null);
    let body = json!({ "jsonrpc": "2.0", "id": id, "result": result });
    (
        StatusCode::OK,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body.to_string(),
    )
        .into_response()
}

/// Shows a buffered reply to its observer. A 4xx the upstream sent without
/// a JSON-RPC body (an expired session, a rejected request) means the call
/// did not run.
fn observe_buffered(observer: Observer, status: StatusCode, body: &[u8]) {
    if status.is_client_error() && CallOutcome::of_response(body) == CallOutcome::Unknown {
        observer.refused(body);
    } else {
        observer.response(body);
    }
}

pub(super) async fn get(relay: &Relay, pool: &Pool, request: Request<TimedBody>) -> Response {
    let upstream = &relay.upstream;
    let request = upstream.request(
        Method::GET,
        request.headers(),
        "text/event-stream",
        Bytes::new(),
    );
    let timeout = upstream.request_timeout();
    let deadline = tokio::time::Instant::now() + timeout;
    match upstream.send(pool, request).await {
        Err(error) => upstream_failure(None, &error),
        Ok(response) if is_event_stream(response.headers()) => {
            let (parts, body) = response.into_parts();
            let shutdown = relay.shutdown.clone();
            let stream = stream::unfold((body, shutdown), |(mut body, shutdown)| async move {
                loop {
                    let frame = tokio::select! {
                        frame = body.frame() => frame,
                        () = shutdown.cancelled() => return None,
                    };
                    match frame? {
                        Ok(frame) => match frame.into_data() {
                            Ok(data) if !data.is_empty() => {
                                return Some((Ok::<_, Infallible>(data), (body, shutdown)))
                            }
                            _ => continue,
                        },
                        Err(error) => {
                            tracing::debug!(%error, "upstream GET stream ended with an error");
                            return None;
                        }
                    }
                }
            });
            build(parts.status, &parts.headers, Body::from_stream(stream))
        }
        Ok(response) => buffered(response, None, timeout, deadline, None).await,
    }
}

pub(super) async fn delete(relay: &Relay, pool: &Pool, request: Request<TimedBody>) -> Response {
    relay.agents.forget(request.headers());
    let upstream = &relay.upstream;
    let request = upstream.request(
        Method::DELETE,
        request.headers(),
        "application/json, text/event-stream",
        Bytes::new(),
    );
    let timeout = upstream.request_timeout();
    let deadline = tokio::time::Instant::now() + timeout;
    match upstream.send(pool, request).await {
        Ok(response) => buffered(response, None, timeout, deadline, None).await,
        Err(error) => upstream_failure(None, &error),
    }
}

/// Relays an SSE reply chunk by chunk. While the final response to the
/// request is outstanding, a gap longer than `idle` between chunks (or a
/// broken upstream stream) ends the stream with a JSON-RPC error event for
/// the request, so the client gets an answer instead of a hang.
fn event_stream(
    body: Incoming,
    reply_id: Option<Box<RawValue>>,
    idle: Duration,
    observer: Option<Observer>,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    struct State {
        body: Incoming,
        scanner: EventScanner,
        reply_id: Option<Box<RawValue>>,
        observer: Option<Observer>,
        done: bool,
    }
    let state = State {
        body,
        scanner: EventScanner::new(),
        reply_id,
        observer,
        done: false,
    };
    stream::unfold(state, move |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            let failure = match tokio::time::timeout(idle, st.body.frame()).await {
                Ok(None) => return None,
                Ok(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if data.is_empty() {
                        continue;
                    }
                    if let Some(id) = &st.reply_id {
                        let mut answered = false;
                        st.scanner.feed(&data, |message| {
                            if jsonrpc::is_response_to(message, id) {
                                answered = true;
                                if let Some(observer) = st.observer.take() {
                                    observer.response(message);
                                }
                            }
                        });
                        if answered {
                            st.reply_id = None;
                        }
                    }
                    return Some((Ok(data), st));
                }
                Ok(Some(Err(error))) => UpstreamError::Broken(error.to_string()),
                Err(_) => UpstreamError::Timeout(idle),
            };
            st.done = true;
            let id = st.reply_id.take()?;
            tracing::warn!(error = %failure, "upstream event stream failed before the response");
            return Some((Ok(failure_event(&st.scanner, &id, &failure)), st));
        }
    })
}

/// An SSE event carrying a JSON-RPC error for `id`, terminating any
/// half-received upstream event first so it parses on its own.
fn failure_event(scanner: &EventScanner, id: &RawValue, failure: &UpstreamError) -> Bytes {
    let mut event = Vec::new();
    if scanner.mid_event() {
        event.extend_from_slice(b"\n\n");
    }
    let data = failure_data(failure);
    let body = jsonrpc::error_body(
        Some(id),
        code::INTERNAL_ERROR,
        &failure.to_string(),
        Some(&data),
    );
    event.extend_from_slice(b"event: message\ndata: ");
    event.extend_from_slice(&body);
    event.extend_from_slice(b"\n\n");
    Bytes::from(event)
}

/// Relays a non-streamed reply once it has fully arrived (by `deadline`),
/// showing it to `observer` first. If it never arrives whole, the observer
/// is dropped unanswered (an unknown outcome).
async fn buffered(
    response: http::Response<Incoming>,
    reply_id: Option<&RawValue>,
    timeout: Duration,
    deadline: tokio::time::Instant,
    observer: Option<Observer>,
) -> Response {
    let (parts, body) = response.into_parts();
    let collected =
        tokio::time::timeout_at(deadline, Limited::new(body, MAX_RESPONSE_BYTES).collect()).await;
    let bytes = match collected {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(error)) => {
            return upstream_failure(reply_id, &UpstreamError::Broken(error.to_string()))
        }
        Err(_) => return upstream_failure(reply_id, &UpstreamError::Timeout(timeout)),
    };
    if let Some(observer) = observer {
        observe_buffered(observer, parts.status, &bytes);
    }
    build(parts.status, &parts.headers, Body::from(bytes))
}

fn build(status: StatusCode, upstream_headers: &HeaderMap, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for name in &RELAYED_RESPONSE_HEADERS {
        for value in upstream_headers.get_all(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    response
}

fn failure_data(error: &UpstreamError) -> serde_json::Value {
    json!({
        "failure_class": "upstream_forward_error",
        "failure_reason": error.reason(),
    })
}

/// Helio's own answer when the upstream could not be reached or timed out:
/// a JSON-RPC error the client can read, never a hang or a bare 5xx. A
/// request gets HTTP 200 with the error under its id; anything else 502.
fn upstream_failure(reply_id: Option<&RawValue>, error: &UpstreamError) -> Response {
    tracing::warn!(%error, "upstream request failed");
    let status = if reply_id.is_some() {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    };
    error_response(
        status,
        reply_id,
        code::INTERNAL_ERROR,
        &error.to_string(),
        Some(&failure_data(error)),
    )
}

pub(super) fn error_response(
    status: StatusCode,
    id: Option<&RawValue>,
    code: i64,
    message: &str,
    data: Option<&serde_json::Value>,
) -> Response {
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        jsonrpc::error_body(id, code, message, data),
    )
        .into_response()
}

/// The media-type essence must be exactly `application/json`; substring
/// matches would let CORS-safelisted types through.
fn is_json(headers: &HeaderMap) -> bool {
    media_type_is(headers, "application/json")
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    media_type_is(headers, "text/event-stream")
}

fn media_type_is(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(expected))
}
