//! Reading records themselves: a page of a listing, a chunk of an export,
//! and counts the rollups cannot answer; and how a filter is read on this
//! database ([`plan`]).
//!
//! Order. Records are listed newest first by `(created_at, rowid)`: the
//! writer never writes a `created_at` older than the last one it wrote, so
//! this is the order they were written, and the indexes that serve the
//! filters, `(column, created_at)` and implicitly the rowid, hold their
//! records in it (an equality filter is a walk of its index, not a sort;
//! a session's few records are sorted).
//! A text search walks the search index in rowid order instead: the same
//! order, for records this writer wrote.
//!
//! Pages select the rowids first and the records after (a "deferred join"),
//! so whatever an index cannot order is sorted as keys, not as whole
//! records with their arguments and responses.

use std::time::Duration;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension};

use super::filter::{self, Clause, Plan};
use super::params::{to_sql_int, Cursor, Page};
use super::pool::Deadline;
use super::rows::{record_from_row, SELECT_COLUMNS};
use super::{rollup, Filter, Record, COUNT_CAP};
use crate::audit::derived::{self, Readiness};

/// Most tool or origin names a substring filter is turned into; beyond
/// that (an agent that made up thousands of tool names), the substring is
/// tested on the records.
const MAX_NAMES: usize = 256;

/// How long a count the rollups cannot answer may take before the total is
/// given as a lower bound instead.
const COUNT_BUDGET: Duration = Duration::from_millis(50);

/// How to read `filter` on this database: from the derived tables once
/// they hold every record, with the names its substring filters match.
pub fn plan(db: &Connection, filter: &Filter) -> rusqlite::Result<Plan> {
    let derived = derived::readiness(db)?;
    if derived == Readiness::Records {
        return Ok(Plan::RECORDS);
    }
    Ok(Plan {
        derived,
        tools: names(db, "tool", filter.tool.as_deref())?,
        origins: names(db, "origin", filter.origin.as_deref())?,
    })
}

/// The names of `kind` seen that contain `substring` (ASCII
/// case-insensitively, as `LIKE` compares).
fn names(
    db: &Connection,
    kind: &str,
    substring: Option<&str>,
) -> rusqlite::Result<Option<Vec<String>>> {
    let Some(substring) = substring else {
        return Ok(None);
    };
    let mut statement = db.prepare_cached(
        "SELECT name FROM audit_names WHERE kind = ?1 AND name LIKE ?2 ESCAPE '\\' LIMIT ?3",
    )?;
    let pattern = format!("%{}%", filter::escape_like(substring));
    let found = statement
        .query_map(
            rusqlite::params![kind, pattern, MAX_NAMES as i64 + 1],
            |r| r.get::<_, String>(0),
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((found.len() <= MAX_NAMES).then_some(found))
}

/// What a query reads: the records, or the search index joined to them.
pub struct Source {
    /// To follow `FROM`.
    pub from: &'static str,
    pub clause: Clause,
    /// Whether the search index drives the query (and orders it by rowid).
    pub search: bool,
}

const SEARCH_JOIN: &str =
    "audit_search CROSS JOIN audit_records ON audit_records.rowid = audit_search.rowid";

impl Source {
    pub fn of(filter: &Filter, plan: &Plan) -> Source {
        match (&filter.text, plan.derived) {
            (Some(q), Readiness::Ready) => {
                let mut clause = Clause::default();
                clause.and(
                    "audit_search MATCH ?",
                    [SqlValue::Text(filter::fts_query(q))],
                );
                filter.add_to(&mut clause, plan);
                Source {
                    from: SEARCH_JOIN,
                    clause,
                    search: true,
                }
            }
            (Some(_) | None, Readiness::Ready | Readiness::Records) => Source {
                from: "audit_records",
                clause: filter.clause(plan),
                search: false,
            },
        }
    }
}

/// How many records match: exactly from the rollups when they can say;
/// else counted up to [`COUNT_CAP`] within [`COUNT_BUDGET`], past which
/// `at_least` (what the page already showed) is a lower bound.
pub fn count(
    db: &Connection,
    deadline: &Deadline,
    filter: &Filter,
    plan: &Plan,
    at_least: u64,
) -> rusqlite::Result<(u64, bool)> {
    if plan.derived == Readiness::Ready && rollup::answers(filter) {
        return Ok((rollup::count(db, filter)?, true));
    }
    let source = Source::of(filter, plan);
    let sql = format!(
        "SELECT count(*) FROM (SELECT 1 FROM {}{} LIMIT ?)",
        source.from, source.clause.sql
    );
    let mut values = source.clause.values;
    values.push(to_sql_int(COUNT_CAP + 1));
    let counted = deadline.within(COUNT_BUDGET, || {
        db.prepare_cached(&sql)?
            .query_row(rusqlite::params_from_iter(&values), |r| r.get::<_, i64>(0))
    })?;
    Ok(match counted {
        Some(n) => {
            let n = u64::try_from(n).unwrap_or(0);
            (n.min(COUNT_CAP), n <= COUNT_CAP)
        }
        None => (at_least, false),
    })
}

/// A page, newest first: after `cursor`, or past `page.offset`; and the
/// cursor after its last record when the page is full.
pub fn page(
    db: &Connection,
    filter: &Filter,
    plan: &Plan,
    page: Page,
    cursor: Option<&Cursor>,
) -> rusqlite::Result<(Vec<Record>, Option<Cursor>)> {
    let mut source = Source::of(filter, plan);
    let mut offset = page.offset;
    if let Some(cursor) = cursor {
        after(&mut source, cursor, Direction::Older);
    } else if offset > 0 && plan.derived == Readiness::Ready && rollup::answers(filter) {
        // Start at the minute holding the first record wanted, rather than
        // reading every record the offset skips.
        match rollup::skip(db, filter, offset)? {
            Some((below, within)) => {
                source.clause.and("created_at < ?", [SqlValue::Text(below)]);
                offset = within;
            }
            None => return Ok((Vec::new(), None)),
        }
    }
    let sql = if source.search {
        format!(
            "SELECT {}, audit_records.rowid FROM {}{} \
             ORDER BY audit_search.rowid DESC LIMIT ? OFFSET ?",
            *SELECT_COLUMNS, source.from, source.clause.sql
        )
    } else {
        format!(
            "SELECT {}, rowid FROM audit_records WHERE rowid IN \
             (SELECT audit_records.rowid FROM audit_records{} \
              ORDER BY created_at DESC, audit_records.rowid DESC LIMIT ? OFFSET ?) \
             ORDER BY created_at DESC, rowid DESC",
            *SELECT_COLUMNS, source.clause.sql
        )
    };
    let mut values = source.clause.values;
    values.push(to_sql_int(page.limit));
    values.push(to_sql_int(offset));
    let (records, last) = read(db, &sql, &values)?;
    let next = last.filter(|_| records.len() as u64 == page.limit);
    Ok((records, next))
}

/// Up to `want` records oldest first, after `cursor`; and the cursor after
/// the last of them.
pub fn chunk(
    db: &Connection,
    source: &Source,
    cursor: Option<&Cursor>,
    want: u64,
) -> rusqlite::Result<(Vec<Record>, Option<Cursor>)> {
    let mut source = Source {
        from: source.from,
        clause: source.clause.clone(),
        search: source.search,
    };
    if let Some(cursor) = cursor {
        after(&mut source, cursor, Direction::Newer);
    }
    let order = if source.search {
        "audit_search.rowid"
    } else {
        "created_at, audit_records.rowid"
    };
    let sql = format!(
        "SELECT {}, audit_records.rowid FROM {}{} ORDER BY {order} LIMIT ?",
        *SELECT_COLUMNS, source.from, source.clause.sql
    );
    let mut values = source.clause.values;
    values.push(to_sql_int(want));
    read(db, &sql, &values)
}

enum Direction {
    Older,
    Newer,
}

/// Narrows `source` to the records past `cursor`, in its own order.
fn after(source: &mut Source, cursor: &Cursor, direction: Direction) {
    let rowid = SqlValue::Integer(cursor.rowid);
    let at = SqlValue::Text(cursor.created_at.clone());
    match (source.search, direction) {
        (true, Direction::Older) => source.clause.and("audit_records.rowid < ?", [rowid]),
        (true, Direction::Newer) => source.clause.and("audit_records.rowid > ?", [rowid]),
        // Row values: the time index seeks straight to the cursor.
        (false, Direction::Older) => source
            .clause
            .and("(created_at, audit_records.rowid) < (?, ?)", [at, rowid]),
        (false, Direction::Newer) => source
            .clause
            .and("(created_at, audit_records.rowid) > (?, ?)", [at, rowid]),
    }
}

/// Runs a query selecting [`SELECT_COLUMNS`] and a rowid; the records and
/// the cursor of the last.
fn read(
    db: &Connection,
    sql: &str,
    values: &[SqlValue],
) -> rusqlite::Result<(Vec<Record>, Option<Cursor>)> {
    let mut statement = db.prepare_cached(sql)?;
    let mut rows = statement.query(rusqlite::params_from_iter(values))?;
    let rowid_column = crate::audit::schema::COLUMNS.len();
    let mut records = Vec::new();
    let mut last = None;
    while let Some(row) = rows.next()? {
        let record = record_from_row(row)?;
        let rowid: i64 = row.get(rowid_column)?;
        last = record
            .get("created_at")
            .and_then(|v| v.as_str())
            .map(|created_at| Cursor {
                created_at: created_at.to_owned(),
                rowid,
            });
        records.push(record);
    }
    Ok((records, last))
}

/// The record with this id.
pub fn by_id(db: &Connection, id: &str) -> rusqlite::Result<Option<Record>> {
    let sql = format!(
        "SELECT {} FROM audit_records WHERE id = ?1",
        *SELECT_COLUMNS
    );
    db.prepare_cached(&sql)?
        .query_row([id], record_from_row)
        .optional()
}
