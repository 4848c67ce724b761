//! Single-node governance state: the working set in memory (one lock per
//! kind of state, held for microseconds), persisted to SQLite by a writer
//! thread (see `persist`).

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use super::journal::{lines as journal_lines, Journal};
use super::persist::{Change, Persist, PersistError, Row, BATCHING};
use super::*;
use crate::batch::BatchWriter;

/// Evidence that expired is still reported as expired (not missing) for
/// this long, then forgotten.
const EXPIRED_EVIDENCE_KEPT_MS: u64 = 60 * 60 * 1000;

/// A session with no activity (evidence or context written, a call
/// completed) for this long and no unexpired evidence is forgotten: its
/// completed calls and context go, as in the original Helio (a dependency
/// chain lives with its session). Without this, every session an agent
/// ever used would stay in memory and on disk.
pub(super) const SESSION_IDLE_MS: u64 = 60 * 60 * 1000;

#[derive(Debug, Clone)]
struct Entry {
    id: u64,
    at_ms: u64,
    amount: Decimal,
    committed: bool,
}

/// A pot without a window keeps at most this many entries one by one; older
/// committed ones are folded into a single amount. (Entries are kept so a
/// call's own charge can be refunded when its upstream fails; that happens
/// within one call's lifetime, long before thousands of later charges.)
const UNFOLDED_ENTRIES: usize = 4096;

/// A completion whose outcome has not changed is written to disk again only
/// once it is this much newer than what the disk holds. An agent calling a
/// tool in a loop otherwise costs a SQLite transaction every few
/// milliseconds for a timestamp; after a crash the time read back is at most
/// this much older (it only dates the call in the session's state and in
/// idle-session collection, an hour on).
const COMPLETION_REWRITE_MS: u64 = 1000;

/// One rate window or spend ledger: a sliding log of entries, oldest first,
/// with its running total (so checking a call costs the same however busy
/// the window is).
#[derive(Debug, Default)]
struct Window {
    /// None: a pot that never replenishes.
    window_ms: Option<u64>,
    entries: VecDeque<Entry>,
    /// The sum of `entries` and `folded`.
    total: Decimal,
    /// Old committed entries of a pot without a window, summed.
    folded: Decimal,
    /// The limit its stage last checked it against (the operator views'
    /// utilisation); none before the first check since start.
    limit: Option<Decimal>,
}

impl Window {
    fn prune(&mut self, now: u64) {
        if let Some(window) = self.window_ms {
            while let Some(e) = self
                .entries
                .front()
                .filter(|e| e.at_ms.saturating_add(window) <= now)
            {
                self.total -= e.amount;
                self.entries.pop_front();
            }
        }
    }

    fn push(&mut self, entry: Entry) {
        self.total += entry.amount;
        self.entries.push_back(entry);
        if self.window_ms.is_none() {
            while self.entries.len() > UNFOLDED_ENTRIES
                && self.entries.front().is_some_and(|e| e.committed)
            {
                if let Some(old) = self.entries.pop_front() {
                    self.folded += old.amount;
                }
            }
        }
    }

    /// Holds are settled soon after they are taken: search from the newest.
    fn find_mut(&mut self, id: u64) -> Option<&mut Entry> {
        self.entries.iter_mut().rev().find(|e| e.id == id)
    }

    fn remove(&mut self, id: u64) -> Option<Entry> {
        let at = self.entries.iter().rposition(|e| e.id == id)?;
        let entry = self.entries.remove(at)?;
        self.total -= entry.amount;
        Some(entry)
    }

    fn total(&self) -> Decimal {
        self.total
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

/// A completion as it stands and when it was last written to disk.
#[derive(Clone, Copy)]
struct CompletionSlot {
    completion: Completion,
    written_ms: u64,
}

impl CompletionSlot {
    fn loaded(completion: Completion) -> Self {
        Self {
            completion,
            written_ms: completion.at_ms,
        }
    }

    /// Records a call; says whether the disk needs the new state.
    fn update(&mut self, succeeded: bool, now: u64) -> bool {
        let changed = succeeded && !self.completion.succeeded;
        self.completion.succeeded |= succeeded;
        self.completion.at_ms = now;
        let stale = now.saturating_sub(self.written_ms) >= COMPLETION_REWRITE_MS;
        if changed || stale {
            self.written_ms = now;
        }
        changed || stale
    }
}

#[derive(Default)]
struct Sessions {
    evidence: HashMap<String, HashMap<String, Evidence>>,
    context: HashMap<String, HashMap<String, serde_json::Value>>,
    completed: HashMap<String, HashMap<String, CompletionSlot>>,
    /// When each session last did something.
    active_ms: HashMap<String, u64>,
}

impl Sessions {
    fn touch(&mut self, session: &str, at: u64) {
        match self.active_ms.get_mut(session) {
            Some(last) => *last = (*last).max(at),
            None => {
                self.active_ms.insert(session.to_owned(), at);
            }
        }
    }

    /// Removes the sessions idle since before `now - SESSION_IDLE_MS` that
    /// hold no unexpired evidence; returns them.
    fn forget_idle(&mut self, now: u64) -> Vec<String> {
        let evidence = &self.evidence;
        let idle: Vec<String> = self
            .active_ms
            .iter()
            .filter(|(session, at)| {
                at.saturating_add(SESSION_IDLE_MS) <= now
                    && !evidence
                        .get(*session)
                        .is_some_and(|keys| keys.values().any(|e| e.expires_ms > now))
            })
            .map(|(session, _)| session.clone())
            .collect();
        for session in &idle {
            self.active_ms.remove(session);
            self.evidence.remove(session);
            self.context.remove(session);
            self.completed.remove(session);
        }
        idle
    }
}

pub struct LocalStore {
    windows: Mutex<HashMap<Arc<str>, Window>>,
    sessions: RwLock<Sessions>,
    writer: Option<BatchWriter<Change>>,
    /// Spend is journaled before its call goes out ([`super::journal`]).
    journal: Option<Arc<Journal>>,
    next_id: AtomicU64,
    /// Tickets read at open, until the approvals registry takes them.
    restored_tickets: Mutex<Vec<StoredTicket>>,
    /// Tool baselines read at open.
    restored_baselines: Vec<StoredBaseline>,
}

impl LocalStore {
    /// State that lives only as long as the process (tests, benchmarks,
    /// `helio demo`).
    pub fn in_memory() -> Arc<Self> {
        Arc::new(Self {
            windows: Mutex::default(),
            sessions: RwLock::default(),
            writer: None,
            journal: None,
            next_id: AtomicU64::new(1),
            restored_tickets: Mutex::default(),
            restored_baselines: Vec::new(),
        })
    }

    /// Opens (or creates) the SQLite database at `path` and loads what is
    /// still live from it.
    pub fn open(path: &Path, now: u64) -> Result<Arc<Self>, PersistError> {
        let mut persist = Persist::open(path)?;
        let journal = persist.adopt_journal(path)?;
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
            let mut entries = std::mem::take(&mut window.entries);
            entries.make_contiguous().sort_by_key(|e| (e.at_ms, e.id));
            for entry in entries {
                window.push(entry);
            }
            window.prune(now);
        }
        let mut sessions = Sessions::default();
        for (session, evidence) in loaded.evidence {
            sessions.touch(&session, evidence.recorded_ms);
            sessions
                .evidence
                .entry(session)
                .or_default()
                .insert(evidence.key.clone(), evidence);
        }
        for (session, key, value) in loaded.context {
            // Context carries no time: it counts as fresh at start.
            sessions.touch(&session, now);
            sessions
                .context
                .entry(session)
                .or_default()
                .insert(key, value);
        }
        for (session, tool, completion) in loaded.completed {
            sessions.touch(&session, completion.at_ms);
            sessions
                .completed
                .entry(session)
                .or_default()
                .insert(tool, CompletionSlot::loaded(completion));
        }
        Ok(Arc::new(Self {
            windows: Mutex::new(windows),
            sessions: RwLock::new(sessions),
            writer: Some(BatchWriter::start("state", persist, BATCHING).map_err(|e| {
                PersistError::Write(format!("cannot start the writer thread: {e}"))
            })?),
            journal: Some(journal),
            next_id: AtomicU64::new(max_id + 1),
            restored_tickets: Mutex::new(loaded.tickets),
            restored_baselines: loaded.baselines,
        }))
    }

    fn locked_windows(&self) -> MutexGuard<'_, HashMap<Arc<str>, Window>> {
        // A panic while holding the lock cannot leave a window half-updated
        // (every update is a single push or removal), so poison is ignored.
        self.windows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a change for the database (nothing to do in memory-only mode).
    fn persist(&self, change: Change) -> Result<(), PersistError> {
        match &self.writer {
            None => Ok(()),
            Some(writer) => Ok(writer.send(change)?),
        }
    }

    /// Queues a change and waits until it is written, for callers that
    /// must report a failed write (the SDK sideband).
    fn persist_now(&self, change: Change) -> Result<(), PersistError> {
        self.persist(change)?;
        self.wait_written()
    }

    fn wait_written(&self) -> Result<(), PersistError> {
        match &self.writer {
            None => Ok(()),
            Some(writer) => writer.flush().map_err(PersistError::Write),
        }
    }

    fn hold(
        &self,
        key: &str,
        window_ms: Option<u64>,
        amount: Decimal,
        now: u64,
        limit: Option<Decimal>,
        fits: impl FnOnce(&Window) -> bool,
    ) -> (Option<u64>, Decimal, Option<u64>) {
        let mut windows = self.locked_windows();
        // Only a new key pays for its `Arc`; the usual case is a lookup.
        if !windows.contains_key(key) {
            windows.insert(Arc::from(key), Window::default());
        }
        let Some(window) = windows.get_mut(key) else {
            return (None, Decimal::ZERO, None);
        };
        window.window_ms = window_ms;
        if limit.is_some() {
            window.limit = limit;
        }
        window.prune(now);
        let id = fits(window).then(|| {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            window.push(Entry {
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

/// The store's own operations: in memory, so they cannot fail; only what
/// reaches the disk can.
impl LocalStore {
    pub fn rate_peek(&self, key: &str, limit: u64, window_ms: u64, now: u64) -> RateWindow {
        let mut windows = self.locked_windows();
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

    pub fn rate_take(
        &self,
        key: &str,
        limit: u64,
        window_ms: u64,
        now: u64,
    ) -> (RateWindow, Option<Hold>) {
        let checked = Some(Decimal::from(limit));
        let (id, total, reset_at) =
            self.hold(key, Some(window_ms), Decimal::ONE, now, checked, |w| {
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

    pub fn spend_reserve(
        &self,
        key: &str,
        amount: Decimal,
        limit: Decimal,
        window_ms: Option<u64>,
        now: u64,
    ) -> (SpendWindow, Option<Hold>) {
        let (id, spent, reset_at) = self.hold(key, window_ms, amount, now, Some(limit), |w| {
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

    pub fn spend_overage(
        &self,
        key: &str,
        amount: Decimal,
        window_ms: Option<u64>,
        now: u64,
    ) -> Option<Hold> {
        let (id, _, _) = self.hold(key, window_ms, amount, now, None, |_| true);
        id.map(|id| Hold {
            key: key.into(),
            id,
            kind: HoldKind::Spend,
        })
    }

    pub fn spend_resize(&self, hold: &Hold, amount: Decimal) {
        let mut windows = self.locked_windows();
        let Some(window) = windows.get_mut(&hold.key) else {
            return;
        };
        let Some(entry) = window.find_mut(hold.id).filter(|e| !e.committed) else {
            tracing::debug!(key = %hold.key, "a hold to resize was no longer held");
            return;
        };
        let held = std::mem::replace(&mut entry.amount, amount);
        window.total = window.total - held + amount;
    }

    pub fn commit(&self, holds: &[Hold]) -> Result<(), PersistError> {
        if holds.is_empty() {
            return Ok(());
        }
        let rows: Vec<Row> = {
            let mut windows = self.locked_windows();
            holds
                .iter()
                .filter_map(|hold| {
                    let window = windows.get_mut(&hold.key)?;
                    let window_ms = window.window_ms;
                    let entry = window.find_mut(hold.id)?;
                    Some(Row {
                        key: hold.key.to_string(),
                        id: hold.id,
                        at_ms: entry.at_ms,
                        window_ms,
                        amount: entry.amount,
                    })
                })
                .collect()
        };
        // Money must survive a crash once the call is out: spend is
        // journaled before the call is forwarded; the database gets it
        // behind, as everything else.
        let spends = holds.iter().any(|hold| hold.kind == HoldKind::Spend);
        let queued = match (&self.writer, &self.journal) {
            (None, _) => Ok(()),
            (Some(writer), Some(journal)) if spends => journal
                .append(&journal_lines(&rows), |seq| {
                    writer.send(Change::Journaled(rows, seq))
                })
                .map_err(|e| PersistError::Write(format!("spend journal: {e}")))
                .and_then(|sent| sent.map_err(PersistError::from)),
            (Some(writer), _) => writer
                .send(Change::Entries(rows))
                .map_err(PersistError::from),
        };
        if let Err(error) = queued {
            self.release(holds);
            return Err(error);
        }
        let mut windows = self.locked_windows();
        for hold in holds {
            if let Some(entry) = windows.get_mut(&hold.key).and_then(|w| w.find_mut(hold.id)) {
                entry.committed = true;
            }
        }
        Ok(())
    }

    pub fn release(&self, holds: &[Hold]) {
        if holds.is_empty() {
            return;
        }
        let mut committed = Vec::new();
        {
            let mut windows = self.locked_windows();
            for hold in holds {
                let Some(window) = windows.get_mut(&hold.key) else {
                    continue;
                };
                match window.remove(hold.id) {
                    Some(entry) if entry.committed => {
                        committed.push((hold.key.to_string(), hold.id));
                    }
                    Some(_) => {}
                    // Aged out of its window, or folded into an old pot's
                    // total: the charge stays (the safe side).
                    None => {
                        tracing::debug!(key = %hold.key, "a hold to give back was no longer held")
                    }
                }
            }
        }
        if committed.is_empty() {
            return;
        }
        if let Err(error) = self.persist(Change::Refunds(committed)) {
            // The refund is applied in memory; on disk the charge stays until
            // it ages out. Charging too much is the safe side of a failure.
            tracing::error!(%error, "could not persist a refund; the charge stays on disk");
        }
    }

    pub fn record_evidence(&self, session: &str, evidence: Evidence) -> Result<(), PersistError> {
        self.persist_now(Change::Evidence(session.to_owned(), evidence.clone()))?;
        let mut sessions = self.sessions.write().unwrap_or_else(|p| p.into_inner());
        sessions.touch(session, evidence.recorded_ms);
        sessions
            .evidence
            .entry(session.to_owned())
            .or_default()
            .insert(evidence.key.clone(), evidence);
        Ok(())
    }

    pub fn evidence_status(&self, session: &str, key: &str, now: u64) -> EvidenceStatus {
        let sessions = self.sessions.read().unwrap_or_else(|p| p.into_inner());
        match sessions.evidence.get(session).and_then(|e| e.get(key)) {
            None => EvidenceStatus::Missing,
            Some(e) if e.expires_ms > now => EvidenceStatus::Present,
            Some(_) => EvidenceStatus::Expired,
        }
    }

    pub fn set_context(
        &self,
        session: &str,
        key: &str,
        value: serde_json::Value,
        now: u64,
    ) -> Result<(), PersistError> {
        self.persist_now(Change::Context(
            session.to_owned(),
            key.to_owned(),
            value.clone(),
        ))?;
        let mut sessions = self.sessions.write().unwrap_or_else(|p| p.into_inner());
        sessions.touch(session, now);
        sessions
            .context
            .entry(session.to_owned())
            .or_default()
            .insert(key.to_owned(), value);
        Ok(())
    }

    pub fn record_completion(&self, session: &str, tool: &str, succeeded: bool, now: u64) {
        let written = {
            let mut sessions = self.sessions.write().unwrap_or_else(|p| p.into_inner());
            sessions.touch(session, now);
            let tools = match sessions.completed.get_mut(session) {
                Some(tools) => tools,
                None => sessions.completed.entry(session.to_owned()).or_default(),
            };
            match tools.get_mut(tool) {
                Some(slot) => slot.update(succeeded, now).then_some(slot.completion),
                None => {
                    let completion = Completion {
                        succeeded,
                        at_ms: now,
                    };
                    tools.insert(tool.to_owned(), CompletionSlot::loaded(completion));
                    Some(completion)
                }
            }
        };
        let Some(completion) = written else {
            return;
        };
        let change = Change::Completion(session.to_owned(), tool.to_owned(), completion);
        if let Err(error) = self.persist(change) {
            tracing::error!(%error, tool, "could not persist a completed call; it holds until restart");
        }
    }

    pub fn completed(&self, session: &str, tool: &str) -> Option<Completion> {
        let sessions = self.sessions.read().unwrap_or_else(|p| p.into_inner());
        Some(sessions.completed.get(session)?.get(tool)?.completion)
    }

    pub fn session_state(&self, session: &str, now: u64) -> SessionState {
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
            state.completed = completed
                .iter()
                .map(|(tool, slot)| (tool.clone(), slot.completion))
                .collect();
            state.completed.sort_by_key(|(_, c)| c.at_ms);
        }
        state
    }

    pub fn sweep(&self, now: u64) {
        self.locked_windows().retain(|_, window| {
            window.prune(now);
            !window.entries.is_empty()
        });
        let forgotten = {
            let mut sessions = self.sessions.write().unwrap_or_else(|p| p.into_inner());
            sessions.evidence.retain(|_, keys| {
                keys.retain(|_, e| e.expires_ms.saturating_add(EXPIRED_EVIDENCE_KEPT_MS) > now);
                !keys.is_empty()
            });
            sessions.forget_idle(now)
        };
        if !forgotten.is_empty() {
            tracing::debug!(sessions = forgotten.len(), "forgot idle sessions");
        }
        let sweep = Change::Sweep {
            now,
            evidence_before: now.saturating_sub(EXPIRED_EVIDENCE_KEPT_MS),
            forgotten,
        };
        if let Err(error) = self.persist(sweep) {
            tracing::warn!(%error, "state sweep failed; retrying at the next one");
        }
    }

    pub fn forget_idle_pots(&self, now: u64, idle_after: &dyn Fn(&str) -> Option<u64>) -> usize {
        let mut forgotten = Vec::new();
        self.locked_windows().retain(|key, window| {
            if window.window_ms.is_some() || window.entries.iter().any(|e| !e.committed) {
                return true;
            }
            let Some(idle) = idle_after(key) else {
                return true;
            };
            let last = window.entries.back().map_or(0, |e| e.at_ms);
            let keep = last.saturating_add(idle) > now;
            if !keep {
                forgotten.push(key.to_string());
            }
            keep
        });
        let count = forgotten.len();
        if count > 0 {
            tracing::debug!(pots = count, "forgot idle pots");
            if let Err(error) = self.persist(Change::ForgetKeys(forgotten)) {
                // Forgotten in memory; on disk they come back at a restart
                // and are collected again. Keeping spend is the safe side.
                tracing::warn!(%error, "could not remove idle pots from disk");
            }
        }
        count
    }

    pub fn windows(&self, now: u64) -> Vec<WindowSnapshot> {
        let mut windows = self.locked_windows();
        let mut out: Vec<WindowSnapshot> = windows
            .iter_mut()
            .filter_map(|(key, window)| {
                window.prune(now);
                (!window.entries.is_empty()).then(|| WindowSnapshot {
                    key: key.to_string(),
                    window_ms: window.window_ms,
                    total: window.total(),
                    reset_at_ms: window.reset_at(now),
                    last_activity_ms: window.entries.iter().map(|e| e.at_ms).max(),
                    limit: window.limit,
                })
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// Writes everything known, including the completion times not yet
    /// rewritten (see [`COMPLETION_REWRITE_MS`]), and waits until it is
    /// on disk (at shutdown).
    pub fn flush(&self) -> Result<(), PersistError> {
        if self.writer.is_none() {
            return Ok(());
        }
        for change in self.unwritten_completions() {
            self.persist(change)?;
        }
        self.wait_written()
    }

    fn unwritten_completions(&self) -> Vec<Change> {
        let mut sessions = self.sessions.write().unwrap_or_else(|p| p.into_inner());
        let mut changes = Vec::new();
        for (session, tools) in &mut sessions.completed {
            for (tool, slot) in tools {
                if slot.written_ms < slot.completion.at_ms {
                    slot.written_ms = slot.completion.at_ms;
                    changes.push(Change::Completion(
                        session.clone(),
                        tool.clone(),
                        slot.completion,
                    ));
                }
            }
        }
        changes
    }

    pub fn room(&self) -> Option<&crate::batch::Room> {
        self.writer.as_ref().map(|writer| &**writer.room())
    }
}

impl TicketStore for LocalStore {
    fn save_ticket(&self, ticket: StoredTicket) -> Result<(), StateError> {
        Ok(self.persist(Change::Ticket(ticket))?)
    }

    fn restored_tickets(&self) -> Vec<StoredTicket> {
        std::mem::take(
            &mut *self
                .restored_tickets
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }

    fn forget_tickets(&self, before_ms: u64) -> Result<(), StateError> {
        Ok(self.persist(Change::ForgetTickets(before_ms))?)
    }
}

impl BaselineStore for LocalStore {
    fn save_baseline(&self, baseline: StoredBaseline) -> Result<(), StateError> {
        Ok(self.persist(Change::Baseline(baseline))?)
    }

    fn restored_baselines(&self, upstream: &str) -> Vec<StoredBaseline> {
        self.restored_baselines
            .iter()
            .filter(|b| b.upstream == upstream)
            .cloned()
            .collect()
    }
}

impl StateStore for LocalStore {
    fn rate_peek(
        &self,
        key: &str,
        limit: u64,
        window_ms: u64,
        now: u64,
    ) -> Result<RateWindow, StateError> {
        Ok(LocalStore::rate_peek(self, key, limit, window_ms, now))
    }

    fn rate_take(
        &self,
        key: &str,
        limit: u64,
        window_ms: u64,
        now: u64,
    ) -> Result<(RateWindow, Option<Hold>), StateError> {
        Ok(LocalStore::rate_take(self, key, limit, window_ms, now))
    }

    fn spend_reserve(
        &self,
        key: &str,
        amount: Decimal,
        limit: Decimal,
        window_ms: Option<u64>,
        now: u64,
    ) -> Result<(SpendWindow, Option<Hold>), StateError> {
        Ok(LocalStore::spend_reserve(
            self, key, amount, limit, window_ms, now,
        ))
    }

    fn spend_overage(
        &self,
        key: &str,
        amount: Decimal,
        window_ms: Option<u64>,
        now: u64,
    ) -> Result<Hold, StateError> {
        LocalStore::spend_overage(self, key, amount, window_ms, now)
            .ok_or_else(|| StateError("the ledger could not take the approved overage".into()))
    }

    fn spend_resize(&self, hold: &Hold, amount: Decimal) -> Result<(), StateError> {
        LocalStore::spend_resize(self, hold, amount);
        Ok(())
    }

    fn commit(&self, holds: &[Hold]) -> Result<(), StateError> {
        Ok(LocalStore::commit(self, holds)?)
    }

    fn release(&self, holds: &[Hold]) {
        LocalStore::release(self, holds)
    }

    fn evidence_status(
        &self,
        session: &str,
        key: &str,
        now: u64,
    ) -> Result<EvidenceStatus, StateError> {
        Ok(LocalStore::evidence_status(self, session, key, now))
    }

    fn completed(&self, session: &str, tool: &str) -> Result<Option<Completion>, StateError> {
        Ok(LocalStore::completed(self, session, tool))
    }

    fn record_completion(&self, session: &str, tool: &str, succeeded: bool, now: u64) {
        LocalStore::record_completion(self, session, tool, succeeded, now)
    }

    fn record_evidence(&self, session: &str, evidence: Evidence) -> Result<(), StateError> {
        Ok(LocalStore::record_evidence(self, session, evidence)?)
    }

    fn set_context(
        &self,
        session: &str,
        key: &str,
        value: serde_json::Value,
        now: u64,
    ) -> Result<(), StateError> {
        Ok(LocalStore::set_context(self, session, key, value, now)?)
    }

    fn room(&self) -> Option<&crate::batch::Room> {
        LocalStore::room(self)
    }
}

impl StateMaintenance for LocalStore {
    fn sweep(&self, now: u64) {
        LocalStore::sweep(self, now)
    }

    fn forget_idle_pots(&self, now: u64, idle_after: &dyn Fn(&str) -> Option<u64>) -> usize {
        LocalStore::forget_idle_pots(self, now, idle_after)
    }

    fn flush(&self) -> Result<(), StateError> {
        Ok(LocalStore::flush(self)?)
    }
}

impl StateInspection for LocalStore {
    fn windows(&self, now: u64) -> Result<Vec<WindowSnapshot>, StateError> {
        Ok(LocalStore::windows(self, now))
    }

    fn session_state(&self, session: &str, now: u64) -> Result<SessionState, StateError> {
        Ok(LocalStore::session_state(self, session, now))
    }
}

#[cfg(test)]
mod tests;
