//! Charging calls to budgets: which budgets apply, state keys, and the
//! verdicts and feedback.

use serde_json::{json, Value as Json};

use super::{compile, engine, extra, Call, MemoryState, NOW};
use crate::engine::{ApprovalRequest, Decision, Engine, Feedback, State, Verdict};

/// `FNV-1a-64({"currency":"USD","key":"global","limit":"100","window":"1h"})`.
const TRAVEL_FP: &str = "3766e15fd3c07b6f";

fn travel(changes: Json) -> Json {
    let mut b = json!({
        "name": "travel", "limit": 100, "currency": "USD", "window": "1h",
        "contributors": [
            { "match": { "tool": "book_*", "input": { "class": { "eq": "first" } } }, "field": "first_price" },
            { "match": { "tool": "book_*" }, "field": "price" },
        ]
    });
    for (key, value) in changes.as_object().unwrap() {
        b[key] = value.clone();
    }
    b
}

fn ops(changes: Json) -> Json {
    let mut b = json!({
        "name": "ops", "limit": 50, "currency": "EUR", "window": "1d",
        "contributors": [ { "match": { "tool": "book_hotel" }, "field": "price" } ]
    });
    for (key, value) in changes.as_object().unwrap() {
        b[key] = value.clone();
    }
    b
}

fn decision(action: &str, explanation: &str) -> Decision {
    Decision {
        action: action.into(),
        rule: None,
        rule_index: None,
        explanation: explanation.into(),
    }
}

fn decide(e: &Engine, call: &Call, state: &mut MemoryState) -> Verdict {
    e.evaluate(call, state)
}

fn book(tool: &str, arguments: Json) -> Call {
    Call::new(tool).args(arguments)
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
fn calls_no_budget_names_pass_untouched() {
    let e = engine(json!([travel(json!({}))]));
    let mut state = MemoryState::at(NOW);
    assert_eq!(
        decide(&e, &Call::new("read_file"), &mut state),
        Verdict::Allow(decision("allow", "no budget applies"))
    );
    assert!(state.log.is_empty());
    let none = engine(json!([]));
    assert_eq!(
        decide(
            &none,
            &book("book_flight", json!({ "price": 1 })),
            &mut state
        ),
        Verdict::Allow(decision("allow", "no budget applies"))
    );
}

#[test]
fn a_charge_that_fits_is_reserved() {
    let e = engine(json!([travel(json!({}))]));
    let mut state = MemoryState::at(NOW);
    let verdict = decide(&e, &book("book_flight", json!({ "price": 30 })), &mut state);
    assert_eq!(
        verdict,
        Verdict::Allow(decision(
            "allow",
            "Charged budget \"travel\" (global): 30 of 100 USD spent"
        ))
    );
    assert_eq!(
        state.log,
        [format!(
            "spend_reserve budget:travel:{TRAVEL_FP}:global 30 100 3600000"
        )]
    );
}

#[test]
fn the_first_matching_contributor_supplies_the_amount() {
    let e = engine(json!([travel(json!({}))]));
    let mut state = MemoryState::at(NOW);
    decide(
        &e,
        &book(
            "book_flight",
            json!({ "class": "first", "first_price": 70, "price": 1 }),
        ),
        &mut state,
    );
    decide(
        &e,
        &book(
            "book_flight",
            json!({ "class": "economy", "first_price": 70, "price": 2 }),
        ),
        &mut state,
    );
    let amounts: Vec<&str> = state
        .log
        .iter()
        .map(|l| l.split(' ').nth(2).unwrap())
        .collect();
    assert_eq!(amounts, ["70", "2"]);
}

#[test]
fn a_call_draws_from_every_budget_it_contributes_to() {
    let e = engine(json!([travel(json!({})), ops(json!({}))]));
    let mut state = MemoryState::at(NOW);
    let verdict = decide(&e, &book("book_hotel", json!({ "price": 20 })), &mut state);
    assert_eq!(
        verdict,
        Verdict::Allow(decision(
            "allow",
            "Charged budget \"travel\" (global): 20 of 100 USD spent; budget \"ops\" (global): 20 of 50 EUR spent"
        ))
    );
    let logged = keys(&state);
    assert_eq!(logged.len(), 2);
    assert!(
        logged[0].starts_with("budget:travel:") && logged[1].starts_with("budget:ops:"),
        "{logged:?}"
    );
    // A flight only draws from travel.
    decide(&e, &book("book_flight", json!({ "price": 5 })), &mut state);
    assert_eq!(keys(&state).len(), 3);
}

#[test]
fn exceeding_a_deny_budget_blocks_the_call() {
    let e = engine(json!([travel(json!({}))]));
    let mut state = MemoryState::at(NOW);
    decide(
        &e,
        &book("book_flight", json!({ "price": 99.9 })),
        &mut state,
    );
    state.now_ms = NOW + 600_000;
    let verdict = decide(
        &e,
        &book("book_flight", json!({ "price": 0.2 })),
        &mut state,
    );
    let Verdict::Deny(d, f) = &verdict else {
        panic!("not denied: {verdict:?}");
    };
    assert_eq!(
        *d,
        decision(
            "budget",
            "Budget \"travel\" (global) exceeded: 99.9 of 100 USD spent, this call needs 0.2"
        )
    );
    assert_eq!(
        *f,
        Feedback {
            reason: "budget_exceeded".into(),
            message: "Budget \"travel\" exceeded: 0.1 USD left of 100 USD (1h window), this call needs 0.2".into(),
            suggestion: Some("At most 0.1 USD can be spent now: reduce the amount, or wait 3000s (until 2026-11-23T01:00:00.000Z) for earlier spend to leave the window.".into()),
            retry_allowed: true,
            extra_json: f.extra_json.clone(),
        }
    );
    let text = f.extra_json.as_deref().unwrap();
    // Exact decimals, not f64 arithmetic (100 - 99.9 is 0.09999999999999432 in f64).
    assert!(
        text.contains("\"spent\":99.9,\"remaining\":0.1,\"attempted_amount\":0.2"),
        "{text}"
    );
    assert_eq!(
        extra(&verdict),
        json!({ "budgets": [ {
            "name": "travel", "limit": 100, "spent": 99.9, "remaining": 0.1, "attempted_amount": 0.2,
            "currency": "USD", "window": "1h", "on_exceed": "deny", "reset_at": "2026-11-23T01:00:00.000Z"
        } ] })
    );
}

#[test]
fn invalid_amounts_block_whatever_on_exceed_says() {
    for on_exceed in ["deny", "require_approval"] {
        let e = engine(json!([travel(json!({ "on_exceed": on_exceed }))]));
        for arguments in [
            json!({}),
            json!({ "price": "12.50" }),
            json!({ "price": -5 }),
            json!({ "price": null }),
            json!({ "price": { "amount": 5 } }),
        ] {
            let mut state = MemoryState::at(NOW);
            let verdict = decide(&e, &book("book_flight", arguments.clone()), &mut state);
            let Verdict::Deny(d, f) = &verdict else {
                panic!("{on_exceed} {arguments}: not denied: {verdict:?}");
            };
            assert_eq!(
                *d,
                decision(
                    "budget",
                    "Budget \"travel\": invalid amount for field \"price\""
                )
            );
            assert_eq!(f.reason, "budget_exceeded");
            assert_eq!(
                f.message,
                "Budget \"travel\" denied: invalid amount for field \"price\""
            );
            assert_eq!(
                f.suggestion.as_deref(),
                Some("Send \"price\" as a non-negative JSON number (not a string), then retry.")
            );
            assert!(f.retry_allowed);
            assert_eq!(
                extra(&verdict),
                json!({ "budgets": [ {
                    "name": "travel", "limit": 100, "spent": 0, "remaining": 100, "attempted_amount": null,
                    "currency": "USD", "window": "1h", "on_exceed": on_exceed, "reset_at": null,
                    "reason": "invalid_amount"
                } ] }),
                "{on_exceed} {arguments}"
            );
            // Only a zero reservation (to read the pot), released with the call.
            assert_eq!(
                state.log,
                [format!(
                    "spend_reserve budget:travel:{TRAVEL_FP}:global 0 100 3600000"
                )]
            );
        }
    }
}

#[test]
fn an_amount_the_host_refuses_is_invalid() {
    let e = engine(json!([travel(json!({}))]));
    let mut state = MemoryState::at(NOW);
    state.spend_error = Some("amount has too many digits".into());
    let verdict = decide(&e, &book("book_flight", json!({ "price": 5 })), &mut state);
    assert_eq!(
        verdict.decision().explanation,
        "Budget \"travel\": invalid amount for field \"price\" (amount has too many digits)"
    );
    let entry = &extra(&verdict)["budgets"][0];
    assert_eq!(entry["reason"], "invalid_amount");
    // The pot could not be read either.
    assert_eq!(
        (&entry["spent"], &entry["remaining"]),
        (&Json::Null, &Json::Null)
    );
}

#[test]
fn an_invalid_amount_reports_what_is_left_in_the_pot() {
    let e = engine(json!([travel(json!({}))]));
    let mut state = MemoryState::at(NOW);
    decide(&e, &book("book_flight", json!({ "price": 40 })), &mut state);
    state.now_ms = NOW + 60_000;
    let verdict = decide(
        &e,
        &book("book_flight", json!({ "price": "40" })),
        &mut state,
    );
    let entry = &extra(&verdict)["budgets"][0];
    assert_eq!(
        (&entry["spent"], &entry["remaining"]),
        (&json!(40), &json!(60))
    );
    assert_eq!(entry["reset_at"], "2026-11-23T01:00:00.000Z");
}

#[test]
fn session_pots_never_replenish_so_retrying_does_not_help() {
    let e = engine(json!([travel(
        json!({ "window": "session", "key": "session" })
    )]));
    let mut state = MemoryState::at(NOW);
    let call = book("book_flight", json!({ "price": 80 })).in_session("run-7");
    assert!(matches!(decide(&e, &call, &mut state), Verdict::Allow(_)));
    let verdict = decide(&e, &call, &mut state);
    let f = verdict.feedback().unwrap();
    assert!(!f.retry_allowed);
    assert_eq!(
        f.suggestion.as_deref(),
        Some("At most 20 USD can be spent in this session; its budget does not replenish. Reduce the amount or ask an operator.")
    );
    let entry = &extra(&verdict)["budgets"][0];
    assert_eq!(
        (&entry["window"], &entry["reset_at"]),
        (&json!("session"), &Json::Null)
    );
    assert!(
        state
            .log
            .iter()
            .all(|l| l.ends_with(":session:run-7 80 100 none")),
        "{:?}",
        state.log
    );
}

#[test]
fn approval_budgets_hold_the_call_instead() {
    let e = engine(json!([
        travel(
            json!({ "on_exceed": "require_approval", "approval": { "channel": "slack-finance", "timeout": "10m" } })
        ),
        ops(json!({ "limit": 1000 })),
    ]));
    let mut state = MemoryState::at(NOW);
    let verdict = decide(&e, &book("book_hotel", json!({ "price": 150 })), &mut state);
    let Verdict::RequireApproval(ApprovalRequest {
        decision: d,
        channel,
        timeout_ms,
        feedback,
    }) = &verdict
    else {
        panic!("not held: {verdict:?}");
    };
    assert_eq!(d.action, "require_approval");
    assert_eq!(
        d.explanation,
        "Budget \"travel\" (global) exceeded: 0 of 100 USD spent, this call needs 150; held for approval"
    );
    assert_eq!(
        (channel.as_deref(), *timeout_ms),
        (Some("slack-finance"), Some(600_000))
    );
    let f = feedback.as_ref().unwrap();
    assert_eq!(f.reason, "budget_exceeded");
    assert!(f.retry_allowed);
    assert_eq!(
        extra(&verdict)["budgets"][0]["on_exceed"],
        "require_approval"
    );
    assert_eq!(extra(&verdict)["budgets"].as_array().unwrap().len(), 1);
    // The budget that fits was reserved (the host commits it if approved).
    assert!(state.log[1].contains(" 150 1000 "), "{:?}", state.log);
    // Without an approval block, the host's default route.
    let e = engine(json!([travel(json!({ "on_exceed": "require_approval" }))]));
    let verdict = decide(
        &e,
        &book("book_flight", json!({ "price": 150 })),
        &mut MemoryState::at(NOW),
    );
    let Verdict::RequireApproval(request) = &verdict else {
        panic!("not held: {verdict:?}");
    };
    assert_eq!(
        (request.channel.as_deref(), request.timeout_ms),
        (None, None)
    );
}

#[test]
fn a_deny_breach_outranks_approval_breaches_and_all_are_listed() {
    let e = engine(json!([
        travel(json!({ "on_exceed": "require_approval" })),
        ops(json!({})),
    ]));
    let verdict = decide(
        &e,
        &book("book_hotel", json!({ "price": 120 })),
        &mut MemoryState::at(NOW),
    );
    let Verdict::Deny(d, f) = &verdict else {
        panic!("not denied: {verdict:?}");
    };
    assert_eq!(
        d.explanation,
        "Budget \"travel\" (global) exceeded: 0 of 100 USD spent, this call needs 120; budget \"ops\" (global) exceeded: 0 of 50 EUR spent, this call needs 120"
    );
    assert_eq!(
        f.message,
        "Budget \"travel\" exceeded: 100 USD left of 100 USD (1h window), this call needs 120 (and 1 more budget, listed in budgets)"
    );
    let listed = extra(&verdict);
    let names: Vec<&Json> = listed["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| &b["name"])
        .collect();
    assert_eq!(names, [&json!("travel"), &json!("ops")]);
    // One session pot among the breaches: retrying will not help.
    let e = engine(json!([
        travel(json!({})),
        ops(json!({ "window": "session", "key": "session" })),
    ]));
    let verdict = decide(
        &e,
        &book("book_hotel", json!({ "price": 120 })).in_session("s"),
        &mut MemoryState::at(NOW),
    );
    assert!(!verdict.feedback().unwrap().retry_allowed);
}

#[test]
fn overdrawn_pots_have_nothing_left() {
    let e = engine(json!([travel(json!({}))]));
    let mut state = MemoryState::at(NOW);
    let key = format!("budget:travel:{TRAVEL_FP}:global");
    // An approved overage pushed the pot past its limit.
    state
        .spend_reserve(&key, "120", "1000", Some(3_600_000))
        .unwrap();
    let verdict = decide(&e, &book("book_flight", json!({ "price": 1 })), &mut state);
    let entry = &extra(&verdict)["budgets"][0];
    assert_eq!(
        (&entry["spent"], &entry["remaining"]),
        (&json!(120), &json!(0))
    );
}

#[test]
fn session_keyed_budgets() {
    let budgets = json!([travel(json!({})), ops(json!({ "key": "session" })),]);
    let call = book("book_hotel", json!({ "price": 1 }));
    // A session: its own pot.
    let mut state = MemoryState::at(NOW);
    decide(
        &engine(budgets.clone()),
        &call.clone().in_session("s1"),
        &mut state,
    );
    let logged = keys(&state);
    assert!(
        logged[0].ends_with(":global") && logged[1].ends_with(":session:s1"),
        "{logged:?}"
    );
    // No session, on_unresolved deny: blocked before any pot is touched.
    let e = compile(
        json!({ "budgets": budgets, "session": { "on_unresolved": "deny", "tried": "header x-helio-session-id" } }),
    );
    let mut state = MemoryState::at(NOW);
    let verdict = decide(&e, &call, &mut state);
    let Verdict::Deny(d, f) = &verdict else {
        panic!("not denied: {verdict:?}");
    };
    assert_eq!(
        *d,
        decision(
            "budget",
            "Budget \"ops\" is per session and no session identity resolved"
        )
    );
    assert_eq!(f.reason, "session_unresolved");
    assert_eq!(
        f.message,
        "Blocked: budget \"ops\" is kept per session, and no session identity was resolved (tried: header x-helio-session-id)"
    );
    assert!(f.retry_allowed);
    assert!(f
        .suggestion
        .as_deref()
        .is_some_and(|s| s.contains("x-helio-session-id")));
    assert_eq!(
        extra(&verdict),
        json!({ "control": "budget", "tried": "header x-helio-session-id" })
    );
    assert!(state.log.is_empty(), "{:?}", state.log);
    // Anonymous: one shared `unknown` pot.
    let e = compile(json!({ "budgets": budgets, "session": { "on_unresolved": "anonymous" } }));
    let mut state = MemoryState::at(NOW);
    assert!(matches!(decide(&e, &call, &mut state), Verdict::Allow(_)));
    assert!(
        keys(&state)[1].ends_with(":session:unknown"),
        "{:?}",
        state.log
    );
}

#[test]
fn sender_keyed_budgets_use_the_global_pot() {
    let e = engine(json!([travel(json!({ "key": "sender_id" }))]));
    let mut state = MemoryState::at(NOW);
    decide(
        &e,
        &book("book_flight", json!({ "price": 1 })).in_session("s1"),
        &mut state,
    );
    let logged = keys(&state);
    assert!(
        logged[0].starts_with("budget:travel:") && logged[0].ends_with(":global"),
        "{logged:?}"
    );
    assert!(
        !logged[0].contains(TRAVEL_FP),
        "the key is part of the fingerprint"
    );
}

#[test]
fn pots_survive_contributor_edits_but_not_limit_changes() {
    let key = |budget: Json| {
        let mut state = MemoryState::at(NOW);
        decide(
            &engine(json!([budget])),
            &book("book_flight", json!({ "price": 1, "cost": 1 })),
            &mut state,
        );
        keys(&state).pop().unwrap_or_default()
    };
    let base = key(travel(json!({})));
    assert_eq!(base, format!("budget:travel:{TRAVEL_FP}:global"));
    let same = [
        travel(
            json!({ "contributors": [ { "match": { "tool": "book_flight" }, "field": "cost" } ] }),
        ),
        travel(json!({ "key": "global", "on_exceed": "require_approval" })),
        travel(json!({ "limit": 100.0 })),
    ];
    for budget in same {
        assert_eq!(key(budget.clone()), base, "{budget}");
    }
    let fresh = [
        travel(json!({ "limit": 101 })),
        travel(json!({ "currency": "EUR" })),
        travel(json!({ "window": "60m" })),
        travel(json!({ "key": "sender_id" })),
    ];
    for budget in fresh {
        let changed = key(budget.clone());
        assert!(
            changed.starts_with("budget:travel:") && changed != base,
            "{budget}: {changed}"
        );
    }
}

#[test]
fn the_stage_describes_its_pots_for_the_host() {
    let engine = engine(json!([
        { "name": "per-run", "limit": 10, "currency": "EUR", "window": "session", "key": "session",
          "idle_ttl": "2h", "contributors": [{ "match": { "tool": "pay" }, "field": "a" }] },
        { "name": "fresh-run", "limit": 10, "currency": "EUR", "window": "session", "key": "session",
          "contributors": [{ "match": { "tool": "pay" }, "field": "a" }] },
        { "name": "shared", "limit": 10, "currency": "EUR", "window": "1d",
          "contributors": [{ "match": { "tool": "pay" }, "field": "a" }] },
        { "name": "hourly", "limit": 10, "currency": "EUR", "window": "1h", "key": "session",
          "contributors": [{ "match": { "tool": "pay" }, "field": "a" }] },
    ]));
    let families = engine.key_families();
    let described: Vec<(&str, &str, Option<u64>)> = families
        .iter()
        .map(|f| (f.kind.as_str(), f.name.as_str(), f.idle_ttl_ms))
        .collect();
    assert_eq!(
        described,
        vec![
            (
                "retired-budget",
                "",
                Some(super::super::DEFAULT_IDLE_TTL_MS)
            ),
            ("budget", "per-run", Some(2 * 3_600_000)),
            (
                "budget",
                "fresh-run",
                Some(super::super::DEFAULT_IDLE_TTL_MS)
            ),
            ("budget", "shared", None),
            ("budget", "hourly", None),
        ]
    );
    assert_eq!(families[0].prefix, "budget:");
    // Every pot a budget draws from is of its family.
    let mut state = MemoryState::at(NOW);
    engine.evaluate(
        &Call::new("pay").args(json!({ "a": 1 })).in_session("s1"),
        &mut state,
    );
    assert_eq!(state.log.len(), 4, "{:?}", state.log);
    for line in &state.log {
        let key = line.split(' ').nth(1).expect("key");
        let owner = families
            .iter()
            .filter(|f| key.starts_with(&f.prefix))
            .max_by_key(|f| f.prefix.len())
            .expect("described");
        assert_eq!(owner.kind, "budget", "{key}");
        assert!(
            key.ends_with(":session:s1") || key.ends_with(":global"),
            "{key}"
        );
    }
}

#[test]
fn sender_keyed_budgets_draw_from_the_senders_pot_where_an_adapter_names_one() {
    let e = engine(json!([ops(json!({ "key": "sender_id" }))]));
    let call = book("book_hotel", json!({ "price": 1 }));
    let mut state = MemoryState::at(NOW);
    decide(&e, &call.clone().meta("sender_id", "U7"), &mut state);
    decide(&e, &call, &mut state);
    let logged = keys(&state);
    assert!(
        logged[0].ends_with(":sender:U7") && logged[1].ends_with(":global"),
        "{logged:?}"
    );
}

#[test]
fn a_contributor_can_read_its_amount_from_a_spend_extractor() {
    let items = json!({
        "name": "items", "limit": 10, "currency": "USD", "window": "1h",
        "contributors": [ { "match": { "tool": "order" }, "extractor": "line-items" } ]
    });
    let e = engine(json!([items]));
    let mut state = MemoryState::at(NOW);
    let order = |read: Result<Option<(&str, Option<&str>)>, &str>| {
        Call::new("order").extracted("line-items", read)
    };
    assert!(matches!(
        decide(&e, &order(Ok(Some(("7.5", None)))), &mut state),
        Verdict::Allow(_)
    ));
    let Verdict::Deny(_, f) = decide(&e, &order(Ok(Some(("3", None)))), &mut state) else {
        panic!("over the budget")
    };
    assert_eq!(f.reason, "budget_exceeded");
    // An order that spends nothing draws from no budget.
    assert_eq!(
        decide(&e, &order(Ok(None)), &mut state),
        decide(&e, &Call::new("other"), &mut state)
    );
    let Verdict::Deny(d, f) = decide(&e, &order(Err("no items")), &mut state) else {
        panic!("unreadable amount")
    };
    assert!(
        f.message
            .contains("invalid amount for spend extractor \"line-items\""),
        "{}",
        f.message
    );
    assert!(d.explanation.contains("no items"), "{}", d.explanation);
    assert!(!f.message.contains("no items"));
}
