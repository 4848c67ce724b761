//! The read side of the audit trail: listing, fetching, exporting and
//! summarising `audit_records` for the operator API and `helio export`.
//!
//! Reads never get in the writer's way: the database is in WAL mode, and
//! every connection here is opened read-only, so a reader sees the last
//! committed snapshot while the writer keeps appending. SQL text is made
//! only of constant fragments (chosen by which filters are present); every
//! value that comes from a request is a bound parameter.
//!
//! A database without the table yet (a fresh install, or a file that holds
//! only governance state) reads as empty, not as an error.

mod analytics;
mod csv;
mod export;
mod filter;
mod ledger;
mod params;
mod pool;
mod rows;
mod when;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use rusqlite::Connection;
use serde_json::{json, Map, Value};

pub use analytics::{Analytics, Bucket, Request as AnalyticsRequest};
pub use export::{take_columns, ExportCursor, ExportFormat, CHUNK_ROWS};
pub use filter::Filter;
pub use ledger::LEDGER_COLUMNS;
pub use params::{
    take_limit, Bounds, Page, ParamError, Params, EXPORT_BOUNDS, FEED_BOUNDS, LEDGER_BOUNDS,
    LEDGER_EXPORT_BOUNDS, LIST_BOUNDS,
};

use pool::Pool;
use rows::{record_from_row, SELECT_COLUMNS};

/// One audit record as the APIs return it: JSON columns parsed back into
/// JSON, 0/1 columns as booleans.
pub type Record = Map<String, Value>;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A parameter is invalid; the message names it and says why.
    #[error(transparent)]
    Param(#[from] ParamError),
    #[error("audit database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
}

/// One page of records, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    pub data: Vec<Record>,
    pub total: u64,
    pub limit: u64,
    pub offset: u64,
}

impl Listing {
    /// The `{data, total, limit, offset}` envelope.
    pub fn to_json(&self) -> Value {
        json!({
            "data": self.data,
            "total": self.total,
            "limit": self.limit,
            "offset": self.offset,
        })
    }
}

/// Read-only access to the audit table at one path, with a few pooled
/// connections (a `Connection` is not `Sync`; each call borrows one).
/// Every method blocks: call it from a blocking task.
pub struct AuditReader {
    pool: Pool,
}

impl AuditReader {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            pool: Pool::new(path.into()),
        }
    }

    /// Whether the database file exists (`helio export` insists on it; the
    /// operator API treats a missing file as an empty trail).
    pub fn database_exists(&self) -> bool {
        self.pool.path().is_file()
    }

    /// Records matching `filter`, newest first, and how many match in all.
    pub fn list(&self, filter: &Filter, page: Page) -> Result<Listing, QueryError> {
        let empty = Listing {
            data: Vec::new(),
            total: 0,
            limit: page.limit,
            offset: page.offset,
        };
        self.with_table(empty, |db| {
            // One read transaction, so `total` and `data` agree.
            let tx = db.unchecked_transaction()?;
            let total = count_in(&tx, filter)?;
            let data = page_in(&tx, filter, page)?;
            tx.finish()?;
            Ok(Listing {
                data,
                total,
                limit: page.limit,
                offset: page.offset,
            })
        })
    }

    /// How many records match `filter`.
    pub fn count(&self, filter: &Filter) -> Result<u64, QueryError> {
        self.with_table(0, |db| count_in(db, filter))
    }

    /// The record with this id, if there is one.
    pub fn get(&self, id: &str) -> Result<Option<Record>, QueryError> {
        self.with_table(None, |db| {
            let sql = format!(
                "SELECT {} FROM audit_records WHERE id = ?1",
                *SELECT_COLUMNS
            );
            let mut statement = db.prepare_cached(&sql)?;
            let mut rows = statement.query([id])?;
            rows.next()?.map(record_from_row).transpose()
        })
    }

    /// Counts by decision, block reason and tool, and a time series, over
    /// the filter's range (the last 24 hours up to `now_ms` by default).
    pub fn analytics(
        &self,
        filter: &Filter,
        request: AnalyticsRequest,
        now_ms: i64,
    ) -> Result<Analytics, QueryError> {
        let (bounded, range, starts) = analytics::plan(filter, request, now_ms)?;
        let empty = analytics::empty(range, request, &starts);
        self.with_table(empty, |db| {
            analytics::compute(db, &bounded, range, request, &starts)
        })
    }

    /// A page of budget `name`'s ledger (its charges, newest first; see
    /// [`ledger`]) and how many rows it has in all. `currency` is the
    /// budget's as configured.
    pub fn budget_ledger(
        &self,
        name: &str,
        currency: Option<&str>,
        page: Page,
    ) -> Result<(Vec<Record>, u64), QueryError> {
        ledger::check_name(name)?;
        self.with_table((Vec::new(), 0), |db| ledger::read(db, name, currency, page))
    }

    /// Runs `read` on a pooled connection when the audit table exists;
    /// `empty` when the database or the table does not exist yet.
    fn with_table<T>(
        &self,
        empty: T,
        read: impl FnOnce(&Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, QueryError> {
        self.pool
            .with_table("audit_records", empty, read)
            .map_err(|source| self.sqlite(source))
    }

    fn sqlite(&self, source: rusqlite::Error) -> QueryError {
        QueryError::Sqlite {
            path: self.pool.path().to_owned(),
            source,
        }
    }
}

fn count_in(db: &Connection, filter: &Filter) -> Result<u64, rusqlite::Error> {
    let clause = filter.clause();
    let sql = format!("SELECT COUNT(*) FROM audit_records{}", clause.sql);
    let count: i64 = db
        .prepare_cached(&sql)?
        .query_row(rusqlite::params_from_iter(&clause.values), |r| r.get(0))?;
    Ok(u64::try_from(count).unwrap_or(0))
}

fn page_in(db: &Connection, filter: &Filter, page: Page) -> Result<Vec<Record>, rusqlite::Error> {
    let mut clause = filter.clause();
    let sql = format!(
        "SELECT {} FROM audit_records{} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
        *SELECT_COLUMNS, clause.sql
    );
    clause.values.push(params::to_sql_int(page.limit));
    clause.values.push(params::to_sql_int(page.offset));
    let mut statement = db.prepare_cached(&sql)?;
    let mut rows = statement.query(rusqlite::params_from_iter(&clause.values))?;
    let mut data = Vec::new();
    while let Some(row) = rows.next()? {
        data.push(record_from_row(row)?);
    }
    Ok(data)
}
