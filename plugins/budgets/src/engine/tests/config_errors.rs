//! What `configure` rejects, with exact paths.

use serde_json::{json, Value as Json};

use crate::engine::Engine;

fn errors(config: &Json) -> Vec<(String, String)> {
    match Engine::from_json(&config.to_string()) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.into_iter().map(|e| (e.path, e.message)).collect(),
    }
}

/// A valid budget, with `changes` merged in (null removes a key).
fn budget(changes: Json) -> Json {
    let mut b = json!({
        "name": "travel", "limit": 100, "currency": "USD", "window": "1h",
        "contributors": [ { "match": { "tool": "book_*" }, "field": "price" } ]
    });
    for (key, value) in changes.as_object().unwrap() {
        if value.is_null() {
            b.as_object_mut().unwrap().remove(key);
        } else {
            b[key] = value.clone();
        }
    }
    json!({ "budgets": [ b ] })
}

#[test]
fn rejected_configurations() {
    let cases: Vec<(Json, Vec<(&str, &str)>)> = vec![
        (
            budget(json!({ "name": null })),
            vec![("budgets[0].name", "missing required key")],
        ),
        (
            budget(json!({ "name": "a b" })),
            vec![("budgets[0].name", "1 to 64 letters, digits")],
        ),
        (
            budget(json!({ "name": "" })),
            vec![("budgets[0].name", "1 to 64 letters, digits")],
        ),
        (
            budget(json!({ "name": "x".repeat(65) })),
            vec![("budgets[0].name", "1 to 64")],
        ),
        (
            budget(json!({ "limit": 0 })),
            vec![("budgets[0].limit", "must be greater than zero")],
        ),
        (
            budget(json!({ "limit": "100" })),
            vec![("budgets[0].limit", "expected a number, found a string")],
        ),
        (
            budget(json!({ "currency": null })),
            vec![("budgets[0].currency", "missing required key")],
        ),
        (
            budget(json!({ "window": "forever" })),
            vec![("budgets[0].window", "invalid duration \"forever\"")],
        ),
        (
            budget(json!({ "window": null })),
            vec![("budgets[0].window", "missing required key")],
        ),
        (
            budget(json!({ "key": "user" })),
            vec![(
                "budgets[0].key",
                "expected one of: global, session, sender_id",
            )],
        ),
        (
            budget(json!({ "on_exceed": "warn" })),
            vec![(
                "budgets[0].on_exceed",
                "expected one of: deny, require_approval",
            )],
        ),
        (
            budget(json!({ "approval": { "channel": "slack" } })),
            vec![(
                "budgets[0].approval",
                "only applies with on_exceed: \"require_approval\"",
            )],
        ),
        (
            budget(json!({ "on_exceed": "require_approval", "approval": { "timeout": "5m" } })),
            vec![("budgets[0].approval.channel", "missing required key")],
        ),
        (
            budget(json!({ "window": "session" })),
            vec![(
                "budgets[0].key",
                "window: \"session\" requires key: \"session\" or \"sender_id\"",
            )],
        ),
        (
            budget(json!({ "idle_ttl": "1d" })),
            vec![("budgets[0].idle_ttl", "only applies to window: \"session\"")],
        ),
        (
            budget(json!({ "window": "session", "key": "session", "idle_ttl": "soon" })),
            vec![("budgets[0].idle_ttl", "invalid duration")],
        ),
        (
            budget(json!({ "contributors": null })),
            vec![("budgets[0].contributors", "missing required key")],
        ),
        (
            budget(json!({ "contributors": [] })),
            vec![("budgets[0].contributors", "at least one contributor")],
        ),
        (
            budget(json!({ "contributors": {} })),
            vec![("budgets[0].contributors", "expected a list")],
        ),
        (
            budget(json!({ "contributors": [ { "tool": "book_*", "field": "price" } ] })),
            vec![("budgets[0].contributors[0]", "moved under \"match\"")],
        ),
        (
            budget(json!({ "contributors": [ { "match": { "tool": "a" } } ] })),
            vec![("budgets[0].contributors[0].field", "missing required key")],
        ),
        (
            budget(
                json!({ "contributors": [ { "match": { "input": { "x": { "eq": 1 } } }, "field": "a" } ] }),
            ),
            vec![(
                "budgets[0].contributors[0].match.tool",
                "missing required key",
            )],
        ),
        (
            budget(json!({ "contributors": [ { "match": { "tool": "send_[" }, "field": "a" } ] })),
            vec![(
                "budgets[0].contributors[0].match.tool",
                "unclosed character class",
            )],
        ),
        (
            budget(
                json!({ "contributors": [ { "match": { "tool": "a", "input": { "x": { "regex": "(" } } }, "field": "a" } ] }),
            ),
            vec![(
                "budgets[0].contributors[0].match.input.x.regex",
                "invalid regex",
            )],
        ),
        (
            budget(
                json!({ "contributors": [ { "match": { "tool": "a", "annotations": {} }, "field": "a" } ] }),
            ),
            vec![(
                "budgets[0].contributors[0].match",
                "unknown key \"annotations\"",
            )],
        ),
        (
            budget(json!({ "cap": 1 })),
            vec![("budgets[0]", "unknown key \"cap\"")],
        ),
        (
            json!({ "budgets": [
                { "name": "a", "limit": 1, "currency": "USD", "window": "1h", "contributors": [ { "match": { "tool": "x" }, "field": "n" } ] },
                { "name": "a", "limit": 2, "currency": "USD", "window": "1d", "contributors": [ { "match": { "tool": "y" }, "field": "n" } ] },
            ] }),
            vec![("budgets[1].name", "duplicate budget name \"a\"")],
        ),
        (
            json!({ "budgets": {} }),
            vec![("budgets", "expected a list, found a mapping")],
        ),
        (
            json!({ "budgets": [ "travel" ] }),
            vec![("budgets[0]", "expected a mapping, found a string")],
        ),
        (
            json!({ "session": { "on_unresolved": "allow" } }),
            vec![("session.on_unresolved", "expected one of: deny, anonymous")],
        ),
        (json!([]), vec![("", "must be a JSON object")]),
        // Every problem is reported.
        (
            budget(
                json!({ "limit": -1, "currency": 5, "contributors": [ { "match": { "tool": "" }, "field": 1 } ] }),
            ),
            vec![
                ("budgets[0].limit", "must be greater than zero"),
                ("budgets[0].currency", "expected a string"),
                ("budgets[0].contributors[0].match.tool", "must not be empty"),
                ("budgets[0].contributors[0].field", "expected a string"),
            ],
        ),
    ];
    for (config, want) in &cases {
        let got = errors(config);
        assert_eq!(got.len(), want.len(), "{config}: got {got:#?}");
        for ((path, message), (want_path, want_text)) in got.iter().zip(want) {
            assert_eq!(path, want_path, "{config}: {message}");
            assert!(
                message.contains(want_text),
                "{config}: {path}: {message:?} lacks {want_text:?}"
            );
        }
    }
}

#[test]
fn invalid_json_is_one_whole_configuration_error() {
    let errors = Engine::from_json("{not json").unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path, "");
    assert!(
        errors[0].message.contains("not valid JSON"),
        "{}",
        errors[0].message
    );
}

#[test]
fn accepted_configurations() {
    let cases = [
        json!({}),
        json!({ "budgets": null }),
        json!({ "budgets": [], "session": { "on_unresolved": "anonymous", "tried": "header x-helio-session-id" } }),
        budget(json!({})),
        budget(json!({ "key": "session", "window": "session", "idle_ttl": "2d" })),
        budget(json!({ "key": "sender_id", "window": "session" })),
        budget(
            json!({ "on_exceed": "require_approval", "approval": { "channel": "slack-finance", "timeout": "10m", "delegates": ["dashboard"], "escalation_after": "2m" } }),
        ),
        budget(
            json!({ "contributors": [ { "match": { "tool": "a", "input": { "class": { "eq": "first" } } }, "field": "$.price.total" } ] }),
        ),
        // Null-valued optional keys count as absent, as in the host.
        budget(json!({ "approval": null, "idle_ttl": null, "key": null, "on_exceed": null })),
    ];
    for config in &cases {
        assert_eq!(errors(config), Vec::<(String, String)>::new(), "{config}");
    }
    let e = Engine::from_json(&budget(json!({})).to_string()).unwrap();
    assert_eq!(e.budget_count(), 1);
}

#[test]
fn sender_keys_warn_once_at_configure() {
    let e = Engine::from_json(&budget(json!({ "key": "sender_id" })).to_string()).unwrap();
    assert_eq!(
        e.warnings(),
        ["budget \"travel\": key \"sender_id\" has no value on the MCP path (only adapters name a sender); MCP calls draw from the global pot"]
    );
    let e = Engine::from_json(&budget(json!({ "key": "session" })).to_string()).unwrap();
    assert!(e.warnings().is_empty());
}
