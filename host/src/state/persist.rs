//! SQLite persistence for [`super::LocalStore`], in the same database file as
//! the audit trail, written behind the request path.
//!
//! A SQLite transaction costs 50–100 µs of I/O on a small VM, more than the
//! whole governance chain; so changes go to a batch writer thread
//! ([`crate::batch`]), which writes whatever has gathered in one transaction. The in-memory state is
//! authoritative while Helio runs; the database is what a restart loads.
//! A graceful shutdown drains the queue (`flush`); a crash of the
//! process loses only changes still queued (typically the last few calls'),
//! and `synchronous = NORMAL` under WAL means a power loss may lose the last
//! changes before a checkpoint. Checkpoints run on the writer thread when idle.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use rusqlite::{params, Connection, Transaction};

use super::{Completion, Decimal, Evidence, StoredBaseline, StoredTicket};
use crate::batch::{Batching, Sink};

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("governance state database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("governance state database: {0}")]
    Stopped(#[from] crate::batch::Stopped),
    #[error("governance state database: a write failed: {0}")]
    Write(String),
}

/// How the state writer batches (see [`crate::batch`]). Each SQLite
/// transaction costs tens of microseconds of I/O on the cores the relay
/// shares; gathering for a few milliseconds turns one per call into one per
/// many calls (and bounds what a crash can lose).
pub(super) const BATCHING: Batching = Batching {
    capacity: 65_536,
    gather: Duration::from_millis(5),
    max_batch: 4096,
    idle_after: Duration::from_secs(1),
};

/// One change to persist.
pub(super) enum Change {
    Entries(Vec<Row>),
    /// Entries already in the spend journal, as its append number `.1`.
    Journaled(Vec<Row>, u64),
    Refunds(Vec<(String, u64)>),
    Evidence(String, Evidence),
    Context(String, String, serde_json::Value),
    Completion(String, String, Completion),
    /// Pots collected as idle: every ledger row of these keys goes.
    ForgetKeys(Vec<String>),
    /// An approval ticket as it stands (replacing its earlier state).
    Ticket(StoredTicket),
    /// Tickets requested before this time go (audit retention).
    ForgetTickets(u64),
    /// A tool's baseline definition (replacing its earlier one).
    Baseline(StoredBaseline),
    Sweep {
        now: u64,
        evidence_before: u64,
        /// Idle sessions whose context and completed calls go.
        forgotten: Vec<String>,
    },
}

impl Sink for Persist {
    type Item = Change;

    fn write(&mut self, batch: Vec<Change>) -> Result<(), String> {
        self.write_changes(&batch).map_err(|e| e.to_string())?;
        let journaled = batch.iter().filter_map(|change| match change {
            Change::Journaled(_, seq) => Some(*seq),
            _ => None,
        });
        if let (Some(journal), Some(seq)) = (&self.journal, journaled.max()) {
            journal.persisted(seq);
        }
        Ok(())
    }

    /// PASSIVE never waits for readers; what it cannot copy now it copies
    /// next time.
    fn idle(&mut self) {
        if let Err(error) = crate::database::checkpoint(&self.db) {
            tracing::warn!(%error, "state database checkpoint failed; retrying");
        }
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS state_ledger (
    key TEXT NOT NULL,
    id INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    window_ms INTEGER,
    expires_ms INTEGER,
    amount TEXT NOT NULL,
    PRIMARY KEY (key, id)
);
CREATE INDEX IF NOT EXISTS state_ledger_expiry ON state_ledger (expires_ms);
CREATE TABLE IF NOT EXISTS state_evidence (
    session TEXT NOT NULL,
    key TEXT NOT NULL,
    data TEXT NOT NULL,
    tool_name TEXT NOT NULL,
    recorded_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (session, key)
);
CREATE TABLE IF NOT EXISTS state_context (
    session TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (session, key)
);
CREATE TABLE IF NOT EXISTS state_completed (
    session TEXT NOT NULL,
    tool TEXT NOT NULL,
    succeeded INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (session, tool)
);
CREATE TABLE IF NOT EXISTS state_tickets (
    id TEXT PRIMARY KEY,
    requested_ms INTEGER NOT NULL,
    ticket TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS state_tickets_requested ON state_tickets (requested_ms);
CREATE TABLE IF NOT EXISTS state_tool_baselines (
    upstream TEXT NOT NULL,
    tool TEXT NOT NULL,
    definition TEXT NOT NULL,
    accepted_ms INTEGER NOT NULL,
    accepted_by TEXT,
    PRIMARY KEY (upstream, tool)
);
";

/// Tickets loaded at start (the newest): the operator API's window onto
/// them; older ones stay on disk until retention removes them.
pub(super) const RESTORED_TICKETS: usize = 10_000;

/// One committed ledger entry (a rate slot or an amount).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Row {
    pub key: String,
    pub id: u64,
    pub at_ms: u64,
    pub window_ms: Option<u64>,
    pub amount: Decimal,
}

#[derive(Default)]
pub(super) struct Loaded {
    pub entries: Vec<Row>,
    pub evidence: Vec<(String, Evidence)>,
    pub context: Vec<(String, String, serde_json::Value)>,
    pub completed: Vec<(String, String, Completion)>,
    /// Newest first.
    pub tickets: Vec<StoredTicket>,
    pub baselines: Vec<StoredBaseline>,
}

pub(super) struct Persist {
    db: Connection,
    /// Told what is in the database, so it can let go of it.
    journal: Option<std::sync::Arc<super::journal::Journal>>,
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Persist {
    pub fn open(path: &Path) -> Result<Self, PersistError> {
        let db = crate::database::open(path)?;
        db.pragma_update(None, "wal_autocheckpoint", 0)?;
        db.execute_batch(SCHEMA)?;
        Ok(Self { db, journal: None })
    }

    /// Writes what the spend journal holds that the database lacks (after a
    /// crash), empties the journal, and from now on tells it what is
    /// written.
    pub fn adopt_journal(
        &mut self,
        path: &Path,
    ) -> Result<std::sync::Arc<super::journal::Journal>, PersistError> {
        use super::journal::Journal;
        let journal_error = |e: std::io::Error| PersistError::Write(format!("spend journal: {e}"));
        let rows = Journal::replay(path).map_err(journal_error)?;
        if !rows.is_empty() {
            tracing::info!(
                entries = rows.len(),
                "restoring spend entries from the journal (Helio stopped without writing them to the database)"
            );
            let tx = self.db.transaction()?;
            insert_rows(&tx, &rows, OnConflict::Ignore)?;
            tx.commit()?;
        }
        Journal::clear(path).map_err(journal_error)?;
        let journal = std::sync::Arc::new(Journal::open(path).map_err(journal_error)?);
        self.journal = Some(journal.clone());
        Ok(journal)
    }

    fn write_changes(&mut self, changes: &[Change]) -> Result<(), PersistError> {
        if changes.is_empty() {
            return Ok(());
        }
        // A completion carries the whole slot as it stands, so only the last
        // one of a (session, tool) in a batch needs writing: an agent calling
        // one tool in a loop costs one row write per batch, not per call.
        let mut last_completion = HashMap::new();
        for (index, change) in changes.iter().enumerate() {
            if let Change::Completion(session, tool, _) = change {
                last_completion.insert((session.as_str(), tool.as_str()), index);
            }
        }
        let tx = self.db.transaction()?;
        for (index, change) in changes.iter().enumerate() {
            match change {
                Change::Entries(rows) | Change::Journaled(rows, _) => insert_entries(&tx, rows)?,
                Change::Refunds(entries) => delete_entries(&tx, entries)?,
                Change::Evidence(session, evidence) => upsert_evidence(&tx, session, evidence)?,
                Change::Context(session, key, value) => upsert_context(&tx, session, key, value)?,
                Change::Completion(session, tool, completion) => {
                    if last_completion.get(&(session.as_str(), tool.as_str())) == Some(&index) {
                        upsert_completion(&tx, session, tool, *completion)?
                    }
                }
                Change::ForgetKeys(keys) => forget_keys(&tx, keys)?,
                Change::Ticket(ticket) => {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO state_tickets (id, requested_ms, ticket)
                         VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![
                        ticket.id,
                        to_i64(ticket.requested_ms),
                        ticket.json
                    ])?;
                }
                Change::Baseline(b) => {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO state_tool_baselines
                         (upstream, tool, definition, accepted_ms, accepted_by)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![
                        b.upstream,
                        b.tool,
                        b.definition,
                        to_i64(b.accepted_ms),
                        b.accepted_by
                    ])?;
                }
                Change::ForgetTickets(before_ms) => {
                    tx.execute(
                        "DELETE FROM state_tickets WHERE requested_ms < ?1",
                        [to_i64(*before_ms)],
                    )?;
                }
                Change::Sweep {
                    now,
                    evidence_before,
                    forgotten,
                } => sweep(&tx, *now, *evidence_before, forgotten)?,
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Everything still live at `now`.
    pub fn load(&self, now: u64) -> Result<Loaded, PersistError> {
        let mut loaded = Loaded::default();
        let mut rows = self.db.prepare(
            "SELECT key, id, at_ms, window_ms, amount FROM state_ledger
             WHERE expires_ms IS NULL OR expires_ms > ?1",
        )?;
        let entries = rows.query_map([to_i64(now)], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        for entry in entries {
            let (key, id, at_ms, window_ms, amount) = entry?;
            let Ok(amount) = Decimal::from_str(&amount) else {
                tracing::warn!(
                    key,
                    id,
                    amount,
                    "skipping a ledger row with an unreadable amount"
                );
                continue;
            };
            loaded.entries.push(Row {
                key,
                id: to_u64(id),
                at_ms: to_u64(at_ms),
                window_ms: window_ms.map(to_u64),
                amount,
            });
        }
        let mut rows = self.db.prepare(
            "SELECT session, key, data, tool_name, recorded_ms, expires_ms FROM state_evidence",
        )?;
        let evidence = rows.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Evidence {
                    key: r.get(1)?,
                    data: serde_json::from_str(&r.get::<_, String>(2)?)
                        .unwrap_or(serde_json::Value::Null),
                    tool_name: r.get(3)?,
                    recorded_ms: to_u64(r.get(4)?),
                    expires_ms: to_u64(r.get(5)?),
                },
            ))
        })?;
        for e in evidence {
            loaded.evidence.push(e?);
        }
        let mut rows = self
            .db
            .prepare("SELECT session, key, value FROM state_context")?;
        let context = rows.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or(serde_json::Value::Null),
            ))
        })?;
        for c in context {
            loaded.context.push(c?);
        }
        let mut rows = self
            .db
            .prepare("SELECT session, tool, succeeded, at_ms FROM state_completed")?;
        let completed = rows.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                Completion {
                    succeeded: r.get::<_, i64>(2)? != 0,
                    at_ms: to_u64(r.get(3)?),
                },
            ))
        })?;
        for c in completed {
            loaded.completed.push(c?);
        }
        let mut rows = self.db.prepare(
            "SELECT id, requested_ms, ticket FROM state_tickets
             ORDER BY requested_ms DESC, id DESC LIMIT ?1",
        )?;
        let tickets = rows.query_map([to_i64(RESTORED_TICKETS as u64)], |r| {
            Ok(StoredTicket {
                id: r.get(0)?,
                requested_ms: to_u64(r.get(1)?),
                json: r.get(2)?,
            })
        })?;
        for t in tickets {
            loaded.tickets.push(t?);
        }
        let mut rows = self.db.prepare(
            "SELECT upstream, tool, definition, accepted_ms, accepted_by FROM state_tool_baselines",
        )?;
        let baselines = rows.query_map([], |r| {
            Ok(StoredBaseline {
                upstream: r.get(0)?,
                tool: r.get(1)?,
                definition: r.get(2)?,
                accepted_ms: to_u64(r.get(3)?),
                accepted_by: r.get(4)?,
            })
        })?;
        for b in baselines {
            loaded.baselines.push(b?);
        }
        Ok(loaded)
    }
}

/// What a row already in the ledger means for one being inserted.
#[derive(Clone, Copy)]
enum OnConflict {
    /// A committed change: it replaces the row.
    Replace,
    /// A journal entry restored at start: the database wins (the row may
    /// since have been refunded or replaced).
    Ignore,
}

fn insert_entries(tx: &Transaction<'_>, rows: &[Row]) -> Result<(), PersistError> {
    insert_rows(tx, rows, OnConflict::Replace)
}

fn insert_rows(
    tx: &Transaction<'_>,
    rows: &[Row],
    on_conflict: OnConflict,
) -> Result<(), PersistError> {
    let verb = match on_conflict {
        OnConflict::Replace => "INSERT OR REPLACE",
        OnConflict::Ignore => "INSERT OR IGNORE",
    };
    let mut insert = tx.prepare_cached(&format!(
        "{verb} INTO state_ledger (key, id, at_ms, window_ms, expires_ms, amount)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
    ))?;
    for row in rows {
        insert.execute(params![
            row.key,
            to_i64(row.id),
            to_i64(row.at_ms),
            row.window_ms.map(to_i64),
            row.window_ms.map(|w| to_i64(row.at_ms.saturating_add(w))),
            row.amount.to_string(),
        ])?;
    }
    Ok(())
}

fn delete_entries(tx: &Transaction<'_>, entries: &[(String, u64)]) -> Result<(), PersistError> {
    let mut delete = tx.prepare_cached("DELETE FROM state_ledger WHERE key = ?1 AND id = ?2")?;
    for (key, id) in entries {
        delete.execute(params![key, to_i64(*id)])?;
    }
    Ok(())
}

fn upsert_evidence(tx: &Transaction<'_>, session: &str, e: &Evidence) -> Result<(), PersistError> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO state_evidence
         (session, key, data, tool_name, recorded_ms, expires_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        session,
        e.key,
        e.data.to_string(),
        e.tool_name,
        to_i64(e.recorded_ms),
        to_i64(e.expires_ms)
    ])?;
    Ok(())
}

fn upsert_context(
    tx: &Transaction<'_>,
    session: &str,
    key: &str,
    value: &serde_json::Value,
) -> Result<(), PersistError> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO state_context (session, key, value) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![session, key, value.to_string()])?;
    Ok(())
}

fn upsert_completion(
    tx: &Transaction<'_>,
    session: &str,
    tool: &str,
    c: Completion,
) -> Result<(), PersistError> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO state_completed (session, tool, succeeded, at_ms)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        session,
        tool,
        i64::from(c.succeeded),
        to_i64(c.at_ms)
    ])?;
    Ok(())
}

fn forget_keys(tx: &Transaction<'_>, keys: &[String]) -> Result<(), PersistError> {
    let mut delete = tx.prepare_cached("DELETE FROM state_ledger WHERE key = ?1")?;
    for key in keys {
        delete.execute([key])?;
    }
    Ok(())
}

/// Deletes ledger rows out of their window, evidence that expired before
/// `evidence_before`, and what the `forgotten` sessions held.
fn sweep(
    tx: &Transaction<'_>,
    now: u64,
    evidence_before: u64,
    forgotten: &[String],
) -> Result<(), PersistError> {
    for table in ["state_context", "state_completed", "state_evidence"] {
        let mut delete = tx.prepare_cached(&format!("DELETE FROM {table} WHERE session = ?1"))?;
        for session in forgotten {
            delete.execute([session])?;
        }
    }
    tx.execute(
        "DELETE FROM state_ledger WHERE expires_ms IS NOT NULL AND expires_ms <= ?1",
        [to_i64(now)],
    )?;
    tx.execute(
        "DELETE FROM state_evidence WHERE expires_ms <= ?1",
        [to_i64(evidence_before)],
    )?;
    Ok(())
}

/// Rows in the ledger table, read on a connection of its own.
#[cfg(test)]
pub(super) fn ledger_rows(path: &Path) -> Result<i64, PersistError> {
    let db = Connection::open(path)?;
    Ok(db.query_row("SELECT COUNT(*) FROM state_ledger", [], |r| r.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_writes_only_the_last_completion_of_each_tool() {
        let dir = std::env::temp_dir().join(format!("helio-persist-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let mut persist = Persist::open(&dir.join("state.db")).expect("open");
        let completion = |succeeded, at_ms| Completion { succeeded, at_ms };
        let before = persist.db.total_changes();
        persist
            .write_changes(&[
                Change::Completion("s".into(), "pay".into(), completion(false, 1)),
                Change::Completion("s".into(), "lookup".into(), completion(true, 2)),
                Change::Completion("s".into(), "pay".into(), completion(true, 3)),
                Change::Completion("s".into(), "pay".into(), completion(true, 4)),
            ])
            .expect("write");
        assert_eq!(persist.db.total_changes() - before, 2, "one write per tool");
        let loaded = persist.load(5).expect("load");
        let mut completed = loaded.completed;
        completed.sort_by(|a, b| a.1.cmp(&b.1));
        assert_eq!(
            completed,
            vec![
                ("s".into(), "lookup".into(), completion(true, 2)),
                ("s".into(), "pay".into(), completion(true, 4)),
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
