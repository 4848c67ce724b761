//! The call under evaluation, as a stage's engine sees it.

use serde_json::Value as Json;

/// A JSON value read from a tool call: the WIT `json-value` variant.
/// Arrays and objects arrive as their compact JSON text.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// JSON `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// Any JSON number.
    Number(f64),
    /// A JSON string.
    Text(String),
    /// An array or object, as JSON text.
    Structured(String),
}

impl Value {
    /// The WIT shape of a parsed JSON value.
    pub fn from_json(json: &Json) -> Value {
        match json {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            // Without arbitrary precision every serde_json number is an f64.
            Json::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
            Json::String(s) => Value::Text(s.clone()),
            other => Value::Structured(other.to_string()),
        }
    }
}

/// The called tool's annotations, with the MCP defaults already substituted
/// by the host for hints the tool does not state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Annotations {
    /// `readOnlyHint` (MCP default false).
    pub read_only_hint: bool,
    /// `destructiveHint` (MCP default true).
    pub destructive_hint: bool,
    /// `idempotentHint` (MCP default false).
    pub idempotent_hint: bool,
    /// `openWorldHint` (MCP default true).
    pub open_world_hint: bool,
}

impl Default for Annotations {
    /// The MCP defaults: what an unannotated tool looks like.
    fn default() -> Self {
        Annotations {
            read_only_hint: false,
            destructive_hint: true,
            idempotent_hint: false,
            open_world_hint: true,
        }
    }
}

/// What a spend extractor read from a call: an exact amount and the
/// currency the call states; none when it spends nothing; the operator's
/// reason when it cannot be read.
pub type Extracted = Result<Option<(String, Option<String>)>, String>;

/// What an engine may ask about the call under evaluation: the WIT
/// `tool-call` resource. Implementations backed by host calls should cache
/// what many conditions ask for (tool name, annotations, environment).
pub trait CallView {
    /// The tool's name.
    fn tool(&self) -> &str;
    /// The tool's annotations (MCP defaults substituted).
    fn annotations(&self) -> Annotations;
    /// The governance session identity, if one resolved (never taken from
    /// the arguments).
    fn session(&self) -> Option<&str>;
    /// The deployment label (helio.yaml's top-level `environment`), if set.
    fn environment(&self) -> Option<&str>;
    /// Whether the call carried `params.arguments` at all.
    fn has_arguments(&self) -> bool;
    /// The argument at `path` (`$`, `$.a.b`, `a.b`, `items.0`), if present.
    fn argument(&self, path: &str) -> Option<Value>;
    /// A metadata value supplied by a host adapter; always none on the MCP path.
    fn metadata(&self, key: &str) -> Option<String>;
    /// What spend extractor `extractor` reads from the call: an exact
    /// amount and the currency the call states; none when it spends
    /// nothing; the operator's reason when it cannot be read.
    fn spend(&self, extractor: &str) -> Extracted;
}

/// The argument at `path` in `arguments`, resolved as the host resolves
/// `tool-call.argument`: `$` is the whole object, `$.a.b` and `a.b` walk
/// keys, numeric segments index arrays, and `__proto__`, `constructor` and
/// `prototype` never resolve (as in the original Helio).
pub fn argument_at(arguments: &Json, path: &str) -> Option<Value> {
    helio_syntax::argpath::get(arguments, path).map(Value::from_json)
}

/// The amount at `field` as an exact decimal string, if it is a finite,
/// non-negative JSON number. Strings such as `"12.50"` are refused, as in
/// the original: an amount must be a number.
pub fn spend_amount(call: &impl CallView, field: &str) -> Option<String> {
    match call.argument(field)? {
        Value::Number(n) if n.is_finite() && n >= 0.0 => Some(crate::text::decimal(n)),
        _ => None,
    }
}

/// A tool call as the host would present it, built from JSON: the stand-in
/// for the host's `tool-call` resource in the stages' native tests.
#[cfg(any(test, feature = "testing"))]
#[derive(Debug, Clone)]
pub struct JsonCall {
    pub tool: String,
    pub annotations: Annotations,
    pub session: Option<String>,
    pub environment: Option<String>,
    pub arguments: Option<Json>,
    pub metadata: Vec<(String, String)>,
    /// What each spend extractor reads from the call.
    pub spends: Vec<(String, Extracted)>,
}

#[cfg(any(test, feature = "testing"))]
impl JsonCall {
    /// An unannotated tool (MCP defaults: destructive) with `{}` arguments
    /// and no session.
    pub fn new(tool: &str) -> JsonCall {
        JsonCall {
            tool: tool.into(),
            annotations: Annotations::default(),
            session: None,
            environment: None,
            arguments: Some(Json::Object(serde_json::Map::new())),
            metadata: Vec::new(),
            spends: Vec::new(),
        }
    }

    pub fn args(mut self, arguments: Json) -> JsonCall {
        self.arguments = Some(arguments);
        self
    }

    pub fn no_args(mut self) -> JsonCall {
        self.arguments = None;
        self
    }

    pub fn in_session(mut self, session: &str) -> JsonCall {
        self.session = Some(session.into());
        self
    }

    pub fn env(mut self, environment: &str) -> JsonCall {
        self.environment = Some(environment.into());
        self
    }

    pub fn annotated(mut self, annotations: Annotations) -> JsonCall {
        self.annotations = annotations;
        self
    }

    pub fn read_only(self) -> JsonCall {
        self.annotated(Annotations {
            read_only_hint: true,
            destructive_hint: false,
            idempotent_hint: true,
            open_world_hint: false,
        })
    }

    pub fn meta(mut self, key: &str, value: &str) -> JsonCall {
        self.metadata.push((key.into(), value.into()));
        self
    }

    /// What extractor `name` reads from this call.
    pub fn extracted(
        mut self,
        name: &str,
        read: Result<Option<(&str, Option<&str>)>, &str>,
    ) -> JsonCall {
        let read = read
            .map(|o| o.map(|(a, c)| (a.to_owned(), c.map(str::to_owned))))
            .map_err(str::to_owned);
        self.spends.push((name.into(), read));
        self
    }
}

#[cfg(any(test, feature = "testing"))]
impl CallView for JsonCall {
    fn tool(&self) -> &str {
        &self.tool
    }

    fn annotations(&self) -> Annotations {
        self.annotations
    }

    fn session(&self) -> Option<&str> {
        self.session.as_deref()
    }

    fn environment(&self) -> Option<&str> {
        self.environment.as_deref()
    }

    fn has_arguments(&self) -> bool {
        self.arguments.is_some()
    }

    fn argument(&self, path: &str) -> Option<Value> {
        argument_at(self.arguments.as_ref()?, path)
    }

    fn metadata(&self, key: &str) -> Option<String> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    fn spend(&self, extractor: &str) -> Extracted {
        match self.spends.iter().find(|(name, _)| name == extractor) {
            Some((_, read)) => read.clone(),
            None => Err(format!(
                "no spend extractor named \"{extractor}\" is configured"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn argument_paths_resolve_as_the_host_resolves_them() {
        let args = json!({"a": {"b": [10, {"c": "x"}]}, "n": 1.5, "constructor": 1, "z": null});
        let cases: &[(&str, Option<Value>)] = &[
            ("$.a.b.0", Some(Value::Number(10.0))),
            ("a.b.1.c", Some(Value::Text("x".into()))),
            ("n", Some(Value::Number(1.5))),
            ("$.n", Some(Value::Number(1.5))),
            ("z", Some(Value::Null)),
            ("a.b", Some(Value::Structured(r#"[10,{"c":"x"}]"#.into()))),
            ("a.b.9", None),
            ("a.b.x", None),
            ("n.x", None),
            ("missing", None),
            ("constructor", None),
            ("a.__proto__", None),
            ("a.prototype", None),
        ];
        for (path, want) in cases {
            assert_eq!(argument_at(&args, path), *want, "{path}");
        }
        let whole = argument_at(&args, "$").unwrap();
        let Value::Structured(text) = whole else {
            panic!("$ is not structured");
        };
        assert_eq!(serde_json::from_str::<Json>(&text).unwrap(), args);
        assert_eq!(argument_at(&json!(5), "$"), Some(Value::Number(5.0)));
    }

    #[test]
    fn spend_amounts_are_finite_non_negative_numbers() {
        let call = JsonCall::new("t").args(json!({
            "n": 12.5, "zero": 0, "neg_zero": -0.0, "neg": -1, "text": "12.50",
            "null": null, "list": [1], "big": 1e21, "nested": {"amount": 3}
        }));
        let cases: &[(&str, Option<&str>)] = &[
            ("n", Some("12.5")),
            ("zero", Some("0")),
            ("neg_zero", Some("0")),
            ("big", Some("1000000000000000000000")),
            ("nested.amount", Some("3")),
            ("neg", None),
            ("text", None),
            ("null", None),
            ("list", None),
            ("missing", None),
        ];
        for (field, want) in cases {
            assert_eq!(spend_amount(&call, field).as_deref(), *want, "{field}");
        }
        assert_eq!(spend_amount(&call.no_args(), "n"), None);
    }

    #[test]
    fn annotation_defaults_are_the_mcp_defaults() {
        let a = Annotations::default();
        assert!(!a.read_only_hint && a.destructive_hint && !a.idempotent_hint && a.open_world_hint);
    }

    #[test]
    fn json_call_reads_its_parts() {
        let call = JsonCall::new("t")
            .in_session("s1")
            .env("prod")
            .meta("channel_id", "C1")
            .args(json!({"x": 1}));
        assert_eq!(call.session(), Some("s1"));
        assert_eq!(call.environment(), Some("prod"));
        assert_eq!(call.metadata("channel_id").as_deref(), Some("C1"));
        assert_eq!(call.metadata("sender_id"), None);
        assert_eq!(call.argument("x"), Some(Value::Number(1.0)));
        assert!(!call.clone().no_args().has_arguments());
        assert_eq!(call.no_args().argument("$"), None);
    }
}
