//! Which records a query wants: the filters of `GET /api/audit`, its export,
//! analytics and `helio export`, parsed from parameters and turned into a
//! `WHERE` clause of constant fragments with bound values.

use rusqlite::types::Value as SqlValue;

use super::params::{ParamError, Params};
use super::when;

/// Filters; each one given narrows the match (they combine with AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Substring of the tool name (case-insensitive for ASCII).
    pub tool: Option<String>,
    /// Exact `policy_decision`.
    pub decision: Option<String>,
    /// Exact `block_reason`.
    pub reason: Option<String>,
    /// Blocked (has a block reason) or not.
    pub blocked: Option<bool>,
    /// Exact `session_id`.
    pub session: Option<String>,
    /// Exact `agent_id`.
    pub agent: Option<String>,
    /// First instant included (`created_at`), ms since the epoch.
    pub from_ms: Option<i64>,
    /// Last instant included (`created_at`), ms since the epoch.
    pub to_ms: Option<i64>,
    /// Substring of the tool name, arguments, matched rule, block reason or
    /// upstream error.
    pub text: Option<String>,
    /// Substring of the origin (`mcp` or an adapter).
    pub origin: Option<String>,
    /// Exact `record_kind`.
    pub record_kind: Option<String>,
    pub dry_run: Option<bool>,
    pub destructive: Option<bool>,
    /// Upstream HTTP status at least this.
    pub status_min: Option<u64>,
    /// Upstream HTTP status at most this.
    pub status_max: Option<u64>,
}

/// A `WHERE` clause (empty, or starting with ` WHERE `) and its values, in
/// placeholder order.
#[derive(Debug, Clone, Default)]
pub struct Clause {
    pub sql: String,
    pub values: Vec<SqlValue>,
}

impl Clause {
    /// Adds a condition (a constant SQL fragment) and its values.
    pub fn and(&mut self, condition: &'static str, values: impl IntoIterator<Item = SqlValue>) {
        self.sql.push_str(if self.sql.is_empty() {
            " WHERE "
        } else {
            " AND "
        });
        self.sql.push_str(condition);
        self.values.extend(values);
    }
}

impl Filter {
    /// Takes every filter parameter from `params`.
    pub fn take(params: &mut Params) -> Result<Self, ParamError> {
        let filter = Self {
            tool: params.text("tool")?,
            decision: params.word("decision")?,
            reason: params.word("reason")?,
            blocked: params.boolean("blocked")?,
            session: params.text("session")?,
            agent: params.text("agent")?,
            from_ms: time(params, "from")?.map(|s| s.first_ms),
            to_ms: time(params, "to")?.map(|s| s.last_ms),
            text: params.text("q")?,
            origin: params.text("origin")?,
            record_kind: params.word("record_kind")?,
            dry_run: params.boolean("dry_run")?,
            destructive: params.boolean("destructive")?,
            status_min: params.integer("upstream_status_min", 100, 599)?,
            status_max: params.integer("upstream_status_max", 100, 599)?,
        };
        filter.check_ranges()?;
        Ok(filter)
    }

    /// An empty range is a mistake in the request, not an empty answer.
    fn check_ranges(&self) -> Result<(), ParamError> {
        if let (Some(from), Some(to)) = (self.from_ms, self.to_ms) {
            if from > to {
                return Err(ParamError::new("from", "is after to"));
            }
        }
        if let (Some(min), Some(max)) = (self.status_min, self.status_max) {
            if min > max {
                return Err(ParamError::new(
                    "upstream_status_min",
                    "is greater than upstream_status_max",
                ));
            }
        }
        Ok(())
    }

    /// The `WHERE` clause selecting these records.
    pub fn clause(&self) -> Clause {
        let mut c = Clause::default();
        let text = |v: &String| SqlValue::Text(v.clone());
        let like = |v: &String| SqlValue::Text(format!("%{}%", escape_like(v)));
        let flag = |v: bool| SqlValue::Integer(i64::from(v));
        if let Some(v) = &self.tool {
            c.and("tool_name LIKE ? ESCAPE '\\'", [like(v)]);
        }
        if let Some(v) = &self.decision {
            c.and("policy_decision = ?", [text(v)]);
        }
        if let Some(v) = &self.reason {
            c.and("block_reason = ?", [text(v)]);
        }
        match self.blocked {
            Some(true) => c.and("block_reason IS NOT NULL", []),
            Some(false) => c.and("block_reason IS NULL", []),
            None => {}
        }
        if let Some(v) = &self.session {
            c.and("session_id = ?", [text(v)]);
        }
        if let Some(v) = &self.agent {
            c.and("agent_id = ?", [text(v)]);
        }
        if let Some(ms) = self.from_ms {
            c.and("created_at >= ?", [SqlValue::Text(when::stored_form(ms))]);
        }
        if let Some(ms) = self.to_ms {
            c.and("created_at <= ?", [SqlValue::Text(when::stored_form(ms))]);
        }
        if let Some(v) = &self.text {
            c.and(
                "(tool_name LIKE ? ESCAPE '\\' OR tool_input LIKE ? ESCAPE '\\' \
                 OR matched_rule LIKE ? ESCAPE '\\' OR block_reason LIKE ? ESCAPE '\\' \
                 OR upstream_error LIKE ? ESCAPE '\\')",
                std::iter::repeat_n(like(v), 5),
            );
        }
        if let Some(v) = &self.origin {
            c.and("origin LIKE ? ESCAPE '\\'", [like(v)]);
        }
        if let Some(v) = &self.record_kind {
            c.and("record_kind = ?", [text(v)]);
        }
        if let Some(v) = self.dry_run {
            c.and("dry_run = ?", [flag(v)]);
        }
        if let Some(v) = self.destructive {
            c.and("flagged_destructive = ?", [flag(v)]);
        }
        if let Some(v) = self.status_min {
            c.and("upstream_http_status >= ?", [super::params::to_sql_int(v)]);
        }
        if let Some(v) = self.status_max {
            c.and("upstream_http_status <= ?", [super::params::to_sql_int(v)]);
        }
        c
    }
}

fn time(params: &mut Params, name: &'static str) -> Result<Option<when::Span>, ParamError> {
    params
        .text(name)?
        .map(|v| when::parse(&v).map_err(|problem| ParamError::new(name, problem)))
        .transpose()
}

/// `value` with LIKE's wildcards taken literally (escape character `\`).
fn escape_like(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
