//! Counting from the rollups (see `crate::audit::derived`) instead of the
//! records: totals, the analytics' groups and series, and where in time
//! the n-th newest record lies (to skip an `offset` without reading what it
//! skips).
//!
//! A range is covered by the coarsest periods that fit in it: whole days
//! from the daily rollups, the hours at either end that are not a whole day
//! from the hourly ones, then minutes, and the part of a minute at either
//! end from the records themselves (through the time index), aggregated
//! the same way. So the counts are exact, and a week costs a few hundred
//! rollup rows rather than a million records.

use rusqlite::types::Value as SqlValue;
use rusqlite::Connection;

use super::filter::{escape_like, Clause, Plan};
use super::select;
use super::{when, Filter};
use crate::audit::derived::ROLLUPS;

/// The length of a period of each rollup, [`ROLLUPS`] index for index.
const WIDTH_MS: [i64; 3] = [86_400_000, 3_600_000, 60_000];

/// The coarsest rollup a source may read: days (for counts), hours (for
/// an hourly series), minutes (for a series by minute).
pub const DAYS: usize = 0;
pub const HOURS: usize = 1;
pub const MINUTES: usize = 2;
/// Whether the rollups can answer for `filter`: it names only what they
/// count by.
pub fn answers(filter: &Filter) -> bool {
    let Filter {
        tool: _,
        decision: _,
        reason: _,
        blocked: _,
        session,
        agent,
        from_ms: _,
        to_ms: _,
        text,
        origin: _,
        record_kind: _,
        dry_run: _,
        destructive,
        status_min,
        status_max,
    } = filter;
    session.is_none()
        && agent.is_none()
        && text.is_none()
        && destructive.is_none()
        && status_min.is_none()
        && status_max.is_none()
}

/// Rows shaped like the rollups (`period`, the dimensions, `count`),
/// already filtered: what every count here and the analytics read.
pub struct Source {
    /// A parenthesised subquery, to follow `FROM`.
    pub sql: String,
    pub values: Vec<SqlValue>,
}

impl Source {
    /// The matching records themselves, one row each (`period` is the
    /// minute): for filters the rollups cannot answer, or before they hold
    /// every record.
    pub fn records(filter: &Filter, plan: &Plan) -> Source {
        let records = select::Source::of(filter, plan);
        Source {
            sql: format!(
                "(SELECT {ROLLUP_COLUMNS} FROM {}{})",
                records.from, records.clause.sql
            ),
            values: records.clause.values,
        }
    }

    /// The filter's range covered by rollups no coarser than `coarsest`
    /// (and the records of its partial minutes), filtered.
    pub fn rollups(filter: &Filter, coarsest: usize) -> Source {
        Self::covering(
            filter,
            filter.from_ms,
            filter.to_ms.map(|ms| ms + 1),
            coarsest,
        )
    }

    /// `[low, high)` (open where `None`) covered as [`Source::rollups`]
    /// does, with the filter's conditions but not its range.
    fn covering(filter: &Filter, low: Option<i64>, high: Option<i64>, coarsest: usize) -> Source {
        let mut parts = Vec::new();
        cover(low, high, coarsest, &mut parts);
        let mut values = Vec::new();
        let mut selects = Vec::new();
        for part in parts {
            let (mut sql, bounds) = match part.level {
                Some(level) => {
                    let (table, width) = ROLLUPS[level];
                    let period =
                        move |ms: i64| SqlValue::Text(when::stored_form(ms)[..width].to_owned());
                    (
                        format!(
                            "SELECT period, policy_decision, block_reason, tool_name, record_kind, \
                             origin, dry_run, approval_status, count FROM {table} WHERE count > 0"
                        ),
                        [part.low.map(period), part.high.map(period)],
                    )
                }
                None => {
                    let instant = |ms: i64| SqlValue::Text(when::stored_form(ms));
                    (
                        format!("SELECT {ROLLUP_COLUMNS} FROM audit_records WHERE true"),
                        [part.low.map(instant), part.high.map(instant)],
                    )
                }
            };
            let column = if part.level.is_some() {
                "period"
            } else {
                "created_at"
            };
            let [low, high] = bounds;
            if let Some(low) = low {
                sql.push_str(&format!(" AND {column} >= ?"));
                values.push(low);
            }
            if let Some(high) = high {
                sql.push_str(&format!(" AND {column} < ?"));
                values.push(high);
            }
            selects.push(sql);
        }
        let mut clause = conditions(filter);
        values.append(&mut clause.values);
        Source {
            sql: format!(
                "(SELECT * FROM ({}){})",
                selects.join(" UNION ALL "),
                clause.sql
            ),
            values,
        }
    }
}

/// Records as rollup-shaped rows of one (`period` is their minute).
const ROLLUP_COLUMNS: &str = "substr(created_at, 1, 16) AS period, policy_decision, \
     coalesce(block_reason, '') AS block_reason, tool_name, record_kind, origin, dry_run, \
     coalesce(approval_status, '') AS approval_status, 1 AS count";

/// A piece of a range read from one rollup (`level`, an index into
/// [`ROLLUPS`]) or from the records (`None`), `[low, high)`.
struct Part {
    level: Option<usize>,
    low: Option<i64>,
    high: Option<i64>,
}

/// Splits `[low, high)` into the coarsest whole periods from `level` down,
/// and the records of what is left at either end.
fn cover(low: Option<i64>, high: Option<i64>, level: usize, out: &mut Vec<Part>) {
    let Some(&width) = WIDTH_MS.get(level) else {
        out.push(Part {
            level: None,
            low,
            high,
        });
        return;
    };
    let first = low.map(|ms| ceil_to(ms, width));
    let end = high.map(|ms| floor_to(ms, width));
    if let (Some(first), Some(end)) = (first, end) {
        if first >= end {
            cover(low, high, level + 1, out);
            return;
        }
    }
    out.push(Part {
        level: Some(level),
        low: first,
        high: end,
    });
    if let (Some(low), Some(first)) = (low, first) {
        if low < first {
            cover(Some(low), Some(first), level + 1, out);
        }
    }
    if let (Some(high), Some(end)) = (high, end) {
        if end < high {
            cover(Some(end), Some(high), level + 1, out);
        }
    }
}

fn ceil_to(ms: i64, width: i64) -> i64 {
    (ms + width - 1).div_euclid(width) * width
}

fn floor_to(ms: i64, width: i64) -> i64 {
    ms.div_euclid(width) * width
}

/// The filter on rollup-shaped rows (absent values are `''` there).
fn conditions(filter: &Filter) -> Clause {
    let mut c = Clause::default();
    let text = |v: &String| SqlValue::Text(v.clone());
    let like = |v: &String| SqlValue::Text(format!("%{}%", escape_like(v)));
    if let Some(v) = &filter.tool {
        c.and("tool_name LIKE ? ESCAPE '\\'", [like(v)]);
    }
    if let Some(v) = &filter.decision {
        c.and("policy_decision = ?", [text(v)]);
    }
    if let Some(v) = &filter.reason {
        c.and("block_reason = ?", [text(v)]);
    }
    match filter.blocked {
        Some(true) => c.and("block_reason != ''", []),
        Some(false) => c.and("block_reason = ''", []),
        None => {}
    }
    if let Some(v) = &filter.origin {
        c.and("origin LIKE ? ESCAPE '\\'", [like(v)]);
    }
    if let Some(v) = &filter.record_kind {
        c.and("record_kind = ?", [text(v)]);
    }
    if let Some(v) = filter.dry_run {
        c.and("dry_run = ?", [SqlValue::Integer(i64::from(v))]);
    }
    c
}

/// How many records match.
pub fn count(db: &Connection, filter: &Filter) -> rusqlite::Result<u64> {
    let source = Source::rollups(filter, DAYS);
    let sql = format!("SELECT coalesce(sum(count), 0) FROM {}", source.sql);
    let n: i64 = db
        .prepare_cached(&sql)?
        .query_row(rusqlite::params_from_iter(&source.values), |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Where the record `offset` places from the newest matching one lies:
/// the end of its minute (`created_at` below it), and how many matching
/// records of that minute and older come before it. `None` when there are
/// not that many. Narrowed a day, then an hour, then a minute at a time,
/// each step reading one period's rollups.
pub fn skip(
    db: &Connection,
    filter: &Filter,
    offset: u64,
) -> rusqlite::Result<Option<(String, u64)>> {
    let mut low = filter.from_ms;
    let mut high = filter.to_ms.map(|ms| ms + 1);
    let mut left = offset;
    for level in [DAYS, HOURS, MINUTES] {
        let width = ROLLUPS[level].1;
        let source = Source::covering(filter, low, high, level);
        let sql = format!(
            "SELECT substr(period, 1, {width}), sum(count) FROM {} GROUP BY 1 ORDER BY 1 DESC",
            source.sql
        );
        let mut statement = db.prepare_cached(&sql)?;
        let mut rows = statement.query(rusqlite::params_from_iter(&source.values))?;
        let mut found = None;
        while let Some(row) = rows.next()? {
            let period: String = row.get(0)?;
            let n = u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0);
            if n > left {
                found = Some(period);
                break;
            }
            left -= n;
        }
        let Some(start) = found.as_deref().and_then(period_start) else {
            return Ok(None);
        };
        low = Some(low.map_or(start, |ms| ms.max(start)));
        let end = start + WIDTH_MS[level];
        high = Some(high.map_or(end, |ms| ms.min(end)));
    }
    Ok(high.map(|ms| (when::stored_form(ms), left)))
}

/// The first instant of a period as the rollups name it.
fn period_start(period: &str) -> Option<i64> {
    let text = match period.len() {
        13 => format!("{period}:00"),
        _ => period.to_owned(),
    };
    when::parse(&text).ok().map(|span| span.first_ms)
}
