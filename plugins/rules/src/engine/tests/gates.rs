//! Evidence grounding and dependency chains.

use serde_json::json;

use super::{decide_in, decision, engine, extra, Call, MemoryState, NOW};
use crate::engine::{Engine, EvidenceStatus, Feedback, Verdict};

fn grounded() -> Engine {
    engine(json!({ "rules": [
        { "name": "refunds", "match": { "tool": "refund" }, "action": "allow",
          "evidence": { "requires": ["ticket", "identity"] }, "requires": ["lookup_order"] },
        { "match": { "tool": "lenient" }, "action": "allow",
          "requires": ["lookup_order"], "requires_success": false },
        { "name": "held", "match": { "tool": "wire" }, "action": "require_approval",
          "evidence": { "requires": ["ticket"] },
          "feedback": { "message": "Wires need a ticket.", "suggestion": "Open a ticket first." } },
        { "name": "simulated", "match": { "tool": "sim" }, "action": "dry_run", "requires": ["plan"] },
    ] }))
}

/// A state in which session `s1` holds everything `refunds` needs.
fn satisfied() -> MemoryState {
    let mut state = MemoryState::at(NOW);
    state.set_evidence("s1", "ticket", EvidenceStatus::Present);
    state.set_evidence("s1", "identity", EvidenceStatus::Present);
    state.set_completed("s1", "lookup_order", true);
    state
}

fn denied(verdict: &Verdict) -> (&crate::engine::Decision, &Feedback) {
    match verdict {
        Verdict::Deny(d, f) => (d, f),
        other => panic!("not denied: {other:?}"),
    }
}

#[test]
fn satisfied_gates_let_the_rule_act() {
    let e = grounded();
    let verdict = decide_in(&e, &Call::new("refund").in_session("s1"), &mut satisfied());
    assert_eq!(
        verdict,
        Verdict::Allow(decision(
            "allow",
            Some("refunds"),
            Some(0),
            "Matched \"refunds\" -> allow"
        ))
    );
    // Evidence in another session does not count.
    let verdict = decide_in(&e, &Call::new("refund").in_session("s2"), &mut satisfied());
    assert_eq!(denied(&verdict).1.reason, "evidence_missing");
}

#[test]
fn missing_evidence() {
    let e = grounded();
    let mut state = satisfied();
    state.set_evidence("s1", "identity", EvidenceStatus::Missing);
    let verdict = decide_in(&e, &Call::new("refund").in_session("s1"), &mut state);
    let (d, f) = denied(&verdict);
    assert_eq!(
        *d,
        decision(
            "deny",
            Some("refunds"),
            Some(0),
            "Matched \"refunds\" -> allow; missing evidence: identity"
        )
    );
    assert_eq!(
        *f,
        Feedback {
            reason: "evidence_missing".into(),
            message: "Blocked: rule \"refunds\" requires evidence that is missing: identity".into(),
            suggestion: Some("Record the evidence identity for this session over the Helio SDK (mark_evidence), then retry this call.".into()),
            retry_allowed: true,
            extra_json: f.extra_json.clone(),
        }
    );
    assert_eq!(
        extra(&verdict),
        json!({ "missing_evidence": ["identity"], "expired_evidence": [], "missing_dependencies": [] })
    );
    // Nothing was taken from the state.
    assert!(state.log.is_empty());
}

#[test]
fn expired_evidence_wins_over_missing_and_dependencies() {
    let e = grounded();
    let mut state = MemoryState::at(NOW);
    state.set_evidence("s1", "ticket", EvidenceStatus::Expired);
    let verdict = decide_in(&e, &Call::new("refund").in_session("s1"), &mut state);
    let (d, f) = denied(&verdict);
    assert_eq!(f.reason, "evidence_expired");
    assert_eq!(
        d.explanation,
        "Matched \"refunds\" -> allow; missing evidence: identity; expired evidence: ticket; missing dependencies: lookup_order"
    );
    assert_eq!(
        f.message,
        "Blocked: rule \"refunds\" requires evidence that is missing: identity; has expired: ticket; it also requires these tools to have completed successfully in this session first: lookup_order"
    );
    assert_eq!(
        f.suggestion.as_deref(),
        Some("Record the evidence identity, ticket for this session over the Helio SDK (mark_evidence) and call lookup_order successfully in this session first, then retry this call.")
    );
    assert_eq!(
        extra(&verdict),
        json!({ "missing_evidence": ["identity"], "expired_evidence": ["ticket"], "missing_dependencies": ["lookup_order"] })
    );
}

#[test]
fn missing_dependencies() {
    let e = grounded();
    let cases: &[(Option<bool>, bool)] = &[
        // (completed lookup_order: none / failed / succeeded, allowed)
        (None, false),
        (Some(false), false),
        (Some(true), true),
    ];
    for (completed, allowed) in cases {
        let mut state = satisfied();
        state.set_completed("s1", "lookup_order", completed.unwrap_or(false));
        if completed.is_none() {
            state = MemoryState::at(NOW);
            state.set_evidence("s1", "ticket", EvidenceStatus::Present);
            state.set_evidence("s1", "identity", EvidenceStatus::Present);
        }
        let verdict = decide_in(&e, &Call::new("refund").in_session("s1"), &mut state);
        if *allowed {
            assert!(
                matches!(verdict, Verdict::Allow(_)),
                "{completed:?}: {verdict:?}"
            );
            continue;
        }
        let (d, f) = denied(&verdict);
        assert_eq!(d.action, "deny");
        assert_eq!(f.reason, "dependency_missing", "{completed:?}");
        assert_eq!(
            f.message,
            "Blocked: rule \"refunds\" requires these tools to have completed successfully in this session first: lookup_order"
        );
        assert_eq!(
            f.suggestion.as_deref(),
            Some("Call lookup_order successfully in this session first, then retry this call.")
        );
        assert!(f.retry_allowed);
        assert_eq!(
            extra(&verdict),
            json!({ "missing_evidence": [], "expired_evidence": [], "missing_dependencies": ["lookup_order"] })
        );
    }
}

#[test]
fn requires_success_false_accepts_a_failed_call() {
    let e = grounded();
    let call = Call::new("lenient").in_session("s1");
    let mut state = MemoryState::at(NOW);
    let verdict = decide_in(&e, &call, &mut state);
    let (_, f) = denied(&verdict);
    assert_eq!(
        f.message,
        "Blocked: rule \"rules[1]\" requires these tools to have been called in this session first: lookup_order"
    );
    assert_eq!(
        f.suggestion.as_deref(),
        Some("Call lookup_order in this session first, then retry this call.")
    );
    state.set_completed("s1", "lookup_order", false);
    assert!(matches!(
        decide_in(&e, &call, &mut state),
        Verdict::Allow(_)
    ));
}

#[test]
fn rule_feedback_replaces_generated_text_and_gates_precede_approval() {
    let e = grounded();
    let call = Call::new("wire").in_session("s1");
    let verdict = decide_in(&e, &call, &mut MemoryState::at(NOW));
    let (d, f) = denied(&verdict);
    assert_eq!(
        d.explanation,
        "Matched \"held\" -> require_approval; missing evidence: ticket"
    );
    assert_eq!(f.message, "Wires need a ticket.");
    assert_eq!(f.suggestion.as_deref(), Some("Open a ticket first."));
    let mut state = MemoryState::at(NOW);
    state.set_evidence("s1", "ticket", EvidenceStatus::Present);
    assert!(matches!(
        decide_in(&e, &call, &mut state),
        Verdict::RequireApproval(_)
    ));
}

#[test]
fn per_rule_dry_run_is_gated_too() {
    let e = grounded();
    let call = Call::new("sim").in_session("s1");
    let mut state = MemoryState::at(NOW);
    assert_eq!(
        denied(&decide_in(&e, &call, &mut state)).1.reason,
        "dependency_missing"
    );
    state.set_completed("s1", "plan", true);
    assert!(matches!(
        decide_in(&e, &call, &mut state),
        Verdict::DryRun(_)
    ));
}

#[test]
fn grounding_needs_a_session_in_both_modes() {
    for mode in ["deny", "anonymous"] {
        let e = super::compile(json!({
            "policies": { "rules": [
                { "name": "refunds", "match": { "tool": "refund" }, "action": "allow",
                  "evidence": { "requires": ["ticket"] } },
            ] },
            "session": { "on_unresolved": mode, "tried": "header x-helio-session-id, legacy_header" },
        }));
        let mut state = MemoryState::at(NOW);
        // Even evidence held by the `unknown` session does not ground a call.
        state.set_evidence("unknown", "ticket", EvidenceStatus::Present);
        let verdict = decide_in(&e, &Call::new("refund"), &mut state);
        let (d, f) = denied(&verdict);
        let explanation =
            "Matched \"refunds\" -> allow; no session identity for evidence/dependency checks";
        assert_eq!(
            *d,
            decision("deny", Some("refunds"), Some(0), explanation),
            "{mode}"
        );
        assert_eq!(f.reason, "policy_denied");
        assert!(f.retry_allowed);
        assert!(f.message.contains("rule \"refunds\""), "{}", f.message);
        assert!(f.message.contains("a session identity is required for evidence/dependency checks, and none was resolved (tried: header x-helio-session-id, legacy_header)"), "{}", f.message);
        assert!(f
            .suggestion
            .as_deref()
            .is_some_and(|s| s.contains("x-helio-session-id")));
        assert_eq!(
            extra(&verdict),
            json!({ "policy_reason": explanation, "session_unresolved": true, "tried": "header x-helio-session-id, legacy_header" })
        );
    }
    // Without a session block, nothing was tried.
    let e = grounded();
    let verdict = decide_in(&e, &Call::new("refund"), &mut MemoryState::at(NOW));
    assert_eq!(extra(&verdict)["tried"], "none");
}

#[test]
fn deny_rules_are_not_gated() {
    let e = engine(json!({ "rules": [
        { "match": { "tool": "a" }, "action": "deny", "evidence": { "requires": ["ticket"] }, "requires": ["x"] },
    ] }));
    let verdict = decide_in(&e, &Call::new("a"), &mut MemoryState::at(NOW));
    assert_eq!(denied(&verdict).1.reason, "policy_denied");
    assert!(!verdict.feedback().unwrap().retry_allowed);
}
