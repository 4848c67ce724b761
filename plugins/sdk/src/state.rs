//! Governance state, held by the host: rate windows, spend ledgers, the
//! call's session's evidence and completed calls, and the clock. Inside
//! Helio every operation is the host's (shared, atomic, persistent, listed
//! in the call's audit record); in a native test, [`State::memory`] keeps
//! it in this process.
//!
//! What `rate_take` and `spend_reserve` take is held for the call: the host
//! commits it when the call is forwarded and gives it back when the chain
//! blocks or simulates it, so a stage never undoes anything itself.

use std::collections::HashMap;

/// The outcome of a rate-window operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateWindow {
    /// Whether the call fits in the window.
    pub allowed: bool,
    /// Calls counted in the window (after taking, if taken).
    pub current: u64,
    pub limit: u64,
    /// When the oldest counted call leaves the window (ms since epoch).
    pub reset_at_ms: u64,
}

/// The outcome of a spend-ledger operation; amounts are exact decimals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendWindow {
    pub allowed: bool,
    /// Spent in the window (after reserving, if reserved).
    pub spent: String,
    pub limit: String,
    pub reset_at_ms: Option<u64>,
}

/// Whether a piece of evidence is held for the call's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvidenceStatus {
    Present,
    Expired,
    /// Never held, or the call has no session.
    Missing,
}

/// A tool call the session completed through Helio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    pub succeeded: bool,
    pub at_ms: u64,
}

/// What a stage tells the host about a family of its keys (see
/// [`crate::Stage::key_families`]), so the operator's views can show them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFamily {
    /// Keys starting with this are of the family; the rest names the bucket.
    pub prefix: String,
    /// `rate`, `spend`, `budget`, or the stage's own word.
    pub kind: String,
    /// The rule or budget the family belongs to.
    pub name: String,
    /// For a pot with no window: forget it after this long without a charge.
    pub idle_ttl_ms: Option<u64>,
}

/// Governance state as a stage reaches it.
pub struct State {
    backend: Backend,
}

enum Backend {
    #[cfg(target_arch = "wasm32")]
    Host,
    Memory(Box<Memory>),
}

/// In-process state for native tests.
#[derive(Debug, Default)]
struct Memory {
    now_ms: u64,
    windows: HashMap<String, Vec<u64>>,
    ledgers: HashMap<String, Vec<(u64, f64)>>,
    evidence: HashMap<String, EvidenceStatus>,
    completed: HashMap<String, Completion>,
}

impl State {
    #[cfg(target_arch = "wasm32")]
    pub(crate) fn host() -> Self {
        State {
            backend: Backend::Host,
        }
    }

    /// Empty state for a native test, its clock at `now_ms`.
    pub fn memory(now_ms: u64) -> Self {
        State {
            backend: Backend::Memory(Box::new(Memory {
                now_ms,
                ..Memory::default()
            })),
        }
    }

    fn memory_mut(&mut self) -> Option<&mut Memory> {
        match &mut self.backend {
            Backend::Memory(memory) => Some(memory),
            #[cfg(target_arch = "wasm32")]
            Backend::Host => None,
        }
    }

    /// Test set-up: moves the memory clock (nothing inside Helio).
    pub fn set_now_ms(&mut self, now_ms: u64) {
        if let Some(memory) = self.memory_mut() {
            memory.now_ms = now_ms;
        }
    }

    /// Test set-up: evidence `key` of the call's session. (Inside Helio a
    /// call without a session has no evidence and no completions: give the
    /// `MockCall` a `.session(..)` when the stage reads them.)
    pub fn set_evidence(&mut self, key: &str, status: EvidenceStatus) {
        if let Some(memory) = self.memory_mut() {
            memory.evidence.insert(key.into(), status);
        }
    }

    /// Test set-up: the session completed `tool`.
    pub fn set_completed(&mut self, tool: &str, succeeded: bool) {
        if let Some(memory) = self.memory_mut() {
            let at_ms = memory.now_ms;
            memory
                .completed
                .insert(tool.into(), Completion { succeeded, at_ms });
        }
    }

    /// Milliseconds since the Unix epoch: the only clock a stage has.
    pub fn now_ms(&self) -> u64 {
        match &self.backend {
            #[cfg(target_arch = "wasm32")]
            Backend::Host => crate::host::bindings::helio::governance::host::now_ms(),
            Backend::Memory(memory) => memory.now_ms,
        }
    }

    /// Counts window `key` (at most `limit` calls per `window_ms`, sliding)
    /// without taking a slot.
    pub fn rate_peek(&mut self, key: &str, limit: u64, window_ms: u64) -> RateWindow {
        self.rate(key, limit, window_ms, false)
    }

    /// Takes a slot from window `key` if it fits.
    pub fn rate_take(&mut self, key: &str, limit: u64, window_ms: u64) -> RateWindow {
        self.rate(key, limit, window_ms, true)
    }

    fn rate(&mut self, key: &str, limit: u64, window_ms: u64, take: bool) -> RateWindow {
        match &mut self.backend {
            #[cfg(target_arch = "wasm32")]
            Backend::Host => {
                use crate::host::bindings::helio::governance::state;
                let w = match take {
                    true => state::rate_take(key, limit, window_ms),
                    false => state::rate_peek(key, limit, window_ms),
                };
                RateWindow {
                    allowed: w.allowed,
                    current: w.current,
                    limit: w.limit,
                    reset_at_ms: w.reset_at_ms,
                }
            }
            Backend::Memory(memory) => {
                let now = memory.now_ms;
                let window = memory.windows.entry(key.into()).or_default();
                window.retain(|at| at + window_ms > now);
                let allowed = (window.len() as u64) < limit;
                if take && allowed {
                    window.push(now);
                }
                RateWindow {
                    allowed,
                    current: window.len() as u64,
                    limit,
                    reset_at_ms: window.first().map_or(now, |at| at + window_ms),
                }
            }
        }
    }

    /// Reserves `amount` against ledger `key` (sliding `window_ms`, or a pot
    /// that never replenishes) if `spent + amount <= limit`; an error for an
    /// amount or limit that is not a non-negative decimal. The memory
    /// backend sums in `f64`: exact enough for tests, not for money.
    pub fn spend_reserve(
        &mut self,
        key: &str,
        amount: &str,
        limit: &str,
        window_ms: Option<u64>,
    ) -> Result<SpendWindow, String> {
        match &mut self.backend {
            #[cfg(target_arch = "wasm32")]
            Backend::Host => crate::host::bindings::helio::governance::state::spend_reserve(
                key, amount, limit, window_ms,
            )
            .map(|w| SpendWindow {
                allowed: w.allowed,
                spent: w.spent,
                limit: w.limit,
                reset_at_ms: w.reset_at_ms,
            }),
            Backend::Memory(memory) => {
                // What the host accepts: digits, at most one point.
                let number = |text: &str, what: &str| {
                    let t = text.trim();
                    let (whole, fraction) = t.split_once('.').unwrap_or((t, "0"));
                    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
                    match (digits(whole) && digits(fraction), t.parse::<f64>()) {
                        (true, Ok(n)) => Ok(n),
                        _ => Err(format!("{what} \"{text}\" is not a non-negative decimal")),
                    }
                };
                let (amount, cap) = (number(amount, "amount")?, number(limit, "limit")?);
                let now = memory.now_ms;
                let ledger = memory.ledgers.entry(key.into()).or_default();
                if let Some(window_ms) = window_ms {
                    ledger.retain(|(at, _)| at + window_ms > now);
                }
                let spent: f64 = ledger.iter().map(|(_, a)| a).sum();
                let allowed = spent + amount <= cap;
                if allowed {
                    ledger.push((now, amount));
                }
                Ok(SpendWindow {
                    allowed,
                    spent: (spent + if allowed { amount } else { 0.0 }).to_string(),
                    limit: cap.to_string(),
                    reset_at_ms: window_ms.and_then(|w| ledger.first().map(|(at, _)| at + w)),
                })
            }
        }
    }

    /// Evidence `key` attested for the call's session.
    pub fn evidence(&self, key: &str) -> EvidenceStatus {
        match &self.backend {
            #[cfg(target_arch = "wasm32")]
            Backend::Host => {
                use crate::host::bindings::helio::governance::state;
                match state::evidence(key) {
                    state::EvidenceStatus::Present => EvidenceStatus::Present,
                    state::EvidenceStatus::Expired => EvidenceStatus::Expired,
                    state::EvidenceStatus::Missing => EvidenceStatus::Missing,
                }
            }
            Backend::Memory(memory) => memory
                .evidence
                .get(key)
                .copied()
                .unwrap_or(EvidenceStatus::Missing),
        }
    }

    /// The latest completed call of `tool` in the call's session.
    pub fn completed(&self, tool: &str) -> Option<Completion> {
        match &self.backend {
            #[cfg(target_arch = "wasm32")]
            Backend::Host => {
                crate::host::bindings::helio::governance::state::completed(tool).map(|c| {
                    Completion {
                        succeeded: c.succeeded,
                        at_ms: c.at_ms,
                    }
                })
            }
            Backend::Memory(memory) => memory.completed.get(tool).copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_windows_ledgers_and_session_reads() {
        let mut state = State::memory(1_000);
        assert!(state.rate_take("k", 1, 100).allowed);
        assert!(!state.rate_take("k", 1, 100).allowed);
        state.set_now_ms(1_100);
        assert!(state.rate_peek("k", 1, 100).allowed);
        let w = state.spend_reserve("s", "2.5", "3", None).expect("amount");
        assert!(w.allowed && w.spent == "2.5");
        assert!(
            !state
                .spend_reserve("s", "1", "3", None)
                .expect("amount")
                .allowed
        );
        assert!(state.spend_reserve("s", "-1", "3", None).is_err());
        assert!(state.spend_reserve("s", "1e3", "3", None).is_err());
        assert!(state.spend_reserve("s", "inf", "3", None).is_err());
        assert_eq!(state.evidence("ticket"), EvidenceStatus::Missing);
        state.set_evidence("ticket", EvidenceStatus::Present);
        assert_eq!(state.evidence("ticket"), EvidenceStatus::Present);
        state.set_completed("lookup", true);
        assert_eq!(state.completed("lookup").map(|c| c.succeeded), Some(true));
    }
}
