//! One approval ticket, in the operator API's shape (the original's fields,
//! then Helio's: what binds the ticket to its call, and who resolved it by
//! which credential).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{now_iso, Resolver};
use crate::state::now_ms;
use crate::time::iso_utc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Approved,
    Denied,
    Timeout,
    BreakGlass,
    ClientDisconnected,
    ShutdownCancelled,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Pending,
        Status::Approved,
        Status::Denied,
        Status::Timeout,
        Status::BreakGlass,
        Status::ClientDisconnected,
        Status::ShutdownCancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Denied => "denied",
            Status::Timeout => "timeout",
            Status::BreakGlass => "break_glass",
            Status::ClientDisconnected => "client_disconnected",
            Status::ShutdownCancelled => "shutdown_cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    /// The ticket's id: the held call's audit record id for its first
    /// ticket, a fresh one for a second (a budget's after a rule's).
    pub id: String,
    /// The held call's audit record id.
    #[serde(default)]
    pub call_id: String,
    pub tool_name: String,
    /// The arguments as the audit trail stores them (redacted).
    pub tool_input: Value,
    pub matched_rule: Option<String>,
    pub rule_index: Option<u32>,
    pub channel_name: String,
    pub session_id: Option<String>,
    pub requested_at: String,
    /// `requested_at` in milliseconds since the epoch (for ordering and
    /// retention).
    #[serde(skip)]
    pub requested_ms: u64,
    pub timeout_at: String,
    pub timeout_ms: u64,
    pub status: Status,
    pub resolved_at: Option<String>,
    pub resolved_by: Option<String>,
    pub denial_reason: Option<String>,
    pub break_glass_reason: Option<String>,
    pub escalated_at: Option<String>,
    pub escalated_to: Option<Vec<String>>,
    pub notification_failures: Vec<Value>,
    /// For a budget's ticket: every budget the call would exceed
    /// (`{name, limit, spent, attempted_amount, currency, window}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breached_budgets: Option<Vec<Value>>,
    /// Why the approval router's answer was not used, when it was not: the
    /// ticket then went to the dashboard with `approval.timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_error: Option<String>,
    /// Deliveries that reached their channel: `{channel, phase,
    /// delivery_id, attempts, delivered_at}`.
    #[serde(default)]
    pub notifications: Vec<Value>,
    /// SHA-256 of the call's arguments in canonical JSON (keys sorted):
    /// what is approved is exactly what is forwarded.
    pub arguments_digest: String,
    /// SHA-256 of the policy in force when the call was held.
    pub policy_version: String,
    /// The requesting agent's label (`clientInfo` name@version).
    pub agent_id: Option<String>,
    /// The door the call came through: `mcp`, or the adapter's origin.
    #[serde(default = "mcp_door")]
    pub origin: String,
    /// The credential that authenticated the resolution (`api_secret`,
    /// `open_mode`, `slack:<user id>`), beside the self-declared
    /// `resolved_by`.
    pub resolved_via: Option<String>,
}

/// Who a new ticket is for: the call it is bound to.
#[derive(Debug, Clone)]
pub struct Call {
    /// The call's audit record id.
    pub id: String,
    pub tool_name: String,
    pub tool_input: Value,
    pub session_id: Option<String>,
    pub agent_id: Option<String>,
    /// The door it came through (the record's `origin`).
    pub origin: String,
    pub arguments_digest: String,
    pub policy_version: String,
}

/// Tickets saved before they named their door all came through MCP.
fn mcp_door() -> String {
    "mcp".to_owned()
}

impl Ticket {
    /// A pending ticket `id` for `call`, opened now, waiting `timeout_ms`
    /// on `channel_name`; nothing notified, escalated or resolved yet.
    pub fn pending(
        id: String,
        call: Call,
        matched_rule: Option<String>,
        rule_index: Option<u32>,
        channel_name: String,
        timeout_ms: u64,
    ) -> Self {
        let now = now_ms();
        Ticket {
            id,
            call_id: call.id,
            tool_name: call.tool_name,
            tool_input: call.tool_input,
            matched_rule,
            rule_index,
            channel_name,
            session_id: call.session_id,
            requested_at: iso_utc(now),
            requested_ms: now,
            timeout_at: iso_utc(now.saturating_add(timeout_ms)),
            timeout_ms,
            status: Status::Pending,
            resolved_at: None,
            resolved_by: None,
            denial_reason: None,
            break_glass_reason: None,
            escalated_at: None,
            escalated_to: None,
            notification_failures: Vec::new(),
            breached_budgets: None,
            routing_error: None,
            notifications: Vec::new(),
            arguments_digest: call.arguments_digest,
            policy_version: call.policy_version,
            agent_id: call.agent_id,
            origin: call.origin,
            resolved_via: None,
        }
    }

    /// Leaves `pending` for `status`, now.
    pub(super) fn settle(&mut self, status: Status, by: Option<&Resolver>) {
        self.status = status;
        self.resolved_at = Some(now_iso());
        if let Some(by) = by {
            self.resolved_by = Some(by.name.clone());
            self.resolved_via = Some(by.credential.clone());
        }
    }
}

/// The arguments' digest: SHA-256 over their canonical JSON text (object
/// keys sorted, no whitespace), hex. Absent arguments hash as `{}`.
pub fn arguments_digest(arguments: Option<&Value>) -> String {
    let text = arguments.map_or_else(|| "{}".to_owned(), canonical);
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// `serde_json`'s maps are ordered by key (no `preserve_order`), so its
/// compact text is canonical; this says so in one place.
fn canonical(value: &Value) -> String {
    value.to_string()
}
