//! A call waiting for a human: its stages' holds stay reserved (the rate
//! slot, the spend) so no other call can take them meanwhile, and it goes
//! on exactly once, as it was held, when it is resolved.
//!
//! The core opens a ticket in [`Approvals`] and hands the door a [`Held`];
//! the door awaits [`Held::resolved`] while it keeps the client waiting.
//! Whoever decides (an operator, a channel) resolves the ticket by id.
//! Dropping the `Held` (the client went away) releases the holds, and
//! dropping the ticket's sender (shutdown) resolves it as cancelled: in
//! every path that does not forward, nothing stays taken.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::pipeline::{Approval, Denial};

use super::forward::{Forwarded, Release};
use super::record::CallAudit;

/// How a ticket was resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    Approved,
    Denied { reason: String },
}

/// The open tickets, by id.
#[derive(Default)]
pub struct Approvals {
    open: Mutex<HashMap<String, oneshot::Sender<Resolution>>>,
}

impl Approvals {
    fn open(&self, ticket: &str) -> oneshot::Receiver<Resolution> {
        let (sender, receiver) = oneshot::channel();
        self.tickets().insert(ticket.to_owned(), sender);
        receiver
    }

    /// Resolves an open ticket; false when there is none by that id (never
    /// opened, already resolved, or its call is gone).
    pub fn resolve(&self, ticket: &str, resolution: Resolution) -> bool {
        let sender = self.tickets().remove(ticket);
        sender.is_some_and(|sender| sender.send(resolution).is_ok())
    }

    /// The ids of the open tickets.
    pub fn open_tickets(&self) -> Vec<String> {
        self.tickets().keys().cloned().collect()
    }

    /// Cancels every open ticket (shutdown): their calls are not forwarded.
    pub fn cancel_all(&self) {
        self.tickets().clear();
    }

    fn forget(&self, ticket: &str) {
        self.tickets().remove(ticket);
    }

    fn tickets(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Resolution>>> {
        match self.open.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// A held call. Resolve it with [`Held::resolved`]; drop it to give up.
pub struct Held {
    ticket: String,
    approval: Approval,
    /// Taken when the call is resolved; still here on drop means it never was.
    parts: Option<(Release, CallAudit)>,
    resolution: oneshot::Receiver<Resolution>,
    approvals: Arc<Approvals>,
}

/// What a held call became.
pub enum Resolved {
    Forward(Box<Forwarded>),
    Block(Denial),
}

impl Held {
    pub(super) fn open(
        approvals: &Arc<Approvals>,
        approval: Approval,
        release: Release,
        audit: CallAudit,
    ) -> Self {
        let ticket = audit.id().to_owned();
        Self {
            resolution: approvals.open(&ticket),
            ticket,
            approval,
            parts: Some((release, audit)),
            approvals: approvals.clone(),
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
    /// its holds committed; denied or cancelled, they are released.
    pub async fn resolved(mut self) -> Resolved {
        let resolution = (&mut self.resolution).await;
        let Some((release, audit)) = self.parts.take() else {
            return Resolved::Block(Denial::shutdown_cancelled(&self.approval));
        };
        let denial = match resolution {
            Ok(Resolution::Approved) => {
                return release.forward(audit, Some(&self.approval.decision))
            }
            Ok(Resolution::Denied { reason }) => Denial::approval_denied(&self.approval, &reason),
            Err(_) => Denial::shutdown_cancelled(&self.approval),
        };
        release.release();
        audit.blocked(&denial);
        Resolved::Block(denial)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.approvals.forget(&self.ticket);
        if let Some((release, audit)) = self.parts.take() {
            release.release();
            audit.blocked(&Denial::client_disconnected(&self.approval));
        }
    }
}
