//! Query parameters, parsed strictly: a bad value is an error that names the
//! parameter and says what is wrong, never a silent default. (The original
//! Helio fell back to defaults on bad numbers and ignored bad booleans, so a
//! typo returned a different page than the caller asked for.)

use std::collections::BTreeMap;

use rusqlite::types::Value as SqlValue;

/// Longest text value accepted, in characters: filters are names and
/// search terms, not documents.
pub const MAX_TEXT: usize = 1024;

/// A parameter and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{parameter}: {problem}")]
pub struct ParamError {
    pub parameter: String,
    pub problem: String,
}

impl ParamError {
    pub fn new(parameter: &str, problem: impl Into<String>) -> Self {
        Self {
            parameter: parameter.to_owned(),
            problem: problem.into(),
        }
    }

    /// The same error with the parameter spelt as a command-line flag.
    pub fn as_flag(self) -> Self {
        Self {
            parameter: format!("--{}", self.parameter.replace('_', "-")),
            problem: self.problem,
        }
    }
}

/// A request's parameters by name. Each `take` consumes one; [`finish`]
/// rejects whatever nobody took, so a misspelt filter is an error rather
/// than a query that silently matches everything.
///
/// [`finish`]: Params::finish
#[derive(Debug, Default)]
pub struct Params {
    values: BTreeMap<String, String>,
    known: Vec<&'static str>,
}

impl Params {
    /// Parses a URL query string (`a=1&b=two`, percent- and `+`-decoded).
    pub fn from_query(query: Option<&str>) -> Result<Self, ParamError> {
        let pairs = url::form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned();
        Self::from_pairs(pairs)
    }

    /// Collects name/value pairs; a name given twice is an error (which of
    /// the two was meant is not for the server to guess).
    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ParamError> {
        let mut values = BTreeMap::new();
        for (name, value) in pairs {
            if values.contains_key(&name) {
                return Err(ParamError::new(&name, "given more than once"));
            }
            values.insert(name, value);
        }
        Ok(Self {
            values,
            known: Vec::new(),
        })
    }

    /// The value of `name`, if given and not empty (an empty value, as an
    /// HTML form sends for a blank field, means "not given").
    pub fn take(&mut self, name: &'static str) -> Option<String> {
        self.known.push(name);
        self.values.remove(name).filter(|v| !v.is_empty())
    }

    /// Fails on any parameter nobody took, listing the accepted ones.
    pub fn finish(self) -> Result<(), ParamError> {
        let Some(name) = self.values.keys().next() else {
            return Ok(());
        };
        let problem = if self.known.is_empty() {
            "unknown parameter; this route takes none".to_owned()
        } else {
            format!("unknown parameter; accepted: {}", self.known.join(", "))
        };
        Err(ParamError::new(name, problem))
    }

    /// Text of at most [`MAX_TEXT`] characters.
    pub fn text(&mut self, name: &'static str) -> Result<Option<String>, ParamError> {
        let Some(value) = self.take(name) else {
            return Ok(None);
        };
        if value.chars().count() > MAX_TEXT {
            return Err(ParamError::new(
                name,
                format!("longer than {MAX_TEXT} characters"),
            ));
        }
        Ok(Some(value))
    }

    /// A vocabulary word such as a decision or block reason: letters,
    /// digits, `_`, `-`, `.`, `:`, at most 128.
    pub fn word(&mut self, name: &'static str) -> Result<Option<String>, ParamError> {
        let Some(value) = self.take(name) else {
            return Ok(None);
        };
        let fits = value.len() <= 128
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
        if !fits {
            return Err(ParamError::new(
                name,
                format!(
                    "{} is not a valid value (letters, digits, _ - . : only, at most 128)",
                    quoted(&value)
                ),
            ));
        }
        Ok(Some(value))
    }

    /// `true`/`false` (or `1`/`0`).
    pub fn boolean(&mut self, name: &'static str) -> Result<Option<bool>, ParamError> {
        match self.take(name).as_deref() {
            None => Ok(None),
            Some("true" | "1") => Ok(Some(true)),
            Some("false" | "0") => Ok(Some(false)),
            Some(other) => Err(ParamError::new(
                name,
                format!("must be true or false, got {}", quoted(other)),
            )),
        }
    }

    /// A whole number in `min..=max`, written in plain decimal digits.
    pub fn integer(
        &mut self,
        name: &'static str,
        min: u64,
        max: u64,
    ) -> Result<Option<u64>, ParamError> {
        let Some(value) = self.take(name) else {
            return Ok(None);
        };
        let range = || format!("must be a whole number from {min} to {max}");
        // Digits only: no sign, no spaces, no `1e3` or `0x10`.
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParamError::new(
                name,
                format!("{}, got {}", range(), quoted(&value)),
            ));
        }
        match value.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ParamError::new(
                name,
                format!("{}, got {}", range(), quoted(&value)),
            )),
        }
    }
}

/// How far a route lets a caller page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub default_limit: u64,
    pub max_limit: u64,
}

/// `GET /api/audit`: 50 by default, up to 1000.
pub const LIST_BOUNDS: Bounds = Bounds {
    default_limit: 50,
    max_limit: 1000,
};
/// `GET /api/feed`: the original's 1..=200, 50 by default.
pub const FEED_BOUNDS: Bounds = Bounds {
    default_limit: 50,
    max_limit: 200,
};
/// Exports (API and CLI): 10 000 by default, up to 100 000.
pub const EXPORT_BOUNDS: Bounds = Bounds {
    default_limit: 10_000,
    max_limit: 100_000,
};

/// `GET /api/budgets/:name/events`: 50 by default, up to 1000.
pub const LEDGER_BOUNDS: Bounds = Bounds {
    default_limit: 50,
    max_limit: 1000,
};
/// A budget's ledger exported (API and CLI): 1000 by default, up to 10 000
/// (the original's bounds; read at once, not streamed).
pub const LEDGER_EXPORT_BOUNDS: Bounds = Bounds {
    default_limit: 1000,
    max_limit: 10_000,
};

/// Largest `offset`: SQLite takes a signed 64-bit integer.
const MAX_OFFSET: u64 = i64::MAX as u64;

/// A page: `limit` records after skipping `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: u64,
    pub offset: u64,
}

impl Page {
    /// `limit` and `offset`. A limit outside the route's bounds is an error
    /// rather than clamped: a client that asked for 5000 and silently got
    /// 1000 would compute its next offset wrongly.
    pub fn take(params: &mut Params, bounds: Bounds) -> Result<Self, ParamError> {
        Ok(Self {
            limit: take_limit(params, bounds)?,
            offset: params.integer("offset", 0, MAX_OFFSET)?.unwrap_or(0),
        })
    }
}

/// Where a page of a listing starts: just past the record written at
/// `created_at` with this `rowid` (the last of the page before). Unlike an
/// offset, it lands on the same record however many are written meanwhile,
/// and the read starts there instead of counting its way to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: String,
    pub rowid: i64,
}

impl Cursor {
    /// `cursor`: the `next_cursor` of the page before. Not with `offset`.
    pub fn take(params: &mut Params, page: Page) -> Result<Option<Self>, ParamError> {
        let Some(text) = params.take("cursor") else {
            return Ok(None);
        };
        if page.offset > 0 {
            return Err(ParamError::new(
                "cursor",
                "cannot be combined with offset (a cursor already says where the page starts)",
            ));
        }
        Self::parse(&text).map(Some).ok_or_else(|| {
            ParamError::new(
                "cursor",
                format!(
                    "{} is not a cursor this API gave out (use next_cursor from the page before)",
                    quoted(&text)
                ),
            )
        })
    }

    fn parse(text: &str) -> Option<Self> {
        let (created_at, rowid) = text.split_once('~')?;
        let span = super::when::parse(created_at).ok()?;
        // Only the exact stored form: anything else was not handed out.
        if super::when::stored_form(span.first_ms) != created_at {
            return None;
        }
        if rowid.is_empty() || !rowid.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Self {
            created_at: created_at.to_owned(),
            rowid: rowid.parse().ok()?,
        })
    }

    pub fn to_text(&self) -> String {
        format!("{}~{}", self.created_at, self.rowid)
    }
}

/// `limit` within `bounds` (default when absent).
pub fn take_limit(params: &mut Params, bounds: Bounds) -> Result<u64, ParamError> {
    Ok(params
        .integer("limit", 1, bounds.max_limit)?
        .unwrap_or(bounds.default_limit))
}

/// A count or offset as an SQLite integer.
pub fn to_sql_int(n: u64) -> SqlValue {
    SqlValue::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

/// A value quoted for an error message, cut so a huge value cannot bloat
/// the response.
pub fn quoted(value: &str) -> String {
    const SHOWN: usize = 64;
    if value.chars().count() <= SHOWN {
        return format!("{value:?}");
    }
    let cut: String = value.chars().take(SHOWN).collect();
    format!("{cut:?}…")
}
