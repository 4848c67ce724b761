//! The audit table: one row per governed call, in the SQLite database at
//! `audit.path` (beside the governance state). Column names follow the
//! original Helio's `audit_records`, so exports and queries written for it
//! keep working; Helio's additions come last.

/// The table and the indexes every version has had (those serving the
/// filters' time order are in `crate::audit::derived`, built on an upgrade
/// after its catch-up rather than here, where building one over a large
/// table would hold up the start). Columns that are nearly always the same
/// (`record_kind` `tool_call`, `origin` `mcp`) get partial indexes over
/// the rare values: a filter for the rare values uses them, the common
/// value is most of the table anyway, and the writer does not pay to index
/// it on every insert.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_records (
    id TEXT PRIMARY KEY,
    timestamp TEXT NOT NULL,
    session_id TEXT,
    session_source TEXT,
    agent_id TEXT,
    environment TEXT,
    tool_name TEXT NOT NULL,
    tool_input TEXT NOT NULL,
    policy_decision TEXT NOT NULL,
    block_reason TEXT,
    matched_rule TEXT,
    matched_rule_index INTEGER,
    evidence_chain TEXT,
    approval_status TEXT,
    approved_by TEXT,
    upstream_response TEXT,
    upstream_error TEXT,
    upstream_http_status INTEGER,
    upstream_latency_ms REAL,
    total_duration_ms REAL NOT NULL,
    approval_wait_ms REAL NOT NULL DEFAULT 0,
    proxy_compute_ms REAL NOT NULL,
    flagged_destructive INTEGER NOT NULL DEFAULT 0,
    dry_run INTEGER NOT NULL DEFAULT 0,
    record_kind TEXT NOT NULL DEFAULT 'tool_call',
    origin TEXT NOT NULL DEFAULT 'mcp',
    metadata TEXT,
    protocol_version TEXT,
    created_at TEXT NOT NULL,
    plugins TEXT,
    response_truncated INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS audit_created_at ON audit_records (created_at);
DROP INDEX IF EXISTS audit_tool_name;
CREATE INDEX IF NOT EXISTS audit_session_id ON audit_records (session_id);
CREATE INDEX IF NOT EXISTS audit_record_kind ON audit_records (record_kind)
    WHERE record_kind != 'tool_call';
CREATE INDEX IF NOT EXISTS audit_origin ON audit_records (origin)
    WHERE origin != 'mcp';
CREATE INDEX IF NOT EXISTS audit_status_created ON audit_records (upstream_http_status, created_at);
";

/// Creates the audit table, its indexes and what is derived from it (see
/// `crate::audit::derived`), or brings an existing one up to date.
pub fn create(db: &rusqlite::Connection) -> rusqlite::Result<()> {
    db.execute_batch(SCHEMA)?;
    super::derived::create(db)
}

/// Every column, in table order: the CSV export's columns (the original's
/// 29, then Helio's additions; new columns are only ever appended).
pub const COLUMNS: &[&str] = &[
    "id",
    "timestamp",
    "session_id",
    "agent_id",
    "tool_name",
    "tool_input",
    "policy_decision",
    "block_reason",
    "matched_rule",
    "evidence_chain",
    "approval_status",
    "approved_by",
    "upstream_response",
    "upstream_error",
    "upstream_http_status",
    "upstream_latency_ms",
    "total_duration_ms",
    "approval_wait_ms",
    "proxy_compute_ms",
    "flagged_destructive",
    "dry_run",
    "created_at",
    "environment",
    "matched_rule_index",
    "record_kind",
    "origin",
    "metadata",
    "session_source",
    "protocol_version",
    "plugins",
    "response_truncated",
];

/// The original's 29 columns, in its order: what CSV exports hold unless
/// asked for all (spreadsheets and SIEM pipelines are built against it).
pub const ORIGINAL_COLUMNS: &[&str] = COLUMNS.split_at(29).0;

/// Columns holding JSON text: APIs return them as JSON values, CSV as text.
pub const JSON_COLUMNS: &[&str] = &[
    "tool_input",
    "evidence_chain",
    "upstream_response",
    "metadata",
    "plugins",
];

/// Columns holding 0/1: APIs and CSV show them as booleans.
pub const BOOL_COLUMNS: &[&str] = &["flagged_destructive", "dry_run", "response_truncated"];
