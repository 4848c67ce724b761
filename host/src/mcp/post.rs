//! `POST /mcp`: one JSON-RPC message from the client. It is parsed only as
//! far as routing and governance need, checked against its headers, and
//! either refused, governed (a `tools/call`: the core decides) or relayed
//! with its original bytes.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;
use serde_json::value::RawValue;

use crate::govern::{
    CallFacts, Decision, Door, Forwarded, Held, Refused, Resolved, SessionIdentity,
};
use crate::serve::{BodyTimeout, TimedBody};
use crate::traces::TraceContext;

use super::agents::meta_client_info;
use super::agreement::{self, Mismatch};
use super::call_params::{raw_arguments, stated_name, with_trace_meta, CallParams, ParamsError};
use super::jsonrpc::{Envelope, EnvelopeError, Kind};
use super::observe::Observer;
use super::relay::Relay;
use super::render::{self, Refusal};
use super::stream;
use super::upstream::{
    stamp_method_headers, stamp_trace_headers, Pool, MCP_PROTOCOL_VERSION, MCP_SESSION_ID,
};

/// Largest JSON-RPC message Helio accepts from a client.
const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

pub(super) async fn post(relay: &Arc<Relay>, pool: &Pool, request: Request<TimedBody>) -> Response {
    let received = Instant::now();
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    if !stream::is_json(headers) {
        return render::refusal(None, &Refusal::NotJson);
    }
    let bytes = match read_body(body).await {
        Ok(bytes) => bytes,
        Err(refusal) => return render::refusal(None, &refusal),
    };
    handle(relay, pool, headers, bytes, received, None).await
}

/// One JSON-RPC message, read whole, with the headers it came with:
/// refused, governed or relayed, exactly as on `POST /mcp`. `stream` is
/// the legacy `/sse` session it arrived on, the identity of last resort.
pub(super) async fn handle(
    relay: &Arc<Relay>,
    pool: &Pool,
    headers: &HeaderMap,
    bytes: Bytes,
    received: Instant,
    stream: Option<&str>,
) -> Response {
    let envelope = match Envelope::parse(&bytes) {
        Ok(envelope) => envelope,
        Err(EnvelopeError::Parse) => return render::refusal(None, &Refusal::Parse),
        Err(EnvelopeError::Invalid(why)) => return render::refusal(None, &Refusal::Invalid(why)),
    };
    // An id of `null` cannot be answered by id; echo only usable ids.
    let reply_id: Option<Box<RawValue>> = envelope
        .id
        .filter(|id| envelope.kind == Kind::Request && id.get() != "null")
        .map(ToOwned::to_owned);
    let message = Message {
        relay,
        envelope: &envelope,
        headers,
        received,
        reply_id: reply_id.as_deref(),
        stream,
    };
    // Read once: checked against the client's headers, then stamped on ours.
    let target_name = envelope.target_name();
    if let Err(mismatch) = agreement::check(headers, &envelope, target_name.as_deref()) {
        return message.refuse_mismatch(&mismatch);
    }

    let is_request = envelope.kind == Kind::Request;
    let method = envelope.method.as_deref();
    let mut observer = None;
    if method == Some("tools/call") {
        if !is_request {
            return message.refuse_tool_notification();
        }
        let call = match message.govern().await {
            Governed::Forward(call) => call,
            Governed::Answer(answer) => return answer,
            // Streamed: the client hears that its call waits (progress
            // notifications or keep-alive comments) until a human decides.
            Governed::Held(held) if stream::accepts_event_stream(headers) => {
                let exchange = Exchange {
                    headers: Cow::Owned(headers.clone()),
                    bytes: bytes.clone(),
                    method: Some(Cow::Borrowed("tools/call")),
                    target_name: target_name.clone().map(Cow::Owned),
                };
                let progress_token = super::call_params::progress_token(envelope.params);
                return super::held::reply(
                    relay.clone(),
                    pool.clone(),
                    exchange,
                    reply_id,
                    held,
                    progress_token,
                );
            }
            Governed::Held(held) => match held.resolved().await {
                Resolved::Forward(call) => call,
                Resolved::Block(denial) => return render::denial(reply_id.as_deref(), &denial),
            },
        };
        observer = Some(Observer::tool_call(call));
    }
    // Every relayed tools/list teaches Helio the tools' definitions.
    if is_request && method == Some("tools/list") {
        observer = Some(Observer::ToolList(relay.tools.clone()));
    }
    let introduced = (is_request && method == Some("initialize"))
        .then(|| super::agents::of_initialize(envelope.params))
        .flatten();

    let exchange = Exchange {
        headers: Cow::Borrowed(headers),
        bytes: bytes.clone(),
        method: method.map(Cow::Borrowed),
        target_name: target_name.as_deref().map(Cow::Borrowed),
    };
    exchange
        .send(relay, pool, reply_id, observer, introduced)
        .await
}

/// What goes to the upstream for one message: borrowed from the request
/// on the direct path, owned by a held call's reply.
pub(super) struct Exchange<'a> {
    pub headers: Cow<'a, HeaderMap>,
    pub bytes: Bytes,
    /// The JSON-RPC method, when the message has one.
    pub method: Option<Cow<'a, str>>,
    pub target_name: Option<Cow<'a, str>>,
}

impl Exchange<'_> {
    /// Sends the message upstream and relays the reply; `observer` learns
    /// the answer, `introduced` is the agent an `initialize` names. A
    /// 2026-07-28 client's message to a handshake-era server goes through
    /// the era bridge.
    pub async fn send(
        self,
        relay: &Arc<Relay>,
        pool: &Pool,
        reply_id: Option<Box<RawValue>>,
        observer: Option<Observer>,
        introduced: Option<Arc<str>>,
    ) -> Response {
        if let Some(init) = relay.era.bridging(&self.headers) {
            return super::bridge::send(self, &init, relay, pool, reply_id, observer).await;
        }
        if relay.legacy_clients.knows(&self.headers) {
            return match super::bridge::as_modern(self, relay, pool, reply_id, observer).await {
                Some(response) => response,
                // Forgotten meanwhile: as for any expired session.
                None => http::StatusCode::NOT_FOUND.into_response(),
            };
        }
        if self.method.as_deref() == Some("initialize") {
            let pinned_modern = relay.upstream.pinned_era() == Some(crate::govern::Era::Stateless);
            let discovered = relay.era.discovered();
            if discovered.is_some() || pinned_modern {
                let (id, agent) = (reply_id, introduced);
                return super::bridge::initialize(self, discovered, relay, pool, id, agent).await;
            }
        }
        // A client does not cache the tool list past Helio's next look at it.
        let clamp = (self.method.as_deref() == Some("tools/list"))
            .then(|| relay.core.tool_revalidation())
            .filter(|revalidation| revalidation.enabled)
            .map(|revalidation| {
                let max = revalidation.max_advertised_ttl.as_millis();
                stream::Reshape::ClampTtl(u64::try_from(max).unwrap_or(u64::MAX))
            });
        self.forward(relay, pool, reply_id, observer, introduced, clamp.as_ref())
            .await
    }

    /// Sends the message upstream as it is and relays the reply
    /// (`reshape`: see [`stream::relay_reply`]).
    pub async fn forward(
        self,
        relay: &Relay,
        pool: &Pool,
        reply_id: Option<Box<RawValue>>,
        mut observer: Option<Observer>,
        introduced: Option<Arc<str>>,
        reshape: Option<&stream::Reshape>,
    ) -> Response {
        let upstream = &relay.upstream;
        // A traced call carries its upstream span's context, in `_meta`
        // (which an MCP server reads, over any transport) and in headers.
        let trace = observer.as_mut().and_then(Observer::sending);
        let bytes = match &trace {
            Some(trace) => with_trace_meta(&self.bytes, trace).unwrap_or(self.bytes),
            None => self.bytes,
        };
        let mut request = upstream.request(
            Method::POST,
            &self.headers,
            "application/json, text/event-stream",
            bytes,
        );
        if let Some(method) = &self.method {
            stamp_method_headers(request.headers_mut(), method, self.target_name.as_deref());
        }
        if let Some(trace) = &trace {
            stamp_trace_headers(request.headers_mut(), trace);
        }
        let deadline = tokio::time::Instant::now() + upstream.request_timeout();
        let response = match upstream.send(pool, request).await {
            Ok(response) => response,
            Err(error) => {
                if let Some(observer) = observer {
                    observer.no_response(&error);
                }
                return render::upstream_failure(reply_id.as_deref(), &error);
            }
        };
        if let Some(observer) = &mut observer {
            observer.head(response.status());
        }
        if let (Some(agent), Some(session)) = (introduced, response.headers().get(MCP_SESSION_ID)) {
            relay.agents.remember(session, agent);
        }
        stream::relay_reply(relay, response, reply_id, deadline, observer, reshape).await
    }
}

/// The body, whole, within [`MAX_REQUEST_BYTES`] and the listener's body
/// timeout.
pub(super) async fn read_body(body: TimedBody) -> Result<Bytes, Refusal<'static>> {
    match Limited::new(body, MAX_REQUEST_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => {
            Err(Refusal::TooLarge(MAX_REQUEST_BYTES >> 20))
        }
        Err(error) if error.is::<BodyTimeout>() => Err(Refusal::BodyTimeout(error.to_string())),
        Err(error) => {
            tracing::debug!(%error, "reading a request body failed");
            Err(Refusal::BodyUnreadable)
        }
    }
}

/// What governance made of a `tools/call`.
enum Governed {
    Forward(Box<Forwarded>),
    /// A human must decide first.
    Held(Box<Held>),
    /// Answer with this instead (refused, blocked, simulated).
    Answer(Response),
}

/// One parsed message and what arrived with it.
struct Message<'a> {
    relay: &'a Relay,
    envelope: &'a Envelope<'a>,
    headers: &'a HeaderMap,
    received: Instant,
    reply_id: Option<&'a RawValue>,
    /// The legacy `/sse` session the message came on, if it did.
    stream: Option<&'a str>,
}

impl Message<'_> {
    /// The governance session: from the configured sources, else (on the
    /// legacy `/sse` door) the stream the message came on.
    fn identity(&self, client_info: Option<&super::agents::ClientInfo>) -> Option<SessionIdentity> {
        self.relay
            .identity
            .resolve(self.headers, client_info)
            .or_else(|| {
                self.stream.map(|id| SessionIdentity {
                    id: id.into(),
                    source: "transport",
                })
            })
    }

    /// A `tools/call`, read exactly and handed to the governance core.
    async fn govern(&self) -> Governed {
        let call = match CallParams::parse(self.envelope.params) {
            Ok(call) => call,
            Err(ParamsError::Nameless) => {
                let raw_params = self
                    .envelope
                    .params
                    .and_then(|p| serde_json::from_str::<serde_json::Value>(p.get()).ok());
                let input = json!({ "raw_params": raw_params }).to_string();
                return Governed::Answer(self.refuse("<nameless>", &Refusal::Nameless, input));
            }
            Err(ParamsError::Unreadable(why)) => {
                let raw = self.envelope.params.map_or("", RawValue::get);
                let input = self.relay.core.audit().unreadable_input(raw, &why);
                return Governed::Answer(self.refuse_call(&Refusal::InvalidArguments(&why), input));
            }
        };
        let relay = self.relay;
        let tool = relay.tools.view(&call.name);
        let marks = &tool.param_headers;
        if let Err(mismatch) =
            agreement::check_params(self.headers, marks, call.arguments.as_deref())
        {
            return Governed::Answer(self.refuse_mismatch(&mismatch));
        }
        let structured = tool.output_schema;
        let facts = CallFacts {
            door: Door::Mcp,
            received: self.received,
            protocol_version: protocol_version(self.headers),
            annotations: tool.annotations,
            drift: tool.drift,
            identity: self.identity(call.client_info.as_ref()),
            agent: relay
                .agents
                .of_call(self.headers, call.client_info.as_ref()),
            tool: call.name.into(),
            arguments: call.arguments,
            raw_arguments: call.raw_arguments,
            metadata: None,
            // The call's own context first: one connection may carry calls
            // of many traces.
            trace: call
                .trace
                .or_else(|| TraceContext::of_headers(self.headers)),
        };
        let era = facts.era();
        let id = self.reply_id;
        match relay.core.decide(facts).await {
            Decision::Forward(call) => Governed::Forward(call),
            Decision::Block(denial) => Governed::Answer(render::denial(id, &denial)),
            Decision::Simulate(simulation) => {
                Governed::Answer(render::simulation(id, &simulation, era, structured))
            }
            Decision::Hold(held) => Governed::Held(held),
        }
    }

    /// A `tools/call` without an id is a notification: there is no reply to
    /// carry a policy decision, and a generic JSON-RPC server would still
    /// run it. Refused and recorded, never forwarded.
    fn refuse_tool_notification(&self) -> Response {
        let (input, _) = self
            .relay
            .core
            .audit()
            .tool_input(raw_arguments(self.envelope.params), None);
        self.refuse_call(&Refusal::MissingRequestId, input)
    }

    /// Headers that contradict the body: `400`, `-32020`, recorded.
    fn refuse_mismatch(&self, mismatch: &Mismatch) -> Response {
        let method = self.envelope.method.as_deref().unwrap_or_default();
        let name = (method == "tools/call")
            .then(|| stated_name(self.envelope.params))
            .flatten();
        let (arguments, _) = self
            .relay
            .core
            .audit()
            .tool_input(raw_arguments(self.envelope.params), None);
        let arguments =
            serde_json::from_str(&arguments).unwrap_or(serde_json::Value::String(arguments));
        let input = json!({
            "body_method": method,
            "arguments": arguments,
            "mismatch_reason": mismatch.reason,
            "headers": {
                "mcp-method": mismatch.method_header,
                "mcp-name": mismatch.name_header,
            },
        })
        .to_string();
        self.refuse(
            name.as_deref().unwrap_or("<header_mismatch>"),
            &Refusal::HeaderMismatch(mismatch),
            input,
        )
    }

    /// Refuses a `tools/call` under the tool name its params state
    /// (`<nameless>` when none can be read).
    fn refuse_call(&self, refusal: &Refusal<'_>, tool_input: String) -> Response {
        let name = stated_name(self.envelope.params);
        self.refuse(name.as_deref().unwrap_or("<nameless>"), refusal, tool_input)
    }

    /// Records a refusal of this message and renders it.
    fn refuse(&self, tool_name: &str, refusal: &Refusal<'_>, tool_input: String) -> Response {
        // Read leniently: these only label the record of a refusal.
        let client_info = meta_client_info(self.envelope.params);
        let relay = self.relay;
        let identity = self.identity(client_info.as_ref());
        let agent = relay.agents.of_call(self.headers, client_info.as_ref());
        relay.core.refused(Refused {
            door: Door::Mcp,
            received: self.received,
            protocol_version: protocol_version(self.headers),
            tool_name,
            reason: refusal.reason(),
            tool_input,
            identity: identity.as_ref(),
            agent: agent.as_deref(),
        });
        render::refusal(self.reply_id, refusal)
    }
}

/// The client's `MCP-Protocol-Version`.
pub(super) fn protocol_version(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(MCP_PROTOCOL_VERSION)
        .and_then(|v| v.to_str().ok())
}
