//! Rate and spend limits: buckets, state keys, and their feedback.

use serde_json::{json, Value as Json};

use super::{compile, decide_in, decision, engine, extra, Call, MemoryState, NOW};
use crate::engine::{Engine, Feedback, Verdict};

/// `FNV-1a-64({"max_calls":2,"window":"1m"})`.
const RATE_FP: &str = "32bb0ab561147d39";
/// `FNV-1a-64({"max_spend":{"currency":"USD","field":"amount","limit":100,"window":"1d"}})`.
const SPEND_FP: &str = "8b988b97a2db026a";

fn rate_rule(name: &str, key: Option<&str>) -> Json {
    let mut limits = json!({ "max_calls": 2, "window": "1m" });
    if let Some(key) = key {
        limits["key"] = json!(key);
    }
    json!({ "name": name, "match": { "tool": "send*" }, "action": "rate_limit", "limits": limits })
}

fn spend_rule(key: Option<&str>) -> Json {
    let mut max_spend =
        json!({ "field": "amount", "limit": 100, "currency": "USD", "window": "1d" });
    if let Some(key) = key {
        max_spend["key"] = json!(key);
    }
    json!({ "name": "pay", "match": { "tool": "pay" }, "action": "spend_limit", "limits": { "max_spend": max_spend } })
}

fn with_session(rules: Json, on_unresolved: &str) -> Engine {
    compile(json!({
        "policies": { "rules": rules },
        "session": { "on_unresolved": on_unresolved, "tried": "header x-helio-session-id" },
    }))
}

/// The state keys `state` was asked about, in order.
fn keys(state: &MemoryState) -> Vec<String> {
    state
        .log
        .iter()
        .map(|entry| entry.split(' ').nth(1).unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn rate_limit_takes_a_slot_per_call_until_the_window_is_full() {
    let e = engine(json!({ "rules": [ rate_rule("calls", None) ] }));
    let mut state = MemoryState::at(NOW);
    let call = Call::new("send_email");
    for used in 1..=2 {
        assert_eq!(
            decide_in(&e, &call, &mut state),
            Verdict::Allow(decision(
                "rate_limit",
                Some("calls"),
                Some(0),
                &format!(
                    "Matched \"calls\" -> rate_limit; {used} of 2 calls in 60s for tool:send_email"
                )
            ))
        );
    }
    state.now_ms = NOW + 15_000;
    let verdict = decide_in(&e, &call, &mut state);
    assert_eq!(
        verdict,
        Verdict::Deny(
            decision(
                "rate_limit",
                Some("calls"),
                Some(0),
                "Matched \"calls\" -> rate_limit; rate limit exceeded: 2 of 2 calls in 60s for tool:send_email"
            ),
            Feedback {
                reason: "rate_limited".into(),
                message: "Rate limit exceeded for tool:send_email".into(),
                suggestion: Some("Wait 45s (until 2026-11-23T00:01:00.000Z) before retrying this call.".into()),
                retry_allowed: true,
                extra_json: verdict.feedback().and_then(|f| f.extra_json.clone()),
            }
        )
    );
    assert_eq!(
        extra(&verdict),
        json!({ "current_calls": 2, "max_calls": 2, "window_seconds": 60, "reset_at": "2026-11-23T00:01:00.000Z" })
    );
    let key = format!("rate:calls:{RATE_FP}:tool:send_email");
    assert_eq!(state.log, vec![format!("rate_take {key} 2 60000"); 3]);
    // Another tool has its own bucket; the window slides.
    assert!(matches!(
        decide_in(&e, &Call::new("send_sms"), &mut state),
        Verdict::Allow(_)
    ));
    state.now_ms = NOW + 60_000;
    assert!(matches!(
        decide_in(&e, &call, &mut state),
        Verdict::Allow(_)
    ));
}

#[test]
fn rate_feedback_from_the_rule() {
    let mut rule = rate_rule("calls", None);
    rule["limits"]["max_calls"] = json!(1);
    rule["feedback"] = json!({ "message": "Slow down.", "suggestion": "Batch your sends." });
    let e = engine(json!({ "rules": [ rule ] }));
    let mut state = MemoryState::at(NOW);
    decide_in(&e, &Call::new("send"), &mut state);
    let verdict = decide_in(&e, &Call::new("send"), &mut state);
    let f = verdict.feedback().unwrap();
    assert_eq!(
        (f.reason.as_str(), f.message.as_str()),
        ("rate_limited", "Slow down.")
    );
    assert_eq!(f.suggestion.as_deref(), Some("Batch your sends."));
}

#[test]
fn rate_buckets_by_key() {
    // (limits.key, session, bucket)
    let cases: &[(Option<&str>, Option<&str>, &str)] = &[
        (None, Some("s1"), "tool:send"),
        (Some("tool"), None, "tool:send"),
        (Some("session"), Some("s1"), "session:s1"),
        (Some("global"), Some("s1"), "global"),
        // The rules stage cannot read the agent: per tool.
        (Some("agent"), Some("s1"), "tool:send"),
        // No sender (the MCP door names none): per tool.
        (Some("sender_id"), Some("s1"), "tool:send"),
        // An adapter's call names its sender (metadata.sender_id).
        (Some("sender_id"), Some("sender U7"), "sender:U7"),
    ];
    for (key, session, bucket) in cases {
        let e = engine(json!({ "rules": [ rate_rule("r", *key) ] }));
        let mut state = MemoryState::at(NOW);
        let mut call = match session.and_then(|s| s.strip_prefix("sender ")) {
            Some(sender) => Call::new("send").meta("sender_id", sender),
            None => Call::new("send"),
        };
        call.session = session.map(Into::into);
        decide_in(&e, &call, &mut state);
        let logged = keys(&state);
        assert_eq!(logged.len(), 1, "{key:?}");
        let (prefix, rest) = logged[0].split_at("rate:r:".len());
        assert_eq!(prefix, "rate:r:", "{key:?}");
        assert_eq!(&rest[17..], *bucket, "{key:?}");
    }
}

#[test]
fn agent_keys_warn_once_at_configure() {
    let e = engine(json!({ "rules": [
        rate_rule("a", Some("agent")),
        rate_rule("b", Some("sender_id")),
        rate_rule("c", Some("session")),
        spend_rule(Some("sender_id")),
        // Keys of limits the action does not use are not warned about.
        { "match": {}, "action": "allow", "limits": { "key": "agent" } },
    ] }));
    assert_eq!(
        e.warnings(),
        [
            "rule \"a\": limits.key \"agent\" is not available to the rules stage; counting per tool instead",
        ]
    );
    assert!(engine(json!({ "rules": [ rate_rule("c", None) ] }))
        .warnings()
        .is_empty());
}

#[test]
fn state_keys_survive_edits_of_other_rules_but_not_of_the_limits() {
    let key = |rules: Json, tool: &str| {
        let e = engine(json!({ "rules": rules }));
        let mut state = MemoryState::at(NOW);
        decide_in(&e, &Call::new(tool), &mut state);
        keys(&state).pop().unwrap_or_default()
    };
    let base = key(json!([rate_rule("calls", None)]), "send");
    assert_eq!(base, format!("rate:calls:{RATE_FP}:tool:send"));
    // Another rule added before it, and its own match and feedback edited.
    let mut edited = rate_rule("calls", None);
    edited["match"] = json!({ "tool": "send" });
    edited["feedback"] = json!({ "message": "Slow down." });
    let other = json!({ "name": "other", "match": { "tool": "x" }, "action": "deny" });
    assert_eq!(key(json!([other, edited]), "send"), base);
    // The limits written in another key order are the same limits.
    let mut reordered = rate_rule("calls", None);
    reordered["limits"] = serde_json::from_str(r#"{"window":"1m","max_calls":2}"#).unwrap();
    assert_eq!(key(json!([reordered]), "send"), base);
    // New limits start a new bucket.
    let mut raised = rate_rule("calls", None);
    raised["limits"]["max_calls"] = json!(3);
    assert_ne!(key(json!([raised]), "send"), base);
    let mut keyed = rate_rule("calls", None);
    keyed["limits"]["key"] = json!("tool");
    assert_ne!(key(json!([keyed]), "send"), base);
    // Unnamed (or empty-named) rules are known by their index.
    let mut unnamed = rate_rule("", None);
    unnamed.as_object_mut().unwrap().remove("name");
    assert_eq!(
        key(json!([unnamed]), "send"),
        format!("rate:#0:{RATE_FP}:tool:send")
    );
    let other = json!({ "match": { "tool": "x" }, "action": "deny" });
    assert_eq!(
        key(json!([other, rate_rule("", None)]), "send"),
        format!("rate:#1:{RATE_FP}:tool:send")
    );
}

#[test]
fn per_session_limits_without_a_session() {
    let rules = json!([
        rate_rule("calls", Some("session")),
        spend_rule(Some("session"))
    ]);
    let e = with_session(rules.clone(), "deny");
    for (call, control, counted) in [
        (Call::new("send"), "rate_limit", "calls"),
        (
            Call::new("pay").args(json!({ "amount": 5 })),
            "spend_limit",
            "spend",
        ),
    ] {
        let mut state = MemoryState::at(NOW);
        let verdict = decide_in(&e, &call, &mut state);
        let Verdict::Deny(d, f) = &verdict else {
            panic!("{control}: not denied: {verdict:?}");
        };
        assert_eq!(d.action, control);
        assert!(
            d.explanation
                .ends_with("; no session identity for a per-session limit"),
            "{}",
            d.explanation
        );
        assert_eq!(f.reason, "session_unresolved");
        assert!(f.retry_allowed);
        assert!(
            f.message.ends_with(&format!("limits {counted} per session, and no session identity was resolved (tried: header x-helio-session-id)")),
            "{}",
            f.message
        );
        assert!(f
            .suggestion
            .as_deref()
            .is_some_and(|s| s.contains("x-helio-session-id")));
        assert_eq!(
            extra(&verdict),
            json!({ "control": control, "tried": "header x-helio-session-id" })
        );
        // No bucket was touched.
        assert!(state.log.is_empty(), "{control}: {:?}", state.log);
    }
    // Anonymous: everyone without a session shares the `unknown` bucket.
    let e = with_session(rules, "anonymous");
    let mut state = MemoryState::at(NOW);
    decide_in(&e, &Call::new("send"), &mut state);
    decide_in(
        &e,
        &Call::new("pay").args(json!({ "amount": 5 })),
        &mut state,
    );
    let logged = keys(&state);
    assert!(
        logged[0].starts_with("rate:calls:") && logged[0].ends_with(":session:unknown"),
        "{logged:?}"
    );
    assert!(
        logged[1].starts_with("spend:pay:") && logged[1].ends_with(":session:unknown"),
        "{logged:?}"
    );
}

#[test]
fn spend_limit_reserves_exact_amounts() {
    let e = engine(json!({ "rules": [ spend_rule(None) ] }));
    let mut state = MemoryState::at(NOW);
    let verdict = decide_in(
        &e,
        &Call::new("pay").args(json!({ "amount": 30 })),
        &mut state,
    );
    assert_eq!(
        verdict,
        Verdict::Allow(decision(
            "spend_limit",
            Some("pay"),
            Some(0),
            "Matched \"pay\" -> spend_limit; 30 of 100 USD spent in 86400s for tool:pay"
        ))
    );
    let verdict = decide_in(
        &e,
        &Call::new("pay").args(json!({ "amount": 12.5 })),
        &mut state,
    );
    assert!(matches!(verdict, Verdict::Allow(_)));
    state.now_ms = NOW + 3_600_000;
    let verdict = decide_in(
        &e,
        &Call::new("pay").args(json!({ "amount": 60 })),
        &mut state,
    );
    let key = format!("spend:pay:{SPEND_FP}:tool:pay");
    assert_eq!(
        state.log,
        [
            format!("spend_reserve {key} 30 100 86400000"),
            format!("spend_reserve {key} 12.5 100 86400000"),
            format!("spend_reserve {key} 60 100 86400000"),
        ]
    );
    assert_eq!(
        verdict,
        Verdict::Deny(
            decision(
                "spend_limit",
                Some("pay"),
                Some(0),
                "Matched \"pay\" -> spend_limit; spend limit exceeded for tool:pay: 42.5 of 100 USD spent, this call needs 60"
            ),
            Feedback {
                reason: "spend_limited".into(),
                message: "Spend limit exceeded for tool:pay: 42.5 of 100 USD spent, this call needs 60".into(),
                suggestion: Some("At most 57.5 USD can be spent now: reduce the amount, or wait 82800s (until 2026-11-24T00:00:00.000Z) for earlier spend to leave the window.".into()),
                retry_allowed: true,
                extra_json: verdict.feedback().and_then(|f| f.extra_json.clone()),
            }
        )
    );
    let text = verdict
        .feedback()
        .and_then(|f| f.extra_json.as_deref())
        .unwrap();
    // The host's decimals are written as they are, as JSON numbers.
    assert!(
        text.contains("\"current_spend\":42.5,\"max_spend\":100,"),
        "{text}"
    );
    assert_eq!(
        extra(&verdict),
        json!({ "current_spend": 42.5, "max_spend": 100, "currency": "USD", "window_seconds": 86400, "reset_at": "2026-11-24T00:00:00.000Z" })
    );
}

#[test]
fn spend_feedback_from_the_rule() {
    let mut rule = spend_rule(None);
    rule["feedback"] = json!({ "message": "Over budget.", "suggestion": "Ask finance." });
    let e = engine(json!({ "rules": [ rule ] }));
    let verdict = decide_in(
        &e,
        &Call::new("pay").args(json!({ "amount": 101 })),
        &mut MemoryState::at(NOW),
    );
    let f = verdict.feedback().unwrap();
    assert_eq!(
        (f.reason.as_str(), f.message.as_str()),
        ("spend_limited", "Over budget.")
    );
    assert_eq!(f.suggestion.as_deref(), Some("Ask finance."));
    // The invalid-amount message is fixed; the suggestion is the rule's.
    let verdict = decide_in(
        &e,
        &Call::new("pay").args(json!({})),
        &mut MemoryState::at(NOW),
    );
    let f = verdict.feedback().unwrap();
    assert_eq!(
        f.message,
        "Spend limit denied: invalid amount for field \"amount\""
    );
    assert_eq!(f.suggestion.as_deref(), Some("Ask finance."));
}

#[test]
fn invalid_amounts_are_denied_without_touching_the_ledger() {
    let e = engine(json!({ "rules": [ spend_rule(None) ] }));
    for arguments in [
        json!({}),
        json!({ "amount": "12.50" }),
        json!({ "amount": -1 }),
        json!({ "amount": -0.01 }),
        json!({ "amount": null }),
        json!({ "amount": true }),
        json!({ "amount": [5] }),
    ] {
        let mut state = MemoryState::at(NOW);
        let verdict = decide_in(&e, &Call::new("pay").args(arguments.clone()), &mut state);
        assert_eq!(
            verdict,
            Verdict::Deny(
                decision(
                    "spend_limit",
                    Some("pay"),
                    Some(0),
                    "Matched \"pay\" -> spend_limit; invalid amount for field \"amount\""
                ),
                Feedback {
                    reason: "spend_limited".into(),
                    message: "Spend limit denied: invalid amount for field \"amount\"".into(),
                    suggestion: Some(
                        "Send \"amount\" as a non-negative JSON number (not a string), then retry."
                            .into()
                    ),
                    retry_allowed: true,
                    extra_json: verdict.feedback().and_then(|f| f.extra_json.clone()),
                }
            ),
            "{arguments}"
        );
        assert_eq!(
            extra(&verdict),
            json!({ "invalid_amount": true, "field": "amount", "max_spend": 100, "currency": "USD" }),
            "{arguments}"
        );
        assert!(state.log.is_empty(), "{arguments}: {:?}", state.log);
    }
    // A call without arguments has no amount either.
    let verdict = decide_in(&e, &Call::new("pay").no_args(), &mut MemoryState::at(NOW));
    assert_eq!(verdict.feedback().unwrap().reason, "spend_limited");
    // Zero is a valid amount.
    let verdict = decide_in(
        &e,
        &Call::new("pay").args(json!({ "amount": 0 })),
        &mut MemoryState::at(NOW),
    );
    assert!(matches!(verdict, Verdict::Allow(_)), "{verdict:?}");
}

#[test]
fn an_amount_the_host_refuses_is_invalid() {
    let e = engine(json!({ "rules": [ spend_rule(None) ] }));
    let mut state = MemoryState::at(NOW);
    state.spend_error = Some("amount out of range".into());
    let verdict = decide_in(
        &e,
        &Call::new("pay").args(json!({ "amount": 5 })),
        &mut state,
    );
    let Verdict::Deny(d, f) = &verdict else {
        panic!("not denied: {verdict:?}");
    };
    assert_eq!(
        d.explanation,
        "Matched \"pay\" -> spend_limit; invalid amount for field \"amount\" (amount out of range)"
    );
    assert_eq!(
        f.message,
        "Spend limit denied: invalid amount for field \"amount\""
    );
    assert_eq!(extra(&verdict)["invalid_amount"], true);
}

#[test]
fn spend_buckets_by_key() {
    let cases: &[(Option<&str>, &str)] = &[
        (None, "tool:pay"),
        (Some("session"), "session:s1"),
        (Some("global"), "global"),
        (Some("agent"), "tool:pay"),
    ];
    for (key, bucket) in cases {
        let e = engine(json!({ "rules": [ spend_rule(*key) ] }));
        let mut state = MemoryState::at(NOW);
        decide_in(
            &e,
            &Call::new("pay")
                .in_session("s1")
                .args(json!({ "amount": 1 })),
            &mut state,
        );
        let logged = keys(&state);
        assert!(logged[0].starts_with("spend:pay:"), "{logged:?}");
        assert!(
            logged[0].ends_with(&format!(":{bucket}")),
            "{key:?}: {logged:?}"
        );
    }
}

#[test]
fn limits_are_gated_first() {
    let mut rule = rate_rule("calls", None);
    rule["requires"] = json!(["plan"]);
    let e = engine(json!({ "rules": [ rule ] }));
    let mut state = MemoryState::at(NOW);
    let verdict = decide_in(&e, &Call::new("send").in_session("s1"), &mut state);
    assert_eq!(verdict.feedback().unwrap().reason, "dependency_missing");
    assert_eq!(verdict.decision().action, "deny");
    assert!(state.log.is_empty());
}

#[test]
fn long_tool_names_and_sessions_keep_keys_within_the_host_limit() {
    let e = engine(json!({ "rules": [ {
        "name": "calls", "match": {}, "action": "rate_limit",
        "limits": { "max_calls": 1, "window": "1m", "key": "session" }
    } ] }));
    let mut state = MemoryState::at(NOW);
    let call = Call::new("t").in_session(&"s".repeat(600));
    assert!(matches!(
        decide_in(&e, &call, &mut state),
        Verdict::Allow(_)
    ));
    assert!(matches!(
        decide_in(&e, &call, &mut state),
        Verdict::Deny(..)
    ));
    let logged = keys(&state);
    assert!(
        logged
            .iter()
            .all(|k| k.len() <= 512 && k.starts_with("rate:calls:")),
        "{logged:?}"
    );
    assert_eq!(logged[0], logged[1]);
}

#[test]
fn the_stage_describes_its_windows_and_ledgers_for_the_host() {
    let engine = engine(json!({ "rules": [
        { "name": "calls", "match": { "tool": "send" }, "action": "rate_limit",
          "limits": { "max_calls": 5, "window": "1h" } },
        { "match": { "tool": "pay" }, "action": "spend_limit",
          "limits": { "max_spend": { "field": "amount", "limit": 100, "currency": "EUR", "window": "1d" } } },
        { "name": "reads", "match": { "tool": "get" }, "action": "allow" },
    ] }));
    let families = engine.key_families();
    let described: Vec<(&str, &str, Option<u64>)> = families
        .iter()
        .map(|f| (f.kind.as_str(), f.name.as_str(), f.idle_ttl_ms))
        .collect();
    assert_eq!(
        described,
        vec![("rate", "calls", None), ("spend", "#1", None)]
    );
    // The keys the rules take are of their families.
    let mut state = MemoryState::at(NOW);
    engine.evaluate(&Call::new("send").no_args(), &mut state);
    let key = state.log[0].split(' ').nth(1).expect("key").to_owned();
    assert!(key.starts_with(&families[0].prefix), "{key}");
    assert_eq!(&key[families[0].prefix.len()..], "tool:send");
}

#[test]
fn a_spend_limit_can_read_its_amount_from_a_spend_extractor() {
    let rule = json!({ "name": "pay", "match": { "tool": "pay" }, "action": "spend_limit",
        "limits": { "max_spend": { "extractor": "items", "limit": 100, "currency": "USD", "window": "1d" } } });
    let e = engine(json!({ "rules": [ rule ] }));
    let mut state = MemoryState::at(NOW);
    let priced =
        |amount: &str| Call::new("pay").extracted("items", Ok(Some((amount, Some("usd")))));
    assert!(matches!(
        decide_in(&e, &priced("60.50"), &mut state),
        Verdict::Allow(_)
    ));
    let Verdict::Deny(d, f) = decide_in(&e, &priced("40"), &mut state) else {
        panic!("over the limit")
    };
    assert_eq!(f.reason, "spend_limited");
    assert!(
        d.explanation.contains("60.5 of 100 USD"),
        "{}",
        d.explanation
    );
    // Spends nothing: allowed, nothing reserved.
    let free = Call::new("pay").extracted("items", Ok(None));
    assert!(
        matches!(decide_in(&e, &free, &mut state), Verdict::Allow(d) if d.explanation.contains("spends nothing"))
    );
    // Another currency, or an extractor that cannot read the call: invalid,
    // the reason in the record only.
    for call in [
        Call::new("pay").extracted("items", Ok(Some(("5", Some("EUR"))))),
        Call::new("pay").extracted("items", Err("no line items")),
    ] {
        let Verdict::Deny(d, f) = decide_in(&e, &call, &mut state) else {
            panic!("invalid amount")
        };
        assert_eq!(
            f.message,
            "Spend limit denied: invalid amount for spend extractor \"items\""
        );
        assert!(d.explanation.contains("EUR") || d.explanation.contains("no line items"));
        assert!(extra(&Verdict::Deny(d.clone(), f.clone()))
            .get("extractor")
            .is_some());
    }
}
