//! `match.tool`, `annotations`, `environment`, `metadata`, and rule order.

use serde_json::{json, Value as Json};

use super::{decide, engine, engine_in, matched, Call};
use crate::engine::Annotations;

fn rule(m: Json) -> crate::engine::Engine {
    engine(json!({ "rules": [ { "match": m, "action": "allow" } ] }))
}

/// Glob semantics are tested with `policy_match::Glob`; this checks the
/// rule's `match.tool` uses them.
#[test]
fn tool_globs_select_rules() {
    let cases: &[(&str, &str, bool)] = &[
        ("send_email", "send_email", true),
        ("send_email", "send_emails", false),
        ("send_*", "send_email", true),
        ("stripe.*", "stripe_refund", false),
        ("{send,read}_email", "read_email", true),
        ("!delete_*", "delete_file", false),
    ];
    for (glob, tool, want) in cases {
        let e = rule(json!({ "tool": glob }));
        assert_eq!(
            matched(&e, &Call::new(tool)) == Some(0),
            *want,
            "glob {glob:?} on tool {tool:?}"
        );
    }
}

#[test]
fn no_tool_condition_matches_every_tool() {
    let e = rule(json!({}));
    for tool in ["a", "stripe.refund", "x/y", ""] {
        assert_eq!(matched(&e, &Call::new(tool)), Some(0), "{tool:?}");
    }
}

#[test]
fn annotations_compare_with_mcp_defaults_substituted() {
    let unannotated = Call::new("t");
    let read_only = Call::new("t").read_only();
    let cases: &[(Json, &Call, bool)] = &[
        // Unannotated tools carry the MCP defaults (destructive, open-world).
        (json!({"destructiveHint": true}), &unannotated, true),
        (json!({"destructiveHint": false}), &unannotated, false),
        (json!({"readOnlyHint": false}), &unannotated, true),
        (json!({"readOnlyHint": true}), &unannotated, false),
        (json!({"idempotentHint": false}), &unannotated, true),
        (json!({"openWorldHint": true}), &unannotated, true),
        (json!({"readOnlyHint": true}), &read_only, true),
        (json!({"destructiveHint": true}), &read_only, false),
        (
            json!({"readOnlyHint": true, "idempotentHint": true}),
            &read_only,
            true,
        ),
        (
            json!({"readOnlyHint": true, "openWorldHint": true}),
            &read_only,
            false,
        ),
        (json!({}), &unannotated, true),
        // Booleans written as strings (`${VAR}`) are accepted, as by the host.
        (json!({"destructiveHint": "true"}), &unannotated, true),
    ];
    for (hints, call, want) in cases {
        let e = rule(json!({ "annotations": hints }));
        assert_eq!(
            matched(&e, call) == Some(0),
            *want,
            "{hints} on {:?}",
            call.annotations
        );
    }
}

#[test]
fn a_single_stated_hint_is_compared_alone() {
    let e = rule(json!({ "annotations": { "destructiveHint": false } }));
    let call = Call::new("t").annotated(Annotations {
        destructive_hint: false,
        ..Annotations::default()
    });
    assert_eq!(matched(&e, &call), Some(0));
}

#[test]
fn environment_is_exact_and_case_sensitive() {
    let e = engine_in(
        Some("production"),
        json!({ "rules": [ { "match": { "environment": "production" }, "action": "allow" } ] }),
    );
    let cases: &[(Option<&str>, bool)] = &[
        (Some("production"), true),
        (Some("Production"), false),
        (Some("production "), false),
        (Some("staging"), false),
        (None, false),
    ];
    for (env, want) in cases {
        let call = match env {
            Some(env) => Call::new("t").env(env),
            None => Call::new("t"),
        };
        assert_eq!(matched(&e, &call) == Some(0), *want, "{env:?}");
    }
    // A rule without the condition ignores the environment.
    let any = rule(json!({}));
    assert_eq!(matched(&any, &Call::new("t").env("staging")), Some(0));
    assert_eq!(matched(&any, &Call::new("t")), Some(0));
}

#[test]
fn metadata_is_inert_on_the_mcp_path() {
    // No metadata on the MCP path: every metadata condition is false, so the
    // rule never matches, whatever else holds.
    let cases = [
        json!({ "channel_id": "C1" }),
        json!({ "channel_id": { "neq": "C1" } }),
        json!({ "channel_id": { "contains": "" } }),
        json!({ "channel_id": { "regex": ".*" } }),
    ];
    for metadata in cases {
        let e = rule(json!({ "tool": "*", "metadata": metadata }));
        assert_eq!(matched(&e, &Call::new("t")), None, "{metadata}");
    }
}

#[test]
fn metadata_conditions_on_the_sideband() {
    let cases: &[(Json, Option<&str>, bool)] = &[
        (json!("C1"), Some("C1"), true),
        (json!("C1"), Some("C2"), false),
        (json!({"eq": "C1"}), Some("C1"), true),
        (json!({"neq": "C1"}), Some("C2"), true),
        (json!({"neq": "C1"}), Some("C1"), false),
        (json!({"neq": "C1"}), None, false),
        (json!({"contains": "ops"}), Some("#ops-alerts"), true),
        (json!({"contains": "ops"}), Some("#dev"), false),
        (json!({"regex": "^U[0-9]+$"}), Some("U123"), true),
        (json!({"regex": "^U[0-9]+$"}), Some("B123"), false),
        (json!({"contains": "a", "neq": "abc"}), Some("ab"), true),
        (json!({"contains": "a", "neq": "abc"}), Some("abc"), false),
    ];
    for (condition, value, want) in cases {
        let e = rule(json!({ "metadata": { "channel_id": condition } }));
        let call = match value {
            Some(v) => Call::new("t").meta("channel_id", v),
            None => Call::new("t").meta("sender_id", "U1"),
        };
        assert_eq!(
            matched(&e, &call) == Some(0),
            *want,
            "{condition} on {value:?}"
        );
    }
    // Every key must hold.
    let e = rule(json!({ "metadata": { "channel_id": "C1", "sender_id": "U1" } }));
    assert_eq!(matched(&e, &Call::new("t").meta("channel_id", "C1")), None);
    assert_eq!(
        matched(
            &e,
            &Call::new("t")
                .meta("channel_id", "C1")
                .meta("sender_id", "U1")
        ),
        Some(0)
    );
}

#[test]
fn all_conditions_are_anded() {
    let e = engine_in(
        Some("prod"),
        json!({ "rules": [ {
            "match": {
                "tool": "send_*",
                "annotations": { "destructiveHint": true },
                "environment": "prod",
                "input": { "to": { "contains": "@" } }
            },
            "action": "deny"
        } ] }),
    );
    let ok = Call::new("send_email")
        .env("prod")
        .args(json!({"to": "a@b"}));
    assert_eq!(matched(&e, &ok), Some(0));
    let cases = [
        Call {
            tool: "read_email".into(),
            ..ok.clone()
        },
        ok.clone().read_only(),
        ok.clone().env("dev"),
        ok.clone().args(json!({"to": "nobody"})),
        ok.clone().no_args(),
    ];
    for call in cases {
        assert_eq!(matched(&e, &call), None, "{call:?}");
    }
}

#[test]
fn first_match_wins() {
    let e = engine(json!({ "rules": [
        { "name": "block-deletes", "match": { "tool": "delete_*" }, "action": "deny" },
        { "name": "big-refunds", "match": { "tool": "stripe.refund", "input": { "amount": { "gt": 100 } } }, "action": "require_approval" },
        { "name": "stripe", "match": { "tool": "stripe.*" }, "action": "allow" },
        { "name": "never-reached", "match": { "tool": "delete_all" }, "action": "allow" },
        { "match": {}, "action": "dry_run" },
    ] }));
    let cases: &[(&str, Json, u32, &str)] = &[
        ("delete_all", json!({}), 0, "deny"),
        ("delete_file", json!({}), 0, "deny"),
        (
            "stripe.refund",
            json!({"amount": 500}),
            1,
            "require_approval",
        ),
        ("stripe.refund", json!({"amount": 5}), 2, "allow"),
        ("stripe.charge", json!({"amount": 500}), 2, "allow"),
        ("read_file", json!({}), 4, "dry_run"),
    ];
    for (tool, arguments, index, action) in cases {
        let verdict = decide(&e, &Call::new(tool).args(arguments.clone()));
        let d = verdict.decision();
        assert_eq!(
            (d.rule_index, d.action.as_str()),
            (Some(*index), *action),
            "{tool} {arguments}"
        );
    }
}
