//! Reading a stage's configuration JSON with paths, so every problem is
//! reported where it is (`rules[2].match.input.amount.regex`) and every
//! problem is reported, not only the first. A key set to null counts as
//! absent, as in the host (except the `eq`/`neq` operators, where null is a
//! value).

use helio_syntax::suggest::{invalid_value, unknown_key};
use serde_json::{Map, Value as Json};

use crate::{Expected, Glob, InputCondition, Operators};

/// The WIT `config-error` record. `path` is YAML-style; empty for the whole
/// configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where, as a YAML-style path.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// The value at `key`, treating null as absent.
pub fn present<'v>(obj: &'v Map<String, Json>, key: &str) -> Option<&'v Json> {
    obj.get(key).filter(|v| !v.is_null())
}

/// `path.key`, or `key` at the root.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// What a value is, for messages.
pub fn kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "a mapping",
    }
}

/// The host's `session` block: what to do when a session-keyed control is
/// engaged and no session identity resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPolicy {
    /// `on_unresolved: anonymous`: pool such calls in the `unknown` session
    /// instead of denying them.
    pub anonymous: bool,
    /// A human summary of the identity sources tried, for feedback.
    pub tried: String,
}

impl Default for SessionPolicy {
    /// No `session` block: deny, having tried nothing.
    fn default() -> Self {
        SessionPolicy {
            anonymous: false,
            tried: "none".into(),
        }
    }
}

impl SessionPolicy {
    /// What to tell an agent whose calls carry no session identity.
    pub const SUGGESTION: &'static str = "Send the x-helio-session-id header with a stable id for this agent run (the same value on every call of the run), then retry this call.";

    /// The per-session bucket for a call in `session`: `session:<id>`; with
    /// no identity, `session:unknown` under `on_unresolved: anonymous`, or
    /// none under `deny` (the call must then be blocked).
    pub fn bucket(&self, session: Option<&str>) -> Option<String> {
        match session {
            Some(id) => Some(format!("session:{id}")),
            None if self.anonymous => Some("session:unknown".into()),
            None => None,
        }
    }
}

/// Collects configuration errors while reading.
#[derive(Debug, Default)]
pub struct Parser {
    pub errors: Vec<ConfigError>,
}

/// A stage's configuration text, parsed: it must be a JSON object of the
/// `known` keys (the host writes it; a key it would not write is a mistake
/// made by hand, e.g. with `helio plugin eval`).
pub fn stage_root(
    config_json: &str,
    known: &[&str],
) -> Result<Map<String, Json>, Vec<ConfigError>> {
    let error = |message: String| {
        vec![ConfigError {
            path: String::new(),
            message,
        }]
    };
    match serde_json::from_str(config_json) {
        Ok(Json::Object(root)) => match root.keys().find(|k| !known.contains(&k.as_str())) {
            Some(key) => Err(error(unknown_key(key, known))),
            None => Ok(root),
        },
        Ok(other) => Err(error(format!(
            "stage configuration must be a JSON object, found {}",
            kind(&other)
        ))),
        Err(e) => Err(error(format!("stage configuration is not valid JSON: {e}"))),
    }
}

impl Parser {
    pub fn error(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// Opens a mapping, reporting keys not in `known`.
    pub fn object<'v>(
        &mut self,
        value: &'v Json,
        path: &str,
        known: &[&str],
    ) -> Option<&'v Map<String, Json>> {
        let Json::Object(map) = value else {
            self.error(path, format!("expected a mapping, found {}", kind(value)));
            return None;
        };
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                self.error(path, unknown_key(key, known));
            }
        }
        Some(map)
    }

    /// The value at `key` of `obj`, reporting it missing (or null).
    pub fn required<'v>(
        &mut self,
        obj: &'v Map<String, Json>,
        path: &str,
        key: &str,
    ) -> Option<&'v Json> {
        let value = present(obj, key);
        if value.is_none() {
            self.error(&join(path, key), "missing required key");
        }
        value
    }

    pub fn string(&mut self, value: &Json, path: &str) -> Option<String> {
        match value {
            Json::String(s) => Some(s.clone()),
            other => {
                self.error(path, format!("expected a string, found {}", kind(other)));
                None
            }
        }
    }

    /// Booleans; "true"/"false" strings are accepted as the host accepts
    /// them (so `${VAR}` works).
    pub fn bool(&mut self, value: &Json, path: &str) -> Option<bool> {
        match value {
            Json::Bool(b) => Some(*b),
            Json::String(s) if s == "true" => Some(true),
            Json::String(s) if s == "false" => Some(false),
            other => {
                self.error(
                    path,
                    format!("expected true or false, found {}", kind(other)),
                );
                None
            }
        }
    }

    pub fn number(&mut self, value: &Json, path: &str) -> Option<f64> {
        match value.as_f64() {
            Some(n) if n.is_finite() => Some(n),
            _ => {
                self.error(path, format!("expected a number, found {}", kind(value)));
                None
            }
        }
    }

    pub fn positive_integer(&mut self, value: &Json, path: &str) -> Option<u64> {
        match value.as_u64() {
            Some(n) if n > 0 => Some(n),
            _ => {
                let found = match value {
                    Json::Number(n) => n.to_string(),
                    other => kind(other).to_owned(),
                };
                self.error(path, format!("expected a positive integer, found {found}"));
                None
            }
        }
    }

    pub fn choice(
        &mut self,
        value: &Json,
        path: &str,
        choices: &[&'static str],
    ) -> Option<&'static str> {
        let text = self.string(value, path)?;
        if let Some(found) = choices.iter().find(|c| **c == text) {
            return Some(found);
        }
        self.error(path, invalid_value(&text, choices));
        None
    }

    pub fn string_list(&mut self, value: &Json, path: &str) -> Option<Vec<String>> {
        let Json::Array(items) = value else {
            self.error(path, format!("expected a list, found {}", kind(value)));
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(self.string(item, &format!("{path}[{i}]"))?);
        }
        Some(out)
    }

    pub fn duration_ms(&mut self, value: &Json, path: &str) -> Option<u64> {
        let text = self.string(value, path)?;
        let ms = helio_syntax::duration::parse_ms(&text);
        if ms.is_none() {
            self.error(path, helio_syntax::duration::invalid(&text));
        }
        ms
    }

    pub fn regex(&mut self, value: &Json, path: &str) -> Option<regex_lite::Regex> {
        let source = self.string(value, path)?;
        match regex_lite::Regex::new(&source) {
            Ok(re) => Some(re),
            Err(e) => {
                self.error(path, format!("invalid regex \"{source}\": {e}"));
                None
            }
        }
    }

    /// A tool glob (`match.tool`).
    pub fn glob(&mut self, value: &Json, path: &str) -> Option<Glob> {
        let text = self.string(value, path)?;
        Glob::compile(&text)
            .map_err(|message| self.error(path, message))
            .ok()
    }

    /// An `input` map: argument path → operators. Conditions with errors
    /// are left out (and reported).
    pub fn input(&mut self, value: &Json, path: &str) -> Vec<InputCondition> {
        let Json::Object(map) = value else {
            self.error(path, format!("expected a mapping, found {}", kind(value)));
            return Vec::new();
        };
        let mut out = Vec::with_capacity(map.len());
        for (arg_path, ops) in map {
            if let Some(ops) = self.operators(ops, &join(path, arg_path)) {
                out.push(InputCondition {
                    path: arg_path.clone(),
                    ops,
                });
            }
        }
        out
    }

    fn operators(&mut self, value: &Json, path: &str) -> Option<Operators> {
        let before = self.errors.len();
        let obj = self.object(
            value,
            path,
            &["eq", "neq", "gt", "gte", "lt", "lte", "contains", "regex"],
        )?;
        // `eq: null` / `neq: null` compare against JSON null.
        let ops = Operators {
            eq: obj.get("eq").map(Expected::from_json),
            neq: obj.get("neq").map(Expected::from_json),
            gt: present(obj, "gt").and_then(|v| self.number(v, &join(path, "gt"))),
            gte: present(obj, "gte").and_then(|v| self.number(v, &join(path, "gte"))),
            lt: present(obj, "lt").and_then(|v| self.number(v, &join(path, "lt"))),
            lte: present(obj, "lte").and_then(|v| self.number(v, &join(path, "lte"))),
            contains: present(obj, "contains")
                .and_then(|v| self.string(v, &join(path, "contains"))),
            regex: present(obj, "regex").and_then(|v| self.regex(v, &join(path, "regex"))),
        };
        let any = obj.contains_key("eq")
            || obj.contains_key("neq")
            || ["gt", "gte", "lt", "lte", "contains", "regex"]
                .iter()
                .any(|k| present(obj, k).is_some());
        if !any {
            // An unknown key already explains an empty operator set.
            if self.errors.len() == before {
                self.error(
                    path,
                    "at least one condition operator is required (eq, neq, gt, gte, lt, lte, contains, regex)",
                );
            }
            return None;
        }
        Some(ops)
    }

    /// The host's `session` block at `root.session`
    /// (`{"on_unresolved": "deny"|"anonymous", "tried": "<summary>"}`);
    /// absent means deny, having tried nothing.
    pub fn session(&mut self, root: &Map<String, Json>) -> SessionPolicy {
        let mut policy = SessionPolicy::default();
        let Some(value) = present(root, "session") else {
            return policy;
        };
        let Some(obj) = self.object(value, "session", &["on_unresolved", "tried"]) else {
            return policy;
        };
        if let Some(v) = present(obj, "on_unresolved") {
            let mode = self.choice(v, "session.on_unresolved", &["deny", "anonymous"]);
            policy.anonymous = mode == Some("anonymous");
        }
        if let Some(v) = present(obj, "tried") {
            if let Some(tried) = self.string(v, "session.tried") {
                policy.tried = tried;
            }
        }
        policy
    }
}

#[cfg(test)]
mod tests;
