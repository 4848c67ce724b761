//! What happens to a forwarded call's state once the upstream answers.
//!
//! - The session's completed calls learn the outcome (dependency chains).
//! - Spend held by the call is refunded when the upstream reports a
//!   definitive failure: a JSON-RPC error, or a tool result with
//!   `isError: true`. A payment the server says it did not make is not
//!   charged.
//! - When the outcome is unknown (the upstream timed out or broke off, the
//!   client went away), the charge stands: the call may have taken effect,
//!   and over-counting is the safe side for a limit.
//! - Rate slots are never given back: the upstream was called.

use std::sync::Arc;

use super::{now_ms, Hold, HoldKind, StateStore};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    Succeeded,
    /// The upstream said the call failed.
    Failed,
    /// No answer that says either way.
    Unknown,
}

/// The state a forwarded call still has to settle. Dropping it unsettled
/// settles it as [`CallOutcome::Unknown`].
pub struct Settlement {
    store: Arc<dyn StateStore>,
    session: Option<Arc<str>>,
    tool: Arc<str>,
    holds: Vec<Hold>,
    settled: bool,
}

impl Settlement {
    pub fn new(
        store: Arc<dyn StateStore>,
        session: Option<Arc<str>>,
        tool: Arc<str>,
        holds: Vec<Hold>,
    ) -> Self {
        Self {
            store,
            session,
            tool,
            holds,
            settled: false,
        }
    }

    pub fn settle(mut self, outcome: CallOutcome) {
        self.apply(outcome);
    }

    fn apply(&mut self, outcome: CallOutcome) {
        if self.settled {
            return;
        }
        self.settled = true;
        if let Some(session) = &self.session {
            self.store.record_completion(
                session,
                &self.tool,
                outcome == CallOutcome::Succeeded,
                now_ms(),
            );
        }
        if outcome == CallOutcome::Failed {
            let refunds: Vec<Hold> = self
                .holds
                .iter()
                .filter(|h| h.kind == HoldKind::Spend)
                .cloned()
                .collect();
            self.store.release(&refunds);
        }
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        self.apply(CallOutcome::Unknown);
    }
}
