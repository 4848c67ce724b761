//! A store whose writes fail (a full disk, a locked database, a backend
//! that is down), for the tests of everything that must then fail closed.

use std::sync::Arc;

use super::*;

/// A store whose writes fail (a full disk, a locked database).
pub struct FailingWrites(pub Arc<LocalStore>);

/// A store that is down: every operation fails.
pub struct Down;

fn write_error() -> StateError {
    StateError("the test store refuses writes".into())
}

fn down() -> StateError {
    StateError("the test store is down".into())
}

impl StateStore for FailingWrites {
    fn rate_peek(
        &self,
        key: &str,
        limit: u64,
        window_ms: u64,
        now: u64,
    ) -> Result<RateWindow, StateError> {
        Ok(self.0.rate_peek(key, limit, window_ms, now))
    }
    fn rate_take(
        &self,
        key: &str,
        limit: u64,
        window_ms: u64,
        now: u64,
    ) -> Result<(RateWindow, Option<Hold>), StateError> {
        Ok(self.0.rate_take(key, limit, window_ms, now))
    }
    fn spend_reserve(
        &self,
        key: &str,
        amount: Decimal,
        limit: Decimal,
        window_ms: Option<u64>,
        now: u64,
    ) -> Result<(SpendWindow, Option<Hold>), StateError> {
        Ok(self.0.spend_reserve(key, amount, limit, window_ms, now))
    }
    fn commit(&self, holds: &[Hold]) -> Result<(), StateError> {
        self.0.release(holds);
        Err(write_error())
    }
    fn release(&self, holds: &[Hold]) {
        self.0.release(holds)
    }
    fn evidence_status(
        &self,
        session: &str,
        key: &str,
        now: u64,
    ) -> Result<EvidenceStatus, StateError> {
        Ok(self.0.evidence_status(session, key, now))
    }
    fn completed(&self, session: &str, tool: &str) -> Result<Option<Completion>, StateError> {
        Ok(self.0.completed(session, tool))
    }
    fn record_completion(&self, session: &str, tool: &str, succeeded: bool, now: u64) {
        self.0.record_completion(session, tool, succeeded, now)
    }
    fn record_evidence(&self, _: &str, _: Evidence) -> Result<(), StateError> {
        Err(write_error())
    }
    fn set_context(
        &self,
        _: &str,
        _: &str,
        _: serde_json::Value,
        _: u64,
    ) -> Result<(), StateError> {
        Err(write_error())
    }
}

impl StateMaintenance for FailingWrites {
    fn sweep(&self, now: u64) {
        self.0.sweep(now)
    }
    fn forget_idle_pots(&self, now: u64, idle_after: &dyn Fn(&str) -> Option<u64>) -> usize {
        self.0.forget_idle_pots(now, idle_after)
    }
    fn flush(&self) -> Result<(), StateError> {
        Err(write_error())
    }
}

impl StateInspection for FailingWrites {
    fn windows(&self, now: u64) -> Result<Vec<WindowSnapshot>, StateError> {
        Ok(self.0.windows(now))
    }
    fn session_state(&self, session: &str, now: u64) -> Result<SessionState, StateError> {
        Ok(self.0.session_state(session, now))
    }
}

impl StateStore for Down {
    fn rate_peek(&self, _: &str, _: u64, _: u64, _: u64) -> Result<RateWindow, StateError> {
        Err(down())
    }
    fn rate_take(
        &self,
        _: &str,
        _: u64,
        _: u64,
        _: u64,
    ) -> Result<(RateWindow, Option<Hold>), StateError> {
        Err(down())
    }
    fn spend_reserve(
        &self,
        _: &str,
        _: Decimal,
        _: Decimal,
        _: Option<u64>,
        _: u64,
    ) -> Result<(SpendWindow, Option<Hold>), StateError> {
        Err(down())
    }
    fn commit(&self, _: &[Hold]) -> Result<(), StateError> {
        Err(down())
    }
    fn release(&self, _: &[Hold]) {}
    fn evidence_status(&self, _: &str, _: &str, _: u64) -> Result<EvidenceStatus, StateError> {
        Err(down())
    }
    fn completed(&self, _: &str, _: &str) -> Result<Option<Completion>, StateError> {
        Err(down())
    }
    fn record_completion(&self, _: &str, _: &str, _: bool, _: u64) {}
    fn record_evidence(&self, _: &str, _: Evidence) -> Result<(), StateError> {
        Err(down())
    }
    fn set_context(
        &self,
        _: &str,
        _: &str,
        _: serde_json::Value,
        _: u64,
    ) -> Result<(), StateError> {
        Err(down())
    }
}

impl StateMaintenance for Down {
    fn sweep(&self, _: u64) {}
    fn forget_idle_pots(&self, _: u64, _: &dyn Fn(&str) -> Option<u64>) -> usize {
        0
    }
    fn flush(&self) -> Result<(), StateError> {
        Err(down())
    }
}

impl StateInspection for Down {
    fn windows(&self, _: u64) -> Result<Vec<WindowSnapshot>, StateError> {
        Err(down())
    }
    fn session_state(&self, _: &str, _: u64) -> Result<SessionState, StateError> {
        Err(down())
    }
}
