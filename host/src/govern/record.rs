//! The audit record of each call (and of each call a door refused), built
//! as the core learns what happened to it.

use std::sync::Arc;
use std::time::Instant;

use crate::audit::{new_id, Audit, AuditRecord};
use crate::pipeline::{Denial, Simulation};
use crate::plugins::checks::{decimal_json, evidence_chain};
use crate::plugins::{Check, Decision};
use crate::state::Decimal;
use crate::traces::{CallStart, CallTrace, StageRun, TraceHeaders};

use super::facts::{CallFacts, Refused};

/// One call's record in the making. Dropped without an answer (timeout,
/// broken stream, client gone), it is recorded as such.
pub(super) struct CallAudit {
    audit: Arc<Audit>,
    record: AuditRecord,
    started: Instant,
    upstream_started: Option<Instant>,
    /// Values `audit.redact` masked in the input, masked in the response too.
    secrets: Vec<String>,
    /// `evidence_chain.tool_drift`, for a call to a drifted tool.
    drift: Option<serde_json::Value>,
    /// How long the call ran, as its caller reported (the adapter API).
    reported_latency: Option<std::time::Duration>,
    /// Its spans, when traces are on.
    trace: Option<CallTrace>,
    done: bool,
}

impl CallAudit {
    pub fn begin(
        audit: &Arc<Audit>,
        facts: &CallFacts<'_>,
        environment: Option<&str>,
        stages: &str,
    ) -> Self {
        let (tool_input, secrets) =
            audit.tool_input(facts.raw_arguments, facts.arguments.as_deref());
        let record = AuditRecord {
            id: new_id(),
            timestamp: iso_at(facts.received),
            session_id: facts.identity.as_ref().map(|s| s.id.to_string()),
            session_source: facts.identity.as_ref().map(|s| s.source),
            agent_id: facts.agent.as_deref().map(str::to_owned),
            environment: environment.map(str::to_owned),
            tool_name: facts.tool.to_string(),
            tool_input,
            policy_decision: "allow".into(),
            record_kind: "tool_call",
            origin: facts.door.origin(),
            protocol_version: facts.protocol_version.map(str::to_owned),
            metadata: facts
                .metadata
                .as_ref()
                .and_then(|metadata| serde_json::to_string(&**metadata).ok()),
            plugins: Some(stages.to_owned()),
            ..AuditRecord::default()
        };
        let trace = crate::traces::tracer().map(|tracer| {
            let origin = facts.door.origin();
            CallTrace::start(
                tracer,
                CallStart {
                    parent: facts.trace.as_ref(),
                    tool: &facts.tool,
                    origin: &origin,
                    received: facts.received,
                    session: record.session_id.as_deref(),
                    agent: record.agent_id.as_deref(),
                    protocol_version: facts.protocol_version,
                },
            )
        });
        Self {
            audit: audit.clone(),
            record,
            started: facts.received,
            upstream_started: None,
            secrets,
            drift: None,
            reported_latency: None,
            trace,
            done: false,
        }
    }

    /// Masks, besides `audit.redact`'s, the argument paths the stages
    /// flagged (`decision.redact`) in the stored input (and, where the
    /// response echoes them, in the response).
    pub fn redact_also(&mut self, paths: &[String], arguments: Option<&serde_json::Value>) {
        if let Some(arguments) = arguments {
            let (input, secrets) = self.audit.redacted_input(arguments, paths);
            self.record.tool_input = input;
            self.secrets = secrets;
        }
    }

    /// What the stages checked in governance state, whether the call is
    /// flagged as destructive, how its tool drifted, and which stage's
    /// verdict stands (`decided_by`; the rest of the decision follows);
    /// `stages`: how each ran (with traces on).
    pub fn checked(
        &mut self,
        checks: Vec<Check>,
        flagged_destructive: bool,
        drift: Option<serde_json::Value>,
        decided_by: Option<serde_json::Value>,
        stages: &[StageRun],
    ) {
        self.record.flagged_destructive = flagged_destructive;
        self.record.checks = checks;
        self.drift = drift;
        if let Some(decided_by) = decided_by {
            self.record.approval.push(("decision", decided_by));
        }
        if let Some(trace) = &mut self.trace {
            trace.stages(stages);
        }
    }

    /// A state operation of the core's on this call (`commit`, `settle`,
    /// `release`), started at `started` and done now, for its trace.
    pub fn state_done(&self, operation: &'static str, started: Instant) {
        if let Some(trace) = &self.trace {
            trace.state(operation, started);
        }
    }

    /// The call is being sent upstream now; the trace context to send with
    /// it, when it is traced.
    pub fn sending(&mut self) -> Option<TraceHeaders> {
        let tool = &self.record.tool_name;
        self.trace.as_mut().map(|trace| trace.sending(tool))
    }

    /// The call was blocked.
    pub fn blocked(mut self, denial: &Denial) {
        let r = &mut self.record;
        r.outcome = Some(("blocked", denial.data()));
        r.policy_decision = denial.action.clone();
        r.block_reason = Some(denial.reason.clone());
        r.matched_rule = denial.rule.clone();
        r.matched_rule_index = denial.rule_index;
        self.finish();
    }

    /// The call was simulated.
    pub fn simulated(mut self, simulation: &Simulation) {
        let r = &mut self.record;
        r.outcome = Some(("dry_run", simulation.report.clone()));
        r.policy_decision = "dry_run".into();
        r.dry_run = true;
        r.matched_rule = simulation.rule.clone();
        r.matched_rule_index = simulation.rule_index;
        self.finish();
    }

    /// How the call's approval ended, after `waited`; `chain` goes into
    /// `evidence_chain` (the ticket, a denial's reason, a break-glass).
    pub fn approval(
        &mut self,
        status: crate::approvals::Status,
        by: Option<String>,
        waited: std::time::Duration,
        chain: Vec<(&'static str, serde_json::Value)>,
    ) {
        if let Some(trace) = &self.trace {
            let ticket = chain
                .iter()
                .find(|(key, _)| matches!(*key, "approval" | "budget_approval"))
                .and_then(|(_, entry)| entry.get("ticket_id")?.as_str());
            trace.approval(status.as_str(), ticket, waited);
        }
        let r = &mut self.record;
        r.approval_status = Some(status.as_str());
        r.approved_by = by;
        r.approval_wait_ms = waited.as_secs_f64() * 1e3;
        r.approval.extend(chain);
    }

    /// What the call's stages found of its limits, as the adapter API
    /// answers them: `{rate, spend, budgets}` (the record's
    /// `evidence_chain` sections; empty ones left out), if any.
    pub fn limits(&self) -> Option<serde_json::Value> {
        let text = evidence_chain(&self.record.checks, &[])?;
        let serde_json::Value::Object(mut chain) = serde_json::from_str(&text).ok()? else {
            return None;
        };
        let limits: serde_json::Map<String, serde_json::Value> = [
            ("rate_limits", "rate"),
            ("spend_limits", "spend"),
            ("budgets", "budgets"),
        ]
        .into_iter()
        .filter_map(|(section, name)| Some((name.to_owned(), chain.remove(section)?)))
        .collect();
        (!limits.is_empty()).then_some(serde_json::Value::Object(limits))
    }

    /// The record as it stands: what a ticket shows of its call.
    pub fn record(&self) -> &AuditRecord {
        &self.record
    }

    /// The call is let through with `decision`; it is being sent.
    pub fn forwarding(&mut self, decision: Option<&Decision>) {
        if let Some(d) = decision {
            self.record.policy_decision = d.action.clone();
            self.record.matched_rule = d.rule.clone();
            self.record.matched_rule_index = d.rule_index;
        }
        self.upstream_started = Some(Instant::now());
    }

    /// The upstream answered with the JSON-RPC `message` (`status`: the
    /// upstream transport's status, e.g. HTTP's).
    pub fn answered(mut self, status: Option<u16>, message: &[u8], error: Option<String>) {
        let (response, truncated) = self.audit.response(message, &self.secrets);
        let r = &mut self.record;
        r.upstream_http_status = status;
        r.upstream_response = response;
        r.response_truncated = truncated;
        r.upstream_error = error;
        self.finish();
    }

    /// Its caller ran it (the adapter API) and reported `result` or
    /// `error`, after `took`.
    pub fn ran(
        mut self,
        result: Option<&[u8]>,
        error: Option<String>,
        took: Option<std::time::Duration>,
    ) {
        if let Some(result) = result {
            let (response, truncated) = self.audit.response(result, &self.secrets);
            self.record.upstream_response = response;
            self.record.response_truncated = truncated;
        }
        self.record.upstream_error = error;
        self.reported_latency = took;
        if let (Some(trace), Some(took)) = (&self.trace, took) {
            let error = self.record.upstream_error.as_deref();
            trace.ran(&self.record.tool_name, took, error);
        }
        self.finish();
    }

    /// Its caller reported what the call actually cost: the spend checks
    /// of the `resized` keys say `amount` (and their ledgers' totals with
    /// it), and `evidence_chain.actual_amount` keeps what was evaluated.
    pub fn actual_amount(&mut self, amount: Decimal, resized: &[Arc<str>]) {
        let mut evaluated = Vec::new();
        for check in &mut self.record.checks {
            let Check::Spend {
                key,
                amount: charged,
                window,
                ..
            } = check
            else {
                continue;
            };
            if !resized.iter().any(|k| **k == **key) {
                continue;
            }
            evaluated.push(decimal_json(charged));
            if window.allowed {
                window.spent = window.spent - *charged + amount;
            }
            *charged = amount;
        }
        self.record.approval.push((
            "actual_amount",
            serde_json::json!({ "amount": decimal_json(&amount), "evaluated": evaluated }),
        ));
    }

    /// Its caller reported it did not run it: nothing was taken.
    pub fn not_run(mut self) {
        self.record.upstream_error =
            Some("not executed: the caller reported it did not run the call".into());
        self.finish();
    }

    /// Its caller never reported: the evaluation expired, and what it
    /// reserved was given back.
    pub fn expired(mut self) {
        self.record.record_kind = "evaluation_expired";
        self.record
            .approval
            .push(("sideband", serde_json::json!({ "unreported": true })));
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
        let upstream = match self.reported_latency {
            Some(took) => Some(took.as_secs_f64() * 1e3),
            None => self
                .upstream_started
                .map(|at| at.elapsed().as_secs_f64() * 1e3),
        };
        let r = &mut self.record;
        r.total_duration_ms = total;
        r.upstream_latency_ms = upstream;
        r.proxy_compute_ms = (total - upstream.unwrap_or(0.0) - r.approval_wait_ms).max(0.0);
        if let Some(drift) = self.drift.take() {
            r.approval.push(("tool_drift", drift));
        }
        if let Some(trace) = self.trace.take() {
            trace.end(r);
        }
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

/// An install scan (the adapter API's `/install-scan`), as recorded.
pub struct InstallScan<'a> {
    pub origin: &'a str,
    pub received: Instant,
    /// `install:<source or pkg>:<name>`.
    pub tool_name: String,
    /// The package object, as JSON text.
    pub package: String,
    pub allowed: bool,
    pub rule: Option<String>,
    pub rule_index: Option<u32>,
    pub session: Option<&'a str>,
    pub agent: Option<&'a str>,
    pub metadata: Option<&'a str>,
    pub environment: Option<&'a str>,
}

/// Records an install scan, allowed or denied; its record id.
pub(super) fn install_scan(audit: &Audit, scan: InstallScan<'_>) -> String {
    let total = scan.received.elapsed().as_secs_f64() * 1e3;
    let id = new_id();
    audit.record(AuditRecord {
        id: id.clone(),
        timestamp: iso_at(scan.received),
        session_id: scan.session.map(str::to_owned),
        session_source: scan.session.map(|_| "sideband"),
        agent_id: scan.agent.map(str::to_owned),
        environment: scan.environment.map(str::to_owned),
        tool_name: scan.tool_name,
        tool_input: scan.package,
        policy_decision: if scan.allowed { "allow" } else { "deny" }.into(),
        block_reason: (!scan.allowed).then(|| "install_denied".into()),
        matched_rule: scan.rule,
        matched_rule_index: scan.rule_index,
        total_duration_ms: total,
        proxy_compute_ms: total,
        record_kind: "install_scan",
        origin: scan.origin.to_owned().into(),
        metadata: scan.metadata.map(str::to_owned),
        ..AuditRecord::default()
    });
    id
}

/// Records a call refused before any stage saw it.
pub(super) fn refused(audit: &Audit, r: Refused<'_>) {
    let total = r.received.elapsed().as_secs_f64() * 1e3;
    audit.record(AuditRecord {
        id: new_id(),
        timestamp: iso_at(r.received),
        session_id: r.identity.map(|s| s.id.to_string()),
        session_source: r.identity.map(|s| s.source),
        agent_id: r.agent.map(str::to_owned),
        tool_name: r.tool_name.into(),
        tool_input: r.tool_input,
        policy_decision: "rejected".into(),
        block_reason: Some(r.reason.into()),
        total_duration_ms: total,
        proxy_compute_ms: total,
        record_kind: "tool_call",
        origin: r.door.origin(),
        protocol_version: r.protocol_version.map(str::to_owned),
        ..AuditRecord::default()
    });
}

/// The wall-clock time at `instant` (which is at most a request ago).
fn iso_at(instant: Instant) -> String {
    let ago = instant.elapsed().as_millis() as u64;
    crate::time::iso_utc(crate::state::now_ms().saturating_sub(ago))
}
