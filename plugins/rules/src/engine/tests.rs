//! Native, table-driven tests of the engine. `Call` stands in for the host's
//! `tool-call` resource, resolving argument paths the way the host does.

mod config_errors;
mod matching;
mod operators;
mod verdicts;

use serde_json::{json, Value as Json};

use super::{Annotations, CallView, Engine, Value, Verdict};

/// A tool call as the host would present it.
#[derive(Debug, Clone)]
pub(super) struct Call {
    pub tool: String,
    pub annotations: Annotations,
    pub environment: Option<String>,
    pub arguments: Option<Json>,
    pub metadata: Vec<(String, String)>,
}

impl Call {
    /// An unannotated tool (MCP defaults: destructive) with `{}` arguments.
    pub fn new(tool: &str) -> Call {
        Call {
            tool: tool.into(),
            annotations: Annotations::default(),
            environment: None,
            arguments: Some(json!({})),
            metadata: Vec::new(),
        }
    }

    pub fn args(mut self, arguments: Json) -> Call {
        self.arguments = Some(arguments);
        self
    }

    pub fn no_args(mut self) -> Call {
        self.arguments = None;
        self
    }

    pub fn env(mut self, environment: &str) -> Call {
        self.environment = Some(environment.into());
        self
    }

    pub fn annotated(mut self, annotations: Annotations) -> Call {
        self.annotations = annotations;
        self
    }

    pub fn read_only(self) -> Call {
        self.annotated(Annotations {
            read_only_hint: true,
            destructive_hint: false,
            idempotent_hint: true,
            open_world_hint: false,
        })
    }

    pub fn meta(mut self, key: &str, value: &str) -> Call {
        self.metadata.push((key.into(), value.into()));
        self
    }
}

impl CallView for Call {
    fn tool(&self) -> &str {
        &self.tool
    }

    fn annotations(&self) -> Annotations {
        self.annotations
    }

    fn environment(&self) -> Option<&str> {
        self.environment.as_deref()
    }

    fn has_arguments(&self) -> bool {
        self.arguments.is_some()
    }

    /// `$` is the whole object; `$.a.b` and `a.b` walk keys; numeric
    /// segments index arrays.
    fn argument(&self, path: &str) -> Option<Value> {
        let mut at = self.arguments.as_ref()?;
        let rest = if path == "$" {
            ""
        } else {
            path.strip_prefix("$.").unwrap_or(path)
        };
        for segment in rest.split('.').filter(|s| !s.is_empty()) {
            at = match at {
                Json::Object(map) => map.get(segment)?,
                Json::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(match at {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => Value::Number(n.as_f64().unwrap()),
            Json::String(s) => Value::Text(s.clone()),
            other => Value::Structured(other.to_string()),
        })
    }

    fn metadata(&self, key: &str) -> Option<String> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }
}

/// Compiles `policies` (with no environment), panicking on config errors.
pub(super) fn engine(policies: Json) -> Engine {
    engine_in(None, policies)
}

pub(super) fn engine_in(environment: Option<&str>, policies: Json) -> Engine {
    let config = json!({ "environment": environment, "policies": policies });
    Engine::from_json(&config.to_string())
        .unwrap_or_else(|errors| panic!("config rejected: {errors:?}\n{config:#}"))
}

/// The verdict for `call`.
pub(super) fn decide(engine: &Engine, call: &Call) -> Verdict {
    engine.evaluate(call).verdict.clone()
}

/// The index of the rule that decided, if any.
pub(super) fn matched(engine: &Engine, call: &Call) -> Option<u32> {
    engine.evaluate(call).verdict.decision().rule_index
}

#[test]
fn durations_follow_the_helio_yaml_grammar() {
    use super::config::parse_duration_ms;
    let cases: &[(&str, Option<u64>)] = &[
        ("30s", Some(30_000)),
        ("5m", Some(300_000)),
        ("1h", Some(3_600_000)),
        ("2d", Some(172_800_000)),
        ("0s", Some(0)),
        ("", None),
        ("s", None),
        ("10", None),
        ("10ms", None),
        ("1.5h", None),
        ("-1s", None),
        (" 1s", None),
        ("1w", None),
        ("1é", None),
        ("99999999999999999999d", None),
    ];
    for (text, want) in cases {
        assert_eq!(parse_duration_ms(text), *want, "{text:?}");
    }
}

#[test]
fn annotation_defaults_are_the_mcp_defaults() {
    let a = Annotations::default();
    assert!(!a.read_only_hint && a.destructive_hint && !a.idempotent_hint && a.open_world_hint);
}
