//! Caller JSON read exactly as an upstream would read it, or not at all.
//!
//! A policy is only as good as Helio's view of the call. Text that common
//! upstream parsers (Node's `JSON.parse`, Python's `json`) accept but Helio
//! would read differently must never be evaluated on a partial view: a number
//! out of `f64` range (`1e400`, which they read as infinity), an integer
//! `f64` cannot hold exactly (Python keeps it whole, Helio's rules compare
//! `f64`), a lone UTF-16 surrogate escape (`"\ud800"`), nesting deeper than
//! the parser's limit, or an object with the same key twice (which copy an
//! upstream keeps differs between parsers). [`parse`] refuses all of them and
//! says where the problem is.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Why a JSON text cannot be read exactly, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct Unreadable {
    /// A JSON path into the text (`$.arguments.pad`, `$.items[3]`).
    pub path: String,
    /// What is wrong there, without the parser's line/column noise.
    pub problem: String,
}

/// Parses `text` into a [`Value`], refusing what an upstream would read
/// differently (see the module docs).
pub fn parse(text: &str) -> Result<Value, Unreadable> {
    let path = RefCell::new(Vec::new());
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed = Exact { path: &path }
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    parsed.map_err(|error| {
        // Segments were added on the way back up, innermost first.
        let mut segments = path.into_inner();
        segments.reverse();
        Unreadable {
            path: render_path(&segments),
            problem: problem_of(&error),
        }
    })
}

#[derive(Debug, Clone)]
enum Segment {
    Key(String),
    Index(usize),
}

fn render_path(segments: &[Segment]) -> String {
    let mut out = String::from("$");
    for segment in segments {
        match segment {
            Segment::Key(key)
                if !key.is_empty()
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
            {
                out.push('.');
                out.push_str(key);
            }
            Segment::Key(key) => {
                out.push('[');
                out.push_str(&Value::String(key.chars().take(64).collect()).to_string());
                out.push(']');
            }
            Segment::Index(index) => {
                out.push('[');
                out.push_str(&index.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// serde_json's message without its " at line L column C" suffix: the
/// path already says where, and positions in a re-parsed fragment mislead.
fn problem_of(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&suffix) {
        Some(problem) => problem.to_owned(),
        None => text,
    }
}

/// One value, read exactly. On error, each enclosing array and object adds
/// its segment to `path` as the error passes (so success allocates none).
struct Exact<'p> {
    path: &'p RefCell<Vec<Segment>>,
}

impl<'de> DeserializeSeed<'de> for Exact<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Exact<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Value, E> {
        if !exact_in_f64(i128::from(n)) {
            return Err(inexact_integer());
        }
        Ok(Value::Number(n.into()))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Value, E> {
        if !exact_in_f64(i128::from(n)) {
            return Err(inexact_integer());
        }
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Value, E> {
        // serde_json hands integer literals beyond u64 over as f64, so an
        // integral value this large may have been a whole number written
        // out that an upstream keeps exactly.
        if n.fract() == 0.0 && n.abs() >= 18_446_744_073_709_551_616.0 {
            return Err(inexact_integer());
        }
        // serde_json refuses what overflows, so `n` is finite here.
        Number::from_f64(n)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            match seq.next_element_seed(Exact { path: self.path }) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => return Ok(Value::Array(items)),
                Err(error) => {
                    self.path.borrow_mut().push(Segment::Index(items.len()));
                    return Err(error);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                self.path.borrow_mut().push(Segment::Key(key));
                return Err(de::Error::custom(
                    "the same key appears twice in one object (upstreams disagree on which copy counts)",
                ));
            }
            match access.next_value_seed(Exact { path: self.path }) {
                Ok(value) => {
                    map.insert(key, value);
                }
                Err(error) => {
                    self.path.borrow_mut().push(Segment::Key(key));
                    return Err(error);
                }
            }
        }
        Ok(Value::Object(map))
    }
}

/// Whether `f64`, which Helio's rules compare in, holds `n` exactly
/// (always up to ±2^53; beyond, only by luck of its bits).
fn exact_in_f64(n: i128) -> bool {
    (n as f64) as i128 == n
}

fn inexact_integer<E: de::Error>() -> E {
    E::custom("integer too large to compare exactly (beyond ±2^53); send it as a string")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused(text: &str) -> Unreadable {
        parse(text).expect_err(text)
    }

    #[test]
    fn reads_ordinary_json_as_serde_json_does() {
        let text = r#"{"a":[1,-2,3.5,"x\u00e9\ud83d\ude00",null,true,{"b":{}}],"n":9007199254740992,"m":-9007199254740992,"big":4611686018427387904,"small":1e-400}"#;
        let want: Value = serde_json::from_str(text).expect("json");
        assert_eq!(parse(text).expect("exact"), want);
        assert_eq!(parse(" 5 ").expect("scalar"), json!(5));
    }

    #[test]
    fn refuses_what_an_upstream_reads_differently_and_says_where() {
        let cases = [
            (
                r#"{"env":"prod","pad":1e400}"#,
                "$.pad",
                "number out of range",
            ),
            (r#"{"a":[0,-1e999]}"#, "$.a[1]", "number out of range"),
            (r#"{"s":"\ud800"}"#, "$.s", "escape"),
            (r#"{"s":"ok","t":"\udc00x"}"#, "$.t", "escape"),
            (
                r#"{"env":"dev","env":"prod"}"#,
                "$.env",
                "the same key appears twice",
            ),
            (r#"{"id":9007199254740993}"#, "$.id", "integer too large"),
            (r#"{"id":-9007199254740993}"#, "$.id", "integer too large"),
            (r#"{"id":9223372036854775807}"#, "$.id", "integer too large"),
            (
                r#"{"id":18446744073709551615}"#,
                "$.id",
                "integer too large",
            ),
            (
                r#"{"id":123456789012345678901234}"#,
                "$.id",
                "integer too large",
            ),
            (
                r#"{"a b":{"c":[1,{"d":1e400}]}}"#,
                r#"$["a b"].c[1].d"#,
                "out of range",
            ),
        ];
        for (text, path, problem) in cases {
            let error = refused(text);
            assert_eq!(error.path, path, "{text}");
            assert!(error.problem.contains(problem), "{text}: {error}");
            assert!(!error.problem.contains("line 1"), "{error}");
        }
    }

    #[test]
    fn refuses_nesting_beyond_the_parser_limit() {
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let error = refused(&format!(r#"{{"x":{deep}}}"#));
        assert!(error.problem.contains("recursion limit"), "{error}");
        let fine = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert!(parse(&fine).is_ok());
    }

    #[test]
    fn refuses_trailing_text_and_broken_json() {
        assert!(parse(r#"{"a":1} x"#).is_err());
        assert!(parse(r#"{"a":"#).is_err());
    }
}
