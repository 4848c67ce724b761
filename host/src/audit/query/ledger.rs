//! A budget's ledger (`GET /api/budgets/:name/events`, its export, and
//! `helio export --budgets NAME`): every charge the budget took, newest
//! first, in the original's twelve columns.
//!
//! The charges are read from the audit trail, where each call's record
//! carries what the budgets stage checked (`evidence_chain.budgets[]`): a
//! charge is an entry of a call that went on to its upstream (no block
//! reason, not a dry run). So the ledger keeps the audit trail's retention
//! and links every row to its record, while `state_ledger` holds only what
//! still counts against the window.

use rusqlite::Connection;
use serde_json::{json, Map, Value};

use super::params::{quoted, to_sql_int, Page, ParamError};
use super::Record;
use crate::audit::derived::Readiness;

/// The ledger's columns, in order (the original's).
pub const LEDGER_COLUMNS: &[&str] = &[
    "id",
    "budget_name",
    "bucket_key",
    "kind",
    "amount",
    "currency",
    "tool_name",
    "origin",
    "audit_record_id",
    "timestamp",
    "timestamp_ms",
    "created_at",
];

/// Budget names as `helio.yaml` allows them; anything else cannot have a
/// ledger.
pub fn check_name(name: &str) -> Result<(), ParamError> {
    let fits = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if fits {
        return Ok(());
    }
    Err(ParamError::new(
        "budgets",
        format!(
            "{} is not a budget name (letters, digits, _ and - only, at most 64)",
            quoted(name)
        ),
    ))
}

/// The charges: one row per budget entry of a forwarded call's record.
/// `->` keeps each number's JSON text, so amounts stay exact.
const CHARGES: &str = "FROM audit_records r, json_each(r.evidence_chain, '$.budgets') b
     WHERE r.evidence_chain LIKE '%\"budgets\"%'
       AND r.block_reason IS NULL AND r.dry_run = 0 AND r.record_kind = 'tool_call'
       AND b.value ->> '$.name' = ?1";

/// A page of the charges from the derived table (see
/// `crate::audit::derived`): the budget's own entries, newest first, paged
/// by its index alone, then joined to their records.
const INDEXED_CHARGES: &str = "FROM (SELECT record, entry FROM audit_charges WHERE budget = ?1
             ORDER BY record DESC, entry DESC LIMIT ?2 OFFSET ?3) c
       JOIN audit_records r ON r.rowid = c.record,
       json_each(r.evidence_chain, '$.budgets') b
     WHERE b.key = c.entry";

/// One page of the ledger, newest first (in the order written), and how
/// many rows it has in all. `currency` is the budget's as configured (the
/// records do not repeat it).
pub fn read(
    db: &Connection,
    name: &str,
    currency: Option<&str>,
    page: Page,
) -> Result<(Vec<Record>, u64), rusqlite::Error> {
    let tx = db.unchecked_transaction()?;
    let (total_sql, page_sql) = match crate::audit::derived::readiness(&tx)? {
        Readiness::Ready => (
            "SELECT coalesce((SELECT count FROM audit_charge_counts WHERE budget = ?1), 0)"
                .to_owned(),
            format!(
                "SELECT r.id, b.key, b.value ->> '$.bucket', b.value -> '$.amount',
                        b.value ->> '$.allowed', r.tool_name, r.origin, r.timestamp, r.created_at
                 {INDEXED_CHARGES}
                 ORDER BY c.record DESC, c.entry DESC"
            ),
        ),
        // Before an upgrade has caught up: every record's evidence is read.
        Readiness::Records => (
            format!("SELECT COUNT(*) {CHARGES}"),
            format!(
                "SELECT r.id, b.key, b.value ->> '$.bucket', b.value -> '$.amount',
                        b.value ->> '$.allowed', r.tool_name, r.origin, r.timestamp, r.created_at
                 {CHARGES}
                 ORDER BY r.created_at DESC, r.rowid DESC, b.key DESC LIMIT ?2 OFFSET ?3"
            ),
        ),
    };
    let total: i64 = tx
        .prepare_cached(&total_sql)?
        .query_row([name], |r| r.get(0))?;
    let mut statement = tx.prepare_cached(&page_sql)?;
    let rows = statement
        .query_map(
            rusqlite::params![name, to_sql_int(page.limit), to_sql_int(page.offset)],
            |r| {
                let record_id: String = r.get(0)?;
                let index: i64 = r.get(1)?;
                let amount: Option<String> = r.get(3)?;
                let allowed: Option<i64> = r.get(4)?;
                let timestamp: Option<String> = r.get(7)?;
                Ok(row(Charge {
                    id: format!("{record_id}:{index}"),
                    budget: name,
                    bucket: r.get(2)?,
                    // A charge the budget refused went through on a human's
                    // approval: an overage.
                    kind: if allowed == Some(1) {
                        "spend"
                    } else {
                        "approved_overage"
                    },
                    amount: amount
                        .and_then(|a| serde_json::from_str::<Value>(&a).ok())
                        .unwrap_or(Value::Null),
                    currency,
                    tool_name: r.get(5)?,
                    origin: r.get(6)?,
                    audit_record_id: record_id,
                    timestamp_ms: timestamp.as_deref().and_then(epoch_ms),
                    timestamp,
                    created_at: r.get(8)?,
                }))
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    drop(statement);
    tx.finish()?;
    Ok((rows, u64::try_from(total).unwrap_or(0)))
}

struct Charge<'a> {
    id: String,
    budget: &'a str,
    bucket: Option<String>,
    kind: &'static str,
    amount: Value,
    currency: Option<&'a str>,
    tool_name: Option<String>,
    origin: Option<String>,
    audit_record_id: String,
    timestamp: Option<String>,
    timestamp_ms: Option<i64>,
    created_at: Option<String>,
}

fn row(charge: Charge<'_>) -> Record {
    match json!({
        "id": charge.id,
        "budget_name": charge.budget,
        "bucket_key": charge.bucket,
        "kind": charge.kind,
        "amount": charge.amount,
        "currency": charge.currency,
        "tool_name": charge.tool_name,
        "origin": charge.origin,
        "audit_record_id": charge.audit_record_id,
        "timestamp": charge.timestamp,
        "timestamp_ms": charge.timestamp_ms,
        "created_at": charge.created_at,
    }) {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Milliseconds since the epoch of an ISO-8601 time.
fn epoch_ms(iso: &str) -> Option<i64> {
    iso.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}
