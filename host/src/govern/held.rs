//! A call waiting for humans: its stages' holds stay reserved (the rate
//! slot, the spend) so no other call can take them meanwhile, and it goes
//! on exactly once, as it was held, when every ticket it needs is approved.
//!
//! A call needs one ticket per stage that asked for an approval, asked in
//! chain order: a rule's approver decides on the action, then a budget's on
//! the money. The core opens the first ticket in the [`Approvals`] registry
//! and hands the door a [`Held`]; the door awaits [`Held::resolved`] while
//! it keeps the client waiting. An operator resolves a ticket by id. In
//! every path that does not forward, the holds are given back and the
//! ticket says why:
//!
//! - no decision within the ticket's timeout → `timeout`, then
//!   `approval.default_on_timeout` (forward, or block `approval_timeout`);
//!   a budget's ticket always blocks;
//! - the door drops the `Held` (the client went away) →
//!   `client_disconnected`;
//! - shutdown ([`Approvals::cancel_all`]) → `shutdown_cancelled`.
//!
//! Approving a budget's ticket authorises the spend its stage was refused:
//! it is charged to the budget as approved overage when the call goes on.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::approvals::{Approvals, Call, Decided, Escalation, Resolution, Status, Ticket};
use crate::audit::AuditRecord;
use crate::config::TimeoutOutcome;
use crate::pipeline::{Approval, Denial};
use crate::plugins::{Asked, Decision, Router, Runtime, ToolCall};
use crate::state::now_ms;

use super::forward::{Forwarded, Release};
use super::pending::Pending;
use super::record::CallAudit;
use super::Allowed;

/// Where held calls wait, and for how long by default.
#[derive(Clone)]
pub struct Holding {
    pub registry: Arc<Approvals>,
    /// `approval.timeout`, when the stage named none.
    pub timeout: Duration,
    /// `approval.default_on_timeout`.
    pub on_timeout: TimeoutOutcome,
}

/// How a held call's tickets are routed: the configuration's approval
/// router, asked about this call.
pub(super) struct Routing {
    pub runtime: Arc<Runtime>,
    pub router: Arc<Router>,
    pub call: ToolCall,
}

/// The longest a router may make a ticket wait.
const MAX_ROUTED_TIMEOUT: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Where a ticket goes, checked.
struct Route {
    channel: String,
    timeout_ms: u64,
    escalation: Option<Escalation>,
    /// Why the router's answer was not used (the ticket then goes to the
    /// dashboard with `approval.timeout`).
    error: Option<String>,
}

impl Routing {
    /// Asks the router about `approval`'s ticket, on a blocking thread (a
    /// router may run up to its time limit; the connection worker keeps
    /// serving meanwhile). A router that fails or answers what cannot be
    /// delivered fails closed: the dashboard, with the default timeout,
    /// and the ticket says why.
    async fn route(&self, approval: &Approval, holding: &Holding) -> Route {
        let default_ms = u64::try_from(holding.timeout.as_millis()).unwrap_or(u64::MAX);
        let (runtime, router, call) =
            (self.runtime.clone(), self.router.clone(), self.call.clone());
        let asked = approval.clone();
        let answered = tokio::task::spawn_blocking(move || {
            let asked = Asked {
                decision: &asked.decision,
                channel: asked.channel.as_deref(),
                timeout_ms: asked.timeout_ms,
                feedback: asked.feedback.as_ref(),
            };
            runtime
                .route(&router, call, &asked)
                .map_err(|failure| failure.to_string())
        })
        .await;
        let delivery = answered
            .unwrap_or_else(|error| Err(format!("could not be run ({error})")))
            .and_then(|delivery| {
                let timeout_ms = delivery
                    .timeout_ms
                    .or(approval.timeout_ms)
                    .unwrap_or(default_ms);
                if !holding.registry.has_channel(&delivery.channel) {
                    return Err(format!(
                        "answered channel \"{}\", which is not configured",
                        delivery.channel
                    ));
                }
                if timeout_ms == 0 || u128::from(timeout_ms) > MAX_ROUTED_TIMEOUT.as_millis() {
                    return Err(format!(
                        "answered a timeout of {timeout_ms} ms (expected 1 ms to 30 days)"
                    ));
                }
                Ok((delivery, timeout_ms))
            });
        match delivery {
            Ok((delivery, timeout_ms)) => Route {
                escalation: delivery
                    .escalate_after_ms
                    .filter(|&after| after > 0 && after < timeout_ms)
                    .map(|after| Escalation {
                        after: Duration::from_millis(after),
                        delegates: delivery.escalate_to,
                    }),
                channel: delivery.channel,
                timeout_ms,
                error: None,
            },
            Err(error) => {
                let error = format!(
                    "approval router \"{}\" {error}; routed to the dashboard with approval.timeout",
                    self.router.name
                );
                tracing::error!(tool = %self.call.tool, "{error}");
                Route {
                    channel: "dashboard".into(),
                    timeout_ms: default_ms,
                    escalation: None,
                    error: Some(error),
                }
            }
        }
    }
}

impl Holding {
    /// What every ticket of a held call is bound to: its record (tool,
    /// redacted input, session, agent), the digest of its arguments and the
    /// policy version it was held under.
    pub(super) fn call(
        record: &AuditRecord,
        arguments_digest: String,
        policy_version: &str,
    ) -> Call {
        Call {
            id: record.id.clone(),
            tool_name: record.tool_name.clone(),
            tool_input: serde_json::from_str(&record.tool_input).unwrap_or_default(),
            session_id: record.session_id.clone(),
            agent_id: record.agent_id.clone(),
            origin: record.origin.to_string(),
            arguments_digest,
            policy_version: policy_version.to_owned(),
        }
    }

    /// Ticket `id` for `call`, held by `approval`, routed by `route`.
    fn ticket(&self, id: String, call: Call, approval: &Approval, route: &Route) -> Ticket {
        let mut ticket = Ticket::pending(
            id,
            call,
            approval.decision.rule.clone(),
            approval.decision.rule_index,
            route.channel.clone(),
            route.timeout_ms,
        );
        ticket.routing_error = route.error.clone();
        if approval.is_budget() {
            ticket.breached_budgets = Some(
                approval
                    .breached_budgets()
                    .iter()
                    .map(breached_budget)
                    .collect(),
            );
        }
        ticket
    }
}

/// The ticket the call waits on now.
struct Waiting {
    id: String,
    approval: Approval,
    timeout: Duration,
    opened: Instant,
    decision: oneshot::Receiver<Decided>,
}

/// A held call. Resolve it with [`Held::resolved`]; drop it to give up.
pub struct Held {
    call: Call,
    routing: Routing,
    waiting: Waiting,
    /// Approvals still to ask for once the current one is granted.
    next: VecDeque<Approval>,
    /// The first approval's decision: the one the record's columns keep.
    first: Decision,
    first_ticket: String,
    holding: Holding,
    held_at: Instant,
    /// The tickets decided so far, for `evidence_chain`.
    chain: Chain,
    /// Taken when the call is resolved; still here on drop means it never was.
    parts: Option<(Release, CallAudit)>,
}

/// What a held call became.
pub enum Resolved {
    Forward(Box<Forwarded>),
    Block(Denial),
}

/// How the wait ended.
enum Ending {
    /// Every ticket granted: the holds still reserved, the record holding
    /// the tickets' story.
    Granted(Box<Allowed>),
    /// Given back, recorded.
    Blocked(Denial),
}

impl Held {
    /// Opens the first ticket; the `next` are asked once it is approved.
    pub(super) async fn open(
        holding: &Holding,
        routing: Routing,
        call: Call,
        first: Approval,
        next: Vec<Approval>,
        release: Release,
        audit: CallAudit,
    ) -> Self {
        let first_ticket = call.id.clone();
        let waiting = open_ticket(holding, &routing, first_ticket.clone(), &call, first).await;
        Self {
            call,
            routing,
            first: waiting.approval.decision.clone(),
            first_ticket,
            waiting,
            next: VecDeque::from(next),
            holding: holding.clone(),
            held_at: Instant::now(),
            chain: Chain::default(),
            parts: Some((release, audit)),
        }
    }

    /// The first ticket's id (the call's audit record id).
    pub fn ticket(&self) -> &str {
        &self.first_ticket
    }

    /// What its stages found of its limits (see [`CallAudit::limits`]).
    pub fn limits(&self) -> Option<Value> {
        self.parts.as_ref().and_then(|(_, audit)| audit.limits())
    }

    /// What the stage whose ticket is open asks for (channel, timeout, the
    /// rule).
    pub fn approval(&self) -> &Approval {
        &self.waiting.approval
    }

    /// Waits for the call's tickets to be resolved, one after another:
    /// every one approved, the call goes on with its holds committed;
    /// otherwise they are released and the call is blocked (or, on a
    /// rule's timeout that allows, the next ticket is asked or the call
    /// forwarded).
    pub async fn resolved(self) -> Resolved {
        match self.settled().await {
            Ending::Granted(allowed) => allowed
                .release
                .forward(allowed.audit, allowed.decision.as_ref()),
            Ending::Blocked(denial) => Resolved::Block(denial),
        }
    }

    /// As [`Held::resolved`], for a call its caller runs itself: granted,
    /// it becomes a [`Pending`] whose holds stay reserved until the
    /// caller's report.
    pub async fn resolved_deferred(self) -> Result<Box<Pending>, Box<Denial>> {
        match self.settled().await {
            Ending::Granted(allowed) => Ok(Box::new(Pending::new(*allowed))),
            Ending::Blocked(denial) => Err(Box::new(denial)),
        }
    }

    async fn settled(mut self) -> Ending {
        loop {
            let remaining = self
                .waiting
                .timeout
                .saturating_sub(self.waiting.opened.elapsed());
            let decided = tokio::select! {
                decided = &mut self.waiting.decision => decided.ok(),
                () = tokio::time::sleep(remaining) => {
                    if self.holding.registry.close(&self.waiting.id, Status::Timeout) {
                        match self.timed_out().await {
                            None => continue,
                            Some(resolved) => return resolved,
                        }
                    }
                    // An operator decided just as the time ran out: theirs stands.
                    (&mut self.waiting.decision).await.ok()
                }
            };
            let Some(Decided { resolution, by }) = decided else {
                return self.closed();
            };
            match resolution {
                Resolution::Approved => {
                    self.record(Status::Approved, Some(&by.name), None, None);
                }
                Resolution::BreakGlass { reason } => {
                    let glass = json!({ "reason": reason, "invoked_by": by.name, "credential": by.credential });
                    self.record(Status::BreakGlass, Some(&by.name), None, Some(glass));
                }
                Resolution::Denied { reason } => {
                    let name = by.name;
                    return self.block(Status::Denied, Some(&name), reason.as_deref(), |a| {
                        Denial::approval_denied(a, Some(&name), reason.as_deref())
                    });
                }
            }
            if let Some(resolved) = self.granted().await {
                return resolved;
            }
        }
    }

    /// The ticket ended without a decision while the call waited: its
    /// caller withdrew it (`timeout`, `client_disconnected`: the adapter
    /// API's resolutions) or Helio is shutting down.
    fn closed(mut self) -> Ending {
        let status = self
            .holding
            .registry
            .get(&self.waiting.id)
            .map(|t| t.status);
        match status {
            Some(Status::Timeout) => {
                let waited_ms =
                    u64::try_from(self.waiting.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
                self.block_now(Status::Timeout, None, None, |a| {
                    Denial::approval_timeout(a, waited_ms)
                })
            }
            Some(Status::ClientDisconnected) => {
                self.block_now(Status::ClientDisconnected, None, None, |a| {
                    Denial::client_disconnected(a)
                })
            }
            Some(
                Status::ShutdownCancelled
                | Status::Pending
                | Status::Approved
                | Status::Denied
                | Status::BreakGlass,
            )
            | None => self.block_now(Status::ShutdownCancelled, None, None, |a| {
                Denial::shutdown_cancelled(a)
            }),
        }
    }

    /// The current ticket was approved: charge what it authorised, then
    /// go on. Some: the wait is over.
    async fn granted(&mut self) -> Option<Ending> {
        if !self.charge_overage() {
            return Some(self.end_blocked(Denial::state_unavailable()));
        }
        self.go_on().await
    }

    /// Asks the next approval, or grants the call when none is left.
    async fn go_on(&mut self) -> Option<Ending> {
        let Some(approval) = self.next.pop_front() else {
            return Some(self.grant());
        };
        let id = uuid::Uuid::now_v7().hyphenated().to_string();
        self.waiting = open_ticket(&self.holding, &self.routing, id, &self.call, approval).await;
        None
    }

    /// Holds the spend the approved stage was refused, beyond its limit:
    /// it is committed with the call's other holds when it goes on. False
    /// when the store cannot take it.
    fn charge_overage(&mut self) -> bool {
        let Some((release, _)) = self.parts.as_mut() else {
            return true;
        };
        let now = now_ms();
        for overage in &self.waiting.approval.overage {
            match release
                .state
                .spend_overage(&overage.key, overage.amount, overage.window_ms, now)
            {
                Ok(hold) => release.holds.push(hold),
                Err(error) => {
                    tracing::error!(%error, tool = %self.call.tool_name, "an approved overage could not be held; blocking the call");
                    return false;
                }
            }
        }
        true
    }

    /// Nobody decided in time: a budget's ticket blocks, a rule's does
    /// what `approval.default_on_timeout` says. Some: the wait is over.
    async fn timed_out(&mut self) -> Option<Ending> {
        let allows =
            self.holding.on_timeout == TimeoutOutcome::Allow && !self.waiting.approval.is_budget();
        if !allows {
            let waited_ms = u64::try_from(self.waiting.timeout.as_millis()).unwrap_or(u64::MAX);
            return Some(self.block_now(Status::Timeout, None, None, |a| {
                Denial::approval_timeout(a, waited_ms)
            }));
        }
        // Allowed by the clock: the call goes out, so whatever spend its
        // stage was refused is charged as if approved.
        self.record(Status::Timeout, None, None, None);
        self.granted().await
    }

    fn grant(&mut self) -> Ending {
        let Some((release, mut audit)) = self.parts.take() else {
            return Ending::Blocked(Denial::shutdown_cancelled(&self.waiting.approval));
        };
        self.chain.write(&mut audit, self.held_at.elapsed());
        Ending::Granted(Box::new(Allowed {
            release,
            audit,
            decision: Some(self.first.clone()),
        }))
    }

    /// Records how the current ticket ended, then blocks the call.
    fn block(
        mut self,
        status: Status,
        by: Option<&str>,
        reason: Option<&str>,
        denial: impl FnOnce(&Approval) -> Denial,
    ) -> Ending {
        self.block_now(status, by, reason, denial)
    }

    fn block_now(
        &mut self,
        status: Status,
        by: Option<&str>,
        reason: Option<&str>,
        denial: impl FnOnce(&Approval) -> Denial,
    ) -> Ending {
        self.record(status, by, reason, None);
        let mut denial = denial(&self.waiting.approval);
        if denial.rule.is_none() {
            // A budget's ticket after a rule's: the rule that held the call
            // stays the record's matched rule.
            denial.rule = self.first.rule.clone();
            denial.rule_index = self.first.rule_index;
        }
        self.end_blocked(denial)
    }

    fn end_blocked(&mut self, denial: Denial) -> Ending {
        if let Some((release, mut audit)) = self.parts.take() {
            self.chain.write(&mut audit, self.held_at.elapsed());
            release.release(&audit);
            audit.blocked(&denial);
        }
        Ending::Blocked(denial)
    }

    /// Adds the current ticket's ending to the record: its lifecycle as the
    /// registry holds it (requested, announced where and whether that
    /// worked, escalated, resolved by whom with which credential, what it
    /// was bound to), the operator's reason for a denial, a break-glass.
    fn record(
        &mut self,
        status: Status,
        by: Option<&str>,
        denial_reason: Option<&str>,
        break_glass: Option<Value>,
    ) {
        let approval = &self.waiting.approval;
        let mut entry = json!({ "ticket_id": self.waiting.id, "status": status.as_str() });
        if let Some(ticket) = self.holding.registry.get(&self.waiting.id) {
            entry = json!({
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
            if let Some(error) = &ticket.routing_error {
                entry["routing_error"] = error.as_str().into();
            }
        }
        if let Some(reason) = denial_reason {
            entry["denial_reason"] = reason.into();
        }
        let granted = matches!(status, Status::Approved | Status::BreakGlass);
        if approval.is_budget() {
            let budgets = approval.breached_budgets();
            entry["breached_budgets"] = budgets.iter().map(breached_budget).collect();
            if granted {
                entry["approved_overage"] = budgets.iter().map(overage).collect();
            }
        }
        self.chain.push(
            approval.is_budget(),
            status,
            by.map(str::to_owned),
            entry,
            break_glass,
        );
    }
}

/// Opens `approval`'s ticket `id` where the router sends it: saved,
/// announced on the live feed, sent to its channel, its escalation
/// scheduled.
async fn open_ticket(
    holding: &Holding,
    routing: &Routing,
    id: String,
    call: &Call,
    approval: Approval,
) -> Waiting {
    let route = routing.route(&approval, holding).await;
    let ticket = holding.ticket(id.clone(), call.clone(), &approval, &route);
    let timeout = Duration::from_millis(ticket.timeout_ms);
    let decision = holding.registry.open(ticket);
    holding.registry.notify(&id);
    if let Some(escalation) = route.escalation {
        holding.registry.escalate_later(&id, escalation);
    }
    Waiting {
        id,
        approval,
        timeout,
        opened: Instant::now(),
        decision,
    }
}

/// A breached budget as a ticket lists it: `{name, limit, spent,
/// attempted_amount, currency, window}`.
fn breached_budget(budget: &Value) -> Value {
    let field = |key: &str| budget.get(key).cloned().unwrap_or(Value::Null);
    json!({
        "name": field("name"),
        "limit": field("limit"),
        "spent": field("spent"),
        "attempted_amount": field("attempted_amount"),
        "currency": field("currency"),
        "window": field("window"),
    })
}

/// What an approved budget ticket charges a breached budget.
fn overage(budget: &Value) -> Value {
    let field = |key: &str| budget.get(key).cloned().unwrap_or(Value::Null);
    json!({
        "name": field("name"),
        "amount": field("attempted_amount"),
        "currency": field("currency"),
        "kind": "approved_overage",
    })
}

/// The tickets a call's record tells of: `evidence_chain.approval` (the
/// first rule's or plugin's ticket), `budget_approval` (a budget's),
/// `further_approvals` (more stages that asked), `break_glass` (the first
/// break-glass). The record's approval columns keep the first ticket's
/// decision (for a budget-only hold, the budget's).
#[derive(Default)]
struct Chain {
    columns: Option<(Status, Option<String>)>,
    approval: Option<Value>,
    budget: Option<Value>,
    further: Vec<Value>,
    break_glass: Option<Value>,
}

impl Chain {
    fn push(
        &mut self,
        budget: bool,
        status: Status,
        by: Option<String>,
        mut entry: Value,
        break_glass: Option<Value>,
    ) {
        self.columns.get_or_insert((status, by));
        if let Some(glass) = break_glass {
            entry["break_glass"] = glass.clone();
            self.break_glass.get_or_insert(glass);
        }
        let slot = if budget {
            &mut self.budget
        } else {
            &mut self.approval
        };
        if slot.is_none() {
            *slot = Some(entry);
        } else {
            self.further.push(entry);
        }
    }

    fn write(&mut self, audit: &mut CallAudit, waited: Duration) {
        let Some((status, by)) = self.columns.take() else {
            return;
        };
        let mut sections = Vec::new();
        sections.extend(self.approval.take().map(|v| ("approval", v)));
        sections.extend(self.budget.take().map(|v| ("budget_approval", v)));
        if !self.further.is_empty() {
            sections.push((
                "further_approvals",
                Value::from(std::mem::take(&mut self.further)),
            ));
        }
        sections.extend(self.break_glass.take().map(|v| ("break_glass", v)));
        audit.approval(status, by, waited, sections);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.parts.is_some() {
            self.holding
                .registry
                .close(&self.waiting.id, Status::ClientDisconnected);
            let _ = self.block_now(Status::ClientDisconnected, None, None, |a| {
                Denial::client_disconnected(a)
            });
        }
    }
}
