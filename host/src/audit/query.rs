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
mod rollup;
mod rows;
mod select;
mod when;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

use rusqlite::Connection;
use serde_json::{json, Map, Value};

pub use analytics::{Analytics, Bucket, Request as AnalyticsRequest};
pub use export::{take_columns, ExportCursor, ExportFormat, CHUNK_ROWS};
pub use filter::{Filter, MAX_SEARCH_WORDS};
pub use ledger::LEDGER_COLUMNS;
pub use params::{
    take_limit, Bounds, Cursor, Page, ParamError, Params, EXPORT_BOUNDS, FEED_BOUNDS,
    LEDGER_BOUNDS, LEDGER_EXPORT_BOUNDS, LIST_BOUNDS,
};

use pool::{Deadline, Pool};

/// Counts past this stop, and the total is reported as at least this
/// many: an exact count of millions of records costs a scan of them, and a
/// person paging a list needs to know there are more, not how many more.
/// Filters the rollups answer are counted exactly whatever their size.
pub const COUNT_CAP: u64 = 10_000;

/// Longest a read may run before it is stopped (a filter combination no
/// index serves, over a very large trail), so one request cannot hold a
/// reader thread for minutes.
pub const READ_DEADLINE: Duration = Duration::from_secs(5);

/// One audit record as the APIs return it: JSON columns parsed back into
/// JSON, 0/1 columns as booleans.
pub type Record = Map<String, Value>;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A parameter is invalid; the message names it and says why.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// The read ran past [`READ_DEADLINE`].
    #[error(
        "the query ran longer than {} s and was stopped; narrow it with a time range (from, to) or a more specific filter",
        READ_DEADLINE.as_secs()
    )]
    TooBroad,
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
    /// How many records match; a lower bound when `total_exact` is false
    /// (see [`COUNT_CAP`]).
    pub total: u64,
    pub total_exact: bool,
    pub limit: u64,
    pub offset: u64,
    /// Where the next page starts, when this one is full.
    pub next_cursor: Option<Cursor>,
}

impl Listing {
    /// The `{data, total, limit, offset}` envelope, with `total_exact` and
    /// `next_cursor`.
    pub fn to_json(&self) -> Value {
        json!({
            "data": self.data,
            "total": self.total,
            "total_exact": self.total_exact,
            "limit": self.limit,
            "offset": self.offset,
            "next_cursor": self.next_cursor.as_ref().map(Cursor::to_text),
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

    /// Records matching `filter`, newest first (after `cursor`, or past
    /// `page.offset`), and how many match in all.
    pub fn list(
        &self,
        filter: &Filter,
        page: Page,
        cursor: Option<&Cursor>,
    ) -> Result<Listing, QueryError> {
        let empty = Listing {
            data: Vec::new(),
            total: 0,
            total_exact: true,
            limit: page.limit,
            offset: page.offset,
            next_cursor: None,
        };
        self.with_table(empty, |db, deadline| {
            // One read transaction, so `total` and `data` agree.
            let tx = db.unchecked_transaction()?;
            let plan = select::plan(&tx, filter)?;
            let (data, next_cursor) = select::page(&tx, filter, &plan, page, cursor)?;
            let shown = page.offset + data.len() as u64;
            let (total, total_exact) = select::count(&tx, deadline, filter, &plan, shown)?;
            tx.finish()?;
            Ok(Listing {
                data,
                total,
                total_exact,
                limit: page.limit,
                offset: page.offset,
                next_cursor,
            })
        })
    }

    /// How many records match `filter`, and whether that is exact (see
    /// [`COUNT_CAP`]).
    pub fn count(&self, filter: &Filter) -> Result<(u64, bool), QueryError> {
        self.with_table((0, true), |db, deadline| {
            let plan = select::plan(db, filter)?;
            select::count(db, deadline, filter, &plan, 0)
        })
    }

    /// The record with this id, if there is one.
    pub fn get(&self, id: &str) -> Result<Option<Record>, QueryError> {
        self.with_table(None, |db, _| select::by_id(db, id))
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
        self.with_table(empty, |db, _| {
            let plan = select::plan(db, &bounded)?;
            analytics::compute(db, &bounded, &plan, range, request, &starts)
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
        self.with_table((Vec::new(), 0), |db, _| {
            ledger::read(db, name, currency, page)
        })
    }

    /// Runs `read` on a pooled connection when the audit table exists;
    /// `empty` when the database or the table does not exist yet. A read
    /// running past [`READ_DEADLINE`] is stopped.
    fn with_table<T>(
        &self,
        empty: T,
        read: impl FnOnce(&Connection, &Deadline) -> Result<T, rusqlite::Error>,
    ) -> Result<T, QueryError> {
        self.pool
            .with_table("audit_records", empty, READ_DEADLINE, read)
            .map_err(|source| match source.sqlite_error_code() {
                Some(rusqlite::ErrorCode::OperationInterrupted) => QueryError::TooBroad,
                _ if search_refused(&source) => QueryError::Param(ParamError::new(
                    "q",
                    "cannot be searched for as written (a word mixes letters with symbols the \
                     index splits words at); search for its parts as separate words",
                )),
                _ => self.sqlite(source),
            })
    }

    fn sqlite(&self, source: rusqlite::Error) -> QueryError {
        QueryError::Sqlite {
            path: self.pool.path().to_owned(),
            source,
        }
    }
}

/// Whether the search index refused a query: a word of `q` the index would
/// split in two (letters joined by a symbol it takes as a separator) is a
/// phrase, which it cannot answer. The words are cut to match the index's,
/// so this is the rare case left (a symbol that counts as a letter).
fn search_refused(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(_, Some(message)) if message.starts_with("fts5:"))
}
