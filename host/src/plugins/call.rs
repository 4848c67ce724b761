//! The `tool-call` resource: one call, parsed once by the host, read by
//! plugins through narrow accessors.

use std::sync::Arc;

use serde_json::Value;

use crate::govern::{Door, Era};

/// MCP tool annotations, with the MCP defaults filled in for what a tool
/// does not state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Annotations {
    pub read_only_hint: bool,
    pub destructive_hint: bool,
    pub idempotent_hint: bool,
    pub open_world_hint: bool,
    /// False when the tool has not been seen in any `tools/list`.
    pub known: bool,
}

impl Annotations {
    /// A tool's `annotations` object as MCP defines it (`readOnlyHint`, …),
    /// the MCP defaults for hints it leaves out; absent or `null`: nothing
    /// known.
    pub fn of_mcp(raw: Option<&Value>) -> Result<Self, BadAnnotations> {
        let Some(raw) = raw.filter(|a| !a.is_null()) else {
            return Ok(Self::UNKNOWN);
        };
        let Value::Object(raw) = raw else {
            return Err(BadAnnotations {
                field: "annotations".into(),
                expected: "an object",
            });
        };
        let flag = |name: &str, default: bool| match raw.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(BadAnnotations {
                field: format!("annotations.{name}"),
                expected: "a boolean",
            }),
        };
        let d = Self::UNKNOWN;
        Ok(Self {
            read_only_hint: flag("readOnlyHint", d.read_only_hint)?,
            destructive_hint: flag("destructiveHint", d.destructive_hint)?,
            idempotent_hint: flag("idempotentHint", d.idempotent_hint)?,
            open_world_hint: flag("openWorldHint", d.open_world_hint)?,
            known: true,
        })
    }

    /// The MCP defaults, for a tool Helio knows nothing about: it may be
    /// destructive, so destructive-guarding rules fail closed.
    pub const UNKNOWN: Annotations = Annotations {
        read_only_hint: false,
        destructive_hint: true,
        idempotent_hint: false,
        open_world_hint: true,
        known: false,
    };
}

/// Why an `annotations` object is not MCP's: `field` (`annotations` or
/// `annotations.<hint>`) must be `expected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadAnnotations {
    pub field: String,
    pub expected: &'static str,
}

impl std::fmt::Display for BadAnnotations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} must be {}", self.field, self.expected)
    }
}

/// A tool call as plugins see it.
#[derive(Debug, Clone)]
pub struct ToolCall {
    pub tool: Arc<str>,
    pub annotations: Annotations,
    pub session: Option<Arc<str>>,
    pub environment: Option<Arc<str>>,
    /// `params.arguments`, read exactly by the transport
    /// ([`crate::strict_json`]): a call whose arguments Helio cannot read as
    /// an upstream would never gets this far.
    pub arguments: Option<Arc<Value>>,
    /// What an adapter said of the call's context (`metadata` on the adapter
    /// API); none on the MCP door.
    pub metadata: Option<Arc<serde_json::Map<String, Value>>>,
    /// The agent making the call (`<name>@<version>`), when known.
    pub agent: Option<Arc<str>>,
    /// The door it came through (its `origin`).
    pub door: Door,
    /// The MCP revision family it was made under (meaningless off MCP).
    pub era: Era,
    /// The configuration's spend extractors, for `tool-call.spend`.
    pub extractors: Option<Arc<super::Extractors>>,
}

/// Most values one `arguments-at` answers with; a path that names more
/// traps the stage (the call is blocked) rather than answer with part.
pub const MAX_ARGUMENTS_AT: usize = 10_000;

impl ToolCall {
    pub fn new(
        tool: Arc<str>,
        annotations: Annotations,
        arguments: Option<Arc<Value>>,
        environment: Option<Arc<str>>,
    ) -> Self {
        Self {
            tool,
            annotations,
            session: None,
            environment,
            arguments,
            metadata: None,
            agent: None,
            door: Door::Mcp,
            era: Era::Handshake,
            extractors: None,
        }
    }

    /// The spend extractors its stages may ask (`tool-call.spend`).
    pub fn with_extractors(mut self, extractors: Option<Arc<super::Extractors>>) -> Self {
        self.extractors = extractors;
        self
    }

    /// Who is calling and through which door: the agent's label, the door
    /// and the MCP era.
    pub fn with_caller(mut self, agent: Option<Arc<str>>, door: Door, era: Era) -> Self {
        self.agent = agent;
        self.door = door;
        self.era = era;
        self
    }

    /// Every value `path` names (wildcards and any depth allowed), with its
    /// concrete path; none for a path that names more than
    /// [`MAX_ARGUMENTS_AT`] (never a part of them, which a check would take
    /// for the whole).
    pub fn arguments_at(&self, path: &str) -> Option<Vec<(String, &Value)>> {
        let found = match self.arguments.as_deref() {
            Some(arguments) if helio_syntax::argpath::is_valid(path) => {
                helio_syntax::argpath::collect(arguments, path, MAX_ARGUMENTS_AT + 1)
            }
            _ => Vec::new(),
        };
        (found.len() <= MAX_ARGUMENTS_AT).then_some(found)
    }

    /// The adapter's metadata for the call.
    pub fn with_metadata(mut self, metadata: Option<Arc<serde_json::Map<String, Value>>>) -> Self {
        self.metadata = metadata;
        self
    }

    /// The metadata value at `key`: a string as it is, any other JSON value
    /// as its text.
    pub fn metadata(&self, key: &str) -> Option<String> {
        match self.metadata.as_ref()?.get(key)? {
            Value::String(text) => Some(text.clone()),
            other => Some(other.to_string()),
        }
    }

    /// The governance session identity, resolved by the transport.
    pub fn with_session(mut self, session: Option<Arc<str>>) -> Self {
        self.session = session;
        self
    }

    /// The argument at `path`: `$` is the whole object, `$.a.b` and `a.b`
    /// walk keys, numeric segments index arrays. `__proto__`, `constructor`
    /// and `prototype` never resolve, as in the original Helio.
    pub fn argument(&self, path: &str) -> Option<&Value> {
        helio_syntax::argpath::get(self.arguments.as_deref()?, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(args: &str) -> ToolCall {
        let parsed = serde_json::from_str(args).expect("json");
        ToolCall::new(
            "t".into(),
            Annotations::UNKNOWN,
            Some(Arc::new(parsed)),
            None,
        )
    }

    #[test]
    fn argument_paths() {
        let c = call(r#"{"a":{"b":[10,{"c":"x"}]},"n":1.5,"constructor":1}"#);
        assert_eq!(c.argument("$.a.b.0"), Some(&json!(10)));
        assert_eq!(c.argument("a.b.1.c"), Some(&json!("x")));
        assert_eq!(c.argument("n"), Some(&json!(1.5)));
        assert_eq!(c.argument("$").and_then(|v| v.get("n")), Some(&json!(1.5)));
        assert_eq!(c.argument("a.b.9"), None);
        assert_eq!(c.argument("a.b.x"), None);
        assert_eq!(c.argument("n.x"), None);
        assert_eq!(c.argument("missing"), None);
        assert_eq!(c.argument("constructor"), None);
        let none = ToolCall::new("t".into(), Annotations::UNKNOWN, None, None);
        assert_eq!(none.argument("$"), None);
    }

    #[test]
    fn metadata_values_are_strings_as_they_are_and_other_json_as_text() {
        let Value::Object(metadata) = json!({"sender_id": "U7", "thread": 12, "tags": ["a"]})
        else {
            unreachable!()
        };
        let c = call("{}").with_metadata(Some(Arc::new(metadata)));
        assert_eq!(c.metadata("sender_id").as_deref(), Some("U7"));
        assert_eq!(c.metadata("thread").as_deref(), Some("12"));
        assert_eq!(c.metadata("tags").as_deref(), Some(r#"["a"]"#));
        assert_eq!(c.metadata("missing"), None);
        assert_eq!(call("{}").metadata("sender_id"), None);
    }
}
