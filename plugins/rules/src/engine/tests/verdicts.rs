//! The verdicts and their decisions and feedback, exactly.

use serde_json::{json, Value as Json};

use super::{decide, engine, Call};
use crate::engine::{ApprovalRequest, Decision, Feedback, Verdict};

fn decision(action: &str, rule: Option<&str>, index: Option<u32>, explanation: &str) -> Decision {
    Decision {
        action: action.into(),
        rule: rule.map(Into::into),
        rule_index: index,
        explanation: explanation.into(),
    }
}

fn extra(json: Json) -> Option<String> {
    Some(json.to_string())
}

const DENY_SUGGESTION: &str =
    "This call is not permitted by policy; do not retry it. Ask an operator if it is needed.";

#[test]
fn allow_and_dry_run_rules() {
    let e = engine(json!({ "rules": [
        { "name": "reads", "match": { "tool": "read_*" }, "action": "allow" },
        { "match": { "tool": "sim_*" }, "action": "dry_run" },
    ] }));
    assert_eq!(
        decide(&e, &Call::new("read_file")),
        Verdict::Allow(decision(
            "allow",
            Some("reads"),
            Some(0),
            "Matched \"reads\" -> allow"
        ))
    );
    assert_eq!(
        decide(&e, &Call::new("sim_x")),
        Verdict::DryRun(decision(
            "dry_run",
            None,
            Some(1),
            "Matched rules[1] -> dry_run"
        ))
    );
}

#[test]
fn deny_feedback_custom_and_generated() {
    let e = engine(json!({ "rules": [
        { "name": "no-deletes", "match": { "tool": "delete_*" }, "action": "deny",
          "feedback": { "message": "Deleting is not allowed.", "suggestion": "Archive the record instead." } },
        { "name": "no-drops", "match": { "tool": "drop_*" }, "action": "deny",
          "feedback": { "message": "Dropping is not allowed." } },
        { "match": { "tool": "rm" }, "action": "deny" },
        { "name": "", "match": { "tool": "mv" }, "action": "deny" },
        { "name": "say \"hi\"", "match": { "tool": "hi" }, "action": "deny" },
    ] }));
    let cases: &[(&str, Decision, &str, &str, &str)] = &[
        (
            "delete_row",
            decision(
                "deny",
                Some("no-deletes"),
                Some(0),
                "Matched \"no-deletes\" -> deny",
            ),
            "Deleting is not allowed.",
            "Archive the record instead.",
            "Matched \"no-deletes\" -> deny",
        ),
        (
            "drop_table",
            decision(
                "deny",
                Some("no-drops"),
                Some(1),
                "Matched \"no-drops\" -> deny",
            ),
            "Dropping is not allowed.",
            DENY_SUGGESTION,
            "Matched \"no-drops\" -> deny",
        ),
        (
            "rm",
            decision("deny", None, Some(2), "Matched rules[2] -> deny"),
            "Policy denied: Matched rules[2] -> deny",
            DENY_SUGGESTION,
            "Matched rules[2] -> deny",
        ),
        // An empty name counts as no name.
        (
            "mv",
            decision("deny", None, Some(3), "Matched rules[3] -> deny"),
            "Policy denied: Matched rules[3] -> deny",
            DENY_SUGGESTION,
            "Matched rules[3] -> deny",
        ),
        // Names are quoted verbatim; extra-json escapes them.
        (
            "hi",
            decision(
                "deny",
                Some("say \"hi\""),
                Some(4),
                "Matched \"say \"hi\"\" -> deny",
            ),
            "Policy denied: Matched \"say \"hi\"\" -> deny",
            DENY_SUGGESTION,
            "Matched \"say \"hi\"\" -> deny",
        ),
    ];
    for (tool, d, message, suggestion, reason) in cases {
        let want = Verdict::Deny(
            d.clone(),
            Feedback {
                reason: "policy_denied".into(),
                message: (*message).into(),
                suggestion: Some((*suggestion).into()),
                retry_allowed: false,
                extra_json: extra(json!({ "policy_reason": reason })),
            },
        );
        assert_eq!(decide(&e, &Call::new(tool)), want, "{tool}");
    }
}

#[test]
fn require_approval_carries_route_and_feedback() {
    let e = engine(json!({ "rules": [
        { "name": "refunds", "match": { "tool": "refund" }, "action": "require_approval",
          "approval": { "channel": "slack-finance", "timeout": "5m", "delegates": ["dashboard"], "escalation_after": "1m" },
          "feedback": { "message": "Refunds need a human.", "suggestion": "Wait for approval." } },
        { "match": { "tool": "wire" }, "action": "require_approval",
          "approval": { "channel": "dashboard" } },
        { "match": { "tool": "payout" }, "action": "require_approval",
          "feedback": { "message": "Payouts need a human." } },
    ] }));
    assert_eq!(
        decide(&e, &Call::new("refund")),
        Verdict::RequireApproval(ApprovalRequest {
            decision: decision(
                "require_approval",
                Some("refunds"),
                Some(0),
                "Matched \"refunds\" -> require_approval"
            ),
            channel: Some("slack-finance".into()),
            timeout_ms: Some(300_000),
            feedback: Some(Feedback {
                reason: "approval_required".into(),
                message: "Refunds need a human.".into(),
                suggestion: Some("Wait for approval.".into()),
                retry_allowed: true,
                extra_json: None,
            }),
        })
    );
    assert_eq!(
        decide(&e, &Call::new("wire")),
        Verdict::RequireApproval(ApprovalRequest {
            decision: decision(
                "require_approval",
                None,
                Some(1),
                "Matched rules[1] -> require_approval"
            ),
            channel: Some("dashboard".into()),
            timeout_ms: None,
            feedback: None,
        })
    );
    assert_eq!(
        decide(&e, &Call::new("payout")),
        Verdict::RequireApproval(ApprovalRequest {
            decision: decision(
                "require_approval",
                None,
                Some(2),
                "Matched rules[2] -> require_approval"
            ),
            channel: None,
            timeout_ms: None,
            feedback: Some(Feedback {
                reason: "approval_required".into(),
                message: "Payouts need a human.".into(),
                suggestion: None,
                retry_allowed: true,
                extra_json: None,
            }),
        })
    );
}

#[test]
fn approval_timeouts_in_milliseconds() {
    for (timeout, ms) in [
        ("30s", 30_000u64),
        ("5m", 300_000),
        ("1h", 3_600_000),
        ("2d", 172_800_000),
    ] {
        let e = engine(
            json!({ "rules": [ { "match": {}, "action": "require_approval",
            "approval": { "channel": "dashboard", "timeout": timeout } } ] }),
        );
        let Verdict::RequireApproval(request) = decide(&e, &Call::new("t")) else {
            panic!("not an approval");
        };
        assert_eq!(request.timeout_ms, Some(ms), "{timeout}");
    }
}

#[test]
fn default_policy() {
    let allow = engine(json!({}));
    assert_eq!(
        decide(&allow, &Call::new("t")),
        Verdict::Allow(decision(
            "allow",
            None,
            None,
            "No matching rule; applied default policy: allow"
        ))
    );
    let explicit = engine(
        json!({ "default": "allow", "rules": [ { "match": { "tool": "x" }, "action": "deny" } ] }),
    );
    assert_eq!(
        decide(&explicit, &Call::new("t")),
        decide(&allow, &Call::new("t"))
    );

    let deny = engine(json!({ "default": "deny" }));
    let explanation = "No matching rule; applied default policy: deny";
    let Verdict::Deny(d, f) = decide(&deny, &Call::new("t")) else {
        panic!("default deny did not deny");
    };
    assert_eq!(d, decision("deny", None, None, explanation));
    assert_eq!(f.reason, "policy_denied");
    assert_eq!(f.message, format!("Policy denied: {explanation}"));
    assert!(!f.retry_allowed);
    assert!(f.suggestion.is_some_and(|s| !s.is_empty()));
    assert_eq!(f.extra_json, extra(json!({ "policy_reason": explanation })));
}

#[test]
fn empty_or_null_configuration_means_defaults() {
    for config in [
        "{}",
        r#"{"policies": null}"#,
        r#"{"environment": null, "policies": {}}"#,
        r#"{"policies": {"rules": null, "default": null, "dry_run": null}}"#,
    ] {
        let e = crate::engine::Engine::from_json(config).unwrap();
        assert_eq!(e.rule_count(), 0);
        assert_eq!(
            decide(&e, &Call::new("t")).decision().action,
            "allow",
            "{config}"
        );
    }
}

#[test]
fn other_policies_keys_are_ignored() {
    let e = engine(json!({
        "on_tool_drift": "block",
        "tool_revalidation": { "enabled": false },
        "hot_reload": false,
        "install": { "default": "deny", "rules": [] },
        "rules": [ { "match": { "tool": "x" }, "action": "deny" } ],
    }));
    assert_eq!(e.rule_count(), 1);
}

#[test]
fn flag_destructive() {
    let destructive = Call::new("wipe");
    let harmless = Call::new("read").read_only();
    let flagged_explanation = "No matching rule; destructive tool flagged for approval";
    let warning = Some(
        "destructive tool wipe called with no matching rule (flag_destructive: log)".to_owned(),
    );
    // (policies, call, action, explanation, warning)
    let cases: &[(Json, &Call, &str, &str, Option<String>)] = &[
        (
            json!({"flag_destructive": "log"}),
            &destructive,
            "allow",
            "No matching rule; applied default policy: allow",
            warning.clone(),
        ),
        (
            json!({"flag_destructive": "log", "default": "deny"}),
            &destructive,
            "deny",
            "No matching rule; applied default policy: deny",
            warning.clone(),
        ),
        (
            json!({"flag_destructive": "log"}),
            &harmless,
            "allow",
            "No matching rule; applied default policy: allow",
            None,
        ),
        (
            json!({"flag_destructive": "require_approval"}),
            &destructive,
            "require_approval",
            flagged_explanation,
            None,
        ),
        // Deny is stricter than holding for approval.
        (
            json!({"flag_destructive": "require_approval", "default": "deny"}),
            &destructive,
            "deny",
            "No matching rule; applied default policy: deny",
            None,
        ),
        (
            json!({"flag_destructive": "require_approval"}),
            &harmless,
            "allow",
            "No matching rule; applied default policy: allow",
            None,
        ),
        // Only unmatched calls are flagged.
        (
            json!({"flag_destructive": "require_approval", "rules": [ { "match": { "tool": "wipe" }, "action": "allow" } ]}),
            &destructive,
            "allow",
            "Matched rules[0] -> allow",
            None,
        ),
        (
            json!({"flag_destructive": "log", "rules": [ { "match": { "tool": "wipe" }, "action": "allow" } ]}),
            &destructive,
            "allow",
            "Matched rules[0] -> allow",
            None,
        ),
        (
            json!({}),
            &destructive,
            "allow",
            "No matching rule; applied default policy: allow",
            None,
        ),
    ];
    for (policies, call, action, explanation, want_warning) in cases {
        let e = engine(policies.clone());
        let evaluation = e.evaluate(*call);
        let d = evaluation.verdict.decision();
        assert_eq!(
            (d.action.as_str(), d.explanation.as_str()),
            (*action, *explanation),
            "{policies} on {}",
            call.tool
        );
        assert_eq!(
            &evaluation.warning, want_warning,
            "{policies} on {}",
            call.tool
        );
    }
    let e = engine(json!({"flag_destructive": "require_approval"}));
    assert_eq!(
        decide(&e, &destructive),
        Verdict::RequireApproval(ApprovalRequest {
            decision: decision("require_approval", None, None, flagged_explanation),
            channel: None,
            timeout_ms: None,
            feedback: None,
        })
    );
}

#[test]
fn global_dry_run_simulates_every_verdict_keeping_its_action() {
    let policies = json!({
        "dry_run": true,
        "flag_destructive": "require_approval",
        "rules": [
            { "name": "ok", "match": { "tool": "ok" }, "action": "allow" },
            { "name": "no", "match": { "tool": "no" }, "action": "deny" },
            { "name": "hold", "match": { "tool": "hold" }, "action": "require_approval" },
            { "name": "sim", "match": { "tool": "sim" }, "action": "dry_run" },
            { "name": "rate", "match": { "tool": "rate" }, "action": "rate_limit" },
            { "name": "gated", "match": { "tool": "gated" }, "action": "allow", "evidence": { "requires": ["ticket"] } },
        ]
    });
    let e = engine(policies.clone());
    let cases: &[(Call, Decision)] = &[
        (
            Call::new("ok"),
            decision("allow", Some("ok"), Some(0), "Matched \"ok\" -> allow"),
        ),
        (
            Call::new("no"),
            decision("deny", Some("no"), Some(1), "Matched \"no\" -> deny"),
        ),
        (
            Call::new("hold"),
            decision(
                "require_approval",
                Some("hold"),
                Some(2),
                "Matched \"hold\" -> require_approval",
            ),
        ),
        (
            Call::new("sim"),
            decision(
                "dry_run",
                Some("sim"),
                Some(3),
                "Matched \"sim\" -> dry_run",
            ),
        ),
        (
            Call::new("rate"),
            decision(
                "rate_limit",
                Some("rate"),
                Some(4),
                "Matched \"rate\" -> rate_limit; refused: rate_limit not enforced yet",
            ),
        ),
        (
            Call::new("gated"),
            decision(
                "deny",
                Some("gated"),
                Some(5),
                "Matched \"gated\" -> allow; refused: evidence not enforced yet",
            ),
        ),
        (
            Call::new("unmatched"),
            decision(
                "require_approval",
                None,
                None,
                "No matching rule; destructive tool flagged for approval",
            ),
        ),
        (
            Call::new("unmatched").read_only(),
            decision(
                "allow",
                None,
                None,
                "No matching rule; applied default policy: allow",
            ),
        ),
    ];
    for (call, d) in cases {
        assert_eq!(
            decide(&e, call),
            Verdict::DryRun(d.clone()),
            "{}",
            call.tool
        );
    }
    let mut deny_default = policies;
    deny_default["default"] = json!("deny");
    let e = engine(deny_default);
    assert_eq!(
        decide(&e, &Call::new("unmatched")),
        Verdict::DryRun(decision(
            "deny",
            None,
            None,
            "No matching rule; applied default policy: deny"
        ))
    );
    // Without dry_run, the same rules do not simulate.
    let live = engine(json!({ "dry_run": false, "rules": [ { "match": {}, "action": "allow" } ] }));
    assert!(matches!(decide(&live, &Call::new("t")), Verdict::Allow(_)));
}

/// (tool, decision action, rule name, rule index, features named).
type NotYetEnforcedCase<'a> = (&'a str, &'a str, Option<&'a str>, u32, &'a [&'a str]);

#[test]
fn unenforceable_features_fail_closed() {
    let e = engine(json!({ "rules": [
        { "name": "calls", "match": { "tool": "a" }, "action": "rate_limit",
          "limits": { "max_calls": 5, "window": "1m" }, "feedback": { "message": "slow down" } },
        { "match": { "tool": "b" }, "action": "spend_limit",
          "limits": { "max_spend": { "field": "amount", "limit": 100, "currency": "USD", "window": "1d" } } },
        { "name": "grounded", "match": { "tool": "c" }, "action": "allow", "evidence": { "requires": ["ticket"] } },
        { "name": "chained", "match": { "tool": "d" }, "action": "require_approval", "requires": ["lookup"] },
        { "name": "both", "match": { "tool": "e" }, "action": "dry_run",
          "evidence": { "requires": ["ticket"] }, "requires": ["lookup"], "requires_success": false },
        { "name": "everything", "match": { "tool": "f" }, "action": "rate_limit",
          "evidence": { "requires": ["ticket"] }, "requires": ["lookup"] },
    ] }));
    let cases: &[NotYetEnforcedCase] = &[
        ("a", "rate_limit", Some("calls"), 0, &["rate_limit"]),
        ("b", "spend_limit", None, 1, &["spend_limit"]),
        ("c", "deny", Some("grounded"), 2, &["evidence"]),
        ("d", "deny", Some("chained"), 3, &["requires"]),
        ("e", "deny", Some("both"), 4, &["evidence", "requires"]),
        (
            "f",
            "deny",
            Some("everything"),
            5,
            &["evidence", "requires", "rate_limit"],
        ),
    ];
    let actions = [
        "rate_limit",
        "spend_limit",
        "allow",
        "require_approval",
        "dry_run",
        "rate_limit",
    ];
    for (tool, action, name, index, features) in cases {
        let Verdict::Deny(d, f) = decide(&e, &Call::new(tool)) else {
            panic!("{tool}: not denied");
        };
        let label = name.map_or(format!("rules[{index}]"), |n| format!("\"{n}\""));
        let quoted = name.map_or(format!("rules[{index}]"), str::to_owned);
        let list = match features {
            [one] => (*one).to_owned(),
            [a, b] => format!("{a} and {b}"),
            [a, b, c] => format!("{a}, {b} and {c}"),
            _ => unreachable!(),
        };
        let rule_action = actions[*index as usize];
        assert_eq!(
            d,
            decision(
                action,
                *name,
                Some(*index),
                &format!("Matched {label} -> {rule_action}; refused: {list} not enforced yet")
            ),
            "{tool}"
        );
        assert_eq!(f.reason, "not_yet_enforced", "{tool}");
        assert_eq!(
            f.message,
            format!("Blocked: rule \"{quoted}\" uses {list}, which this version of Helio cannot enforce yet, so the call is refused rather than let through"),
            "{tool}"
        );
        assert!(!f.retry_allowed, "{tool}");
        assert!(f.suggestion.is_some_and(|s| !s.is_empty()), "{tool}");
        assert_eq!(
            f.extra_json,
            extra(json!({ "not_yet_enforced": features })),
            "{tool}"
        );
    }
}

#[test]
fn gates_on_deny_rules_and_empty_requirements_change_nothing() {
    let e = engine(json!({ "rules": [
        { "match": { "tool": "a" }, "action": "deny", "evidence": { "requires": ["ticket"] }, "requires": ["x"] },
        { "match": { "tool": "b" }, "action": "allow", "evidence": { "requires": [] }, "requires": [] },
    ] }));
    let Verdict::Deny(_, f) = decide(&e, &Call::new("a")) else {
        panic!("a: not denied");
    };
    assert_eq!(f.reason, "policy_denied");
    assert!(matches!(decide(&e, &Call::new("b")), Verdict::Allow(_)));
}

#[test]
fn extra_json_is_valid_json_for_any_rule_name() {
    for name in [
        "plain",
        "q\"uote",
        "back\\slash",
        "new\nline\r\t",
        "ctl\u{1}\u{1f}",
        "ünïcode ✓",
        "</script>",
    ] {
        let e = engine(json!({ "rules": [ { "name": name, "match": {}, "action": "deny" } ] }));
        let Verdict::Deny(d, f) = decide(&e, &Call::new("t")) else {
            panic!("{name:?}: not denied");
        };
        let parsed: Json = serde_json::from_str(f.extra_json.as_deref().unwrap()).unwrap();
        assert_eq!(
            parsed,
            json!({ "policy_reason": d.explanation }),
            "{name:?}"
        );
    }
}
