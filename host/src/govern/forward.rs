//! A call the core let through: its holds are committed, and what the
//! upstream answers settles its state and completes its record.

use std::sync::Arc;
use std::time::Instant;

use crate::pipeline::Denial;
use crate::plugins::Decision;
use crate::state::{CallOutcome, Decimal, Hold, HoldKind, Settlement, StateError, StateStore};
use crate::traces::TraceHeaders;

use super::answer::Answer;
use super::held::Resolved;
use super::observe::{Observers, Watch};
use super::record::CallAudit;

/// A forwarded call, waiting for the upstream's answer. Dropped without
/// one, its outcome is unknown: spend stands, and the record says no
/// answer came.
pub struct Forwarded {
    settlement: Settlement,
    audit: CallAudit,
    /// The stages that asked how the call ends.
    watch: Option<Watch>,
}

/// Why no answer came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// The call never reached the upstream (it could not be connected to),
    /// so it did not happen: its spend is refunded.
    Undelivered,
    /// It may have run (a timeout, a broken stream): its spend stands.
    Unknown,
}

/// What the stages took for a call, and what forwarding it needs. A guard:
/// dropped without being forwarded (the call was abandoned while a stage
/// waited, a panic), it gives the holds back, so nothing stays taken for a
/// call that never went out.
pub(super) struct Release {
    pub state: Arc<dyn StateStore>,
    pub session: Option<Arc<str>>,
    pub tool: Arc<str>,
    pub holds: Vec<Hold>,
    /// The stages that asked to observe the call, told if it goes out.
    pub observers: Option<Observers>,
}

impl Release {
    /// Commits the holds (spend durable before the call goes out) and
    /// starts the forward; a store that cannot write blocks the call.
    pub fn forward(mut self, mut audit: CallAudit, decision: Option<&Decision>) -> Resolved {
        let holds = std::mem::take(&mut self.holds);
        let committed = if holds.is_empty() {
            Ok(())
        } else {
            let started = Instant::now();
            let committed = self.state.commit(&holds);
            audit.state_done("commit", started);
            committed
        };
        if let Err(error) = committed {
            tracing::error!(%error, tool = %self.tool, "governance state could not be written; blocking the call");
            let denial = Denial::state_unavailable();
            audit.blocked(&denial);
            return Resolved::Block(denial);
        }
        audit.forwarding(decision);
        Resolved::Forward(Box::new(Forwarded {
            settlement: Settlement::new(
                self.state.clone(),
                self.session.clone(),
                self.tool.clone(),
                holds,
            ),
            audit,
            watch: self.observers.take().map(Observers::forwarded),
        }))
    }

    /// Whether the call holds spend (a spend limit's or a budget's).
    pub fn holds_spend(&self) -> bool {
        self.holds.iter().any(|h| h.kind == HoldKind::Spend)
    }

    /// Makes every spend hold `amount`: what the call actually cost, as
    /// its caller reported. The keys resized.
    pub fn resize_spend(&self, amount: Decimal) -> Result<Vec<Arc<str>>, StateError> {
        let mut resized = Vec::new();
        for hold in self.holds.iter().filter(|h| h.kind == HoldKind::Spend) {
            self.state.spend_resize(hold, amount)?;
            resized.push(hold.key.clone());
        }
        Ok(resized)
    }

    /// Gives the holds back: the call (whose record is `audit`) is not
    /// forwarded.
    pub fn release(mut self, audit: &CallAudit) {
        let holds = std::mem::take(&mut self.holds);
        if !holds.is_empty() {
            let started = Instant::now();
            self.state.release(&holds);
            audit.state_done("release", started);
        }
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        if !self.holds.is_empty() {
            self.state.release(&std::mem::take(&mut self.holds));
        }
    }
}

impl Forwarded {
    /// The door is sending the call now: the W3C trace context to send with
    /// it (as `traceparent`/`tracestate`), when the call is traced.
    pub fn sending(&mut self) -> Option<TraceHeaders> {
        self.audit.sending()
    }

    /// Settles the call's state by `outcome`, timed for its trace.
    fn settle(settlement: Settlement, audit: &CallAudit, outcome: CallOutcome) {
        let started = Instant::now();
        settlement.settle(outcome);
        audit.state_done("settle", started);
    }

    /// The upstream answered with the JSON-RPC `message` (`status`: its
    /// transport's status, e.g. HTTP's, where there is one).
    pub fn answered(self, status: Option<u16>, message: &[u8]) {
        let answer = Answer::read(message);
        Self::settle(self.settlement, &self.audit, answer.outcome);
        if let Some(watch) = self.watch {
            watch.answered(&answer);
        }
        self.audit.answered(status, message, answer.error_message);
    }

    /// The upstream refused the call before running it; `body` is what it
    /// said.
    pub fn refused(self, status: Option<u16>, body: &[u8]) {
        let answer = Answer::read(body);
        Self::settle(self.settlement, &self.audit, CallOutcome::Failed);
        if let Some(watch) = self.watch {
            watch.ended(crate::plugins::Ending::ProtocolError);
        }
        self.audit.answered(status, body, answer.error_message);
    }

    /// Its caller ran it (the adapter API): `outcome` settles its state;
    /// `reported` is how the caller said it went (observers are told that);
    /// `result` is what it returned, `error` why it failed, `took` how long
    /// it ran.
    pub(super) fn ran(
        self,
        outcome: CallOutcome,
        reported: CallOutcome,
        result: Option<&[u8]>,
        error: Option<String>,
        took: Option<std::time::Duration>,
    ) {
        Self::settle(self.settlement, &self.audit, outcome);
        if let Some(watch) = self.watch {
            watch.ran(reported, took);
        }
        self.audit.ran(result, error, took);
    }

    /// No answer came; `why` is recorded.
    pub fn unanswered(self, unanswered: Unanswered, why: &str) {
        let outcome = match unanswered {
            Unanswered::Undelivered => CallOutcome::Failed,
            Unanswered::Unknown => CallOutcome::Unknown,
        };
        Self::settle(self.settlement, &self.audit, outcome);
        self.audit.failed(why);
    }
}
