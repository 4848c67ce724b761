//! The tool index: a call draws from the budgets, with the contributors,
//! that testing every budget's contributors in order finds
//! (`Engine::applicable_by_walk`), on random budgets and calls.

use proptest::prelude::*;
use serde_json::{json, Value as Json};

use super::{compile, Call, MemoryState, NOW};

/// Tool names from few characters, so names and globs often meet.
fn tool_name() -> impl Strategy<Value = String> {
    let chars = prop::sample::select(vec!['a', 'b', '_', '.', '*']);
    prop::collection::vec(chars, 0..4).prop_map(|chars| chars.into_iter().collect())
}

/// A contributor's `match.tool`: exact names, hand-picked patterns, or
/// random glob text that `Glob::compile` accepts.
fn tool_glob() -> impl Strategy<Value = String> {
    let picked = prop::sample::select(vec![
        "a", "b", "a_b", "ab", "*", "a*", "*b", "!a*", "{a,b}*", "[ab]_?", "a\\*", "b.*",
    ])
    .prop_map(str::to_owned);
    let chars = prop::sample::select(vec![
        'a', 'b', '_', '.', '*', '?', '!', '[', ']', '{', '}', ',',
    ]);
    let random = prop::collection::vec(chars, 1..6)
        .prop_map(|chars| chars.into_iter().collect::<String>())
        .prop_filter("a glob the stage accepts", |text| {
            policy_match::Glob::compile(text).is_ok()
        });
    prop_oneof![
        2 => tool_name().prop_filter("not empty", |t| !t.is_empty()),
        3 => picked,
        2 => random,
    ]
}

fn contributor() -> impl Strategy<Value = Json> {
    let input = prop_oneof![
        (0i64..4).prop_map(|k| json!({ "$.n": { "gt": k } })),
        Just(json!({})),
    ];
    (
        tool_glob(),
        prop::option::weighted(0.4, input),
        prop::sample::select(vec!["$.amount", "$.price"]),
    )
        .prop_map(|(tool, input, field)| {
            let mut m = json!({ "tool": tool });
            if let Some(input) = input {
                m["input"] = input;
            }
            json!({ "match": m, "field": field })
        })
}

fn budgets() -> impl Strategy<Value = Json> {
    prop::collection::vec((prop::collection::vec(contributor(), 1..5), 1u32..60), 0..6).prop_map(
        |budgets| {
            let budgets: Vec<Json> = budgets
                .into_iter()
                .enumerate()
                .map(|(i, (contributors, limit))| {
                    json!({
                        "name": format!("b{i}"), "limit": limit, "currency": "USD", "window": "1h",
                        "contributors": contributors,
                    })
                })
                .collect();
            Json::from(budgets)
        },
    )
}

fn call() -> impl Strategy<Value = Call> {
    let arguments = prop::option::weighted(
        0.8,
        (0i64..6, 0i64..40, prop::option::of(0i64..40))
            .prop_map(|(n, amount, price)| json!({ "n": n, "amount": amount, "price": price })),
    );
    (tool_name(), arguments).prop_map(|(tool, arguments)| {
        let mut call = Call::new(&tool);
        call.arguments = arguments;
        call
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The same budgets with the same contributors' sources, in the same
    /// order, and the same verdict from a fresh state; each call twice, so
    /// a tool name's remembered candidates are used as well as computed.
    #[test]
    fn the_index_finds_what_a_walk_of_every_contributor_finds(
        budgets in budgets(),
        calls in prop::collection::vec(call(), 1..8),
    ) {
        let e = compile(json!({ "budgets": budgets }));
        for call in calls.iter().chain(&calls) {
            let indexed: Vec<_> = e
                .applicable(call)
                .into_iter()
                .map(|(budget, source)| (budget.name.as_str(), std::ptr::from_ref(source)))
                .collect();
            let walked: Vec<_> = e
                .applicable_by_walk(call)
                .into_iter()
                .map(|(budget, source)| (budget.name.as_str(), std::ptr::from_ref(source)))
                .collect();
            prop_assert_eq!(indexed, walked, "tool {:?}", call.tool);
            prop_assert_eq!(
                e.evaluate(call, &mut MemoryState::at(NOW)),
                e.evaluate_by_walk(call, &mut MemoryState::at(NOW)),
                "tool {:?}", call.tool
            );
        }
    }
}

/// Configure time for 1,000 budgets of 10 contributors each, printed
/// (`--nocapture`) and not asserted: a debug build on a shared machine says
/// nothing reliable.
#[test]
fn ten_thousand_contributors() {
    let budgets: Vec<Json> = (0..1_000)
        .map(|i| {
            let contributors: Vec<Json> = (0..10)
                .map(|c| match c {
                    9 => json!({ "match": { "tool": format!("svc{i:04}_*") }, "field": "amount" }),
                    _ => {
                        json!({ "match": { "tool": format!("pay{i:04}_{c}") }, "field": "amount" })
                    }
                })
                .collect();
            json!({
                "name": format!("b{i}"), "limit": 100, "currency": "USD", "window": "1h",
                "contributors": contributors,
            })
        })
        .collect();
    let started = std::time::Instant::now();
    let e = compile(json!({ "budgets": budgets }));
    eprintln!(
        "1,000 budgets of 10 contributors configured in {:.1} ms (this build)",
        started.elapsed().as_secs_f64() * 1e3
    );
    for (tool, want) in [
        ("pay0998_3", Some("b998")),
        ("svc0999_x", Some("b999")),
        ("echo", None),
    ] {
        let call = Call::new(tool).args(json!({ "amount": 1 }));
        let drawn: Vec<&str> = e
            .applicable(&call)
            .iter()
            .map(|(b, _)| b.name.as_str())
            .collect();
        assert_eq!(drawn, Vec::from_iter(want), "{tool}");
        assert_eq!(e.applicable_by_walk(&call).len(), drawn.len(), "{tool}");
    }
}
