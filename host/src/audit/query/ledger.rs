//! A budget's spend ledger (`helio export --budgets NAME`): the rows of
//! `state_ledger` the budgets stage reserved and the host committed, under
//! keys `budgets/budget:<name>:<fingerprint>:<bucket>` (see
//! `crate::state::persist` and the budgets plugin).
//!
//! The ledger holds spend still inside its window; older rows are swept.
//! Every fingerprint is included: a budget whose limit, currency, window or
//! key changed starts a fresh pot, but the old pot's rows are still its
//! history.

use rusqlite::Connection;
use serde_json::{json, Value};

use super::params::{quoted, to_sql_int, ParamError};
use super::Record;
use crate::time::iso_utc;

/// The export's columns, in order.
pub const LEDGER_COLUMNS: &[&str] = &["id", "budget", "bucket_key", "amount", "at", "window_ms"];

/// One committed amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    /// The entry's number within its pot.
    pub id: i64,
    pub budget: String,
    /// The pot: `global`, or a session's bucket.
    pub bucket_key: String,
    /// An exact decimal, as text.
    pub amount: String,
    /// When it was committed (ISO-8601 UTC).
    pub at: String,
    /// The sliding window it counts in, if the budget has one.
    pub window_ms: Option<i64>,
}

impl LedgerRow {
    /// The row as a JSON object (the amount stays text: it is exact).
    pub fn to_record(&self) -> Record {
        let value = json!({
            "id": self.id,
            "budget": self.budget,
            "bucket_key": self.bucket_key,
            "amount": self.amount,
            "at": self.at,
            "window_ms": self.window_ms,
        });
        match value {
            Value::Object(map) => map,
            _ => Record::new(),
        }
    }
}

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

/// Up to `limit` rows, newest first, and the count of all of them.
pub fn read(
    db: &Connection,
    name: &str,
    limit: u64,
) -> Result<(Vec<LedgerRow>, u64), rusqlite::Error> {
    // Every key of this budget sorts between `…:<name>:` and `…:<name>;`
    // (';' follows ':'), a range the primary key index serves.
    let prefix = format!("budgets/budget:{name}:");
    let end = format!("budgets/budget:{name};");
    let tx = db.unchecked_transaction()?;
    let total: i64 = tx
        .prepare_cached("SELECT COUNT(*) FROM state_ledger WHERE key >= ?1 AND key < ?2")?
        .query_row([&prefix, &end], |r| r.get(0))?;
    let mut statement = tx.prepare_cached(
        "SELECT key, id, at_ms, window_ms, amount FROM state_ledger
         WHERE key >= ?1 AND key < ?2 ORDER BY at_ms DESC, id DESC LIMIT ?3",
    )?;
    let rows = statement
        .query_map(rusqlite::params![prefix, end, to_sql_int(limit)], |r| {
            let key: String = r.get(0)?;
            Ok(LedgerRow {
                id: r.get(1)?,
                budget: name.to_owned(),
                bucket_key: bucket_of(&key, &prefix).to_owned(),
                amount: r.get(4)?,
                at: iso_utc(u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0)),
                window_ms: r.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    drop(statement);
    tx.finish()?;
    Ok((rows, u64::try_from(total).unwrap_or(0)))
}

/// The bucket of a ledger key: what follows `<prefix><fingerprint>:`.
fn bucket_of<'k>(key: &'k str, prefix: &str) -> &'k str {
    let rest = key.strip_prefix(prefix).unwrap_or(key);
    rest.split_once(':').map_or(rest, |(_, bucket)| bucket)
}
