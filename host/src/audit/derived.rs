//! What the audit table's readers use instead of scanning it: rollups
//! (counts per day, hour and minute), the tool and origin names seen, and a
//! full-text index. They are written in the transaction that writes the
//! records they describe (the writer's batch, [`index_rows`]) or deletes
//! them (the retention sweep, [`unindex_rows`]), so they never disagree
//! with the records. Both work on a range of rows in set-wise SQL: a batch
//! of a thousand calls to a few tools is a few rollup rows to add to, not a
//! thousand (triggers, one row at a time, cost the writer six times more).
//!
//! A database from before them (Helio 0.x kept only the records) is
//! upgraded without holding up the start: the tables are created at once
//! (new records are indexed from then on), and the records already there
//! are indexed by the writer thread a slice at a time between batches,
//! newest first. Until that catch-up ends, readers answer from the records
//! themselves ([`Readiness`]), so an answer is never taken from a
//! half-built index.

use rusqlite::{Connection, OptionalExtension};

use crate::database::has_table;

/// Records indexed per catch-up slice: a few tens of milliseconds of the
/// writer's time, so a batch of new records waits at most that long.
const SLICE_ROWS: i64 = 4096;

/// The rollup tables, coarsest first, and how much of `created_at` names
/// a period of each (`YYYY-MM-DD`, `YYYY-MM-DDTHH`, `YYYY-MM-DDTHH:MM`).
pub const ROLLUPS: [(&str, usize); 3] = [
    ("audit_rollup_day", 10),
    ("audit_rollup_hour", 13),
    ("audit_rollup_minute", 16),
];

/// The derived tables.
///
/// - `audit_meta.pending_below`: records with a smaller rowid are not yet in
///   the derived tables (0 once everything is).
/// - `audit_rollup_*`: counts per period by every dimension a
///   rollup-answerable filter or the analytics can name; absent values are
///   `''` so the key is unique.
/// - `audit_charges`: each budget's charges (an entry of a forwarded call's
///   `evidence_chain.budgets`), so a budget's ledger is a walk of its own
///   entries rather than a read of every record's evidence; and how many
///   each budget has (`audit_charge_counts`), the ledger's total.
/// - `audit_names`: each tool name and origin seen, so substring filters
///   on them look through a few names rather than every record.
/// - `audit_search`: FTS5, contentless (the text is already in the
///   records), `detail=none` (every word must occur; their order is not
///   indexed, which keeps the index and the writer's cost small). Words
///   are runs of letters, digits and marks (the vowel signs of Indic
///   scripts are marks): every character a search takes as part of a word
///   is part of a word here too, so a word searched for is one word of the
///   index, never a phrase (which `detail=none` cannot answer). Of the
///   arguments, the first 16,384 characters are indexed: they are bounded
///   only by the request size, and a person searches names and values,
///   which come first in all but the largest. Its columns are named apart
///   from the records' so that the two join without qualifying every name.
const DERIVED: &str = "
CREATE TABLE IF NOT EXISTS audit_meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_charges (
    budget TEXT NOT NULL,
    record INTEGER NOT NULL,
    entry INTEGER NOT NULL,
    PRIMARY KEY (budget, record, entry)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS audit_charges_record ON audit_charges (record);
CREATE TABLE IF NOT EXISTS audit_charge_counts (
    budget TEXT PRIMARY KEY,
    count INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_names (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (kind, name)
) WITHOUT ROWID;
CREATE VIRTUAL TABLE IF NOT EXISTS audit_search USING fts5(
    tool, arguments, rule, reason, session, agent, error,
    content = '', contentless_delete = 1, detail = none,
    tokenize = \"unicode61 categories 'L* N* Co M*'\"
);
";

/// A rollup table (one per period length in [`ROLLUPS`]).
const ROLLUP_TABLE: &str = "
CREATE TABLE IF NOT EXISTS {table} (
    period TEXT NOT NULL, policy_decision TEXT NOT NULL, block_reason TEXT NOT NULL,
    tool_name TEXT NOT NULL, record_kind TEXT NOT NULL, origin TEXT NOT NULL,
    dry_run INTEGER NOT NULL, approval_status TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (period, policy_decision, block_reason, tool_name, record_kind, origin,
                 dry_run, approval_status)
) WITHOUT ROWID;
";

/// Creates what exists not yet (creating what exists changes nothing).
fn create_tables(db: &Connection) -> rusqlite::Result<()> {
    db.execute_batch(DERIVED)?;
    for (table, _) in ROLLUPS {
        db.execute_batch(&ROLLUP_TABLE.replace("{table}", table))?;
    }
    Ok(())
}

/// Indexes that serve the filters a reader can combine with the time
/// order. On a database being upgraded they are built after the catch-up
/// (building one holds the writer for the time it takes).
const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS audit_tool_created ON audit_records (tool_name, created_at);
CREATE INDEX IF NOT EXISTS audit_agent_created ON audit_records (agent_id, created_at);
CREATE INDEX IF NOT EXISTS audit_decision_created ON audit_records (policy_decision, created_at);
DROP INDEX IF EXISTS audit_policy_decision;
CREATE INDEX IF NOT EXISTS audit_reason_created ON audit_records (block_reason, created_at)
    WHERE block_reason IS NOT NULL;
DROP INDEX IF EXISTS audit_block_reason;
CREATE INDEX IF NOT EXISTS audit_blocked_created ON audit_records (created_at)
    WHERE block_reason IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_destructive_created ON audit_records (created_at)
    WHERE flagged_destructive = 1;
CREATE INDEX IF NOT EXISTS audit_dry_run_created ON audit_records (created_at)
    WHERE dry_run = 1;
";

/// Adds the records with rowids in `[low, high)` to the derived tables
/// (inside the caller's transaction).
pub fn index_rows(db: &Connection, low: i64, high: i64) -> rusqlite::Result<()> {
    // The rows' counts by minute, read once; the rollups and names come
    // from these few rows rather than from the records again.
    db.prepare_cached(
        "CREATE TEMP TABLE IF NOT EXISTS batch_counts (
             period TEXT, policy_decision TEXT, block_reason TEXT, tool_name TEXT,
             record_kind TEXT, origin TEXT, dry_run INTEGER, approval_status TEXT, count INTEGER)",
    )?
    .execute([])?;
    db.prepare_cached("DELETE FROM temp.batch_counts")?
        .execute([])?;
    db.prepare_cached(
        "INSERT INTO temp.batch_counts
         SELECT substr(created_at, 1, 16), policy_decision, coalesce(block_reason, ''),
                tool_name, record_kind, origin, dry_run, coalesce(approval_status, ''), count(*)
           FROM audit_records WHERE rowid >= ?1 AND rowid < ?2
          GROUP BY 1, 2, 3, 4, 5, 6, 7, 8",
    )?
    .execute([low, high])?;
    for (table, width) in ROLLUPS {
        db.prepare_cached(&format!(
            "INSERT INTO {table}
             SELECT * FROM (
                 SELECT substr(period, 1, {width}), policy_decision, block_reason, tool_name,
                        record_kind, origin, dry_run, approval_status, sum(count)
                   FROM temp.batch_counts GROUP BY 1, 2, 3, 4, 5, 6, 7, 8)
             WHERE true
             ON CONFLICT DO UPDATE SET count = count + excluded.count"
        ))?
        .execute([])?;
    }
    db.prepare_cached(
        "INSERT OR IGNORE INTO audit_names
         SELECT DISTINCT 'tool', tool_name FROM temp.batch_counts
         UNION SELECT DISTINCT 'origin', origin FROM temp.batch_counts",
    )?
    .execute([])?;
    // Evidence Helio did not write (not JSON) charges nothing, rather than
    // failing the batch.
    db.prepare_cached(
        "INSERT OR IGNORE INTO audit_charges
         SELECT b.value ->> '$.name', r.rowid, b.key
           FROM audit_records r,
                json_each(CASE WHEN json_valid(r.evidence_chain) THEN r.evidence_chain
                               ELSE '{}' END, '$.budgets') b
          WHERE r.rowid >= ?1 AND r.rowid < ?2 AND r.evidence_chain LIKE '%\"budgets\"%'
            AND r.block_reason IS NULL AND r.dry_run = 0 AND r.record_kind = 'tool_call'
            AND b.value ->> '$.name' IS NOT NULL",
    )?
    .execute([low, high])?;
    db.prepare_cached(
        "INSERT INTO audit_charge_counts
         SELECT * FROM (SELECT budget, count(*) FROM audit_charges
                         WHERE record >= ?1 AND record < ?2 GROUP BY budget)
         WHERE true
         ON CONFLICT DO UPDATE SET count = count + excluded.count",
    )?
    .execute([low, high])?;
    db.prepare_cached(
        "INSERT INTO audit_search (rowid, tool, arguments, rule, reason, session, agent, error)
         SELECT rowid, tool_name, substr(tool_input, 1, 16384), matched_rule, block_reason,
                session_id, agent_id, upstream_error
           FROM audit_records WHERE rowid >= ?1 AND rowid < ?2",
    )?
    .execute([low, high])?;
    Ok(())
}

/// Takes the records whose rowids are in `temp.doomed (id)` out of the derived
/// tables, before they are deleted (inside the caller's transaction).
/// Records the catch-up has not reached were never counted, and are left
/// alone.
pub fn unindex_rows(db: &Connection) -> rusqlite::Result<()> {
    let pending_below = get(db, "pending_below")?.unwrap_or(0);
    for (table, width) in ROLLUPS {
        db.prepare_cached(&format!(
            "UPDATE {table} SET count = count - gone.n
               FROM (SELECT substr(created_at, 1, {width}) AS period, policy_decision,
                            coalesce(block_reason, '') AS block_reason, tool_name, record_kind,
                            origin, dry_run, coalesce(approval_status, '') AS approval_status,
                            count(*) AS n
                       FROM audit_records
                      WHERE rowid IN (SELECT id FROM temp.doomed) AND rowid >= ?1
                      GROUP BY 1, 2, 3, 4, 5, 6, 7, 8) AS gone
              WHERE {table}.period = gone.period
                AND {table}.policy_decision = gone.policy_decision
                AND {table}.block_reason = gone.block_reason
                AND {table}.tool_name = gone.tool_name
                AND {table}.record_kind = gone.record_kind
                AND {table}.origin = gone.origin
                AND {table}.dry_run = gone.dry_run
                AND {table}.approval_status = gone.approval_status"
        ))?
        .execute([pending_below])?;
        // Only the periods these records were in: a rollup holds months.
        db.prepare_cached(&format!(
            "DELETE FROM {table} WHERE count <= 0 AND period IN
               (SELECT DISTINCT substr(created_at, 1, {width}) FROM audit_records
                 WHERE rowid IN (SELECT id FROM temp.doomed))"
        ))?
        .execute([])?;
    }
    db.prepare_cached(
        "DELETE FROM audit_search WHERE rowid IN (SELECT id FROM temp.doomed) AND rowid >= ?1",
    )?
    .execute([pending_below])?;
    db.prepare_cached(
        "UPDATE audit_charge_counts SET count = count - gone.n
           FROM (SELECT budget, count(*) AS n FROM audit_charges
                  WHERE record IN (SELECT id FROM temp.doomed) GROUP BY budget) AS gone
          WHERE audit_charge_counts.budget = gone.budget",
    )?
    .execute([])?;
    db.prepare_cached("DELETE FROM audit_charges WHERE record IN (SELECT id FROM temp.doomed)")?
        .execute([])?;
    Ok(())
}

/// Creates the derived tables on the writer's connection (inside the
/// caller's schema setup). On a table that already holds records, marks
/// them for catch-up instead of indexing them now.
pub fn create(db: &Connection) -> rusqlite::Result<()> {
    let fresh = !has_table(db, "audit_search")?;
    let tx = write_transaction(db)?;
    create_tables(&tx)?;
    if fresh {
        let pending_below: i64 = tx.query_row(
            "SELECT coalesce(max(rowid), 0) + 1 FROM audit_records",
            [],
            |r| r.get(0),
        )?;
        let pending_below = if pending_below == 1 { 0 } else { pending_below };
        set(&tx, "pending_below", pending_below)?;
        set(&tx, "indexes_built", i64::from(pending_below == 0))?;
        if pending_below == 0 {
            tx.execute_batch(INDEXES)?;
        }
    }
    tx.commit()
}

/// A transaction that holds the write lock from its start. These read
/// before they write: begun as a read, one would fail at its first write
/// (rather than wait) if another connection to the file (the governance
/// state's writer, the retention sweep) had committed meanwhile.
pub fn write_transaction(db: &Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    rusqlite::Transaction::new_unchecked(db, rusqlite::TransactionBehavior::Immediate)
}

fn set(db: &Connection, key: &str, value: i64) -> rusqlite::Result<()> {
    db.execute(
        "INSERT INTO audit_meta (key, value) VALUES (?1, ?2)
         ON CONFLICT DO UPDATE SET value = excluded.value",
        rusqlite::params![key, value],
    )?;
    Ok(())
}

fn get(db: &Connection, key: &str) -> rusqlite::Result<Option<i64>> {
    db.prepare_cached("SELECT value FROM audit_meta WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()
}

/// What is left of an upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Everything is indexed.
    Done,
    /// More slices to go.
    More,
}

/// One slice of the catch-up on the writer's connection: the next
/// [`SLICE_ROWS`] older records indexed, or once they all are, the
/// indexes built and the planner's statistics refreshed.
pub fn catch_up(db: &Connection) -> rusqlite::Result<CatchUp> {
    let pending_below = get(db, "pending_below")?.unwrap_or(0);
    if pending_below > 0 {
        index_slice(db, pending_below)?;
        return Ok(CatchUp::More);
    }
    if get(db, "indexes_built")? != Some(1) {
        let started = std::time::Instant::now();
        let tx = write_transaction(db)?;
        tx.execute_batch(INDEXES)?;
        set(&tx, "indexes_built", 1)?;
        tx.commit()?;
        refresh_statistics(db)?;
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            "audit trail upgraded: the records from before are indexed"
        );
    }
    Ok(CatchUp::Done)
}

/// Indexes the records with rowids in `[pending_below - SLICE_ROWS,
/// pending_below)` and moves the mark down, in one transaction.
fn index_slice(db: &Connection, pending_below: i64) -> rusqlite::Result<()> {
    let low = (pending_below - SLICE_ROWS).max(0);
    let tx = write_transaction(db)?;
    index_rows(&tx, low, pending_below)?;
    // Nothing older left: done (a table emptied meanwhile ends here too).
    let older: bool = tx
        .prepare_cached("SELECT 1 FROM audit_records WHERE rowid < ?1 LIMIT 1")?
        .exists([low])?;
    set(&tx, "pending_below", if older { low } else { 0 })?;
    tx.commit()
}

/// Refreshes the planner's statistics, which tell it which index narrows a
/// filter most, reading a sample of each index (milliseconds, whatever the
/// table's size).
pub fn refresh_statistics(db: &Connection) -> rusqlite::Result<()> {
    db.execute_batch("PRAGMA analysis_limit = 1000; ANALYZE;")
}

/// Whether a reader may answer from the derived tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Every record is in them.
    Ready,
    /// Absent (a database no writer of this version has opened yet) or
    /// still catching up: answer from the records.
    Records,
}

/// Reads the readiness on a reader's connection.
pub fn readiness(db: &Connection) -> rusqlite::Result<Readiness> {
    if !has_table(db, "audit_meta")? {
        return Ok(Readiness::Records);
    }
    Ok(match get(db, "pending_below")? {
        Some(0) => Readiness::Ready,
        Some(_) | None => Readiness::Records,
    })
}

#[cfg(test)]
mod tests;
