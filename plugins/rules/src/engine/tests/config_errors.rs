//! What `configure` rejects, with exact paths (relative to `policies`).

use serde_json::{json, Value as Json};

use crate::engine::Engine;

fn errors(config: &Json) -> Vec<(String, String)> {
    match Engine::from_json(&config.to_string()) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.into_iter().map(|e| (e.path, e.message)).collect(),
    }
}

/// One rule in `policies.rules[0]`.
fn one(rule: Json) -> Json {
    json!({ "policies": { "rules": [ rule ] } })
}

#[test]
fn rejected_configurations() {
    // (configuration, [(path, text the message contains)])
    let cases: Vec<(Json, Vec<(&str, &str)>)> = vec![
        (
            json!({ "policies": { "rules": [
                { "match": {}, "action": "allow" },
                { "match": {}, "action": "allow" },
                { "match": { "input": { "amount": { "regex": "(unclosed" } } }, "action": "deny" },
            ] } }),
            vec![("rules[2].match.input.amount.regex", "invalid regex \"(unclosed\"")],
        ),
        (
            one(json!({ "match": { "input": { "$.a.b": { "regex": "[z-a]" } } }, "action": "deny" })),
            vec![("rules[0].match.input.$.a.b.regex", "invalid regex")],
        ),
        // regex-lite has no Unicode classes; the host's `regex` accepts them.
        (
            one(json!({ "match": { "input": { "name": { "regex": "\\p{Lu}" } } }, "action": "deny" })),
            vec![("rules[0].match.input.name.regex", "invalid regex")],
        ),
        // Look-around and backreferences do not exist in a linear-time engine.
        (
            one(json!({ "match": { "input": { "q": { "regex": "(a)\\1" } } }, "action": "deny" })),
            vec![("rules[0].match.input.q.regex", "invalid regex")],
        ),
        (
            one(json!({ "match": { "metadata": { "channel_id": { "regex": "(?<=x)y" } } }, "action": "deny" })),
            vec![("rules[0].match.metadata.channel_id.regex", "invalid regex")],
        ),
        (
            one(json!({ "match": {}, "action": "block" })),
            vec![("rules[0].action", "invalid value \"block\" (expected one of: allow, deny, require_approval, rate_limit, spend_limit, dry_run)")],
        ),
        (one(json!({ "match": {} })), vec![("rules[0].action", "missing required key")]),
        (one(json!({ "action": "deny" })), vec![("rules[0].match", "missing required key")]),
        (one(json!({ "match": {}, "action": 3 })), vec![("rules[0].action", "expected a string, found a number")]),
        (one(json!({ "match": { "tool": "" }, "action": "deny" })), vec![("rules[0].match.tool", "must not be empty")]),
        (one(json!({ "match": { "tool": "send_[ab" }, "action": "deny" })), vec![("rules[0].match.tool", "unclosed character class")]),
        (one(json!({ "match": { "tool": "{a,b" }, "action": "deny" })), vec![("rules[0].match.tool", "unclosed brace")]),
        (one(json!({ "match": { "tool": "a\\" }, "action": "deny" })), vec![("rules[0].match.tool", "unfinished escape")]),
        (
            one(json!({ "match": { "tool": "{{{{{{{{{{{a}}}}}}}}}}}" }, "action": "deny" })),
            vec![("rules[0].match.tool", "more than 10 deep")],
        ),
        (one(json!({ "match": { "tool": ["a"] }, "action": "deny" })), vec![("rules[0].match.tool", "expected a string, found a list")]),
        (
            one(json!({ "match": { "input": { "amount": {} } }, "action": "deny" })),
            vec![("rules[0].match.input.amount", "at least one condition operator is required")],
        ),
        (
            one(json!({ "match": { "input": { "amount": { "gt": null } } }, "action": "deny" })),
            vec![("rules[0].match.input.amount", "at least one condition operator is required")],
        ),
        (
            one(json!({ "match": { "input": { "amount": { "gt": "100" } } }, "action": "deny" })),
            vec![("rules[0].match.input.amount.gt", "expected a number, found a string")],
        ),
        (
            one(json!({ "match": { "input": { "amount": { "contains": 1 } } }, "action": "deny" })),
            vec![("rules[0].match.input.amount.contains", "expected a string")],
        ),
        (
            one(json!({ "match": { "input": { "amount": { "between": [1, 2] } } }, "action": "deny" })),
            vec![("rules[0].match.input.amount", "unknown key \"between\"")],
        ),
        (one(json!({ "match": { "input": [] }, "action": "deny" })), vec![("rules[0].match.input", "expected a mapping")]),
        (
            one(json!({ "match": { "metadata": { "channel_id": {} } }, "action": "deny" })),
            vec![("rules[0].match.metadata.channel_id", "at least one metadata condition operator is required")],
        ),
        (
            one(json!({ "match": { "metadata": { "channel_id": { "gt": 1 } } }, "action": "deny" })),
            vec![("rules[0].match.metadata.channel_id", "unknown key \"gt\"")],
        ),
        (
            one(json!({ "match": { "annotations": { "destructive": true } }, "action": "deny" })),
            vec![("rules[0].match.annotations", "unknown key \"destructive\"")],
        ),
        (
            one(json!({ "match": { "annotations": { "readOnlyHint": "yes" } }, "action": "deny" })),
            vec![("rules[0].match.annotations.readOnlyHint", "expected true or false")],
        ),
        (one(json!({ "match": { "tools": "x" }, "action": "deny" })), vec![("rules[0].match", "unknown key \"tools\"")]),
        (one(json!({ "match": {}, "action": "deny", "modify": {} })), vec![("rules[0]", "unknown key \"modify\"")]),
        (one(json!({ "match": {}, "action": "deny", "name": 7 })), vec![("rules[0].name", "expected a string")]),
        (
            one(json!({ "match": {}, "action": "require_approval", "approval": { "timeout": "5m" } })),
            vec![("rules[0].approval.channel", "missing required key")],
        ),
        (
            one(json!({ "match": {}, "action": "require_approval", "approval": { "channel": "dashboard", "timeout": "5 minutes" } })),
            vec![("rules[0].approval.timeout", "invalid duration \"5 minutes\"")],
        ),
        (
            one(json!({ "match": {}, "action": "require_approval", "approval": { "channel": "dashboard", "escalation_after": "100ms" } })),
            vec![("rules[0].approval.escalation_after", "invalid duration \"100ms\"")],
        ),
        (
            one(json!({ "match": {}, "action": "require_approval", "approval": { "channel": "dashboard", "delegates": [1] } })),
            vec![("rules[0].approval.delegates[0]", "expected a string")],
        ),
        (one(json!({ "match": {}, "action": "allow", "evidence": {} })), vec![("rules[0].evidence.requires", "missing required key")]),
        (one(json!({ "match": {}, "action": "allow", "evidence": { "requires": "ticket" } })), vec![("rules[0].evidence.requires", "expected a list")]),
        (one(json!({ "match": {}, "action": "allow", "requires": [true] })), vec![("rules[0].requires[0]", "expected a string")]),
        (one(json!({ "match": {}, "action": "allow", "requires_success": 1 })), vec![("rules[0].requires_success", "expected true or false")]),
        (one(json!({ "match": {}, "action": "deny", "feedback": { "suggestion": "x" } })), vec![("rules[0].feedback.message", "missing required key")]),
        (one(json!({ "match": {}, "action": "deny", "feedback": "no" })), vec![("rules[0].feedback", "expected a mapping")]),
        (one(json!({ "match": {}, "action": "rate_limit", "limits": 5 })), vec![("rules[0].limits", "expected a mapping")]),
        (
            one(json!({ "match": {}, "action": "rate_limit" })),
            vec![
                ("rules[0].limits.max_calls", "rate_limit rules require limits.max_calls"),
                ("rules[0].limits.window", "rate_limit rules require limits.window"),
            ],
        ),
        (
            one(json!({ "match": {}, "action": "rate_limit", "limits": { "max_calls": 0, "window": "1 minute" } })),
            vec![
                ("rules[0].limits.max_calls", "expected a positive integer, found 0"),
                ("rules[0].limits.window", "invalid duration \"1 minute\""),
            ],
        ),
        (
            one(json!({ "match": {}, "action": "rate_limit", "limits": { "max_calls": 1.5, "window": "1m", "key": "user" } })),
            vec![
                ("rules[0].limits.max_calls", "expected a positive integer, found 1.5"),
                ("rules[0].limits.key", "invalid value \"user\" (expected one of: tool, session, global, agent, sender_id)"),
            ],
        ),
        (
            one(json!({ "match": {}, "action": "spend_limit", "limits": { "max_calls": 5, "window": "1m" } })),
            vec![("rules[0].limits.max_spend", "spend_limit rules require limits.max_spend")],
        ),
        (
            one(json!({ "match": {}, "action": "spend_limit", "limits": { "max_spend": { "limit": -1, "window": "1d", "key": "tool", "cap": 1 } } })),
            vec![
                ("rules[0].limits.max_spend", "unknown key \"cap\""),
                ("rules[0].limits.max_spend.field", "missing required key"),
                ("rules[0].limits.max_spend.limit", "must not be negative"),
                ("rules[0].limits.max_spend.currency", "missing required key"),
            ],
        ),
        (
            one(json!({ "match": {}, "action": "spend_limit", "limits": { "max_spend": { "field": "amount", "limit": "100", "currency": "USD", "window": "1d" } } })),
            vec![("rules[0].limits.max_spend.limit", "expected a number, found a string")],
        ),
        (
            one(json!({ "match": {}, "action": "allow", "limits": { "max_calls": 5, "windows": "1m" } })),
            vec![("rules[0].limits", "unknown key \"windows\"")],
        ),
        (one(json!("deny everything")), vec![("rules[0]", "expected a mapping, found a string")]),
        (json!({ "policies": { "default": "block" } }), vec![("default", "invalid value \"block\" (expected one of: allow, deny)")]),
        (json!({ "policies": { "flag_destructive": "deny" } }), vec![("flag_destructive", "expected one of: log, require_approval")]),
        (json!({ "policies": { "dry_run": "yes" } }), vec![("dry_run", "expected true or false")]),
        (json!({ "policies": { "rules": {} } }), vec![("rules", "expected a list, found a mapping")]),
        (json!({ "policies": [] }), vec![("", "policies: expected a mapping")]),
        (json!({ "environment": 3, "policies": {} }), vec![("", "environment must be a string or null")]),
        (json!([]), vec![("", "must be a JSON object")]),
        (json!({ "session": { "on_unresolved": "allow" } }), vec![("session.on_unresolved", "expected one of: deny, anonymous")]),
        // Every problem is reported, in document order.
        (
            json!({ "policies": { "default": "nope", "rules": [
                { "match": { "tool": "[" }, "action": "deny" },
                { "match": {}, "action": "allow" },
                { "match": { "input": { "a": { "regex": "(" }, "b": { "lt": "x" } } }, "action": "sometimes" },
            ] } }),
            vec![
                ("default", "invalid value \"nope\""),
                ("rules[0].match.tool", "unclosed character class"),
                ("rules[2].action", "invalid value \"sometimes\""),
                ("rules[2].match.input.a.regex", "invalid regex"),
                ("rules[2].match.input.b.lt", "expected a number"),
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
fn accepted_shapes() {
    let cases = [
        // `eq: null` is a comparison with null, not an absent operator.
        one(json!({ "match": { "input": { "x": { "eq": null } } }, "action": "deny" })),
        // Null-valued optional keys count as absent, as in the host.
        one(
            json!({ "name": null, "match": { "tool": null, "annotations": null }, "action": "deny", "feedback": null }),
        ),
        one(json!({ "match": { "metadata": { "channel_id": null } }, "action": "deny" })),
        one(json!({ "match": {}, "action": "allow", "requires_success": "false" })),
        json!({ "policies": { "dry_run": "true", "flag_destructive": null } }),
        one(
            json!({ "match": {}, "action": "rate_limit", "limits": { "max_calls": 3, "window": "1m", "key": "session" } }),
        ),
        // A spend limit of zero blocks every positive amount.
        one(
            json!({ "match": {}, "action": "spend_limit", "limits": { "max_spend": { "field": "a", "limit": 0, "currency": "USD", "window": "1h", "key": "global" } } }),
        ),
        // Limits on other actions are checked, not required.
        one(json!({ "match": {}, "action": "allow", "limits": { "max_calls": 3 } })),
        json!({ "policies": {}, "session": { "on_unresolved": "anonymous", "tried": "header x-helio-session-id" } }),
        // regex-lite syntax the host's regex also accepts.
        one(
            json!({ "match": { "input": { "x": { "regex": "(?i)^[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}$" } } }, "action": "deny" }),
        ),
        one(json!({ "match": { "tool": "a}" }, "action": "deny" })),
    ];
    for config in &cases {
        assert_eq!(errors(config), Vec::<(String, String)>::new(), "{config}");
    }
}
