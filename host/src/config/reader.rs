//! A schema walker over a parsed YAML document that keeps going after the first
//! problem, so `helio validate` can list every error with its YAML path.
//!
//! serde's derive stops at the first error; operators fixing a config want the
//! whole list at once, each with a "did you mean" where a key is misspelt.

use helio_syntax::suggest::{invalid_value, unknown_key};
use std::fmt;
use std::time::Duration;

use yaml_serde::{Mapping, Value};

/// One problem in the configuration, located by its YAML path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "(top level): {}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A YAML path such as `policies.rules[2].limits.window`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Path(String);

impl Path {
    pub fn root() -> Self {
        Self(String::new())
    }

    pub fn key(&self, key: &str) -> Self {
        if self.0.is_empty() {
            Self(key.to_owned())
        } else {
            Self(format!("{}.{key}", self.0))
        }
    }

    pub fn index(&self, index: usize) -> Self {
        Self(format!("{}[{index}]", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("(top level)")
        } else {
            f.write_str(&self.0)
        }
    }
}

/// Collects issues.
#[derive(Debug, Default)]
pub struct Reader {
    issues: Vec<Issue>,
}

impl Reader {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn error(&mut self, path: &Path, message: impl Into<String>) {
        self.issues.push(Issue {
            path: path.as_str().to_owned(),
            message: message.into(),
        });
    }

    pub fn into_issues(self) -> Vec<Issue> {
        self.issues
    }

    /// Opens a mapping, reporting every key that is not in `known`.
    pub fn object<'v>(
        &mut self,
        value: &'v Value,
        path: &Path,
        known: &'static [&'static str],
    ) -> Option<Obj<'v>> {
        let Value::Mapping(map) = value else {
            self.error(path, format!("expected a mapping, found {}", kind(value)));
            return None;
        };
        for key in map.keys() {
            match key.as_str() {
                Some(name) if known.contains(&name) => {}
                Some(name) => self.error(path, unknown_key(name, known)),
                None => self.error(path, format!("keys must be strings, found {}", kind(key))),
            }
        }
        Some(Obj {
            map,
            path: path.clone(),
        })
    }

    /// Looks up `key` in `obj`. A key set to YAML null counts as absent, so
    /// an empty section (`policies:` with nothing under it) means defaults.
    pub fn field<'v>(&mut self, obj: &Obj<'v>, key: &str) -> Option<(&'v Value, Path)> {
        let value = obj.map.get(key)?;
        if value.is_null() {
            return None;
        }
        Some((value, obj.path.key(key)))
    }

    /// A required field: reports `missing required key` when absent.
    pub fn required<'v>(&mut self, obj: &Obj<'v>, key: &str) -> Option<(&'v Value, Path)> {
        let found = self.field(obj, key);
        if found.is_none() {
            self.error(&obj.path.key(key), "missing required key");
        }
        found
    }

    pub fn string(&mut self, value: &Value, path: &Path) -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            other => {
                self.error(
                    path,
                    format!(
                        "expected a string, found {} (quote the value if it is meant as text)",
                        kind(other)
                    ),
                );
                None
            }
        }
    }

    pub fn non_empty_string(&mut self, value: &Value, path: &Path) -> Option<String> {
        let s = self.string(value, path)?;
        if s.trim().is_empty() {
            self.error(path, "must not be empty");
            return None;
        }
        Some(s)
    }

    /// Booleans; the strings "true"/"false" are accepted so `${VAR}` works.
    pub fn bool(&mut self, value: &Value, path: &Path) -> Option<bool> {
        match value {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s == "true" => Some(true),
            Value::String(s) if s == "false" => Some(false),
            other => {
                self.error(
                    path,
                    format!("expected true or false, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// A TCP port; digit strings are accepted so `${PORT}` works.
    pub fn port(&mut self, value: &Value, path: &Path) -> Option<u16> {
        let number = match value {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        match number {
            Some(n) if (1..=65535).contains(&n) => u16::try_from(n).ok(),
            Some(n) => {
                self.error(path, format!("port {n} is out of range (1-65535)"));
                None
            }
            None => {
                self.error(
                    path,
                    format!("expected a port number, found {}", describe(value)),
                );
                None
            }
        }
    }

    pub fn positive_integer(&mut self, value: &Value, path: &Path) -> Option<u64> {
        match value {
            Value::Number(n) => match n.as_u64() {
                Some(v) if v > 0 => Some(v),
                _ => {
                    self.error(path, format!("expected a positive integer, found {n}"));
                    None
                }
            },
            other => {
                self.error(
                    path,
                    format!("expected a positive integer, found {}", describe(other)),
                );
                None
            }
        }
    }

    pub fn duration(&mut self, value: &Value, path: &Path) -> Option<Duration> {
        let text = self.string(value, path)?;
        match parse_duration(&text) {
            Some(d) => Some(d),
            None => {
                self.error(path, helio_syntax::duration::invalid(&text));
                None
            }
        }
    }

    /// One of a fixed set of strings.
    pub fn choice(
        &mut self,
        value: &Value,
        path: &Path,
        choices: &'static [&'static str],
    ) -> Option<&'static str> {
        let text = self.string(value, path)?;
        if let Some(found) = choices.iter().find(|c| **c == text) {
            return Some(found);
        }
        self.error(path, invalid_value(&text, choices));
        None
    }

    pub fn sequence<'v>(&mut self, value: &'v Value, path: &Path) -> Option<&'v [Value]> {
        match value {
            Value::Sequence(items) => Some(items),
            other => {
                self.error(path, format!("expected a list, found {}", kind(other)));
                None
            }
        }
    }

    pub fn string_list(&mut self, value: &Value, path: &Path) -> Option<Vec<String>> {
        let items = self.sequence(value, path)?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.non_empty_string(item, &path.index(i)) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// A mapping with free-form string keys (e.g. `upstream.headers`).
    pub fn entries<'v>(&mut self, value: &'v Value, path: &Path) -> Vec<(String, &'v Value, Path)> {
        let Value::Mapping(map) = value else {
            self.error(path, format!("expected a mapping, found {}", kind(value)));
            return Vec::new();
        };
        let mut out = Vec::with_capacity(map.len());
        for (key, value) in map {
            match key.as_str() {
                Some(name) => out.push((name.to_owned(), value, path.key(name))),
                None => self.error(path, format!("keys must be strings, found {}", kind(key))),
            }
        }
        out
    }
}

/// An open YAML mapping at a known path.
pub struct Obj<'v> {
    map: &'v Mapping,
    path: Path,
}

impl Obj<'_> {
    pub fn has(&self, key: &str) -> bool {
        self.map.get(key).is_some_and(|v| !v.is_null())
    }
}

/// Parses the duration grammar shared by every duration key: `^\d+[smhd]$`
/// (one implementation for the host and the stages: `helio_syntax`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    helio_syntax::duration::parse_ms(text).map(Duration::from_millis)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// The value itself for scalars (so the message shows what was written),
/// otherwise its kind.
fn describe(value: &Value) -> String {
    match value {
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("\"{s}\""),
        other => kind(other).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_like_yaml_paths() {
        let p = Path::root()
            .key("policies")
            .key("rules")
            .index(2)
            .key("limits");
        assert_eq!(p.to_string(), "policies.rules[2].limits");
        assert_eq!(Path::root().to_string(), "(top level)");
    }
}
