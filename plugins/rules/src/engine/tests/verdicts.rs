//! The verdicts and their decisions and feedback, exactly.

use serde_json::{json, Value as Json};

use super::{decide, decide_in, engine, Call, MemoryState, NOW};
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
        let evaluation = e.evaluate(*call, &mut MemoryState::at(NOW));
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

/// Global `dry_run` is the host's business: the stage returns the verdicts
/// of a real run (and takes from the state as in a real run; the host gives
/// it back).
#[test]
fn global_dry_run_returns_real_verdicts() {
    let rules = json!([
        { "name": "ok", "match": { "tool": "ok" }, "action": "allow" },
        { "name": "no", "match": { "tool": "no" }, "action": "deny" },
        { "name": "hold", "match": { "tool": "hold" }, "action": "require_approval" },
        { "name": "sim", "match": { "tool": "sim" }, "action": "dry_run" },
        { "name": "rate", "match": { "tool": "rate" }, "action": "rate_limit",
          "limits": { "max_calls": 1, "window": "1m" } },
    ]);
    let live = engine(json!({ "flag_destructive": "require_approval", "rules": rules }));
    let simulated =
        engine(json!({ "dry_run": true, "flag_destructive": "require_approval", "rules": rules }));
    assert!(simulated.dry_run() && !live.dry_run());
    for tool in ["ok", "no", "hold", "sim", "unmatched"] {
        assert_eq!(
            decide(&simulated, &Call::new(tool)),
            decide(&live, &Call::new(tool)),
            "{tool}"
        );
    }
    assert!(matches!(
        decide(&simulated, &Call::new("ok")),
        Verdict::Allow(_)
    ));
    assert!(matches!(
        decide(&simulated, &Call::new("no")),
        Verdict::Deny(..)
    ));
    assert!(matches!(
        decide(&simulated, &Call::new("hold")),
        Verdict::RequireApproval(_)
    ));
    assert!(matches!(
        decide(&simulated, &Call::new("sim")),
        Verdict::DryRun(_)
    ));
    let mut state = MemoryState::at(NOW);
    let first = decide_in(&simulated, &Call::new("rate"), &mut state);
    assert!(
        matches!(&first, Verdict::Allow(d) if d.action == "rate_limit"),
        "{first:?}"
    );
    assert_eq!(state.log.len(), 1, "{:?}", state.log);
    let second = decide_in(&simulated, &Call::new("rate"), &mut state);
    assert!(
        matches!(&second, Verdict::Deny(_, f) if f.reason == "rate_limited"),
        "{second:?}"
    );
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
