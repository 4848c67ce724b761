//! The audit record of each `tools/call` (and of each request refused at the
//! transport), built as the relay learns what happened to it.

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderMap, StatusCode};
use serde_json::Value;

use crate::audit::{new_id, Audit, AuditRecord};
use crate::plugins::{Check, Decision};

use super::upstream::MCP_PROTOCOL_VERSION;

/// One call's record in the making. Dropped without an answer (timeout,
/// broken stream, client gone), it is recorded as such.
pub(super) struct CallAudit {
    audit: Arc<Audit>,
    record: AuditRecord,
    started: Instant,
    upstream_started: Option<Instant>,
    /// Values `audit.redact` masked in the input, masked in the response too.
    secrets: Vec<String>,
    done: bool,
}

/// What the relay knows about a call when it is parsed.
pub(super) struct CallFacts<'a> {
    pub tool: &'a str,
    pub arguments: Option<&'a str>,
    /// The same arguments as governance read them.
    pub parsed_arguments: Option<&'a serde_json::Value>,
    pub session: Option<(&'a str, &'static str)>,
    /// The client's `clientInfo`, when known.
    pub agent: Option<&'a str>,
    pub environment: Option<&'a str>,
    pub stages: &'a str,
}

impl CallAudit {
    pub fn begin(
        audit: &Arc<Audit>,
        started: Instant,
        headers: &HeaderMap,
        facts: CallFacts<'_>,
    ) -> Self {
        let (tool_input, secrets) = audit.tool_input(facts.arguments, facts.parsed_arguments);
        let record = AuditRecord {
            id: new_id(),
            timestamp: iso_at(started),
            session_id: facts.session.map(|(s, _)| s.to_owned()),
            session_source: facts.session.map(|(_, source)| source),
            agent_id: facts.agent.map(str::to_owned),
            environment: facts.environment.map(str::to_owned),
            tool_name: facts.tool.to_owned(),
            tool_input,
            policy_decision: "allow".into(),
            record_kind: "tool_call",
            origin: "mcp",
            protocol_version: protocol_version(headers),
            plugins: Some(facts.stages.to_owned()),
            ..AuditRecord::default()
        };
        Self {
            audit: audit.clone(),
            record,
            started,
            upstream_started: None,
            secrets,
            done: false,
        }
    }

    /// What the stages checked in governance state, and whether the call
    /// is flagged as destructive (the rest of the decision follows).
    pub fn checked(&mut self, checks: Vec<Check>, flagged_destructive: bool) {
        self.record.flagged_destructive = flagged_destructive;
        self.record.checks = checks;
    }

    /// The chain blocked the call with this error `data`.
    pub fn blocked(mut self, data: &Value) {
        self.record.outcome = Some(("blocked", data.clone()));
        let r = &mut self.record;
        r.policy_decision = text(data, "action").unwrap_or_else(|| "deny".into());
        r.block_reason = text(data, "reason");
        r.matched_rule = text(data, "rule");
        r.matched_rule_index = data
            .get("rule_index")
            .and_then(Value::as_u64)
            .and_then(|i| u32::try_from(i).ok());
        self.finish();
    }

    /// The call was simulated; `report` is what the agent got, `rule_index`
    /// the rule that would have applied.
    pub fn simulated(mut self, report: &Value, rule_index: Option<u32>) {
        self.record.outcome = Some(("dry_run", report.clone()));
        let r = &mut self.record;
        r.policy_decision = "dry_run".into();
        r.dry_run = true;
        r.matched_rule = text(report, "matched_rule");
        r.matched_rule_index = rule_index;
        self.finish();
    }

    /// The chain let the call through with `decision`; it is being sent.
    pub fn forwarding(&mut self, decision: Option<&Decision>) {
        if let Some(d) = decision {
            self.record.policy_decision = d.action.clone();
            self.record.matched_rule = d.rule.clone();
            self.record.matched_rule_index = d.rule_index;
        }
        self.upstream_started = Some(Instant::now());
    }

    /// The upstream answered with `status` and the JSON-RPC `message`.
    pub fn answered(mut self, status: StatusCode, message: &[u8]) {
        let (response, truncated) = self.audit.response(message, &self.secrets);
        let error = error_message(message);
        let r = &mut self.record;
        r.upstream_http_status = Some(status.as_u16());
        r.upstream_response = response;
        r.response_truncated = truncated;
        r.upstream_error = error;
        self.finish();
    }

    /// The call never got an answer from the upstream.
    pub fn failed(mut self, why: &str) {
        self.record.upstream_error = Some(why.to_owned());
        self.finish();
    }

    fn finish(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let total = self.started.elapsed().as_secs_f64() * 1e3;
        let upstream = self
            .upstream_started
            .map(|at| at.elapsed().as_secs_f64() * 1e3);
        let r = &mut self.record;
        r.total_duration_ms = total;
        r.upstream_latency_ms = upstream;
        r.proxy_compute_ms = (total - upstream.unwrap_or(0.0)).max(0.0);
        self.audit.record(std::mem::take(&mut self.record));
    }
}

impl Drop for CallAudit {
    fn drop(&mut self) {
        if !self.done {
            self.record.upstream_error = Some(
                "no response from the upstream (timed out, stream broken, or the client went away)"
                    .into(),
            );
            self.finish();
        }
    }
}

/// A request refused before any policy ran (a disallowed Origin, a
/// `tools/call` without a tool name).
pub(super) struct Rejection<'a> {
    pub tool_name: &'a str,
    pub reason: &'a str,
    pub tool_input: String,
    /// The governance session, when it resolved.
    pub session: Option<(&'a str, &'static str)>,
    /// The client's `clientInfo`, when known.
    pub agent: Option<&'a str>,
}

pub(super) fn rejected(audit: &Audit, started: Instant, headers: &HeaderMap, r: Rejection<'_>) {
    let Rejection {
        tool_name,
        reason,
        tool_input,
        session,
        agent,
    } = r;
    let total = started.elapsed().as_secs_f64() * 1e3;
    audit.record(AuditRecord {
        id: new_id(),
        timestamp: iso_at(started),
        session_id: session.map(|(s, _)| s.to_owned()),
        session_source: session.map(|(_, source)| source),
        agent_id: agent.map(str::to_owned),
        tool_name: tool_name.into(),
        tool_input,
        policy_decision: "rejected".into(),
        block_reason: Some(reason.into()),
        total_duration_ms: total,
        proxy_compute_ms: total,
        record_kind: "tool_call",
        origin: "mcp",
        protocol_version: protocol_version(headers),
        ..AuditRecord::default()
    });
}

/// The JSON-RPC error's `message`, if the response is an error. Read
/// without building the whole (possibly large) response as a `Value`.
fn error_message(message: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Response<'a> {
        #[serde(borrow)]
        error: Option<ErrorObject<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorObject<'a> {
        #[serde(borrow)]
        message: Option<std::borrow::Cow<'a, str>>,
    }
    let response: Response<'_> = serde_json::from_slice(message).ok()?;
    Some(response.error?.message?.into_owned())
}

fn text(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn protocol_version(headers: &HeaderMap) -> Option<String> {
    headers
        .get(MCP_PROTOCOL_VERSION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The wall-clock time at `instant` (which is at most a request ago).
fn iso_at(instant: Instant) -> String {
    let ago = instant.elapsed().as_millis() as u64;
    crate::time::iso_utc(crate::state::now_ms().saturating_sub(ago))
}
