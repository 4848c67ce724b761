//! Stores that misbehave as real backends do, for the tests of everything
//! that must then fail closed or keep serving: writes that fail (a full
//! disk, a locked database), operations that wait (a backend across a
//! network), and a backend that is down.

use std::sync::Arc;
use std::time::Duration;

use super::*;

/// A [`LocalStore`] with faults: `writes_fail` makes every commit and
/// sideband write fail; `delay` makes every rate or spend operation wait
/// (blocking its thread) as a networked backend's round trip would.
pub struct TestStore {
    pub inner: Arc<LocalStore>,
    pub writes_fail: bool,
    pub delay: Option<Duration>,
}

impl TestStore {
    pub fn failing_writes(inner: Arc<LocalStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            writes_fail: true,
            delay: None,
        })
    }

    pub fn slow(inner: Arc<LocalStore>, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            inner,
            writes_fail: false,
            delay: Some(delay),
        })
    }

    fn wait(&self) {
        if let Some(delay) = self.delay {
            std::thread::sleep(delay);
        }
    }

    fn write(&self) -> Result<(), StateError> {
        if self.writes_fail {
            return Err(StateError("the test store refuses writes".into()));
        }
        Ok(())
    }
}

impl StateStore for TestStore {
    fn rate_peek(
        &self,
        key: &str,
        limit: u64,
        window_ms: u64,
        now: u64,
    ) -> Result<RateWindow, StateError> {
        self.wait();
        Ok(self.inner.rate_peek(key, limit, window_ms, now))
    }
    fn rate_take(
        &self,
        key: &str,
        limit: u64,
        window_ms: u64,
        now: u64,
    ) -> Result<(RateWindow, Option<Hold>), StateError> {
        self.wait();
        Ok(self.inner.rate_take(key, limit, window_ms, now))
    }
    fn spend_reserve(
        &self,
        key: &str,
        amount: Decimal,
        limit: Decimal,
        window_ms: Option<u64>,
        now: u64,
    ) -> Result<(SpendWindow, Option<Hold>), StateError> {
        self.wait();
        Ok(self.inner.spend_reserve(key, amount, limit, window_ms, now))
    }
    fn spend_overage(
        &self,
        key: &str,
        amount: Decimal,
        window_ms: Option<u64>,
        now: u64,
    ) -> Result<Hold, StateError> {
        self.wait();
        StateStore::spend_overage(&*self.inner, key, amount, window_ms, now)
    }
    fn spend_resize(&self, hold: &Hold, amount: Decimal) -> Result<(), StateError> {
        self.write()?;
        StateStore::spend_resize(&*self.inner, hold, amount)
    }
    fn commit(&self, holds: &[Hold]) -> Result<(), StateError> {
        if let Err(error) = self.write() {
            self.inner.release(holds);
            return Err(error);
        }
        Ok(self.inner.commit(holds)?)
    }
    fn release(&self, holds: &[Hold]) {
        self.inner.release(holds)
    }
    fn evidence_status(
        &self,
        session: &str,
        key: &str,
        now: u64,
    ) -> Result<EvidenceStatus, StateError> {
        Ok(self.inner.evidence_status(session, key, now))
    }
    fn completed(&self, session: &str, tool: &str) -> Result<Option<Completion>, StateError> {
        Ok(self.inner.completed(session, tool))
    }
    fn record_completion(&self, session: &str, tool: &str, succeeded: bool, now: u64) {
        self.inner.record_completion(session, tool, succeeded, now)
    }
    fn record_evidence(&self, session: &str, evidence: Evidence) -> Result<(), StateError> {
        self.write()?;
        Ok(self.inner.record_evidence(session, evidence)?)
    }
    fn set_context(
        &self,
        session: &str,
        key: &str,
        value: serde_json::Value,
        now: u64,
    ) -> Result<(), StateError> {
        self.write()?;
        Ok(self.inner.set_context(session, key, value, now)?)
    }
    fn may_block(&self) -> bool {
        self.delay.is_some()
    }
}

impl StateMaintenance for TestStore {
    fn sweep(&self, now: u64) {
        self.inner.sweep(now)
    }
    fn forget_idle_pots(&self, now: u64, idle_after: &dyn Fn(&str) -> Option<u64>) -> usize {
        self.inner.forget_idle_pots(now, idle_after)
    }
    fn flush(&self) -> Result<(), StateError> {
        self.write()?;
        Ok(self.inner.flush()?)
    }
}

impl StateInspection for TestStore {
    fn windows(&self, now: u64) -> Result<Vec<WindowSnapshot>, StateError> {
        Ok(self.inner.windows(now))
    }
    fn session_state(&self, session: &str, now: u64) -> Result<SessionState, StateError> {
        Ok(self.inner.session_state(session, now))
    }
}

impl TicketStore for TestStore {
    fn save_ticket(&self, ticket: StoredTicket) -> Result<(), StateError> {
        self.inner.save_ticket(ticket)
    }
    fn restored_tickets(&self) -> Vec<StoredTicket> {
        self.inner.restored_tickets()
    }
    fn forget_tickets(&self, before_ms: u64) -> Result<(), StateError> {
        self.inner.forget_tickets(before_ms)
    }
}

impl BaselineStore for TestStore {
    fn save_baseline(&self, baseline: StoredBaseline) -> Result<(), StateError> {
        self.inner.save_baseline(baseline)
    }
    fn restored_baselines(&self, upstream: &str) -> Vec<StoredBaseline> {
        self.inner.restored_baselines(upstream)
    }
}

/// A backend that is down: every operation fails.
pub struct Down;

fn down() -> StateError {
    StateError("the test store is down".into())
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
    fn spend_overage(
        &self,
        _: &str,
        _: Decimal,
        _: Option<u64>,
        _: u64,
    ) -> Result<Hold, StateError> {
        Err(down())
    }
    fn spend_resize(&self, _: &Hold, _: Decimal) -> Result<(), StateError> {
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

impl TicketStore for Down {
    fn save_ticket(&self, _: StoredTicket) -> Result<(), StateError> {
        Err(down())
    }
    fn restored_tickets(&self) -> Vec<StoredTicket> {
        Vec::new()
    }
    fn forget_tickets(&self, _: u64) -> Result<(), StateError> {
        Err(down())
    }
}

impl BaselineStore for Down {
    fn save_baseline(&self, _: StoredBaseline) -> Result<(), StateError> {
        Err(down())
    }
    fn restored_baselines(&self, _: &str) -> Vec<StoredBaseline> {
        Vec::new()
    }
}
