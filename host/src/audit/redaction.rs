//! `audit.redact`: secrets in a call's arguments never reach the store,
//! neither in the stored input nor echoed back in the stored response.
//!
//! - The input: the value at each path (`$.card.number`, `password`,
//!   `items.*.cvv`) is replaced by [`REDACTED`].
//! - The response (stored only with `audit.include_responses`): the same
//!   paths are masked in the result's `structuredContent` and in every
//!   `content[].text` that is a JSON object (the text form of structured
//!   results), and every value masked in the input (at least
//!   [`MIN_ECHO_CHARS`] characters long: strings, and numbers as written) is
//!   masked wherever it appears in any string of the response, so a tool
//!   that echoes the secret back does not leak it.

use serde_json::Value;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Shorter masked values are not searched for in responses: masking every
/// `"5"` or `"yes"` would destroy the record without protecting anything.
pub const MIN_ECHO_CHARS: usize = 4;

/// Masks the values at `paths` in a call's arguments and returns the masked
/// values (as text), to be masked again where a response echoes them.
pub fn redact(arguments: &mut Value, paths: &[String]) -> Vec<String> {
    let mut masked = Vec::new();
    for path in paths {
        mask(arguments, path, &mut masked);
    }
    masked.retain(|secret| secret.chars().count() >= MIN_ECHO_CHARS);
    masked.sort();
    masked.dedup();
    masked
}

/// Masks a JSON-RPC response to a call: `paths` in its structured result,
/// `secrets` in every string.
pub fn redact_response(message: &mut Value, paths: &[String], secrets: &[String]) {
    if let Some(result) = message.get_mut("result") {
        if let Some(structured) = result.get_mut("structuredContent") {
            for path in paths {
                mask(structured, path, &mut Vec::new());
            }
        }
        if let Some(Value::Array(content)) = result.get_mut("content") {
            for item in content {
                let Some(Value::String(text)) = item.get_mut("text") else {
                    continue;
                };
                if let Ok(mut parsed @ Value::Object(_)) = serde_json::from_str::<Value>(text) {
                    for path in paths {
                        mask(&mut parsed, path, &mut Vec::new());
                    }
                    *text = parsed.to_string();
                }
            }
        }
    }
    if !secrets.is_empty() {
        mask_echoes(message, secrets);
    }
}

/// Masks `secrets` in a text that is not JSON.
pub fn redact_text(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), REDACTED);
        }
    }
    out
}

/// Replaces every value `path` names with [`REDACTED`], collecting what it
/// held.
fn mask(value: &mut Value, path: &str, masked: &mut Vec<String>) {
    helio_syntax::argpath::for_each_mut(value, path, &mut |found| {
        collect_scalars(found, masked);
        *found = Value::String(REDACTED.into());
    });
}

/// Every string and number inside a masked value, as text.
fn collect_scalars(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) if s != REDACTED => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Array(items) => items.iter().for_each(|v| collect_scalars(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_scalars(v, out)),
        Value::String(_) | Value::Null | Value::Bool(_) => {}
    }
}

fn mask_echoes(value: &mut Value, secrets: &[String]) {
    match value {
        Value::String(text) => {
            if secrets.iter().any(|s| text.contains(s.as_str())) {
                *text = redact_text(text, secrets);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| mask_echoes(v, secrets)),
        Value::Object(map) => map.values_mut().for_each(|v| mask_echoes(v, secrets)),
        Value::Number(_) | Value::Null | Value::Bool(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redaction_masks_paths_and_wildcards_and_returns_what_it_masked() {
        let mut args = json!({
            "card": {"number": "4111111111111111", "exp": "12/30"},
            "password": "hunter2",
            "items": [{"cvv": "123"}, {"cvv": "4567"}],
            "pin": 98765,
            "note": "keep"
        });
        let masked = redact(
            &mut args,
            &[
                "$.card.number".into(),
                "password".into(),
                "items.*.cvv".into(),
                "pin".into(),
                "$.absent.path".into(),
            ],
        );
        assert_eq!(
            args,
            json!({
                "card": {"number": REDACTED, "exp": "12/30"},
                "password": REDACTED,
                "items": [{"cvv": REDACTED}, {"cvv": REDACTED}],
                "pin": REDACTED,
                "note": "keep"
            })
        );
        // "123" is too short to look for in responses.
        assert_eq!(masked, ["4111111111111111", "4567", "98765", "hunter2"]);
        let mut whole = json!({"a": {"b": "secret-1"}});
        assert_eq!(redact(&mut whole, &["$".into()]), ["secret-1"]);
        assert_eq!(whole, json!(REDACTED));
    }

    #[test]
    fn responses_lose_echoed_secrets_and_structured_paths() {
        let secrets = vec!["hunter2".to_owned(), "98765".to_owned()];
        let mut message = json!({
            "jsonrpc": "2.0", "id": 1,
            "result": {
                "content": [
                    {"type": "text", "text": "{\"password\":\"other\",\"ok\":true}"},
                    {"type": "text", "text": "you said hunter2 and 98765"}
                ],
                "structuredContent": {"password": "other", "echo": "pw=hunter2", "n": 98765},
                "isError": false
            }
        });
        redact_response(&mut message, &["password".into()], &secrets);
        let result = &message["result"];
        assert_eq!(result["structuredContent"]["password"], REDACTED);
        assert_eq!(result["structuredContent"]["echo"], "pw=[REDACTED]");
        assert_eq!(
            result["content"][1]["text"],
            "you said [REDACTED] and [REDACTED]"
        );
        let first: Value =
            serde_json::from_str(result["content"][0]["text"].as_str().expect("text"))
                .expect("json");
        assert_eq!(first, json!({"password": REDACTED, "ok": true}));
        assert!(!message.to_string().contains("hunter2"));
        assert_eq!(redact_text("x hunter2 y", &secrets), "x [REDACTED] y");
    }
}
