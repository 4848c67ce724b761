//! Approval tickets: one per held call, bound to exactly that call, and the
//! registry operators resolve them through.
//!
//! The governance core opens a ticket when a stage asks for a human
//! ([`crate::govern::Held`]) and waits on it; the operator API lists,
//! approves, denies and breaks glass; the live feed announces each ticket
//! and its resolution. A ticket changes from `pending` exactly once, under
//! the registry's lock, so an operator's approval and a timeout racing for
//! the same ticket cannot both win.

mod notify;
pub mod slack;
mod ticket;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::json;
use tokio::sync::{broadcast, oneshot};

use crate::state::{now_ms, StoredTicket, TicketStore};
use crate::time::iso_utc;

pub use notify::{signature, Notifier, NotifierError, Phase};
pub use ticket::{arguments_digest, Call, Status, Ticket};

/// Resolved tickets kept for the operator API (newest first); older ones
/// live on in the audit trail.
const KEPT_RESOLVED: usize = 10_000;

/// Approval events the live feed relays, as `(event name, JSON data)`.
const EVENT_BACKLOG: usize = 256;

/// When a ticket nobody decided on is escalated, and to which channels
/// (none: the ticket's own channel again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    pub after: std::time::Duration,
    pub delegates: Vec<String>,
}

/// What an operator decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    Approved,
    Denied {
        reason: Option<String>,
    },
    /// Force-approved (operator API only), with the mandatory reason.
    BreakGlass {
        reason: String,
    },
}

/// Who resolved a ticket: the name the request gives, and the credential
/// that authenticated it (so a self-declared name never hides who acted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolver {
    pub name: String,
    pub credential: String,
}

/// What the held call learns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub resolution: Resolution,
    pub by: Resolver,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("Ticket not found")]
    NotFound,
    #[error("Ticket already resolved")]
    AlreadyResolved(Status),
}

struct Entry {
    ticket: Ticket,
    /// The held call, while it waits.
    waiter: Option<oneshot::Sender<Decided>>,
}

#[derive(Default)]
struct Tickets {
    by_id: HashMap<String, Entry>,
    /// Ids, oldest first.
    order: VecDeque<String>,
    /// The pending ticket of each held call, by the call's record id (a
    /// call waits on one ticket at a time).
    open_by_call: HashMap<String, String>,
}

pub struct Approvals {
    tickets: Mutex<Tickets>,
    events: broadcast::Sender<(&'static str, Arc<str>)>,
    /// Where tickets are kept across restarts.
    store: Option<Arc<dyn TicketStore>>,
    /// Sends tickets to their channels.
    notifier: Option<Arc<Notifier>>,
}

impl Default for Approvals {
    /// Tickets in memory only (tests, `helio demo`).
    fn default() -> Self {
        Self {
            tickets: Mutex::default(),
            events: broadcast::channel(EVENT_BACKLOG).0,
            store: None,
            notifier: None,
        }
    }
}

impl Approvals {
    /// Tickets kept in `store`: those it held at start come back (newest
    /// first, as many as the operator API keeps). A ticket still pending
    /// then belonged to a call that ended with the previous process: it is
    /// closed `shutdown_cancelled`, as that call was.
    pub fn restore(store: Arc<dyn TicketStore>) -> Self {
        let approvals = Self {
            store: Some(store.clone()),
            ..Self::default()
        };
        let mut restored = store.restored_tickets();
        restored.reverse(); // oldest first, as they were opened
        let mut tickets = approvals.lock();
        for stored in restored {
            let mut ticket: Ticket = match serde_json::from_str(&stored.json) {
                Ok(ticket) => ticket,
                Err(error) => {
                    tracing::warn!(%error, id = %stored.id, "an approval ticket on disk could not be read; skipped");
                    continue;
                }
            };
            ticket.requested_ms = stored.requested_ms;
            if ticket.status == Status::Pending {
                ticket.settle(Status::ShutdownCancelled, None);
                approvals.save(&ticket);
            }
            tickets.order.push_back(ticket.id.clone());
            tickets.by_id.insert(
                ticket.id.clone(),
                Entry {
                    ticket,
                    waiter: None,
                },
            );
        }
        drop(tickets);
        approvals
    }

    /// Whether tickets can be sent to `channel`: `dashboard`, or a channel
    /// of `approval.channels`.
    pub fn has_channel(&self, channel: &str) -> bool {
        channel == "dashboard" || self.notifier.as_ref().is_some_and(|n| n.has(channel))
    }

    /// Sends new tickets to their channels through `notifier`.
    pub fn notifying(mut self, notifier: Notifier) -> Self {
        self.notifier = Some(Arc::new(notifier));
        self
    }

    /// Tells the ticket's channel (in the background; the outcome is
    /// recorded on the ticket).
    pub fn notify(self: &Arc<Self>, id: &str) {
        let (Some(notifier), Some(ticket)) = (&self.notifier, self.get(id)) else {
            return;
        };
        let channel = ticket.channel_name.clone();
        notifier.requested(self, &ticket, &channel, Phase::Initial);
    }

    /// Asks a Slack approver who pressed Deny for a reason, in a dialog
    /// opened with the press's `trigger_id` on `channel`'s workspace; the
    /// dialog's submission denies the ticket ([`Self::resolve`]). If the
    /// dialog cannot be opened, the press denies at once, without a reason:
    /// a deny is never lost to a failed dialog.
    pub fn ask_deny_reason(
        self: &Arc<Self>,
        id: &str,
        channel: &str,
        trigger_id: &str,
        by: Resolver,
    ) {
        let (Some(notifier), Some(ticket)) = (self.notifier.clone(), self.get(id)) else {
            let _ = self.resolve(id, Resolution::Denied { reason: None }, by);
            return;
        };
        let body = slack::deny_dialog(trigger_id, &ticket);
        let (approvals, id, channel) = (self.clone(), id.to_owned(), channel.to_owned());
        notifier.clone().runtime().spawn(async move {
            if let Err(error) = notifier.open_dialog(&channel, body).await {
                tracing::warn!(ticket = %id, %error, "the Slack deny dialog could not be opened; denying without a reason");
                let _ = approvals.resolve(&id, Resolution::Denied { reason: None }, by);
            }
        });
    }

    /// Escalates the ticket after `escalation.after` if it is still pending
    /// then: `escalated_at` and `escalated_to` are set and the delegates (or
    /// the ticket's own channel) are told again.
    pub fn escalate_later(self: &Arc<Self>, id: &str, escalation: Escalation) {
        let Some(notifier) = &self.notifier else {
            return;
        };
        let (approvals, id) = (self.clone(), id.to_owned());
        notifier.runtime().spawn(async move {
            tokio::time::sleep(escalation.after).await;
            approvals.escalate(&id, escalation.delegates);
        });
    }

    fn escalate(self: &Arc<Self>, id: &str, delegates: Vec<String>) {
        let mut escalated = None;
        self.update(id, |ticket| {
            if ticket.status != Status::Pending {
                return;
            }
            let to = if delegates.is_empty() {
                vec![ticket.channel_name.clone()]
            } else {
                delegates
            };
            ticket.escalated_at = Some(now_iso());
            ticket.escalated_to = Some(to);
            escalated = Some(ticket.clone());
        });
        let (Some(ticket), Some(notifier)) = (escalated, &self.notifier) else {
            return;
        };
        tracing::info!(ticket = id, to = ?ticket.escalated_to, "approval ticket escalated");
        for channel in ticket.escalated_to.iter().flatten() {
            notifier.requested(self, &ticket, channel, Phase::Escalation);
        }
    }

    /// A channel got the ticket; `details` is what it answered that the
    /// ticket keeps (a webhook's delivery id, a Slack message's ts).
    fn notified(&self, id: &str, channel: &str, phase: Phase, details: serde_json::Value) {
        let mut entry = json!({
            "channel": channel,
            "phase": phase.as_str(),
            "delivered_at": now_iso(),
        });
        if let (Some(entry), serde_json::Value::Object(details)) = (entry.as_object_mut(), details)
        {
            entry.extend(details);
        }
        self.update(id, |ticket| ticket.notifications.push(entry));
    }

    /// A channel could not be told: recorded on the ticket and announced.
    fn notification_failed(&self, id: &str, channel: &str, phase: Phase, error: String) {
        self.update(id, |ticket| {
            ticket.notification_failures.push(json!({
                "channel": channel,
                "phase": phase.as_str(),
                "error": error,
                "failed_at": now_iso(),
            }));
        });
        self.announce(
            "approval_notification_failed",
            json!({ "ticket_id": id, "channel": channel, "phase": phase.as_str(), "error": error }),
        );
    }

    /// Changes a ticket and saves it.
    fn update(&self, id: &str, change: impl FnOnce(&mut Ticket)) {
        let mut tickets = self.lock();
        if let Some(entry) = tickets.by_id.get_mut(id) {
            change(&mut entry.ticket);
            self.save(&entry.ticket);
        }
    }

    /// Forgets tickets requested before `before_ms`, in memory and in the
    /// store (the audit's retention).
    pub fn forget_before(&self, before_ms: u64) {
        {
            let mut tickets = self.lock();
            let Tickets { by_id, order, .. } = &mut *tickets;
            order.retain(|id| {
                let keep = by_id.get(id).is_some_and(|e| {
                    e.ticket.status == Status::Pending || e.ticket.requested_ms >= before_ms
                });
                if !keep {
                    by_id.remove(id);
                }
                keep
            });
        }
        if let Some(store) = &self.store {
            if let Err(error) = store.forget_tickets(before_ms) {
                tracing::warn!(%error, "old approval tickets could not be removed; retrying later");
            }
        }
    }

    /// Writes a ticket's current state to the store.
    fn save(&self, ticket: &Ticket) {
        let Some(store) = &self.store else {
            return;
        };
        let stored = StoredTicket {
            id: ticket.id.clone(),
            requested_ms: ticket.requested_ms,
            json: serde_json::to_string(ticket).unwrap_or_default(),
        };
        if let Err(error) = store.save_ticket(stored) {
            tracing::error!(%error, id = %ticket.id, "an approval ticket could not be saved; it is kept in memory");
        }
    }

    /// Registers a pending ticket; the receiver gets the operator's
    /// decision.
    pub fn open(&self, ticket: Ticket) -> oneshot::Receiver<Decided> {
        let (sender, receiver) = oneshot::channel();
        let event = json!({
            "ticket_id": ticket.id,
            "tool_name": ticket.tool_name,
            "channel": ticket.channel_name,
            "requested_at": ticket.requested_at,
        });
        self.save(&ticket);
        {
            let mut tickets = self.lock();
            tickets.order.push_back(ticket.id.clone());
            tickets
                .open_by_call
                .insert(ticket.call_id.clone(), ticket.id.clone());
            tickets.by_id.insert(
                ticket.id.clone(),
                Entry {
                    ticket,
                    waiter: Some(sender),
                },
            );
            tickets.forget_old();
        }
        self.announce("approval_requested", event);
        receiver
    }

    /// An operator's decision on a pending ticket.
    pub fn resolve(
        self: &Arc<Self>,
        id: &str,
        resolution: Resolution,
        by: Resolver,
    ) -> Result<(), ResolveError> {
        let status = match &resolution {
            Resolution::Approved => Status::Approved,
            Resolution::Denied { .. } => Status::Denied,
            Resolution::BreakGlass { .. } => Status::BreakGlass,
        };
        let waiter = {
            let mut tickets = self.lock();
            let entry = tickets.by_id.get_mut(id).ok_or(ResolveError::NotFound)?;
            if entry.ticket.status != Status::Pending {
                return Err(ResolveError::AlreadyResolved(entry.ticket.status));
            }
            let ticket = &mut entry.ticket;
            ticket.settle(status, Some(&by));
            let call = ticket.call_id.clone();
            match &resolution {
                Resolution::Denied { reason } => ticket.denial_reason.clone_from(reason),
                Resolution::BreakGlass { reason } => {
                    ticket.break_glass_reason = Some(reason.clone());
                }
                Resolution::Approved => {}
            }
            self.save(ticket);
            let waiter = entry.waiter.take();
            tickets.closed(&call, id);
            waiter
        };
        self.announce_resolved(id);
        // A waiter gone means its call ended meanwhile (it set its own
        // status first, so this is unreachable in practice).
        if let Some(waiter) = waiter {
            let _ = waiter.send(Decided { resolution, by });
        }
        Ok(())
    }

    /// Ends a pending ticket without an operator (timeout, client gone,
    /// shutdown). False when it was no longer pending: an operator got
    /// there first, and the held call reads their decision instead.
    pub fn close(self: &Arc<Self>, id: &str, status: Status) -> bool {
        self.end(id, status, None).is_ok()
    }

    /// Ends a pending ticket because its caller withdrew the call (the
    /// adapter API's `timeout` and `cancelled`), saying who did.
    pub fn withdraw(
        self: &Arc<Self>,
        id: &str,
        status: Status,
        by: &Resolver,
    ) -> Result<(), ResolveError> {
        self.end(id, status, Some(by))
    }

    /// Ends a pending ticket without a decision: its held call learns the
    /// status from the ticket.
    fn end(
        self: &Arc<Self>,
        id: &str,
        status: Status,
        by: Option<&Resolver>,
    ) -> Result<(), ResolveError> {
        {
            let mut tickets = self.lock();
            let entry = tickets.by_id.get_mut(id).ok_or(ResolveError::NotFound)?;
            if entry.ticket.status != Status::Pending {
                return Err(ResolveError::AlreadyResolved(entry.ticket.status));
            }
            entry.ticket.settle(status, by);
            entry.waiter = None;
            self.save(&entry.ticket);
            let call = entry.ticket.call_id.clone();
            tickets.closed(&call, id);
        }
        self.announce_resolved(id);
        Ok(())
    }

    /// Shutdown: every pending ticket ends `shutdown_cancelled`, and its
    /// held call is not forwarded.
    pub fn cancel_all(self: &Arc<Self>) {
        let pending: Vec<String> = {
            let tickets = self.lock();
            tickets
                .by_id
                .values()
                .filter(|e| e.ticket.status == Status::Pending)
                .map(|e| e.ticket.id.clone())
                .collect()
        };
        for id in pending {
            self.close(&id, Status::ShutdownCancelled);
        }
    }

    /// The pending ticket of call `call_id`, if one is open.
    pub fn open_ticket_of(&self, call_id: &str) -> Option<Ticket> {
        let tickets = self.lock();
        let id = tickets.open_by_call.get(call_id)?;
        tickets.by_id.get(id).map(|e| e.ticket.clone())
    }

    pub fn get(&self, id: &str) -> Option<Ticket> {
        self.lock().by_id.get(id).map(|e| e.ticket.clone())
    }

    /// Tickets newest first, optionally of one status: a page and the
    /// total that matched.
    pub fn list(
        &self,
        status: Option<Status>,
        limit: usize,
        offset: usize,
    ) -> (Vec<Ticket>, usize) {
        let tickets = self.lock();
        let matching = tickets
            .order
            .iter()
            .rev()
            .filter_map(|id| tickets.by_id.get(id))
            .filter(|e| status.is_none_or(|s| e.ticket.status == s));
        let total = matching.clone().count();
        let page = matching
            .skip(offset)
            .take(limit)
            .map(|e| e.ticket.clone())
            .collect();
        (page, total)
    }

    /// Approval events for the live feed: `(event name, JSON data)`.
    pub fn subscribe(&self) -> broadcast::Receiver<(&'static str, Arc<str>)> {
        self.events.subscribe()
    }

    /// The live feed, and the channels that were told of the ticket, learn
    /// how it ended.
    fn announce_resolved(self: &Arc<Self>, id: &str) {
        let Some(ticket) = self.get(id) else {
            return;
        };
        if let Some(notifier) = &self.notifier {
            let mut told = vec![ticket.channel_name.clone()];
            for channel in ticket.escalated_to.iter().flatten() {
                if !told.contains(channel) {
                    told.push(channel.clone());
                }
            }
            for channel in &told {
                notifier.requested(self, &ticket, channel, Phase::Resolution);
            }
        }
        self.announce(
            "approval_resolved",
            json!({
                "ticket_id": ticket.id,
                "status": ticket.status.as_str(),
                "resolved_by": ticket.resolved_by,
                "resolved_at": ticket.resolved_at,
            }),
        );
    }

    fn announce(&self, event: &'static str, data: serde_json::Value) {
        // No subscriber is not an error: nobody is watching.
        let _ = self.events.send((event, Arc::from(data.to_string())));
    }

    fn lock(&self) -> MutexGuard<'_, Tickets> {
        self.tickets.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Tickets {
    /// Ticket `id` of call `call` is no longer pending.
    fn closed(&mut self, call: &str, id: &str) {
        if self.open_by_call.get(call).is_some_and(|open| open == id) {
            self.open_by_call.remove(call);
        }
    }

    /// Drops the oldest resolved tickets beyond [`KEPT_RESOLVED`]; pending
    /// ones always stay.
    fn forget_old(&mut self) {
        if self.by_id.len() <= KEPT_RESOLVED {
            return;
        }
        let mut excess = self.by_id.len().saturating_sub(KEPT_RESOLVED);
        let mut kept = VecDeque::with_capacity(self.order.len());
        while let Some(id) = self.order.pop_front() {
            let pending = self
                .by_id
                .get(&id)
                .is_some_and(|e| e.ticket.status == Status::Pending);
            if excess > 0 && !pending {
                self.by_id.remove(&id);
                excess -= 1;
            } else {
                kept.push_back(id);
            }
        }
        self.order = kept;
    }
}

/// The time now, as tickets show it.
fn now_iso() -> String {
    iso_utc(now_ms())
}

#[cfg(test)]
mod tests;
