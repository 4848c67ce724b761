//! Which records a query wants: the filters of `GET /api/audit`, its export,
//! analytics and `helio export`, parsed from parameters and turned into a
//! `WHERE` clause of constant fragments with bound values.

use rusqlite::types::Value as SqlValue;

use super::params::{ParamError, Params};
use super::when;
use crate::audit::derived::Readiness;

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
    /// Words to search for (see [`search_words`]) in the tool name,
    /// arguments, matched rule, block reason, session, agent and upstream
    /// error.
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
    /// Adds `column IN (?, …)`, one placeholder per value (none matches
    /// nothing).
    pub fn and_in(&mut self, column: &'static str, values: &[String]) {
        let placeholders = vec!["?"; values.len()].join(", ");
        self.sql.push_str(if self.sql.is_empty() {
            " WHERE "
        } else {
            " AND "
        });
        self.sql.push_str(&format!("{column} IN ({placeholders})"));
        self.values
            .extend(values.iter().map(|v| SqlValue::Text(v.clone())));
    }

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
            text: search_text(params)?,
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

    /// The `WHERE` clause selecting these records, read as `plan` says.
    /// Once the derived tables are ready a text search is not part of it:
    /// the search index drives the query instead (see `super::select`).
    pub fn clause(&self, plan: &Plan) -> Clause {
        let mut c = Clause::default();
        self.add_to(&mut c, plan);
        c
    }

    /// Adds the conditions of [`Filter::clause`] to `c`.
    pub fn add_to(&self, c: &mut Clause, plan: &Plan) {
        let text = |v: &String| SqlValue::Text(v.clone());
        let like = |v: &String| SqlValue::Text(format!("%{}%", escape_like(v)));
        match (&self.tool, &plan.tools) {
            (Some(_), Some(names)) => c.and_in("tool_name", names),
            (Some(v), None) => c.and("tool_name LIKE ? ESCAPE '\\'", [like(v)]),
            (None, _) => {}
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
        if let (Some(v), Readiness::Records) = (&self.text, plan.derived) {
            c.and(
                "(tool_name LIKE ? ESCAPE '\\' OR tool_input LIKE ? ESCAPE '\\' \
                 OR matched_rule LIKE ? ESCAPE '\\' OR block_reason LIKE ? ESCAPE '\\' \
                 OR session_id LIKE ? ESCAPE '\\' OR agent_id LIKE ? ESCAPE '\\' \
                 OR upstream_error LIKE ? ESCAPE '\\')",
                std::iter::repeat_n(like(v), 7),
            );
        }
        match (&self.origin, &plan.origins) {
            (Some(_), Some(names)) => c.and_in("origin", names),
            (Some(v), None) => c.and("origin LIKE ? ESCAPE '\\'", [like(v)]),
            (None, _) => {}
        }
        if let Some(v) = &self.record_kind {
            c.and("record_kind = ?", [text(v)]);
        }
        // Constants rather than bound values, so the partial indexes over
        // the rare value serve them.
        match self.dry_run {
            Some(true) => c.and("dry_run = 1", []),
            Some(false) => c.and("dry_run = 0", []),
            None => {}
        }
        match self.destructive {
            Some(true) => c.and("flagged_destructive = 1", []),
            Some(false) => c.and("flagged_destructive = 0", []),
            None => {}
        }
        if let Some(v) = self.status_min {
            c.and("upstream_http_status >= ?", [super::params::to_sql_int(v)]);
        }
        if let Some(v) = self.status_max {
            c.and("upstream_http_status <= ?", [super::params::to_sql_int(v)]);
        }
    }
}

/// How a query reads a filter's conditions on this database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Whether the derived tables may be used.
    pub derived: Readiness,
    /// The tool names seen that the `tool` filter's substring matches (so
    /// the filter is an index lookup), when the derived tables are ready.
    pub tools: Option<Vec<String>>,
    /// Likewise for `origin`.
    pub origins: Option<Vec<String>>,
}

impl Plan {
    /// From the records alone, as a database without derived tables is.
    pub const RECORDS: Plan = Plan {
        derived: Readiness::Records,
        tools: None,
        origins: None,
    };
}

/// `q`: at most [`MAX_SEARCH_WORDS`] words (see [`search_words`]).
fn search_text(params: &mut Params) -> Result<Option<String>, ParamError> {
    let Some(q) = params.text("q")? else {
        return Ok(None);
    };
    let words = search_words(&q).count();
    if words == 0 {
        return Err(ParamError::new(
            "q",
            "has no letters or digits to search for (the search finds whole words, or the starts of words written with a * after them)",
        ));
    }
    if words > MAX_SEARCH_WORDS {
        return Err(ParamError::new(
            "q",
            format!("has {words} words; at most {MAX_SEARCH_WORDS} are searched for at once"),
        ));
    }
    Ok(Some(q))
}

/// Most words in one search.
pub const MAX_SEARCH_WORDS: usize = 16;

/// The words of a search, as the index splits text into words (the
/// `unicode61` tokenizer: letters and digits; the rest separates), and
/// whether each is written as a prefix (`refu*`).
pub fn search_words(q: &str) -> impl Iterator<Item = (&str, bool)> {
    let mut rest = q;
    std::iter::from_fn(move || {
        let start = rest.find(char::is_alphanumeric)?;
        let word = &rest[start..];
        let end = word
            .find(|c: char| !c.is_alphanumeric())
            .unwrap_or(word.len());
        let prefix = word[end..].starts_with('*');
        rest = &word[end..];
        Some((&word[..end], prefix))
    })
}

/// The full-text query for `q`: every word, whole, or as the start of a
/// word where it is written with a `*`. Whole words by default: the index
/// reads a whole word's list in order as far as a page needs, while a
/// prefix stands for every word it starts, whose lists are read in full
/// and merged first. Words are letters and digits only, so quoting them is
/// enough.
pub(super) fn fts_query(q: &str) -> String {
    search_words(q)
        .map(|(w, prefix)| {
            if prefix {
                format!("\"{w}\"*")
            } else {
                format!("\"{w}\"")
            }
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn time(params: &mut Params, name: &'static str) -> Result<Option<when::Span>, ParamError> {
    params
        .text(name)?
        .map(|v| when::parse(&v).map_err(|problem| ParamError::new(name, problem)))
        .transpose()
}

/// `value` with LIKE's wildcards taken literally (escape character `\`).
pub(super) fn escape_like(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
