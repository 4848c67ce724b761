//! One audit record: what happened to one call, as a row of `audit_records`.

use serde_json::Value;

use crate::plugins::checks::{evidence_chain, Check};

/// A governed call's record. JSON-valued fields hold JSON text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditRecord {
    /// A UUID v7 (time-ordered), assigned when the record is made.
    pub id: String,
    /// When the request arrived (ISO-8601 UTC).
    pub timestamp: String,
    pub session_id: Option<String>,
    pub session_source: Option<&'static str>,
    /// The client's `clientInfo` (`name@version`), when known.
    pub agent_id: Option<String>,
    pub environment: Option<String>,
    pub tool_name: String,
    /// The call's arguments (JSON), after redaction.
    pub tool_input: String,
    /// `allow`, `deny`, `rate_limit`, `spend_limit`, `dry_run`,
    /// `require_approval`, `rejected`, …
    pub policy_decision: String,
    /// Set exactly when the call was blocked.
    pub block_reason: Option<String>,
    pub matched_rule: Option<String>,
    pub matched_rule_index: Option<u32>,
    /// What the stages checked, and the block's `data` or the dry run's
    /// report (JSON): built by the writer from `checks` and `outcome`.
    pub evidence_chain: Option<String>,
    /// What the stages read or took in governance state.
    pub checks: Vec<Check>,
    /// `("blocked", data)` or `("dry_run", report)`.
    pub outcome: Option<(&'static str, Value)>,
    /// A held call's approval: `pending`, `approved`, `denied`,
    /// `timeout`, `break_glass`, `client_disconnected`,
    /// `shutdown_cancelled`.
    pub approval_status: Option<&'static str>,
    /// Who resolved the ticket (the name the operator's request gave).
    pub approved_by: Option<String>,
    pub approval_wait_ms: f64,
    /// Further `evidence_chain` sections: the approval's (`approval`,
    /// `break_glass`) and a drifted tool's (`tool_drift`).
    pub approval: Vec<(&'static str, Value)>,
    /// The upstream's response (JSON), cut at `MAX_RESPONSE_BYTES`.
    pub upstream_response: Option<String>,
    pub response_truncated: bool,
    pub upstream_error: Option<String>,
    pub upstream_http_status: Option<u16>,
    pub upstream_latency_ms: Option<f64>,
    pub total_duration_ms: f64,
    /// Time spent in Helio itself (total − upstream).
    pub proxy_compute_ms: f64,
    pub flagged_destructive: bool,
    pub dry_run: bool,
    /// `tool_call` for calls and transport rejections.
    pub record_kind: &'static str,
    /// The door the call came through: `mcp`, or an adapter's origin slug.
    pub origin: std::borrow::Cow<'static, str>,
    /// The client's `MCP-Protocol-Version` header.
    pub protocol_version: Option<String>,
    /// An adapter's context for the call (JSON object text); none on MCP.
    pub metadata: Option<String>,
    /// Names of the policy stages that ran (JSON list).
    pub plugins: Option<String>,
}

impl AuditRecord {
    /// Writes `evidence_chain` from `checks` and `outcome` (on the writer
    /// thread, off the request path).
    pub fn finish_chain(&mut self) {
        if self.evidence_chain.is_none() {
            let sections: Vec<(&str, &Value)> = self
                .outcome
                .iter()
                .chain(&self.approval)
                .map(|(name, value)| (*name, value))
                .collect();
            self.evidence_chain = evidence_chain(&self.checks, &sections);
        }
    }

    /// The record as the operator API shows it (JSON columns parsed,
    /// booleans as booleans), with the time it was written.
    pub fn to_json(&self, created_at: &str) -> Value {
        let json = |text: &Option<String>| {
            text.as_deref()
                .map(|t| serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_owned())))
        };
        serde_json::json!({
            "id": self.id,
            "timestamp": self.timestamp,
            "session_id": self.session_id,
            "session_source": self.session_source,
            "agent_id": self.agent_id,
            "environment": self.environment,
            "tool_name": self.tool_name,
            "tool_input": serde_json::from_str::<Value>(&self.tool_input).unwrap_or(Value::Null),
            "policy_decision": self.policy_decision,
            "block_reason": self.block_reason,
            "matched_rule": self.matched_rule,
            "matched_rule_index": self.matched_rule_index,
            "evidence_chain": json(&self.evidence_chain),
            "approval_status": self.approval_status,
            "approved_by": self.approved_by,
            "upstream_response": json(&self.upstream_response),
            "upstream_error": self.upstream_error,
            "upstream_http_status": self.upstream_http_status,
            "upstream_latency_ms": self.upstream_latency_ms,
            "total_duration_ms": self.total_duration_ms,
            "approval_wait_ms": self.approval_wait_ms,
            "proxy_compute_ms": self.proxy_compute_ms,
            "flagged_destructive": self.flagged_destructive,
            "dry_run": self.dry_run,
            "record_kind": self.record_kind,
            "origin": self.origin,
            "metadata": json(&self.metadata),
            "protocol_version": self.protocol_version,
            "created_at": created_at,
            "plugins": json(&self.plugins),
            "response_truncated": self.response_truncated,
        })
    }
}

/// A fresh UUID v7 in its canonical text form: the millisecond it was made,
/// then a counter, then random bits (`uuid`'s process-wide context keeps
/// ids made by this process in the order they were made). Sorting records
/// by id sorts them by arrival, which breaks ties between records written
/// in one batch.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().hyphenated().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuid_v7_and_sort_in_the_order_made() {
        let ids: Vec<String> = (0..10_000).map(|_| new_id()).collect();
        for id in &ids {
            assert_eq!(id.len(), 36);
            assert_eq!(&id[14..15], "7");
            assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
        }
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, ids, "unique and already in order");
    }
}
