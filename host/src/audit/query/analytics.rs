//! `GET /api/analytics`: counts by decision, block reason and tool over a
//! time range, and a time series of records per minute or hour.

use std::collections::HashMap;

use rusqlite::types::Value as SqlValue;
use rusqlite::Connection;
use serde_json::{json, Value};

use super::filter::Plan;
use super::params::{quoted, to_sql_int, ParamError, Params};
use super::rollup::{self, Source};
use super::{when, Filter};
use crate::audit::derived::Readiness;

/// The range when a request names none: the last 24 hours.
const DEFAULT_RANGE_MS: i64 = 24 * 3_600_000;
/// Most points in one series: a week of minutes, or 420 days of hours.
pub const MAX_BUCKETS: i64 = 10_080;
/// Tools listed in `top_tools` unless `top` says otherwise.
const DEFAULT_TOP: u64 = 10;

/// The width of a time-series point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Minute,
    Hour,
}

impl Bucket {
    /// `bucket`: `hour` (the default) or `minute`.
    pub fn take(params: &mut Params) -> Result<Self, ParamError> {
        match params.take("bucket").as_deref() {
            None | Some("hour") => Ok(Self::Hour),
            Some("minute") => Ok(Self::Minute),
            Some(other) => Err(ParamError::new(
                "bucket",
                format!("must be minute or hour, got {}", quoted(other)),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
        }
    }

    fn width_ms(self) -> i64 {
        match self {
            Self::Minute => 60_000,
            Self::Hour => 3_600_000,
        }
    }

    /// How much of a stored time names its bucket: `YYYY-MM-DDTHH:MM` or
    /// `YYYY-MM-DDTHH`.
    fn prefix_len(self) -> usize {
        match self {
            Self::Minute => 16,
            Self::Hour => 13,
        }
    }
}

/// What an analytics request asks for besides its filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub bucket: Bucket,
    /// How many tools `top_tools` lists.
    pub top: u64,
}

impl Request {
    /// `bucket` and `top` (1..=100, default 10).
    pub fn take(params: &mut Params) -> Result<Self, ParamError> {
        Ok(Self {
            bucket: Bucket::take(params)?,
            top: params.integer("top", 1, 100)?.unwrap_or(DEFAULT_TOP),
        })
    }
}

/// The instants summarised, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from_ms: i64,
    pub to_ms: i64,
}

impl Range {
    /// The filter's range, completed to the last 24 hours up to `now_ms`
    /// where it leaves an end open.
    pub fn of(filter: &Filter, now_ms: i64) -> Self {
        match (filter.from_ms, filter.to_ms) {
            (Some(from_ms), Some(to_ms)) => Self { from_ms, to_ms },
            (Some(from_ms), None) => Self {
                from_ms,
                to_ms: now_ms.max(from_ms),
            },
            (None, Some(to_ms)) => Self {
                from_ms: to_ms - DEFAULT_RANGE_MS,
                to_ms,
            },
            (None, None) => Self {
                from_ms: now_ms - DEFAULT_RANGE_MS,
                to_ms: now_ms,
            },
        }
    }

    /// The start of every bucket the range touches; an error if there are
    /// more than [`MAX_BUCKETS`].
    fn buckets(self, bucket: Bucket) -> Result<Vec<i64>, ParamError> {
        let width = bucket.width_ms();
        let first = self.from_ms.max(0).div_euclid(width) * width;
        let last = self.to_ms.max(0).div_euclid(width) * width;
        let count = (last - first) / width + 1;
        if count > MAX_BUCKETS {
            return Err(ParamError::new(
                "bucket",
                format!(
                    "from..to spans {count} {}s; a series has at most {MAX_BUCKETS} points \
                     (use bucket=hour or a shorter range)",
                    bucket.as_str()
                ),
            ));
        }
        Ok((0..count).map(|i| first + i * width).collect())
    }
}

/// The summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Analytics {
    pub range: Range,
    pub bucket: Bucket,
    pub total: u64,
    /// Decided `allow`, not blocked, not a dry run.
    pub allowed_total: u64,
    /// With a block reason.
    pub blocked_total: u64,
    pub dry_run_total: u64,
    /// Tool calls that went on to the upstream (not blocked, not a dry
    /// run), allowed by a rule, on approval or by default alike.
    pub applied_total: u64,
    /// Calls a human was asked about (any approval status).
    pub held_total: u64,
    /// Of those, approved or break-glassed.
    pub approved_total: u64,
    /// `(decision, count)`, most first.
    pub by_decision: Vec<(String, u64)>,
    /// `(block reason, count)`, most first.
    pub by_block_reason: Vec<(String, u64)>,
    /// `(tool, count)` of tool calls (not drift events or transport
    /// rejections, whose names are sentinels), most first.
    pub top_tools: Vec<(String, u64)>,
    /// `(bucket start, count)` for every bucket in the range, empty ones
    /// included, oldest first.
    pub series: Vec<(String, u64)>,
}

impl Analytics {
    pub fn to_json(&self) -> Value {
        let pairs = |list: &[(String, u64)], name: &str| -> Vec<Value> {
            list.iter()
                .map(|(key, count)| json!({ name: key, "count": count }))
                .collect()
        };
        json!({
            "from": when::stored_form(self.range.from_ms),
            "to": when::stored_form(self.range.to_ms),
            "bucket": self.bucket.as_str(),
            "total": self.total,
            "allowed_total": self.allowed_total,
            "blocked_total": self.blocked_total,
            "dry_run_total": self.dry_run_total,
            "applied_total": self.applied_total,
            // Of the calls held for a human, the share approved; none held,
            // none.
            "approval_rate": (self.held_total > 0)
                .then(|| self.approved_total as f64 / self.held_total as f64),
            "by_decision": pairs(&self.by_decision, "decision"),
            "by_block_reason": pairs(&self.by_block_reason, "reason"),
            "top_tools": pairs(&self.top_tools, "tool_name"),
            "series": pairs(&self.series, "bucket"),
            // The original's name for the hourly series.
            "per_hour": match self.bucket {
                Bucket::Hour => Value::from(pairs(&self.series, "bucket")),
                Bucket::Minute => Value::Null,
            },
        })
    }
}

/// Checks the request and the size of its series before any reading.
pub fn plan(
    filter: &Filter,
    request: Request,
    now_ms: i64,
) -> Result<(Filter, Range, Vec<i64>), ParamError> {
    let range = Range::of(filter, now_ms);
    let starts = range.buckets(request.bucket)?;
    let bounded = Filter {
        from_ms: Some(range.from_ms),
        to_ms: Some(range.to_ms),
        ..filter.clone()
    };
    Ok((bounded, range, starts))
}

/// Runs the counts in one read transaction (so they agree with each
/// other), from the rollups when they can answer for the filter.
pub fn compute(
    db: &Connection,
    filter: &Filter,
    plan: &Plan,
    range: Range,
    request: Request,
    starts: &[i64],
) -> Result<Analytics, rusqlite::Error> {
    let source = if plan.derived == Readiness::Ready && rollup::answers(filter) {
        let coarsest = match request.bucket {
            Bucket::Hour => rollup::HOURS,
            Bucket::Minute => rollup::MINUTES,
        };
        Source::rollups(filter, coarsest)
    } else {
        Source::records(filter, plan)
    };
    let tx = db.unchecked_transaction()?;
    let totals = totals(&tx, &source)?;
    let analytics = Analytics {
        range,
        bucket: request.bucket,
        total: totals[0],
        allowed_total: totals[1],
        blocked_total: totals[2],
        dry_run_total: totals[3],
        applied_total: totals[4],
        held_total: totals[5],
        approved_total: totals[6],
        by_decision: grouped(&tx, &source, "policy_decision", "", None)?,
        by_block_reason: grouped(
            &tx,
            &source,
            "block_reason",
            " WHERE block_reason != ''",
            None,
        )?,
        top_tools: grouped(
            &tx,
            &source,
            "tool_name",
            " WHERE record_kind = 'tool_call' AND policy_decision != 'rejected'",
            Some(request.top),
        )?,
        series: series(&tx, &source, request.bucket, starts)?,
    };
    tx.finish()?;
    Ok(analytics)
}

/// An analytics answer with nothing counted (no table yet).
pub fn empty(range: Range, request: Request, starts: &[i64]) -> Analytics {
    Analytics {
        range,
        bucket: request.bucket,
        total: 0,
        allowed_total: 0,
        blocked_total: 0,
        dry_run_total: 0,
        applied_total: 0,
        held_total: 0,
        approved_total: 0,
        by_decision: Vec::new(),
        by_block_reason: Vec::new(),
        top_tools: Vec::new(),
        series: starts.iter().map(|&s| (when::stored_form(s), 0)).collect(),
    }
}

/// `[total, allowed, blocked, dry run, applied, held, approved]`, over
/// rollup-shaped rows (absent block reasons and approvals are `''`).
fn totals(db: &Connection, source: &Source) -> Result<[u64; 7], rusqlite::Error> {
    let sql = format!(
        "SELECT coalesce(sum(count), 0),
                coalesce(sum(count * (policy_decision = 'allow' AND block_reason = '' AND dry_run = 0)), 0),
                coalesce(sum(count * (block_reason != '')), 0),
                coalesce(sum(count * (dry_run != 0)), 0),
                coalesce(sum(count * (record_kind = 'tool_call' AND block_reason = '' AND dry_run = 0)), 0),
                coalesce(sum(count * (approval_status != '')), 0),
                coalesce(sum(count * (approval_status IN ('approved', 'break_glass'))), 0)
         FROM {}",
        source.sql
    );
    db.prepare_cached(&sql)?
        .query_row(rusqlite::params_from_iter(&source.values), |r| {
            let mut out = [0; 7];
            for (i, slot) in out.iter_mut().enumerate() {
                *slot = count(r.get(i)?);
            }
            Ok(out)
        })
}

/// `(value of column, count)` groups, most first; `condition` is a
/// constant `WHERE` on the source's rows.
fn grouped(
    db: &Connection,
    source: &Source,
    column: &'static str,
    condition: &'static str,
    limit: Option<u64>,
) -> Result<Vec<(String, u64)>, rusqlite::Error> {
    let mut values = source.values.clone();
    let mut sql = format!(
        "SELECT {column}, sum(count) FROM {}{condition} GROUP BY {column} ORDER BY 2 DESC, 1",
        source.sql
    );
    if let Some(limit) = limit {
        sql.push_str(" LIMIT ?");
        values.push(to_sql_int(limit));
    }
    let mut statement = db.prepare_cached(&sql)?;
    let rows = statement.query_map(rusqlite::params_from_iter(&values), |r| {
        Ok((r.get::<_, String>(0)?, count(r.get(1)?)))
    })?;
    rows.collect()
}

/// Counts per bucket, zeros included.
fn series(
    db: &Connection,
    source: &Source,
    bucket: Bucket,
    starts: &[i64],
) -> Result<Vec<(String, u64)>, rusqlite::Error> {
    let sql = format!(
        "SELECT substr(period, 1, ?), sum(count) FROM {} GROUP BY 1",
        source.sql
    );
    let mut values = vec![SqlValue::Integer(bucket.prefix_len() as i64)];
    values.extend(source.values.iter().cloned());
    let mut statement = db.prepare_cached(&sql)?;
    let counts = statement
        .query_map(rusqlite::params_from_iter(&values), |r| {
            Ok((r.get::<_, String>(0)?, count(r.get(1)?)))
        })?
        .collect::<Result<HashMap<_, _>, _>>()?;
    Ok(starts
        .iter()
        .map(|&start| {
            let label = when::stored_form(start);
            let key = label.get(..bucket.prefix_len()).unwrap_or(&label);
            let n = counts.get(key).copied().unwrap_or(0);
            (label, n)
        })
        .collect())
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
