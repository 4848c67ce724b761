//! `input` conditions: operators on argument paths.

use regex_lite::Regex;
use serde_json::Value as Json;

use crate::{CallView, Value};

/// A value an `eq`/`neq` compares against.
#[derive(Debug, Clone)]
pub enum Expected {
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
#[derive(Debug, Clone, Default)]
pub struct Operators {
    pub eq: Option<Expected>,
    pub neq: Option<Expected>,
    pub gt: Option<f64>,
    pub gte: Option<f64>,
    pub lt: Option<f64>,
    pub lte: Option<f64>,
    pub contains: Option<String>,
    pub regex: Option<Regex>,
}

/// `input.<path>`: operators on one argument.
#[derive(Debug, Clone)]
pub struct InputCondition {
    pub path: String,
    pub ops: Operators,
}

/// Whether a call satisfies an `input` map: it must carry arguments (even
/// when the map is empty, as in the original) and every condition must hold.
pub fn inputs_match(conditions: &[InputCondition], call: &impl CallView) -> bool {
    call.has_arguments()
        && conditions
            .iter()
            .all(|c| c.matches(call.argument(&c.path).as_ref()))
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
        numeric_bounds_hold(ops, value) && text_operators_hold(ops, value)
    }
}

/// `gt`/`gte`/`lt`/`lte`: numbers only, a type mismatch is false.
fn numeric_bounds_hold(ops: &Operators, value: &Value) -> bool {
    if ops.gt.is_none() && ops.gte.is_none() && ops.lt.is_none() && ops.lte.is_none() {
        return true;
    }
    let Value::Number(n) = *value else {
        return false;
    };
    ops.gt.is_none_or(|b| n > b)
        && ops.gte.is_none_or(|b| n >= b)
        && ops.lt.is_none_or(|b| n < b)
        && ops.lte.is_none_or(|b| n <= b)
}

/// `contains`/`regex`: strings only, a type mismatch is false.
fn text_operators_hold(ops: &Operators, value: &Value) -> bool {
    if ops.contains.is_none() && ops.regex.is_none() {
        return true;
    }
    let Value::Text(s) = value else {
        return false;
    };
    ops.contains
        .as_ref()
        .is_none_or(|needle| s.contains(needle.as_str()))
        && ops.regex.as_ref().is_none_or(|re| re.is_match(s))
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
pub fn json_eq(a: &Json, b: &Json) -> bool {
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

#[cfg(test)]
mod tests;
