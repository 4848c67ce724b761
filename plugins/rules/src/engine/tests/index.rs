//! The tool index: the engine decides exactly as a walk of every rule in
//! order would (`Engine::evaluate_by_walk`), on random policies and calls;
//! and a measurement of large policies, printed, never asserted.

use std::time::Instant;

use proptest::prelude::*;
use serde_json::{json, Value as Json};

use super::{compile, matched, Call, MemoryState, NOW};
use crate::engine::{Annotations, Engine};

/// Tool names from few characters, so names and globs often meet.
fn tool_name() -> impl Strategy<Value = String> {
    let chars = prop::sample::select(vec!['a', 'b', '_', '.', '/', '!', '*']);
    prop::collection::vec(chars, 0..5).prop_map(|chars| chars.into_iter().collect())
}

/// A `match.tool`: exact names, hand-picked patterns, or random glob text
/// that `Glob::compile` accepts.
fn tool_glob() -> impl Strategy<Value = String> {
    let picked = prop::sample::select(vec![
        "a",
        "b",
        "a_b",
        "ab",
        "b.a",
        "*",
        "**",
        "a*",
        "*b",
        "!a*",
        "{a,b}*",
        "[ab]_?",
        "a?",
        "a\\*",
        "{a,b}_{a,b}",
        "b.*",
        "[!a]*",
    ])
    .prop_map(str::to_owned);
    let chars = prop::sample::select(vec![
        'a', 'b', '_', '.', '*', '?', '!', '[', ']', '{', '}', ',', '\\',
    ]);
    let random = prop::collection::vec(chars, 1..6)
        .prop_map(|chars| chars.into_iter().collect::<String>())
        .prop_filter("a glob the stage accepts", |text| {
            policy_match::Glob::compile(text).is_ok()
        });
    prop_oneof![2 => tool_name().prop_filter("not empty", |t| !t.is_empty()), 3 => picked, 2 => random]
}

fn hints() -> impl Strategy<Value = Json> {
    let hint = prop::option::of(any::<bool>());
    (hint.clone(), hint.clone(), hint.clone(), hint).prop_map(|(r, d, i, o)| {
        let mut m = serde_json::Map::new();
        for (key, value) in [
            ("readOnlyHint", r),
            ("destructiveHint", d),
            ("idempotentHint", i),
            ("openWorldHint", o),
        ] {
            if let Some(v) = value {
                m.insert(key.into(), json!(v));
            }
        }
        Json::Object(m)
    })
}

fn rule() -> impl Strategy<Value = Json> {
    let input = prop_oneof![
        (0i64..5).prop_map(|k| json!({ "$.n": { "gt": k } })),
        Just(json!({ "s": { "contains": "x" } })),
        Just(json!({})),
    ];
    let metadata = prop_oneof![
        Just(json!({ "channel": "C1" })),
        Just(json!({ "channel": { "neq": "C2" } })),
    ];
    let action = prop_oneof![
        Just(json!({ "action": "allow" })),
        Just(json!({ "action": "deny" })),
        Just(json!({ "action": "dry_run" })),
        Just(json!({ "action": "require_approval" })),
        (1u64..3).prop_map(|max| json!({
            "action": "rate_limit", "limits": { "max_calls": max, "window": "1m" }
        })),
    ];
    (
        prop::option::weighted(0.8, tool_glob()),
        prop::option::weighted(0.2, prop::sample::select(vec!["prod", "dev"])),
        prop::option::weighted(0.3, hints()),
        prop::option::weighted(0.3, input),
        prop::option::weighted(0.1, metadata),
        action,
        any::<bool>(),
    )
        .prop_map(|(tool, env, annotations, input, metadata, action, named)| {
            let mut m = json!({});
            for (key, value) in [
                ("tool", tool.map(Json::from)),
                ("environment", env.map(Json::from)),
                ("annotations", annotations),
                ("input", input),
                ("metadata", metadata),
            ] {
                if let Some(v) = value {
                    m[key] = v;
                }
            }
            let mut rule = action;
            rule["match"] = m;
            if named {
                rule["name"] = json!("named");
            }
            rule
        })
}

fn policies() -> impl Strategy<Value = Json> {
    (
        prop::collection::vec(rule(), 0..14),
        prop::sample::select(vec!["allow", "deny"]),
        prop::sample::select(vec![Json::Null, json!("log"), json!("require_approval")]),
    )
        .prop_map(|(rules, default, flag)| {
            json!({ "rules": rules, "default": default, "flag_destructive": flag })
        })
}

fn call() -> impl Strategy<Value = Call> {
    let arguments = prop::option::weighted(
        0.8,
        (0i64..6, prop::sample::select(vec!["x", "y"]))
            .prop_map(|(n, s)| json!({ "n": n, "s": s })),
    );
    (
        tool_name(),
        any::<[bool; 4]>(),
        prop::option::of(prop::sample::select(vec!["prod", "dev"])),
        arguments,
        prop::option::weighted(0.2, prop::sample::select(vec!["C1", "C2"])),
    )
        .prop_map(|(tool, [r, d, i, o], env, arguments, channel)| {
            let mut call = Call::new(&tool).annotated(Annotations {
                read_only_hint: r,
                destructive_hint: d,
                idempotent_hint: i,
                open_world_hint: o,
            });
            call.arguments = arguments;
            call.environment = env.map(Into::into);
            if let Some(channel) = channel {
                call = call.meta("channel", channel);
            }
            call
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every call gets the verdict (and warning) the plain first-match walk
    /// gives it, each from a fresh state; each call twice, so a tool name's
    /// remembered candidates are used as well as computed.
    #[test]
    fn the_index_decides_as_a_walk_of_every_rule(
        policies in policies(),
        calls in prop::collection::vec(call(), 1..8),
    ) {
        let e = compile(json!({ "environment": null, "policies": policies }));
        for call in calls.iter().chain(&calls) {
            let indexed = e.evaluate(call, &mut MemoryState::at(NOW));
            let walked = e.evaluate_by_walk(call, &mut MemoryState::at(NOW));
            prop_assert_eq!(indexed, walked, "tool {:?}", call.tool);
        }
    }
}

/// The stage configuration of a policy of `n` rules, none of which the
/// `echo` call matches but the last: mostly distinct exact tool names, some
/// globs with input or annotation conditions (as `scripts/bench-rules.sh`
/// generates).
fn generated(n: usize) -> String {
    const ACTIONS: [&str; 3] = ["deny", "allow", "dry_run"];
    let mut rules: Vec<Json> = (0..n.saturating_sub(1))
        .map(|i| match i % 20 {
            0..=15 => json!({
                "name": format!("gen-{i}"),
                "match": { "tool": format!("app{i:05}_get") },
                "action": ACTIONS[i % 3],
            }),
            16 | 17 => json!({
                "name": format!("gen-{i}"),
                "match": { "tool": format!("svc{i:05}_*"), "input": { "$.target": { "regex": "^admin_" } } },
                "action": "deny",
            }),
            18 => json!({
                "name": format!("gen-{i}"),
                "match": { "tool": format!("{{crm,erp}}{i:05}.*"), "annotations": { "destructiveHint": true } },
                "action": "require_approval",
            }),
            _ => json!({
                "name": format!("gen-{i}"),
                "match": { "tool": format!("*_{i:05}"), "annotations": { "readOnlyHint": true } },
                "action": "allow",
            }),
        })
        .collect();
    rules.push(json!({
        "name": "allow-read-only",
        "match": { "annotations": { "readOnlyHint": true } },
        "action": "allow",
    }));
    json!({ "environment": null, "policies": { "rules": rules, "default": "deny" } }).to_string()
}

/// `config` compiled, and how long that took in milliseconds.
fn configure(config: &str) -> (Engine, f64) {
    let started = Instant::now();
    let e = Engine::from_json(config).unwrap();
    (e, started.elapsed().as_secs_f64() * 1e3)
}

/// Configure time for 10,000 rules, printed (`--nocapture`) and not
/// asserted: a debug build on a shared machine says nothing reliable.
#[test]
fn ten_thousand_rules() {
    let (e, ms) = configure(&generated(10_000));
    eprintln!("10,000 rules configured in {ms:.1} ms (this build)");
    let echo = Call::new("echo").read_only();
    assert_eq!(matched(&e, &echo), Some(9_999));
    assert_eq!(matched(&e, &Call::new("app09980_get")), Some(9_980));
    assert_eq!(
        matched(
            &e,
            &Call::new("svc09997_x").args(json!({"target": "admin_x"}))
        ),
        Some(9_997)
    );
    assert_eq!(matched(&e, &Call::new("erp09998.x")), Some(9_998));
    assert_eq!(matched(&e, &Call::new("x_09999")), None);
}

/// Configure time and CPU per call by rule count, indexed and walked:
/// `cargo test --release -p helio-rules scaling -- --ignored --nocapture`
/// (in `plugins/`). Native code; inside Helio the stage runs as WebAssembly.
#[test]
#[ignore = "a measurement to read, not a test"]
fn scaling() {
    let echo = Call::new("echo").read_only();
    eprintln!("| rules | configure ms | µs per call, indexed | µs per call, walk |");
    eprintln!("| ---: | ---: | ---: | ---: |");
    for n in [10, 100, 1_000, 10_000] {
        let (e, configure) = configure(&generated(n));
        let per_call = |walk: bool| {
            let calls = 200_000 / n.min(1_000) * 10;
            let mut state = MemoryState::at(NOW);
            let started = Instant::now();
            for _ in 0..calls {
                let evaluation = match walk {
                    false => e.evaluate(&echo, &mut state),
                    true => e.evaluate_by_walk(&echo, &mut state),
                };
                std::hint::black_box(evaluation);
            }
            started.elapsed().as_secs_f64() * 1e6 / calls as f64
        };
        eprintln!(
            "| {n} | {configure:.2} | {:.3} | {:.3} |",
            per_call(false),
            per_call(true)
        );
    }
}
