//! One tool definition as Helio compares it: canonical JSON (object keys
//! sorted at every depth, so a server that reorders fields has not changed
//! anything), its SHA-256 fingerprint, and the annotations policy reads.

use std::sync::Arc;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::plugins::Annotations;

/// The fields a change is reported by; any other field is `other`.
const ASPECTS: [&str; 5] = [
    "annotations",
    "inputSchema",
    "outputSchema",
    "description",
    "title",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    /// The whole definition, as listed (every field, standard or not).
    pub value: Value,
    pub canonical: String,
    pub fingerprint: String,
    pub annotations: Annotations,
    /// The arguments a 2026-07-28 client mirrors as `Mcp-Param-*` headers.
    pub param_headers: Arc<[ParamHeader]>,
}

/// An argument the input schema marks with `x-mcp-header`: clients send its
/// value as the header `Mcp-Param-<token>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamHeader {
    /// The `properties` keys from the schema's root to the argument.
    pub path: Vec<String>,
    pub token: String,
    /// `type: integer` (such values compare as numbers: `42` and `42.0`).
    pub integer: bool,
}

/// One aspect of a definition that differs from the baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub aspect: &'static str,
    pub baseline: Value,
    pub current: Value,
}

impl Definition {
    pub fn new(value: Value) -> Self {
        let mut canonical = String::new();
        write_canonical(&value, &mut canonical);
        let fingerprint = hex::encode(Sha256::digest(canonical.as_bytes()));
        let annotations = annotations(&value);
        let param_headers = param_headers(&value["inputSchema"]).into();
        Self {
            value,
            canonical,
            fingerprint,
            annotations,
            param_headers,
        }
    }

    /// What differs from `baseline`, aspect by aspect (in [`ASPECTS`] order,
    /// then `other`).
    pub fn changes_from(&self, baseline: &Definition) -> Vec<Change> {
        let mut changes: Vec<Change> = ASPECTS
            .iter()
            .filter_map(|&aspect| {
                let (before, now) = (field(&baseline.value, aspect), field(&self.value, aspect));
                (canonical(&before) != canonical(&now)).then_some(Change {
                    aspect,
                    baseline: before,
                    current: now,
                })
            })
            .collect();
        let (before, now) = (others(&baseline.value), others(&self.value));
        if canonical(&before) != canonical(&now) {
            changes.push(Change {
                aspect: "other",
                baseline: before,
                current: now,
            });
        }
        changes
    }
}

fn field(definition: &Value, name: &str) -> Value {
    definition.get(name).cloned().unwrap_or(Value::Null)
}

/// The fields that are not a named aspect (nor the name itself).
fn others(definition: &Value) -> Value {
    let rest: Map<String, Value> = definition
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, _)| key.as_str() != "name" && !ASPECTS.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    Value::Object(rest)
}

fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

/// JSON with object keys sorted, whatever order the map keeps them in.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {
            out.push_str(&value.to_string())
        }
    }
}

/// The `x-mcp-header` marks of an input schema, on properties reached
/// through `properties` alone. As in the official SDKs, a schema with any
/// invalid mark (not an RFC 9110 token, on a property that is not a string,
/// integer or boolean, or a token used twice, case-insensitively) has none:
/// conforming clients leave such a tool out, so no header is expected.
fn param_headers(schema: &Value) -> Vec<ParamHeader> {
    let mut found = Vec::new();
    let mut pending: Vec<(Vec<String>, &Value)> = vec![(Vec::new(), schema)];
    while let Some((path, node)) = pending.pop() {
        let Some(object) = node.as_object() else {
            continue;
        };
        if let Some(mark) = object.get("x-mcp-header") {
            let kind = object.get("type").and_then(Value::as_str);
            let valid_kind = matches!(kind, Some("string" | "integer" | "boolean"));
            let token = mark.as_str().filter(|t| is_token(t));
            match (token, valid_kind, path.is_empty()) {
                (Some(token), true, false) => found.push(ParamHeader {
                    path: path.clone(),
                    token: token.to_owned(),
                    integer: kind == Some("integer"),
                }),
                _ => return Vec::new(),
            }
        }
        if let Some(properties) = object.get("properties").and_then(Value::as_object) {
            for (name, property) in properties {
                let mut deeper = path.clone();
                deeper.push(name.clone());
                pending.push((deeper, property));
            }
        }
    }
    let mut tokens: Vec<String> = found.iter().map(|p| p.token.to_ascii_lowercase()).collect();
    tokens.sort();
    tokens.dedup();
    if tokens.len() != found.len() {
        return Vec::new();
    }
    found
}

/// An RFC 9110 token (the characters a header name may have).
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The definition's annotations, with the MCP defaults for hints it leaves
/// out (a hint that is not a boolean counts as left out).
fn annotations(definition: &Value) -> Annotations {
    let hint =
        |name: &str, default: bool| definition["annotations"][name].as_bool().unwrap_or(default);
    let d = Annotations::UNKNOWN;
    Annotations {
        read_only_hint: hint("readOnlyHint", d.read_only_hint),
        destructive_hint: hint("destructiveHint", d.destructive_hint),
        idempotent_hint: hint("idempotentHint", d.idempotent_hint),
        open_world_hint: hint("openWorldHint", d.open_world_hint),
        known: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_change_the_fingerprint_but_any_value_does() {
        let a = Definition::new(
            json!({"name":"t","inputSchema":{"type":"object","properties":{"a":{"type":"string"}}},"x-vendor":1}),
        );
        let b = Definition::new(
            json!({"x-vendor":1,"inputSchema":{"properties":{"a":{"type":"string"}},"type":"object"},"name":"t"}),
        );
        assert_eq!(a.fingerprint, b.fingerprint);
        assert!(a.changes_from(&b).is_empty());
        let c = Definition::new(
            json!({"name":"t","inputSchema":{"type":"object","properties":{"a":{"type":"number"}}},"x-vendor":2,"description":"new"}),
        );
        assert_ne!(a.fingerprint, c.fingerprint);
        let aspects: Vec<_> = c.changes_from(&a).iter().map(|c| c.aspect).collect();
        assert_eq!(aspects, ["inputSchema", "description", "other"]);
        let other = &c.changes_from(&a)[2];
        assert_eq!(other.baseline, json!({"x-vendor":1}));
        assert_eq!(other.current, json!({"x-vendor":2}));
    }

    #[test]
    fn param_headers_are_read_from_properties_and_an_invalid_mark_voids_them_all() {
        let d = Definition::new(
            json!({"name":"t","inputSchema":{"type":"object","properties":{
            "region":{"type":"string","x-mcp-header":"Region"},
            "opts":{"type":"object","properties":{"n":{"type":"integer","x-mcp-header":"N"}}}}}}),
        );
        let mut marks: Vec<_> = d
            .param_headers
            .iter()
            .map(|p| (p.path.join("."), p.token.as_str(), p.integer))
            .collect();
        marks.sort();
        assert_eq!(
            marks,
            [
                ("opts.n".to_owned(), "N", true),
                ("region".to_owned(), "Region", false)
            ]
        );
        for invalid in [
            json!({"a":{"type":"number","x-mcp-header":"A"}}),
            json!({"a":{"type":"string","x-mcp-header":"bad name"}}),
            json!({"a":{"type":"string","x-mcp-header":"X"},"b":{"type":"string","x-mcp-header":"x"}}),
        ] {
            let d = Definition::new(
                json!({"name":"t","inputSchema":{"type":"object","properties":invalid}}),
            );
            assert!(d.param_headers.is_empty(), "{invalid}");
        }
    }

    #[test]
    fn annotations_take_the_mcp_defaults() {
        let d = Definition::new(
            json!({"name":"t","annotations":{"readOnlyHint":true,"destructiveHint":"no"}}),
        );
        assert!(d.annotations.read_only_hint && d.annotations.known);
        assert!(
            d.annotations.destructive_hint,
            "a non-boolean hint is left out"
        );
        assert!(!d.annotations.idempotent_hint && d.annotations.open_world_hint);
    }
}
