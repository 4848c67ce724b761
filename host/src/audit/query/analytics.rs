//! `GET /api/analytics`: counts by decision, block reason and tool over a
//! time range, and a time series of records per minute or hour.

use std::collections::HashMap;

use rusqlite::Connection;
use serde_json::{json, Value};

use super::filter::Plan;
use super::params::{quoted, ParamError, Params};
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

/// Counts everything in one pass over rollup-shaped rows (from the
/// rollups when they can answer for the filter, else from the records),
/// so the groups, totals and series agree and the rows are read once.
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
    let sql = format!(
        "SELECT period, policy_decision, block_reason, tool_name, record_kind, dry_run, \
         approval_status, count FROM {}",
        source.sql
    );
    let mut tally = Tally::default();
    let mut statement = db.prepare_cached(&sql)?;
    let mut rows = statement.query(rusqlite::params_from_iter(&source.values))?;
    let width = request.bucket.prefix_len();
    while let Some(row) = rows.next()? {
        tally.add(
            &Row {
                period: row.get_ref(0)?.as_str()?,
                decision: row.get_ref(1)?.as_str()?,
                reason: row.get_ref(2)?.as_str()?,
                tool: row.get_ref(3)?.as_str()?,
                kind: row.get_ref(4)?.as_str()?,
                dry_run: row.get::<_, i64>(5)? != 0,
                approval: row.get_ref(6)?.as_str()?,
                count: count(row.get(7)?),
            },
            width,
        );
    }
    Ok(tally.finish(range, request, starts))
}

/// One rollup-shaped row.
struct Row<'a> {
    period: &'a str,
    decision: &'a str,
    /// `''` for none.
    reason: &'a str,
    tool: &'a str,
    kind: &'a str,
    dry_run: bool,
    /// `''` for none.
    approval: &'a str,
    count: u64,
}

#[derive(Default)]
struct Tally {
    total: u64,
    allowed: u64,
    blocked: u64,
    dry_run: u64,
    applied: u64,
    held: u64,
    approved: u64,
    by_decision: HashMap<String, u64>,
    by_reason: HashMap<String, u64>,
    by_tool: HashMap<String, u64>,
    by_bucket: HashMap<String, u64>,
}

impl Tally {
    fn add(&mut self, row: &Row<'_>, width: usize) {
        let n = row.count;
        let blocked = !row.reason.is_empty();
        self.total += n;
        if row.decision == "allow" && !blocked && !row.dry_run {
            self.allowed += n;
        }
        if blocked {
            self.blocked += n;
            bump(&mut self.by_reason, row.reason, n);
        }
        if row.dry_run {
            self.dry_run += n;
        }
        if row.kind == "tool_call" && !blocked && !row.dry_run {
            self.applied += n;
        }
        if !row.approval.is_empty() {
            self.held += n;
        }
        if matches!(row.approval, "approved" | "break_glass") {
            self.approved += n;
        }
        bump(&mut self.by_decision, row.decision, n);
        // Drift events and transport rejections carry sentinel names.
        if row.kind == "tool_call" && row.decision != "rejected" {
            bump(&mut self.by_tool, row.tool, n);
        }
        bump(
            &mut self.by_bucket,
            row.period.get(..width).unwrap_or(row.period),
            n,
        );
    }

    fn finish(self, range: Range, request: Request, starts: &[i64]) -> Analytics {
        let width = request.bucket.prefix_len();
        Analytics {
            range,
            bucket: request.bucket,
            total: self.total,
            allowed_total: self.allowed,
            blocked_total: self.blocked,
            dry_run_total: self.dry_run,
            applied_total: self.applied,
            held_total: self.held,
            approved_total: self.approved,
            by_decision: ranked(self.by_decision, None),
            by_block_reason: ranked(self.by_reason, None),
            top_tools: ranked(self.by_tool, Some(request.top)),
            series: starts
                .iter()
                .map(|&start| {
                    let label = when::stored_form(start);
                    let key = label.get(..width).unwrap_or(&label);
                    let n = self.by_bucket.get(key).copied().unwrap_or(0);
                    (label, n)
                })
                .collect(),
        }
    }
}

fn bump(counts: &mut HashMap<String, u64>, key: &str, n: u64) {
    match counts.get_mut(key) {
        Some(count) => *count += n,
        None => {
            counts.insert(key.to_owned(), n);
        }
    }
}

/// `(key, count)`, most first, then by key; at most `limit`.
fn ranked(counts: HashMap<String, u64>, limit: Option<u64>) -> Vec<(String, u64)> {
    let mut list: Vec<(String, u64)> = counts.into_iter().collect();
    list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    if let Some(limit) = limit {
        list.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    list
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

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
