//! The engine-side view of the WIT `state` interface (plus the host clock):
//! governance state lives in the host, a stage asks for it.
//!
//! The host treats every take and reservation as a hold tied to the call:
//! committed if the call is forwarded, released if it is blocked (by any
//! stage) or simulated. A stage therefore takes what a call needs in one
//! step and never undoes anything itself.

// The contract's records, as the SDK defines them (one definition for the
// SDK's stages and the built-ins' engines).
pub use helio_plugin::{Completion, EvidenceStatus, KeyFamily, RateWindow, SpendWindow};

/// The host's governance state and clock, as the WIT `state` and `host`
/// interfaces offer them.
pub trait State {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Counts window `key` (at most `limit` calls per `window_ms`) without
    /// taking a slot.
    fn rate_peek(&mut self, key: &str, limit: u64, window_ms: u64) -> RateWindow;
    /// Takes one slot from window `key` if it fits.
    fn rate_take(&mut self, key: &str, limit: u64, window_ms: u64) -> RateWindow;
    /// Reserves `amount` against ledger `key` (sliding `window_ms`, or a pot
    /// that never replenishes) if `spent + amount <= limit`; an amount that
    /// is not a non-negative decimal is an error.
    fn spend_reserve(
        &mut self,
        key: &str,
        amount: &str,
        limit: &str,
        window_ms: Option<u64>,
    ) -> Result<SpendWindow, String>;
    /// Whether evidence `key` is held for `session`.
    fn evidence(&self, session: &str, key: &str) -> EvidenceStatus;
    /// The latest completed call of `tool` in `session`, if any.
    fn completed(&self, session: &str, tool: &str) -> Option<Completion>;
}

/// An in-memory [`State`] for the stages' native tests: sliding windows and
/// ledgers kept in f64 (test amounts are exact in binary), evidence and
/// completions set by the test, and a log of every take and reservation so
/// tests can assert the exact keys a stage used.
#[cfg(any(test, feature = "testing"))]
#[derive(Debug, Default)]
pub struct MemoryState {
    /// The clock.
    pub now_ms: u64,
    /// `rate_take`/`rate_peek`/`spend_reserve` calls, as
    /// `"<op> <key> <args…>"`.
    pub log: Vec<String>,
    /// When set, `spend_reserve` fails with this message.
    pub spend_error: Option<String>,
    rates: std::collections::HashMap<String, Vec<u64>>,
    spends: std::collections::HashMap<String, Vec<(u64, f64)>>,
    evidence: std::collections::HashMap<(String, String), EvidenceStatus>,
    completions: std::collections::HashMap<(String, String), Completion>,
}

#[cfg(any(test, feature = "testing"))]
impl MemoryState {
    /// A state whose clock reads `now_ms`.
    pub fn at(now_ms: u64) -> MemoryState {
        MemoryState {
            now_ms,
            ..MemoryState::default()
        }
    }

    pub fn set_evidence(&mut self, session: &str, key: &str, status: EvidenceStatus) {
        self.evidence.insert((session.into(), key.into()), status);
    }

    pub fn set_completed(&mut self, session: &str, tool: &str, succeeded: bool) {
        let at_ms = self.now_ms;
        self.completions.insert(
            (session.into(), tool.into()),
            Completion { succeeded, at_ms },
        );
    }

    /// Calls counted in window `key` (of length `window_ms`) now.
    fn window(&mut self, key: &str, window_ms: u64) -> &mut Vec<u64> {
        let now = self.now_ms;
        let calls = self.rates.entry(key.to_owned()).or_default();
        calls.retain(|t| t + window_ms > now);
        calls
    }

    fn rate(&mut self, op: &str, key: &str, limit: u64, window_ms: u64) -> RateWindow {
        self.log.push(format!("{op} {key} {limit} {window_ms}"));
        let now = self.now_ms;
        let take = op == "rate_take";
        let calls = self.window(key, window_ms);
        let allowed = (calls.len() as u64) < limit;
        if allowed && take {
            calls.push(now);
        }
        RateWindow {
            allowed,
            current: calls.len() as u64,
            limit,
            reset_at_ms: calls.first().copied().unwrap_or(now) + window_ms,
        }
    }
}

#[cfg(any(test, feature = "testing"))]
impl State for MemoryState {
    fn now_ms(&self) -> u64 {
        self.now_ms
    }

    fn rate_peek(&mut self, key: &str, limit: u64, window_ms: u64) -> RateWindow {
        self.rate("rate_peek", key, limit, window_ms)
    }

    fn rate_take(&mut self, key: &str, limit: u64, window_ms: u64) -> RateWindow {
        self.rate("rate_take", key, limit, window_ms)
    }

    fn spend_reserve(
        &mut self,
        key: &str,
        amount: &str,
        limit: &str,
        window_ms: Option<u64>,
    ) -> Result<SpendWindow, String> {
        let window = window_ms.map_or("none".to_owned(), |w| w.to_string());
        self.log
            .push(format!("spend_reserve {key} {amount} {limit} {window}"));
        if let Some(message) = &self.spend_error {
            return Err(message.clone());
        }
        let parse = |text: &str| {
            crate::text::is_plain_decimal(text)
                .then(|| text.parse::<f64>().ok())
                .flatten()
                .ok_or_else(|| format!("\"{text}\" is not a non-negative decimal"))
        };
        let (amount, limit_value) = (parse(amount)?, parse(limit)?);
        let now = self.now_ms;
        let entries = self.spends.entry(key.to_owned()).or_default();
        if let Some(w) = window_ms {
            entries.retain(|(t, _)| t + w > now);
        }
        let spent: f64 = entries.iter().map(|(_, a)| a).sum();
        let allowed = spent + amount <= limit_value;
        if allowed {
            entries.push((now, amount));
        }
        let spent = entries.iter().map(|(_, a)| a).sum::<f64>();
        Ok(SpendWindow {
            allowed,
            spent: crate::text::decimal(spent),
            limit: limit.to_owned(),
            reset_at_ms: window_ms.and_then(|w| entries.first().map(|(t, _)| t + w)),
        })
    }

    fn evidence(&self, session: &str, key: &str) -> EvidenceStatus {
        self.evidence
            .get(&(session.to_owned(), key.to_owned()))
            .copied()
            .unwrap_or(EvidenceStatus::Missing)
    }

    fn completed(&self, session: &str, tool: &str) -> Option<Completion> {
        self.completions
            .get(&(session.to_owned(), tool.to_owned()))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_rate_windows_slide() {
        let mut s = MemoryState::at(1_000);
        for current in 1..=2 {
            let w = s.rate_take("k", 2, 10_000);
            assert_eq!(
                (w.allowed, w.current, w.reset_at_ms),
                (true, current, 11_000)
            );
        }
        let full = s.rate_take("k", 2, 10_000);
        assert_eq!((full.allowed, full.current), (false, 2));
        assert_eq!(s.rate_peek("k", 2, 10_000).current, 2);
        s.now_ms = 11_000;
        assert!(s.rate_take("k", 2, 10_000).allowed);
        assert_eq!(s.log.len(), 5);
        assert_eq!(s.log[0], "rate_take k 2 10000");
    }

    #[test]
    fn memory_ledgers() {
        let mut s = MemoryState::at(0);
        let w = s.spend_reserve("k", "60", "100", Some(1_000)).unwrap();
        assert_eq!(
            (w.allowed, w.spent.as_str(), w.reset_at_ms),
            (true, "60", Some(1_000))
        );
        let w = s.spend_reserve("k", "50", "100", Some(1_000)).unwrap();
        assert_eq!((w.allowed, w.spent.as_str()), (false, "60"));
        let w = s.spend_reserve("k", "40", "100", Some(1_000)).unwrap();
        assert_eq!((w.allowed, w.spent.as_str()), (true, "100"));
        s.now_ms = 1_000;
        assert_eq!(
            s.spend_reserve("k", "0", "100", Some(1_000)).unwrap().spent,
            "0"
        );
        let pot = s.spend_reserve("p", "2.5", "3", None).unwrap();
        assert_eq!((pot.spent.as_str(), pot.reset_at_ms), ("2.5", None));
        assert!(s.spend_reserve("k", "-1", "100", None).is_err());
        assert!(s.spend_reserve("k", "1e3", "100", None).is_err());
        s.spend_error = Some("ledger unavailable".into());
        assert_eq!(
            s.spend_reserve("k", "1", "100", None),
            Err("ledger unavailable".into())
        );
    }

    #[test]
    fn memory_evidence_and_completions() {
        let mut s = MemoryState::at(5);
        s.set_evidence("s1", "ticket", EvidenceStatus::Expired);
        s.set_completed("s1", "lookup", false);
        assert_eq!(s.evidence("s1", "ticket"), EvidenceStatus::Expired);
        assert_eq!(s.evidence("s2", "ticket"), EvidenceStatus::Missing);
        assert_eq!(
            s.completed("s1", "lookup"),
            Some(Completion {
                succeeded: false,
                at_ms: 5
            })
        );
        assert_eq!(s.completed("s1", "other"), None);
    }
}
