//! Single-node governance state: the working set in memory (one lock per
//! kind of state, held for microseconds), written through to SQLite.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use super::persist::{Persist, PersistError, Row};
use super::*;

/// Evidence that expired is still reported as expired (not missing) for
/// this long, then forgotten.
const EXPIRED_EVIDENCE_KEPT_MS: u64 = 60 * 60 * 1000;

#[derive(Debug, Clone)]
struct Entry {
    id: u64,
    at_ms: u64,
    amount: Decimal,
    committed: bool,
}

#[derive(Debug, Default)]
struct Window {
    /// None: a pot that never replenishes.
    window_ms: Option<u64>,
    entries: VecDeque<Entry>,
}

impl Window {
    fn prune(&mut self, now: u64) {
        if let Some(window) = self.window_ms {
            while self
                .entries
                .front()
                .is_some_and(|e| e.at_ms.saturating_add(window) <= now)
            {
                self.entries.pop_front();
            }
        }
    }

    fn total(&self) -> Decimal {
        self.entries.iter().map(|e| e.amount).sum()
    }

    fn reset_at(&self, now: u64) -> Option<u64> {
        let window = self.window_ms?;
        Some(
            self.entries
                .front()
                .map_or(now, |e| e.at_ms)
                .saturating_add(window),
        )
    }
}

#[derive(Default)]
struct Sessions {
    evidence: HashMap<String, HashMap<String, Evidence>>,
    context: HashMap<String, HashMap<String, serde_json::Value>>,
    completed: HashMap<String, HashMap<String, Completion>>,
}

pub struct LocalStore {
    windows: Mutex<HashMap<Arc<str>, Window>>,
    sessions: RwLock<Sessions>,
    persist: Option<Mutex<Persist>>,
    next_id: AtomicU64,
}

impl LocalStore {
    /// State that lives only as long as the process (tests, benchmarks,
    /// `helio demo`).
    pub fn in_memory() -> Arc<Self> {
        Arc::new(Self {
            windows: Mutex::default(),
            sessions: RwLock::default(),
            persist: None,
            next_id: AtomicU64::new(1),
        })
    }

    /// Opens (or creates) the SQLite database at `path` and loads what is
    /// still live from it.
    pub fn open(path: &Path, now: u64) -> Result<Arc<Self>, PersistError> {
        let persist = Persist::open(path)?;
        let loaded = persist.load(now)?;
        let mut windows: HashMap<Arc<str>, Window> = HashMap::new();
        let mut max_id = 0;
        for row in loaded.entries {
            max_id = max_id.max(row.id);
            let window = windows.entry(row.key.as_str().into()).or_default();
            window.window_ms = row.window_ms;
            window.entries.push_back(Entry {
                id: row.id,
                at_ms: row.at_ms,
                amount: row.amount,
                committed: true,
            });
        }
        for window in windows.values_mut() {
            window.entries.make_contiguous().sort_by_key(|e| e.at_ms);
            window.prune(now);
        }
        let mut sessions = Sessions::default();
        for (session, evidence) in loaded.evidence {
            sessions
                .evidence
                .entry(session)
                .or_default()
                .insert(evidence.key.clone(), evidence);
        }
        for (session, key, value) in loaded.context {
            sessions
                .context
                .entry(session)
                .or_default()
                .insert(key, value);
        }
        for (session, tool, completion) in loaded.completed {
            sessions
                .completed
                .entry(session)
                .or_default()
                .insert(tool, completion);
        }
        Ok(Arc::new(Self {
            windows: Mutex::new(windows),
            sessions: RwLock::new(sessions),
            persist: Some(Mutex::new(persist)),
            next_id: AtomicU64::new(max_id + 1),
        }))
    }

    fn windows(&self) -> MutexGuard<'_, HashMap<Arc<str>, Window>> {
        // A panic while holding the lock cannot leave a window half-updated
        // (every update is a single push or removal), so poison is ignored.
        self.windows.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn persist(
        &self,
        write: impl FnOnce(&mut Persist) -> Result<(), PersistError>,
    ) -> Result<(), PersistError> {
        match &self.persist {
            None => Ok(()),
            Some(persist) => write(&mut persist.lock().unwrap_or_else(|p| p.into_inner())),
        }
    }

    fn hold(
        &self,
        key: &str,
        window_ms: Option<u64>,
        amount: Decimal,
        now: u64,
        fits: impl FnOnce(&Window) -> bool,
    ) -> (Option<u64>, Decimal, Option<u64>) {
        let mut windows = self.windows();
        let window = windows.entry(Arc::from(key)).or_default();
        window.window_ms = window_ms;
        window.prune(now);
        let id = fits(window).then(|| {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            window.entries.push_back(Entry {
                id,
                at_ms: now,
                amount,
                committed: false,
            });
            id
        });
        (id, window.total(), window.reset_at(now))
    }
}

fn count(total: Decimal) -> u64 {
    u64::try_from(total.trunc().mantissa()).unwrap_or(u64::MAX)
}

impl StateStore for LocalStore {
    fn rate_peek(&self, key: &str, limit: u64, window_ms: u64, now: u64) -> RateWindow {
        let mut windows = self.windows();
        let (current, reset_at) = match windows.get_mut(key) {
            Some(window) => {
                window.prune(now);
                (count(window.total()), window.reset_at(now))
            }
            None => (0, None),
        };
        RateWindow {
            allowed: current < limit,
            current,
            limit,
            reset_at_ms: reset_at.unwrap_or(now + window_ms),
        }
    }

    fn rate_take(
        &self,
        key: &str,
        limit: u64,
        window_ms: u64,
        now: u64,
    ) -> (RateWindow, Option<Hold>) {
        let (id, total, reset_at) = self.hold(key, Some(window_ms), Decimal::ONE, now, |w| {
            count(w.total()) < limit
        });
        let window = RateWindow {
            allowed: id.is_some(),
            current: count(total),
            limit,
            reset_at_ms: reset_at.unwrap_or(now + window_ms),
        };
        let hold = id.map(|id| Hold {
            key: key.into(),
            id,
            kind: HoldKind::Rate,
        });
        (window, hold)
    }

    fn spend_reserve(
        &self,
        key: &str,
        amount: Decimal,
        limit: Decimal,
        window_ms: Option<u64>,
        now: u64,
    ) -> (SpendWindow, Option<Hold>) {
        let (id, spent, reset_at) = self.hold(key, window_ms, amount, now, |w| {
            w.total().checked_add(amount).is_some_and(|t| t <= limit)
        });
        let window = SpendWindow {
            allowed: id.is_some(),
            spent,
            limit,
            reset_at_ms: reset_at,
        };
        let hold = id.map(|id| Hold {
            key: key.into(),
            id,
            kind: HoldKind::Spend,
        });
        (window, hold)
    }

    fn commit(&self, holds: &[Hold]) -> Result<(), PersistError> {
        if holds.is_empty() {
            return Ok(());
        }
        let rows: Vec<Row> = {
            let windows = self.windows();
            holds
                .iter()
                .filter_map(|hold| {
                    let window = windows.get(&hold.key)?;
                    let entry = window.entries.iter().find(|e| e.id == hold.id)?;
                    Some(Row {
                        key: hold.key.to_string(),
                        id: hold.id,
                        at_ms: entry.at_ms,
                        window_ms: window.window_ms,
                        amount: entry.amount,
                    })
                })
                .collect()
        };
        if let Err(error) = self.persist(|p| p.insert_entries(&rows)) {
            self.release(holds);
            return Err(error);
        }
        let mut windows = self.windows();
        for hold in holds {
            if let Some(entry) = windows
                .get_mut(&hold.key)
                .and_then(|w| w.entries.iter_mut().find(|e| e.id == hold.id))
            {
                entry.committed = true;
            }
        }
        Ok(())
    }

    fn release(&self, holds: &[Hold]) {
        if holds.is_empty() {
            return;
        }
        let mut committed = Vec::new();
        {
            let mut windows = self.windows();
            for hold in holds {
                let Some(window) = windows.get_mut(&hold.key) else {
                    continue;
                };
                if let Some(at) = window.entries.iter().position(|e| e.id == hold.id) {
                    if window.entries[at].committed {
                        committed.push((hold.key.to_string(), hold.id));
                    }
                    window.entries.remove(at);
                }
            }
        }
        if let Err(error) = self.persist(|p| p.delete_entries(&committed)) {
            // The refund is applied in memory; on disk the charge stays until
            // it ages out. Charging too much is the safe side of a failure.
            tracing::error!(%error, "could not persist a refund; the charge stays on disk");
        }
    }

    fn record_evidence(&self, session: &str, evidence: Evidence) -> Result<(), PersistError> {
        self.persist(|p| p.upsert_evidence(session, &evidence))?;
        let mut sessions = self.sessions.write().unwrap_or_else(|p| p.into_inner());
        sessions
            .evidence
            .entry(session.to_owned())
            .or_default()
            .insert(evidence.key.clone(), evidence);
        Ok(())
    }

    fn evidence_status(&self, session: &str, key: &str, now: u64) -> EvidenceStatus {
        let sessions = self.sessions.read().unwrap_or_else(|p| p.into_inner());
        match sessions.evidence.get(session).and_then(|e| e.get(key)) {
            None => EvidenceStatus::Missing,
            Some(e) if e.expires_ms > now => EvidenceStatus::Present,
            Some(_) => EvidenceStatus::Expired,
        }
    }

    fn set_context(
        &self,
        session: &str,
        key: &str,
        value: serde_json::Value,
    ) -> Result<(), PersistError> {
        self.persist(|p| p.upsert_context(session, key, &value))?;
        let mut sessions = self.sessions.write().unwrap_or_else(|p| p.into_inner());
        sessions
            .context
            .entry(session.to_owned())
            .or_default()
            .insert(key.to_owned(), value);
        Ok(())
    }

    fn record_completion(&self, session: &str, tool: &str, succeeded: bool, now: u64) {
        let completion = {
            let mut sessions = self.sessions.write().unwrap_or_else(|p| p.into_inner());
            let slot = sessions
                .completed
                .entry(session.to_owned())
                .or_default()
                .entry(tool.to_owned())
                .or_insert(Completion {
                    succeeded,
                    at_ms: now,
                });
            slot.succeeded |= succeeded;
            slot.at_ms = now;
            *slot
        };
        if let Err(error) = self.persist(|p| p.upsert_completion(session, tool, completion)) {
            tracing::error!(%error, tool, "could not persist a completed call; it holds until restart");
        }
    }

    fn completed(&self, session: &str, tool: &str) -> Option<Completion> {
        let sessions = self.sessions.read().unwrap_or_else(|p| p.into_inner());
        sessions.completed.get(session)?.get(tool).copied()
    }

    fn session_state(&self, session: &str, now: u64) -> SessionState {
        let sessions = self.sessions.read().unwrap_or_else(|p| p.into_inner());
        let mut state = SessionState::default();
        if let Some(evidence) = sessions.evidence.get(session) {
            state.evidence = evidence
                .values()
                .filter(|e| e.expires_ms > now)
                .cloned()
                .collect();
            state.evidence.sort_by(|a, b| a.key.cmp(&b.key));
        }
        if let Some(context) = sessions.context.get(session) {
            state.context = context
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            state.context.sort_by(|a, b| a.0.cmp(&b.0));
        }
        if let Some(completed) = sessions.completed.get(session) {
            state.completed = completed.iter().map(|(k, v)| (k.clone(), *v)).collect();
            state.completed.sort_by_key(|(_, c)| c.at_ms);
        }
        state
    }

    fn sweep(&self, now: u64) {
        self.windows().retain(|_, window| {
            window.prune(now);
            !window.entries.is_empty()
        });
        {
            let mut sessions = self.sessions.write().unwrap_or_else(|p| p.into_inner());
            sessions.evidence.retain(|_, keys| {
                keys.retain(|_, e| e.expires_ms.saturating_add(EXPIRED_EVIDENCE_KEPT_MS) > now);
                !keys.is_empty()
            });
        }
        if let Err(error) =
            self.persist(|p| p.sweep(now, now.saturating_sub(EXPIRED_EVIDENCE_KEPT_MS)))
        {
            tracing::warn!(%error, "state sweep failed; retrying at the next one");
        }
    }
}

#[cfg(test)]
mod tests;
