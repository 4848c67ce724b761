//! Governance state: rate windows, spend ledgers and budget pots, evidence,
//! completed calls. It lives in the host, behind [`StateStore`], so it is
//! shared by every connection and plugin, updated atomically, and kept
//! across restarts; stages reach it only through the WIT `state` imports.
//!
//! Rate slots and spend are taken as **holds** tied to the call under
//! evaluation. Other calls see a hold at once (so 64 calls racing for the
//! last slot admit exactly one), but it only becomes permanent when the
//! pipeline commits it, right before the call is forwarded; a call that is
//! blocked or simulated gives its holds back. After the upstream answers,
//! spend held by a call that failed definitively is refunded
//! ([`Settlement`]).
//!
//! [`LocalStore`] is the single-node implementation: the working set in
//! memory, every change persisted to SQLite by a writer thread, off the
//! request path, and drained at shutdown; committed spend is also appended
//! to a journal before its call is forwarded ([`journal`]), so a crash of
//! the process cannot lose it.
//! A shared backend (Redis, PostgreSQL) implements the same trait; the stages
//! do not change.

#[cfg(test)]
mod doubles;
mod journal;
mod local;
mod persist;
mod settle;

use std::sync::Arc;

#[cfg(test)]
pub use doubles::{Down, TestStore};
pub use local::LocalStore;
pub use persist::PersistError;
pub use rust_decimal::Decimal;
pub use settle::{CallOutcome, Settlement};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A slot or an amount held for one call until it is committed or released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub key: Arc<str>,
    pub id: u64,
    pub kind: HoldKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldKind {
    /// A rate-window slot: kept once the call is forwarded, whatever the
    /// upstream answers (the upstream was called).
    Rate,
    /// Spend against a limit or budget: refunded if the upstream reports a
    /// definitive failure.
    Spend,
}

/// A rate window after a peek or take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateWindow {
    pub allowed: bool,
    pub current: u64,
    pub limit: u64,
    pub reset_at_ms: u64,
}

/// A spend ledger after a reserve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendWindow {
    pub allowed: bool,
    pub spent: Decimal,
    pub limit: Decimal,
    pub reset_at_ms: Option<u64>,
}

/// Evidence status for one key in one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvidenceStatus {
    Present,
    Expired,
    Missing,
}

/// A piece of evidence attested over the SDK sideband.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    pub key: String,
    pub data: serde_json::Value,
    pub tool_name: String,
    pub recorded_ms: u64,
    pub expires_ms: u64,
}

/// The latest completed call of a tool in a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// Sticky: once a call of the tool succeeded, it stays true.
    pub succeeded: bool,
    pub at_ms: u64,
}

/// Everything held for one session, for `GET /session/:id/state`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionState {
    pub evidence: Vec<Evidence>,
    pub context: Vec<(String, serde_json::Value)>,
    pub completed: Vec<(String, Completion)>,
}

/// One rate window, spend ledger or budget pot as it stands, for the
/// operator API.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowSnapshot {
    /// The store key (`<plugin>/<plugin's key>`).
    pub key: String,
    /// None: a pot that never replenishes.
    pub window_ms: Option<u64>,
    /// Calls counted (rate) or amount spent (spend, budgets), holds included.
    pub total: Decimal,
    pub reset_at_ms: Option<u64>,
    /// When the latest call it holds was counted.
    pub last_activity_ms: Option<u64>,
    /// The limit its stage last checked it against; none before the first
    /// check since Helio started.
    pub limit: Option<Decimal>,
}

/// Why governance state could not be read or written, whatever the
/// backend. A call whose state fails is refused (`state_unavailable`),
/// never let through uncounted.
#[derive(Debug, thiserror::Error)]
#[error("governance state unavailable: {0}")]
pub struct StateError(pub String);

impl From<PersistError> for StateError {
    fn from(error: PersistError) -> Self {
        StateError(error.to_string())
    }
}

/// What the call path does with governance state: the operations stages
/// reach through the WIT `state` imports, the core's commit and release of
/// their holds, and what the SDK sideband records. Holds and their ids are
/// minted by the store.
///
/// Every operation that reads or takes may fail with a [`StateError`] (a
/// networked backend can be down). Release and completion records cannot
/// fail the call they belong to (it has been decided, or answered), so a
/// backend logs their failure and errs on the side of over-counting.
pub trait StateStore: Send + Sync {
    /// Counts window `key` without taking a slot.
    fn rate_peek(
        &self,
        key: &str,
        limit: u64,
        window_ms: u64,
        now: u64,
    ) -> Result<RateWindow, StateError>;

    /// Holds one slot of window `key` if it fits (`limit` per sliding
    /// `window_ms`). Check and hold are one atomic step.
    fn rate_take(
        &self,
        key: &str,
        limit: u64,
        window_ms: u64,
        now: u64,
    ) -> Result<(RateWindow, Option<Hold>), StateError>;

    /// Holds `amount` against ledger `key` if `spent + amount <= limit`
    /// (sliding `window_ms`, or none: a pot that never replenishes).
    fn spend_reserve(
        &self,
        key: &str,
        amount: Decimal,
        limit: Decimal,
        window_ms: Option<u64>,
        now: u64,
    ) -> Result<(SpendWindow, Option<Hold>), StateError>;

    /// Holds `amount` against ledger `key` whatever its limit: spend a
    /// human approved beyond it (a budget's approved overage).
    fn spend_overage(
        &self,
        key: &str,
        amount: Decimal,
        window_ms: Option<u64>,
        now: u64,
    ) -> Result<Hold, StateError>;

    /// Changes what an uncommitted spend hold holds to `amount`, whatever
    /// its limit: the call's caller reported what it actually cost (the
    /// adapter API's `actual_amount`). A hold no longer held is left alone,
    /// as [`StateStore::commit`] leaves it.
    fn spend_resize(&self, hold: &Hold, amount: Decimal) -> Result<(), StateError>;

    /// Makes holds permanent, before the call is forwarded. On error nothing
    /// is committed and the holds are released. Spend is durable when this
    /// returns (a crash of the process must not lose it); rate slots may
    /// stay write-behind (see docs/stateful-governance.md).
    fn commit(&self, holds: &[Hold]) -> Result<(), StateError>;

    /// Gives holds back, committed or not.
    fn release(&self, holds: &[Hold]);

    fn evidence_status(
        &self,
        session: &str,
        key: &str,
        now: u64,
    ) -> Result<EvidenceStatus, StateError>;

    fn completed(&self, session: &str, tool: &str) -> Result<Option<Completion>, StateError>;

    /// Records that `session` completed a call of `tool`.
    fn record_completion(&self, session: &str, tool: &str, succeeded: bool, now: u64);

    /// Records evidence for `session`, replacing the same key; durable when
    /// this returns.
    fn record_evidence(&self, session: &str, evidence: Evidence) -> Result<(), StateError>;

    /// Stores a session context value (informational; policy never reads
    /// it); durable when this returns.
    fn set_context(
        &self,
        session: &str,
        key: &str,
        value: serde_json::Value,
        now: u64,
    ) -> Result<(), StateError>;

    /// The fill of the queue of changes waiting to be written, if there is
    /// one: new calls wait for room there rather than grow it unbounded.
    fn room(&self) -> Option<&crate::batch::Room> {
        None
    }

    /// Whether operations may wait on I/O (a backend across a network).
    /// The core then runs the stage chain on a blocking thread, so a stage
    /// waiting on state never stalls the other connections of its worker;
    /// a store that answers from memory says no and costs no thread hop.
    fn may_block(&self) -> bool {
        false
    }
}

/// Upkeep the host runs on a schedule and at shutdown, off the call path.
pub trait StateMaintenance: Send + Sync {
    /// Drops what has aged out: windows, long-expired evidence, and idle
    /// sessions (their completed calls and context).
    fn sweep(&self, now: u64);

    /// Collects pots that never replenish (no window) once idle: a pot is
    /// forgotten when `idle_after(key)` gives a duration and its last charge
    /// is older than that (and no call holds part of it). Returns how many.
    fn forget_idle_pots(&self, now: u64, idle_after: &dyn Fn(&str) -> Option<u64>) -> usize;

    /// Waits until every change so far is durable (at shutdown).
    fn flush(&self) -> Result<(), StateError>;
}

/// What operators and the SDK may look at.
pub trait StateInspection: Send + Sync {
    /// Every live window, ledger and pot.
    fn windows(&self, now: u64) -> Result<Vec<WindowSnapshot>, StateError>;

    /// Everything held for one session.
    fn session_state(&self, session: &str, now: u64) -> Result<SessionState, StateError>;
}

/// An approval ticket as the backend keeps it: opaque JSON, by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTicket {
    pub id: String,
    pub requested_ms: u64,
    pub json: String,
}

/// Approval tickets, kept with the governance state so that they survive a
/// restart (and, with a shared backend, are seen by every replica).
pub trait TicketStore: Send + Sync {
    /// Writes a ticket as it stands, replacing its earlier state. Queued
    /// behind the call path like other state changes.
    fn save_ticket(&self, ticket: StoredTicket) -> Result<(), StateError>;

    /// The newest tickets the backend held when it opened, newest first
    /// (taken: a second call returns nothing).
    fn restored_tickets(&self) -> Vec<StoredTicket>;

    /// Forgets tickets requested before `before_ms` (the audit's retention).
    fn forget_tickets(&self, before_ms: u64) -> Result<(), StateError>;
}

/// The definition of one upstream tool that Helio accepted as its
/// baseline (first seen, or accepted by an operator after a change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBaseline {
    /// Which upstream server the tool belongs to (its URL, or its command).
    pub upstream: String,
    pub tool: String,
    /// The whole definition, canonical JSON.
    pub definition: String,
    pub accepted_ms: u64,
    /// The operator who accepted it; none for a first sighting.
    pub accepted_by: Option<String>,
}

/// Tool-definition baselines, kept with the governance state so that a tool
/// changed while Helio was down is still caught when it comes back.
pub trait BaselineStore: Send + Sync {
    /// Writes a baseline, replacing the tool's earlier one.
    fn save_baseline(&self, baseline: StoredBaseline) -> Result<(), StateError>;

    /// The baselines of `upstream` the backend held when it opened.
    fn restored_baselines(&self, upstream: &str) -> Vec<StoredBaseline>;
}

/// A complete backend: the call path, upkeep, views, tickets and baselines.
/// The host holds one and hands each part of itself only the part it uses.
pub trait StateBackend:
    StateStore + StateMaintenance + StateInspection + TicketStore + BaselineStore
{
}

impl<T: StateStore + StateMaintenance + StateInspection + TicketStore + BaselineStore> StateBackend
    for T
{
}
