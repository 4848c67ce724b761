//! A call waiting for a human: its stages' holds stay reserved (the rate
//! slot, the spend) so no other call can take them meanwhile, and it goes
//! on exactly once, as it was held, when it is resolved.
//!
//! The core opens a ticket in the [`Approvals`] registry and hands the door
//! a [`Held`]; the door awaits [`Held::resolved`] while it keeps the client
//! waiting. An operator resolves the ticket by id. In every path that does
//! not forward, the holds are given back and the ticket says why:
//!
//! - no decision within the ticket's timeout → `timeout`, then
//!   `approval.default_on_timeout` (forward, or block `approval_timeout`);
//! - the door drops the `Held` (the client went away) →
//!   `client_disconnected`;
//! - shutdown ([`Approvals::cancel_all`]) → `shutdown_cancelled`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::oneshot;

use crate::approvals::{Approvals, Call, Decided, Escalation, Resolution, Status, Ticket};
use crate::audit::AuditRecord;
use crate::config::TimeoutOutcome;
use crate::pipeline::{Approval, Denial};

use super::forward::{Forwarded, Release};
use super::record::CallAudit;

/// Where held calls wait, and for how long by default.
pub struct Holding {
    pub registry: Arc<Approvals>,
    /// `approval.timeout`, when the stage named none.
    pub timeout: Duration,
    /// `approval.default_on_timeout`.
    pub on_timeout: TimeoutOutcome,
}

impl Holding {
    /// The ticket for a call held by `approval`, bound to exactly that
    /// call: its record (tool, redacted input, session, agent), the digest
    /// of its arguments and the policy version it was held under.
    pub(super) fn ticket(
        &self,
        record: &AuditRecord,
        approval: &Approval,
        arguments_digest: String,
        policy_version: &str,
    ) -> Ticket {
        let timeout_ms = approval
            .timeout_ms
            .unwrap_or_else(|| u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX));
        let call = Call {
            id: record.id.clone(),
            tool_name: record.tool_name.clone(),
            tool_input: serde_json::from_str(&record.tool_input).unwrap_or_default(),
            session_id: record.session_id.clone(),
            agent_id: record.agent_id.clone(),
            arguments_digest,
            policy_version: policy_version.to_owned(),
        };
        let channel = approval
            .channel
            .clone()
            .unwrap_or_else(|| "dashboard".into());
        Ticket::pending(
            call,
            approval.decision.rule.clone(),
            approval.decision.rule_index,
            channel,
            timeout_ms,
        )
    }
}

/// A held call. Resolve it with [`Held::resolved`]; drop it to give up.
pub struct Held {
    ticket: String,
    approval: Approval,
    timeout: Duration,
    on_timeout: TimeoutOutcome,
    held_at: Instant,
    /// Taken when the call is resolved; still here on drop means it never was.
    parts: Option<(Release, CallAudit)>,
    decision: oneshot::Receiver<Decided>,
    approvals: Arc<Approvals>,
}

/// What a held call became.
pub enum Resolved {
    Forward(Box<Forwarded>),
    Block(Denial),
}

impl Held {
    pub(super) fn open(
        holding: &Holding,
        ticket: Ticket,
        approval: Approval,
        escalation: Option<Escalation>,
        release: Release,
        audit: CallAudit,
    ) -> Self {
        let id = ticket.id.clone();
        let timeout = Duration::from_millis(ticket.timeout_ms);
        let decision = holding.registry.open(ticket);
        holding.registry.notify(&id);
        if let Some(escalation) = escalation {
            holding.registry.escalate_later(&id, escalation);
        }
        Self {
            decision,
            ticket: id,
            approval,
            timeout,
            on_timeout: holding.on_timeout,
            held_at: Instant::now(),
            parts: Some((release, audit)),
            approvals: holding.registry.clone(),
        }
    }

    /// The ticket's id (the call's audit record id).
    pub fn ticket(&self) -> &str {
        &self.ticket
    }

    /// What the stage asked for (channel, timeout, the rule).
    pub fn approval(&self) -> &Approval {
        &self.approval
    }

    /// Waits for the ticket to be resolved: approved, the call goes on with
    /// its holds committed; otherwise they are released and the call is
    /// blocked (or, on a timeout that allows, forwarded).
    pub async fn resolved(mut self) -> Resolved {
        let decided = tokio::select! {
            decided = &mut self.decision => decided.ok(),
            () = tokio::time::sleep(self.timeout) => {
                if self.approvals.close(&self.ticket, Status::Timeout) {
                    return self.timed_out();
                }
                // An operator decided just as the time ran out: theirs stands.
                (&mut self.decision).await.ok()
            }
        };
        let Some((release, mut audit)) = self.parts.take() else {
            return Resolved::Block(Denial::shutdown_cancelled(&self.approval));
        };
        let waited = self.held_at.elapsed();
        let Some(Decided { resolution, by }) = decided else {
            // The ticket ended without a decision while the call waited:
            // only shutdown does that.
            let denial = Denial::shutdown_cancelled(&self.approval);
            audit.approval(Status::ShutdownCancelled, None, waited, self.chain(None));
            release.release();
            audit.blocked(&denial);
            return Resolved::Block(denial);
        };
        match resolution {
            Resolution::Approved => {
                let chain = self.chain(None);
                audit.approval(Status::Approved, Some(by.name), waited, chain);
                release.forward(audit, Some(&self.approval.decision))
            }
            Resolution::BreakGlass { reason } => {
                let glass =
                    json!({ "reason": reason, "invoked_by": by.name, "credential": by.credential });
                let mut chain = self.chain(None);
                chain.push(("break_glass", glass));
                audit.approval(Status::BreakGlass, Some(by.name), waited, chain);
                release.forward(audit, Some(&self.approval.decision))
            }
            Resolution::Denied { reason } => {
                let denial = Denial::approval_denied(&self.approval, reason.as_deref());
                let chain = self.chain(reason.as_deref());
                audit.approval(Status::Denied, Some(by.name), waited, chain);
                release.release();
                audit.blocked(&denial);
                Resolved::Block(denial)
            }
        }
    }

    /// Nobody decided in time: `approval.default_on_timeout` says what
    /// happens.
    fn timed_out(mut self) -> Resolved {
        let Some((release, mut audit)) = self.parts.take() else {
            return Resolved::Block(Denial::shutdown_cancelled(&self.approval));
        };
        let waited = self.held_at.elapsed();
        audit.approval(Status::Timeout, None, waited, self.chain(None));
        match self.on_timeout {
            TimeoutOutcome::Allow => release.forward(audit, Some(&self.approval.decision)),
            TimeoutOutcome::Deny => {
                let waited_ms = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
                let denial = Denial::approval_timeout(&self.approval, waited_ms);
                release.release();
                audit.blocked(&denial);
                Resolved::Block(denial)
            }
        }
    }

    /// `evidence_chain.approval`: the ticket's lifecycle as it ended (when
    /// it was requested, where it was announced and whether that worked,
    /// who resolved it with which credential, and what it was bound to), so
    /// the audit trail alone tells the story; and the operator's reason for
    /// a denial.
    fn chain(&self, denial_reason: Option<&str>) -> Vec<(&'static str, serde_json::Value)> {
        let mut approval = json!({ "ticket_id": self.ticket });
        if let Some(ticket) = self.approvals.get(&self.ticket) {
            approval = json!({
                "ticket_id": ticket.id,
                "status": ticket.status.as_str(),
                "channel": ticket.channel_name,
                "requested_at": ticket.requested_at,
                "timeout_at": ticket.timeout_at,
                "notifications": ticket.notifications,
                "notification_failures": ticket.notification_failures,
                "escalated_at": ticket.escalated_at,
                "escalated_to": ticket.escalated_to,
                "resolved_at": ticket.resolved_at,
                "resolved_by": ticket.resolved_by,
                "resolved_via": ticket.resolved_via,
                "arguments_digest": ticket.arguments_digest,
                "policy_version": ticket.policy_version,
            });
        }
        if let Some(reason) = denial_reason {
            approval["denial_reason"] = reason.into();
        }
        vec![("approval", approval)]
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some((release, mut audit)) = self.parts.take() {
            self.approvals
                .close(&self.ticket, Status::ClientDisconnected);
            let waited = self.held_at.elapsed();
            let chain = self.chain(None);
            audit.approval(Status::ClientDisconnected, None, waited, chain);
            release.release();
            audit.blocked(&Denial::client_disconnected(&self.approval));
        }
    }
}
