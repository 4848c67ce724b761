//! Compiled match conditions and how they are tested against a call.

use regex_lite::Regex;
use serde_json::Value as Json;

use super::{Annotations, CallView, Value, Verdict};

/// One compiled rule: its conditions and its prepared verdict.
#[derive(Debug)]
pub(crate) struct Rule {
    pub conditions: Conditions,
    pub verdict: Verdict,
}

/// A rule's `match`: every present condition must hold.
#[derive(Debug)]
pub(crate) struct Conditions {
    pub tool: Option<Glob>,
    pub environment: Option<String>,
    pub annotations: AnnotationConditions,
    /// `Some` when the rule has a `match.input` key (even an empty one): the
    /// call must then carry arguments.
    pub input: Option<Vec<InputCondition>>,
    pub metadata: Vec<MetadataCondition>,
}

impl Conditions {
    /// Whether every present condition holds. Cheap conditions (tool name,
    /// environment, annotations) are tested before those that ask the host
    /// for argument or metadata values.
    pub fn matches(&self, call: &impl CallView) -> bool {
        if let Some(glob) = &self.tool {
            if !glob.matches(call.tool()) {
                return false;
            }
        }
        if let Some(env) = &self.environment {
            if call.environment() != Some(env.as_str()) {
                return false;
            }
        }
        if !self.annotations.is_empty() && !self.annotations.matches(call.annotations()) {
            return false;
        }
        if let Some(input) = &self.input {
            if !call.has_arguments() {
                return false;
            }
            if !input
                .iter()
                .all(|c| c.matches(call.argument(&c.path).as_ref()))
            {
                return false;
            }
        }
        self.metadata
            .iter()
            .all(|c| c.matches(call.metadata(&c.key).as_deref()))
    }
}

/// A `match.tool` glob, with glob-match semantics.
#[derive(Debug)]
pub(crate) enum Glob {
    /// No glob syntax: plain equality.
    Literal(String),
    /// Matched with `glob_match`.
    Pattern(String),
}

impl Glob {
    /// Validates what glob-match would otherwise silently treat as a
    /// never-matching pattern.
    pub fn compile(glob: &str) -> Result<Glob, String> {
        if glob.is_empty() {
            return Err("tool glob must not be empty".into());
        }
        let bytes = glob.as_bytes();
        let mut depth = 0usize;
        let mut special = bytes[0] == b'!';
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => {
                    special = true;
                    i += 1;
                    if i >= bytes.len() {
                        return Err(format!(
                            "invalid glob \"{glob}\": ends with an unfinished escape (\\)"
                        ));
                    }
                }
                b'[' => {
                    special = true;
                    // The class runs to the first `]` that is not its first member.
                    let mut j = i + 1;
                    if j < bytes.len() && matches!(bytes[j], b'^' | b'!') {
                        j += 1;
                    }
                    let mut first = true;
                    while j < bytes.len() && (first || bytes[j] != b']') {
                        if bytes[j] == b'\\' {
                            j += 1;
                        }
                        j += 1;
                        first = false;
                    }
                    if j >= bytes.len() {
                        return Err(format!(
                            "invalid glob \"{glob}\": unclosed character class ([ without ])"
                        ));
                    }
                    i = j;
                }
                b'{' => {
                    special = true;
                    depth += 1;
                    if depth > 10 {
                        return Err(format!(
                            "invalid glob \"{glob}\": braces nested more than 10 deep"
                        ));
                    }
                }
                b'}' => depth = depth.saturating_sub(1),
                b'*' | b'?' => special = true,
                _ => {}
            }
            i += 1;
        }
        if depth > 0 {
            return Err(format!(
                "invalid glob \"{glob}\": unclosed brace ({{ without }})"
            ));
        }
        Ok(if special {
            Glob::Pattern(glob.to_owned())
        } else {
            Glob::Literal(glob.to_owned())
        })
    }

    pub fn matches(&self, tool: &str) -> bool {
        match self {
            Glob::Literal(name) => name == tool,
            Glob::Pattern(glob) => glob_match::glob_match(glob, tool),
        }
    }
}

/// `match.annotations`: each listed hint must equal the call's.
#[derive(Debug, Default)]
pub(crate) struct AnnotationConditions {
    pub read_only_hint: Option<bool>,
    pub destructive_hint: Option<bool>,
    pub idempotent_hint: Option<bool>,
    pub open_world_hint: Option<bool>,
}

impl AnnotationConditions {
    fn is_empty(&self) -> bool {
        self.read_only_hint.is_none()
            && self.destructive_hint.is_none()
            && self.idempotent_hint.is_none()
            && self.open_world_hint.is_none()
    }

    fn matches(&self, a: Annotations) -> bool {
        fn ok(want: Option<bool>, have: bool) -> bool {
            want.is_none_or(|w| w == have)
        }
        ok(self.read_only_hint, a.read_only_hint)
            && ok(self.destructive_hint, a.destructive_hint)
            && ok(self.idempotent_hint, a.idempotent_hint)
            && ok(self.open_world_hint, a.open_world_hint)
    }
}

/// A value an `eq`/`neq` compares against.
#[derive(Debug)]
pub(crate) enum Expected {
    Null,
    Bool(bool),
    Number(f64),
    Text(String),
    /// An array or object, compared by deep equality.
    Structured(Json),
}

impl Expected {
    pub fn from_json(value: &Json) -> Expected {
        match value {
            Json::Null => Expected::Null,
            Json::Bool(b) => Expected::Bool(*b),
            // Every JSON number the host can hand over is an f64, so compare as one.
            Json::Number(n) => Expected::Number(n.as_f64().unwrap_or(f64::NAN)),
            Json::String(s) => Expected::Text(s.clone()),
            Json::Array(_) | Json::Object(_) => Expected::Structured(value.clone()),
        }
    }
}

/// The operators on one argument path, all of which must hold.
#[derive(Debug, Default)]
pub(crate) struct Operators {
    pub eq: Option<Expected>,
    pub neq: Option<Expected>,
    pub gt: Option<f64>,
    pub gte: Option<f64>,
    pub lt: Option<f64>,
    pub lte: Option<f64>,
    pub contains: Option<String>,
    pub regex: Option<Regex>,
}

/// `match.input.<path>`.
#[derive(Debug)]
pub(crate) struct InputCondition {
    pub path: String,
    pub ops: Operators,
}

impl InputCondition {
    /// `value` is the argument at `path` (none when absent). Every operator
    /// is false on an absent field.
    pub fn matches(&self, value: Option<&Value>) -> bool {
        let Some(value) = value else {
            return false;
        };
        let ops = &self.ops;
        // The structured argument, parsed at most once for eq and neq together.
        let mut parsed: Option<Option<Json>> = None;
        if let Some(expected) = &ops.eq {
            if !equals(expected, value, &mut parsed) {
                return false;
            }
        }
        if let Some(expected) = &ops.neq {
            if equals(expected, value, &mut parsed) {
                return false;
            }
        }
        if ops.gt.is_some() || ops.gte.is_some() || ops.lt.is_some() || ops.lte.is_some() {
            let Value::Number(n) = *value else {
                return false;
            };
            let holds = ops.gt.is_none_or(|b| n > b)
                && ops.gte.is_none_or(|b| n >= b)
                && ops.lt.is_none_or(|b| n < b)
                && ops.lte.is_none_or(|b| n <= b);
            if !holds {
                return false;
            }
        }
        if ops.contains.is_some() || ops.regex.is_some() {
            let Value::Text(s) = value else {
                return false;
            };
            if ops
                .contains
                .as_ref()
                .is_some_and(|needle| !s.contains(needle.as_str()))
            {
                return false;
            }
            if ops.regex.as_ref().is_some_and(|re| !re.is_match(s)) {
                return false;
            }
        }
        true
    }
}

/// JSON equality between a configured value and an argument. Arrays and
/// objects compare deeply (the original compared them by reference, so they
/// never matched; deep equality is deliberate).
fn equals(expected: &Expected, value: &Value, parsed: &mut Option<Option<Json>>) -> bool {
    match (expected, value) {
        (Expected::Null, Value::Null) => true,
        (Expected::Bool(a), Value::Bool(b)) => a == b,
        (Expected::Number(a), Value::Number(b)) => a == b,
        (Expected::Text(a), Value::Text(b)) => a == b,
        (Expected::Structured(a), Value::Structured(text)) => {
            // Text the host promised is JSON but is not compares unequal.
            match parsed.get_or_insert_with(|| serde_json::from_str(text).ok()) {
                Some(b) => json_eq(a, b),
                None => false,
            }
        }
        _ => false,
    }
}

/// Deep JSON equality with numbers compared as f64 (so `1` equals `1.0`,
/// as in JavaScript).
pub(crate) fn json_eq(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Null, Json::Null) => true,
        (Json::Bool(x), Json::Bool(y)) => x == y,
        (Json::Number(x), Json::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Json::String(x), Json::String(y)) => x == y,
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => false,
    }
}

/// `match.metadata.<key>`: string operators on an adapter-supplied value.
#[derive(Debug)]
pub(crate) struct MetadataCondition {
    pub key: String,
    pub eq: Option<String>,
    pub neq: Option<String>,
    pub contains: Option<String>,
    pub regex: Option<Regex>,
}

impl MetadataCondition {
    /// Every operator is false on an absent value (always the case on the
    /// MCP path, so rules with metadata conditions never match there).
    pub fn matches(&self, value: Option<&str>) -> bool {
        let Some(value) = value else {
            return false;
        };
        self.eq.as_deref().is_none_or(|e| value == e)
            && self.neq.as_deref().is_none_or(|n| value != n)
            && self.contains.as_deref().is_none_or(|c| value.contains(c))
            && self.regex.as_ref().is_none_or(|re| re.is_match(value))
    }
}
