//! One governed call's spans. The root span is the call as Helio handled
//! it (continuing the client's trace when it sent a context); its children
//! are built from what the core measured anyway — each stage's run and the
//! state operations it made, the state commit and settlement, the approval
//! wait, the upstream call — with their own start and end times, so the
//! stage chain runs with no tracing code in its loop.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracer;

use crate::audit::AuditRecord;

/// Longest `traceparent` read (version 00 is 55 characters; later
/// versions may append fields).
const MAX_TRACEPARENT: usize = 256;
/// Longest `tracestate` carried on; a longer one is dropped, as W3C allows.
const MAX_TRACESTATE: usize = 512;

/// The W3C trace context a client sent with a call (`_meta` or headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    traceparent: String,
    tracestate: Option<String>,
}

impl TraceContext {
    /// A context as sent; none for a `traceparent` that is not W3C's
    /// exact form (the call then starts a new trace, as W3C asks).
    pub fn new(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        if traceparent.len() > MAX_TRACEPARENT || !well_formed(traceparent) {
            return None;
        }
        Some(Self {
            traceparent: traceparent.to_owned(),
            tracestate: tracestate
                .filter(|s| s.len() <= MAX_TRACESTATE)
                .map(str::to_owned),
        })
    }

    /// The context in a request's `traceparent`/`tracestate` headers.
    pub fn of_headers(headers: &http::HeaderMap) -> Option<Self> {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        Self::new(text("traceparent")?, text("tracestate"))
    }

    fn extract(&self) -> Context {
        TraceContextPropagator::new().extract(self)
    }
}

/// W3C `traceparent`: `<version>-<trace-id>-<parent-id>-<flags>`, lowercase
/// hex of 2, 32, 16 and 2 digits, ids not all zero, version not `ff`;
/// version `00` has nothing after the flags, a later one may append
/// `-`-separated fields. (The SDK's propagator accepts ids of other lengths.)
fn well_formed(traceparent: &str) -> bool {
    let hex = |part: &str, len: usize| {
        part.len() == len && part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let nonzero = |part: &str| part.bytes().any(|b| b != b'0');
    let mut parts = traceparent.split('-');
    let (Some(version), Some(trace), Some(parent), Some(flags)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let rest = parts.next();
    hex(version, 2)
        && version != "ff"
        && (version != "00" || rest.is_none())
        && hex(trace, 32)
        && nonzero(trace)
        && hex(parent, 16)
        && nonzero(parent)
        && hex(flags, 2)
}

impl Extractor for TraceContext {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => Some(&self.traceparent),
            "tracestate" => self.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// The context to send upstream with a call: its upstream span's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TraceHeaders {
    pub traceparent: String,
    pub tracestate: Option<String>,
}

impl opentelemetry::propagation::Injector for TraceHeaders {
    fn set(&mut self, key: &str, value: String) {
        match key {
            "traceparent" => self.traceparent = value,
            "tracestate" if !value.is_empty() => self.tracestate = Some(value),
            _ => {}
        }
    }
}

/// One stage's run on a call, as the chain measured it (taken only when
/// traces are on).
#[derive(Debug, Clone)]
pub struct StageRun {
    pub stage: Arc<str>,
    pub started: Instant,
    pub took: Duration,
    /// `allow`, `deny`, `dry_run`, `require_approval`, or `failed`.
    pub verdict: &'static str,
    pub rule: Option<String>,
    /// A denial's reason, or why the stage failed.
    pub reason: Option<String>,
    pub state_ops: Vec<StateOp>,
}

/// One state operation a stage made (a WIT `state` import).
#[derive(Debug, Clone)]
pub struct StateOp {
    /// `rate_take`, `spend_reserve`, `evidence`, …
    pub operation: &'static str,
    /// The scoped key, evidence key or tool it was about.
    pub key: String,
    pub started: Instant,
    pub took: Duration,
}

/// Monotonic instants as wall-clock times, from one reading of both.
#[derive(Clone, Copy)]
struct Clock {
    instant: Instant,
    wall: SystemTime,
}

impl Clock {
    fn now() -> Self {
        Self {
            instant: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    fn at(&self, instant: Instant) -> SystemTime {
        match instant.checked_duration_since(self.instant) {
            Some(after) => self.wall + after,
            None => self.wall - self.instant.duration_since(instant),
        }
    }
}

/// What a call's root span is about.
pub struct CallStart<'a> {
    pub parent: Option<&'a TraceContext>,
    pub tool: &'a str,
    /// The door's origin (`mcp`, or an adapter's).
    pub origin: &'a str,
    pub received: Instant,
    pub session: Option<&'a str>,
    pub agent: Option<&'a str>,
    pub protocol_version: Option<&'a str>,
}

/// A governed call's trace, from the door's receipt to its record.
pub struct CallTrace {
    tracer: SdkTracer,
    clock: Clock,
    root: Context,
    upstream: Option<Context>,
    /// When the stages were done: nothing the call did after them starts
    /// earlier.
    judged: Option<Instant>,
}

impl CallTrace {
    pub fn start(tracer: &SdkTracer, call: CallStart<'_>) -> Self {
        let clock = Clock::now();
        let parent = call.parent.map_or_else(Context::new, TraceContext::extract);
        let mut attributes = vec![
            KeyValue::new("mcp.method.name", "tools/call"),
            KeyValue::new("gen_ai.operation.name", "execute_tool"),
            KeyValue::new("gen_ai.tool.name", call.tool.to_owned()),
            KeyValue::new("helio.origin", call.origin.to_owned()),
        ];
        let optional = [
            ("helio.session.id", call.session),
            ("helio.agent", call.agent),
            ("mcp.protocol.version", call.protocol_version),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                attributes.push(KeyValue::new(key, value.to_owned()));
            }
        }
        let span = tracer
            .span_builder(format!("tools/call {}", call.tool))
            .with_kind(SpanKind::Server)
            .with_start_time(clock.at(call.received))
            .with_attributes(attributes)
            .start_with_context(tracer, &parent);
        Self {
            tracer: tracer.clone(),
            clock,
            root: parent.with_span(span),
            upstream: None,
            judged: None,
        }
    }

    fn child(
        &self,
        parent: &Context,
        name: String,
        kind: SpanKind,
        started: Instant,
        attributes: Vec<KeyValue>,
    ) -> Context {
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(kind)
            .with_start_time(self.clock.at(started))
            .with_attributes(attributes)
            .start_with_context(&self.tracer, parent);
        parent.with_span(span)
    }

    /// The stages' runs, in chain order, each with its state operations.
    pub fn stages(&mut self, runs: &[StageRun]) {
        self.judged = Some(Instant::now());
        for run in runs {
            let mut attributes = vec![
                KeyValue::new("helio.stage.name", run.stage.to_string()),
                KeyValue::new("helio.stage.verdict", run.verdict),
            ];
            if let Some(rule) = &run.rule {
                attributes.push(KeyValue::new("helio.stage.rule", rule.clone()));
            }
            if let Some(reason) = &run.reason {
                attributes.push(KeyValue::new("helio.stage.reason", reason.clone()));
            }
            let name = format!("stage {}", run.stage);
            let stage = self.child(
                &self.root,
                name,
                SpanKind::Internal,
                run.started,
                attributes,
            );
            for op in &run.state_ops {
                self.state_span(&stage, op.operation, &op.key, op.started, op.took);
            }
            if run.verdict == "failed" {
                let why = run.reason.clone().unwrap_or_default();
                stage.span().set_status(Status::error(why));
            }
            stage
                .span()
                .end_with_timestamp(self.clock.at(run.started + run.took));
        }
    }

    fn state_span(
        &self,
        parent: &Context,
        operation: &'static str,
        key: &str,
        started: Instant,
        took: Duration,
    ) {
        let mut attributes = vec![KeyValue::new("helio.state.operation", operation)];
        if !key.is_empty() {
            attributes.push(KeyValue::new("helio.state.key", key.to_owned()));
        }
        let name = format!("state {operation}");
        let span = self.child(parent, name, SpanKind::Internal, started, attributes);
        span.span()
            .end_with_timestamp(self.clock.at(started + took));
    }

    /// A state operation of the core's own (`commit`, `settle`, `release`).
    pub fn state(&self, operation: &'static str, started: Instant) {
        self.state_span(&self.root, operation, "", started, started.elapsed());
    }

    /// The call waited `waited` for a human, who ended it `status`.
    pub fn approval(&self, status: &'static str, ticket: Option<&str>, waited: Duration) {
        let now = Instant::now();
        let started = now.checked_sub(waited).unwrap_or(now);
        let mut attributes = vec![KeyValue::new("helio.approval.status", status)];
        if let Some(ticket) = ticket {
            attributes.push(KeyValue::new("helio.approval.ticket", ticket.to_owned()));
        }
        let span = self.child(
            &self.root,
            "approval".into(),
            SpanKind::Internal,
            started,
            attributes,
        );
        span.span().end_with_timestamp(self.clock.at(now));
    }

    /// The call is being sent upstream now: its upstream span starts, and
    /// this is the context to send with it.
    pub fn sending(&mut self, tool: &str) -> TraceHeaders {
        let upstream = self.child(
            &self.root,
            format!("upstream tools/call {tool}"),
            SpanKind::Client,
            Instant::now(),
            vec![KeyValue::new("mcp.method.name", "tools/call")],
        );
        let mut headers = TraceHeaders::default();
        TraceContextPropagator::new().inject_context(&upstream, &mut headers);
        self.upstream = Some(upstream);
        headers
    }

    /// The caller ran the call itself (the adapter API), taking `took` (by
    /// its word: the span starts no earlier than the call was allowed);
    /// `error`: why it failed, if it did.
    pub fn ran(&self, tool: &str, took: Duration, error: Option<&str>) {
        let now = Instant::now();
        let started = now.checked_sub(took).unwrap_or(now);
        let started = self.judged.map_or(started, |judged| started.max(judged));
        let span = self.child(
            &self.root,
            format!("run {tool}"),
            SpanKind::Internal,
            started,
            Vec::new(),
        );
        if let Some(error) = error {
            span.span().set_status(Status::error(error.to_owned()));
        }
        span.span().end_with_timestamp(self.clock.at(now));
    }

    /// The call's record is complete: the decision and how the upstream
    /// answered go on the spans, which end now.
    pub fn end(self, record: &AuditRecord) {
        let now = SystemTime::now();
        if let Some(upstream) = &self.upstream {
            let span = upstream.span();
            if let Some(status) = record.upstream_http_status {
                span.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status),
                ));
            }
            if let Some(error) = &record.upstream_error {
                span.set_status(Status::error(error.clone()));
            }
            span.end_with_timestamp(now);
        }
        let root = self.root.span();
        root.set_attribute(KeyValue::new("helio.audit.id", record.id.clone()));
        root.set_attribute(KeyValue::new(
            "helio.decision",
            record.policy_decision.clone(),
        ));
        if let Some(reason) = &record.block_reason {
            root.set_attribute(KeyValue::new("helio.block_reason", reason.clone()));
        }
        if let Some(rule) = &record.matched_rule {
            root.set_attribute(KeyValue::new("helio.rule", rule.clone()));
        }
        if let Some(status) = record.approval_status {
            root.set_attribute(KeyValue::new("helio.approval.status", status));
        }
        // A forwarded call the upstream failed; a call that never went out
        // (blocked, not run by its caller) is no error of the call's.
        if let (Some(_), Some(error)) = (&self.upstream, &record.upstream_error) {
            root.set_attribute(KeyValue::new("error.type", "upstream"));
            root.set_status(Status::error(error.clone()));
        }
        root.end_with_timestamp(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt;

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn only_w3cs_exact_form_is_continued() {
        for bad in [
            "00-0af7651916cd43dd8448eb211c8031-b7ad6b7169203331-01", // 30-digit trace id
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01", // uppercase
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "",
        ] {
            assert!(TraceContext::new(bad, None).is_none(), "{bad}");
        }
        assert!(TraceContext::new(PARENT, None).is_some());
        let later = "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-comes";
        assert!(TraceContext::new(later, None).is_some());
    }

    #[test]
    fn a_context_is_bounded_and_a_long_tracestate_is_dropped() {
        assert!(TraceContext::new(&"0".repeat(MAX_TRACEPARENT + 1), None).is_none());
        let long_state = "k=".to_owned() + &"v".repeat(MAX_TRACESTATE);
        let kept = TraceContext::new(PARENT, Some(&long_state)).expect("a context");
        assert_eq!(kept.tracestate, None);
        let parent = kept.extract();
        let span = parent.span();
        let context = span.span_context();
        assert!(context.is_valid() && context.is_sampled() && context.is_remote());
        assert_eq!(context.span_id().to_string(), "b7ad6b7169203331");
    }

    #[test]
    fn instants_map_to_wall_clock_times_both_ways() {
        let clock = Clock::now();
        let later = clock.instant + Duration::from_millis(5);
        assert_eq!(clock.at(later), clock.wall + Duration::from_millis(5));
        if let Some(earlier) = clock.instant.checked_sub(Duration::from_millis(5)) {
            assert_eq!(clock.at(earlier), clock.wall - Duration::from_millis(5));
        }
    }
}
