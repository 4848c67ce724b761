//! The writer side of the audit table: one transaction per batch.

use std::path::Path;
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};

use super::derived::{self, CatchUp};
use super::record::AuditRecord;
use super::schema;
use crate::batch::Sink;
use crate::database::{checkpoint, Checkpointer};

/// Log frames after which the writer checkpoints by itself (256 MiB with
/// 16 KiB pages): reached only if the checkpointer falls far behind.
const SAFETY_CHECKPOINT_FRAMES: i64 = 16 * 1024;

/// Attempts at writing a batch while the database is busy, each after
/// waiting out the busy timeout.
const INSERT_ATTEMPTS: u32 = 3;

/// How often the planner's statistics are refreshed: they tell it which
/// index narrows a filter most, and go stale as the table grows.
const STATISTICS_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot start an audit thread: {0}")]
    Thread(std::io::Error),
}

pub(super) struct AuditStore {
    db: Connection,
    checkpointer: Checkpointer,
    /// Subscribers of the live feed (`GET /api/events`) get each record
    /// once it is written.
    live: tokio::sync::broadcast::Sender<Arc<str>>,
    /// Whether records from before the derived tables are still to be
    /// indexed (see [`derived`]); checked once more after a restart.
    catch_up: CatchUp,
    /// The `created_at` of the last record written. A batch is never
    /// stamped earlier (the clock stepping back), so the time order of the
    /// records is the order they were written, which readers rely on.
    last_created_at: String,
    /// When the planner's statistics were last refreshed (never at open:
    /// on a large table that is not a cost for the start to carry).
    analysed: Option<std::time::Instant>,
}

impl AuditStore {
    pub fn open(
        path: &Path,
        live: tokio::sync::broadcast::Sender<Arc<str>>,
    ) -> Result<Self, AuditError> {
        let db = crate::database::open(path)?;
        // Checkpoints are the checkpointer's job; this only bounds the log
        // should that thread ever stop.
        db.pragma_update(None, "wal_autocheckpoint", SAFETY_CHECKPOINT_FRAMES)?;
        // The batch's counts (see `derived::index_rows`) stay in memory.
        db.pragma_update(None, "temp_store", "MEMORY")?;
        schema::create(&db)?;
        let last_created_at = db
            .query_row(
                "SELECT created_at FROM audit_records ORDER BY rowid DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or_default();
        let checkpointer = Checkpointer::start(path).map_err(AuditError::Thread)?;
        Ok(Self {
            db,
            checkpointer,
            live,
            catch_up: CatchUp::More,
            last_created_at,
            analysed: None,
        })
    }

    fn insert(&mut self, batch: &[AuditRecord]) -> Result<String, rusqlite::Error> {
        let now = crate::time::iso_utc(crate::state::now_ms());
        let created_at = if now >= self.last_created_at {
            now
        } else {
            self.last_created_at.clone()
        };
        let tx = derived::write_transaction(&self.db)?;
        let first: i64 = tx
            .prepare_cached("SELECT coalesce(max(rowid), 0) + 1 FROM audit_records")?
            .query_row([], |r| r.get(0))?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO audit_records (
                    id, timestamp, session_id, session_source, agent_id, environment,
                    tool_name, tool_input, policy_decision, block_reason, matched_rule,
                    matched_rule_index, evidence_chain, approval_status, approved_by,
                    upstream_response, upstream_error, upstream_http_status,
                    upstream_latency_ms, total_duration_ms, approval_wait_ms,
                    proxy_compute_ms, flagged_destructive, dry_run, record_kind, origin,
                    metadata, protocol_version, created_at, plugins, response_truncated
                ) VALUES (?1, ?2, ?3, ?4, ?27, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?28, ?29,
                          ?13, ?14, ?15, ?16, ?17, ?30, ?18, ?19, ?20, ?21, ?22, ?31, ?23, ?24,
                          ?25, ?26)",
            )?;
            for r in batch {
                insert.execute(params![
                    r.id,
                    r.timestamp,
                    r.session_id,
                    r.session_source,
                    r.environment,
                    r.tool_name,
                    r.tool_input,
                    r.policy_decision,
                    r.block_reason,
                    r.matched_rule,
                    r.matched_rule_index,
                    r.evidence_chain,
                    r.upstream_response,
                    r.upstream_error,
                    r.upstream_http_status,
                    r.upstream_latency_ms,
                    r.total_duration_ms,
                    r.proxy_compute_ms,
                    r.flagged_destructive,
                    r.dry_run,
                    r.record_kind,
                    &*r.origin,
                    r.protocol_version,
                    created_at,
                    r.plugins,
                    r.response_truncated,
                    r.agent_id,
                    r.approval_status,
                    r.approved_by,
                    r.approval_wait_ms,
                    r.metadata,
                ])?;
            }
        }
        let end: i64 = tx
            .prepare_cached("SELECT coalesce(max(rowid), 0) + 1 FROM audit_records")?
            .query_row([], |r| r.get(0))?;
        derived::index_rows(&tx, first, end)?;
        tx.commit()?;
        self.last_created_at.clone_from(&created_at);
        Ok(created_at)
    }

    /// Sends the written records to live subscribers, if there are any.
    fn publish(&self, batch: &[AuditRecord], created_at: &str) {
        if self.live.receiver_count() == 0 {
            return;
        }
        for record in batch {
            let _ = self
                .live
                .send(Arc::from(record.to_json(created_at).to_string()));
        }
    }

    /// Work between batches: one slice of an upgrade's catch-up, if one is
    /// under way (new records wait for at most one slice), and the
    /// planner's statistics when they are due.
    fn maintain(&mut self) {
        if self.catch_up == CatchUp::More {
            match derived::catch_up(&self.db) {
                Ok(state) => self.catch_up = state,
                Err(error) => {
                    tracing::warn!(%error, "indexing older audit records failed; retrying")
                }
            }
            return;
        }
        if self
            .analysed
            .is_none_or(|at| at.elapsed() >= STATISTICS_EVERY)
        {
            self.analysed = Some(std::time::Instant::now());
            if let Err(error) = derived::refresh_statistics(&self.db) {
                tracing::warn!(%error, "refreshing the audit database's statistics failed");
            }
        }
    }

    /// [`AuditStore::insert`], tried again while another connection to the
    /// file holds it longer than the busy timeout (a failed attempt wrote
    /// nothing): a batch given up is records lost.
    fn insert_retrying(&mut self, batch: &[AuditRecord]) -> Result<String, rusqlite::Error> {
        let mut attempt = 1;
        loop {
            match self.insert(batch) {
                Err(error)
                    if error.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                        && attempt < INSERT_ATTEMPTS =>
                {
                    tracing::warn!(%error, attempt, "the audit database is busy; retrying the batch");
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    fn checkpoint(&self) {
        if let Err(error) = checkpoint(&self.db) {
            tracing::warn!(%error, "audit database checkpoint failed; retrying");
        }
    }
}

impl Sink for AuditStore {
    type Item = AuditRecord;

    fn write(&mut self, mut batch: Vec<AuditRecord>) -> Result<(), String> {
        for record in &mut batch {
            record.finish_chain();
        }
        let created_at = self.insert_retrying(&batch).map_err(|e| e.to_string())?;
        self.publish(&batch, &created_at);
        self.maintain();
        if self.checkpointer.catch_up() {
            self.checkpoint();
        }
        Ok(())
    }

    fn idle(&mut self) {
        self.maintain();
        self.checkpoint();
    }
}
