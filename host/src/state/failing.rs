//! A store whose writes fail (a full disk, a locked database, a backend
//! that is down), for the tests of everything that must then fail closed.

use std::sync::Arc;

use super::*;

/// A store whose writes fail (a full disk, a locked database).
pub struct FailingWrites(pub Arc<LocalStore>);

fn write_error() -> PersistError {
    rusqlite::Error::InvalidQuery.into()
}

impl StateStore for FailingWrites {
    fn rate_peek(&self, key: &str, limit: u64, window_ms: u64, now: u64) -> RateWindow {
        self.0.rate_peek(key, limit, window_ms, now)
    }
    fn rate_take(
        &self,
        key: &str,
        limit: u64,
        window_ms: u64,
        now: u64,
    ) -> (RateWindow, Option<Hold>) {
        self.0.rate_take(key, limit, window_ms, now)
    }
    fn spend_reserve(
        &self,
        key: &str,
        amount: Decimal,
        limit: Decimal,
        window_ms: Option<u64>,
        now: u64,
    ) -> (SpendWindow, Option<Hold>) {
        self.0.spend_reserve(key, amount, limit, window_ms, now)
    }
    fn commit(&self, holds: &[Hold]) -> Result<(), PersistError> {
        self.0.release(holds);
        Err(write_error())
    }
    fn release(&self, holds: &[Hold]) {
        self.0.release(holds)
    }
    fn record_evidence(&self, _: &str, _: Evidence) -> Result<(), PersistError> {
        Err(write_error())
    }
    fn evidence_status(&self, session: &str, key: &str, now: u64) -> EvidenceStatus {
        self.0.evidence_status(session, key, now)
    }
    fn set_context(
        &self,
        _: &str,
        _: &str,
        _: serde_json::Value,
        _: u64,
    ) -> Result<(), PersistError> {
        Err(write_error())
    }
    fn record_completion(&self, session: &str, tool: &str, succeeded: bool, now: u64) {
        self.0.record_completion(session, tool, succeeded, now)
    }
    fn completed(&self, session: &str, tool: &str) -> Option<Completion> {
        self.0.completed(session, tool)
    }
    fn session_state(&self, session: &str, now: u64) -> SessionState {
        self.0.session_state(session, now)
    }
    fn sweep(&self, now: u64) {
        self.0.sweep(now)
    }

    fn forget_idle_pots(&self, now: u64, idle_after: &dyn Fn(&str) -> Option<u64>) -> usize {
        self.0.forget_idle_pots(now, idle_after)
    }

    fn windows(&self, now: u64) -> Vec<WindowSnapshot> {
        self.0.windows(now)
    }

    fn flush(&self) -> Result<(), PersistError> {
        Err(write_error())
    }
}
