//! One table per `input` operator. Each row: the operators on path `x`,
//! the call's arguments, and whether the condition holds.

use serde_json::{json, Value as Json};

use crate::{inputs_match, JsonCall, Parser};

/// Whether `{x: ops}` holds for a call with `arguments`.
fn input_matches(ops: &Json, arguments: &Json) -> bool {
    inputs_match(
        &compile(&json!({ "x": ops })),
        &JsonCall::new("t").args(arguments.clone()),
    )
}

fn compile(input: &Json) -> Vec<crate::InputCondition> {
    let mut p = Parser::default();
    let conditions = p.input(input, "input");
    assert!(p.errors.is_empty(), "{input}: {:?}", p.errors);
    conditions
}

fn run(table: &[(Json, Json, bool)]) {
    for (ops, arguments, want) in table {
        assert_eq!(
            input_matches(ops, arguments),
            *want,
            "ops {ops} on arguments {arguments}"
        );
    }
}

#[test]
fn eq() {
    run(&[
        (json!({"eq": "a"}), json!({"x": "a"}), true),
        (json!({"eq": "a"}), json!({"x": "A"}), false),
        (json!({"eq": "a"}), json!({"x": "ab"}), false),
        (json!({"eq": 5}), json!({"x": 5}), true),
        (json!({"eq": 5}), json!({"x": 5.0}), true),
        (json!({"eq": 5.5}), json!({"x": 5.5}), true),
        (json!({"eq": 5}), json!({"x": 6}), false),
        (json!({"eq": 0}), json!({"x": -0.0}), true),
        (json!({"eq": true}), json!({"x": true}), true),
        (json!({"eq": true}), json!({"x": false}), false),
        (json!({"eq": null}), json!({"x": null}), true),
        (json!({"eq": null}), json!({}), false),
        (json!({"eq": "a"}), json!({}), false),
        // Strict: no type coercion.
        (json!({"eq": 5}), json!({"x": "5"}), false),
        (json!({"eq": "5"}), json!({"x": 5}), false),
        (json!({"eq": true}), json!({"x": 1}), false),
        (json!({"eq": true}), json!({"x": "true"}), false),
        (json!({"eq": null}), json!({"x": false}), false),
        (json!({"eq": null}), json!({"x": ""}), false),
        (json!({"eq": "a"}), json!({"x": ["a"]}), false),
        (json!({"eq": ["a"]}), json!({"x": "a"}), false),
    ]);
}

#[test]
fn eq_on_arrays_and_objects_is_deep() {
    run(&[
        (json!({"eq": [1, 2]}), json!({"x": [1, 2]}), true),
        (json!({"eq": [1, 2]}), json!({"x": [2, 1]}), false),
        (json!({"eq": [1, 2]}), json!({"x": [1, 2, 3]}), false),
        (json!({"eq": [1, 2]}), json!({"x": [1.0, 2.0]}), true),
        (json!({"eq": []}), json!({"x": []}), true),
        (json!({"eq": []}), json!({"x": {}}), false),
        (json!({"eq": {}}), json!({"x": {}}), true),
        (
            json!({"eq": {"a": 1, "b": [true, null]}}),
            json!({"x": {"b": [true, null], "a": 1}}),
            true,
        ),
        (
            json!({"eq": {"a": 1}}),
            json!({"x": {"a": 1, "b": 2}}),
            false,
        ),
        (
            json!({"eq": {"a": 1, "b": 2}}),
            json!({"x": {"a": 1}}),
            false,
        ),
        (json!({"eq": {"a": 1}}), json!({"x": {"a": "1"}}), false),
        (
            json!({"eq": {"a": {"b": "c"}}}),
            json!({"x": {"a": {"b": "c"}}}),
            true,
        ),
        (
            json!({"eq": {"a": {"b": "c"}}}),
            json!({"x": {"a": {"b": "d"}}}),
            false,
        ),
        (json!({"eq": {"a": 1}}), json!({"x": [1]}), false),
    ]);
}

#[test]
fn neq() {
    run(&[
        (json!({"neq": "a"}), json!({"x": "b"}), true),
        (json!({"neq": "a"}), json!({"x": "a"}), false),
        // The field must be present.
        (json!({"neq": "a"}), json!({}), false),
        (json!({"neq": "a"}), json!({"y": "b"}), false),
        (json!({"neq": "a"}), json!({"x": null}), true),
        (json!({"neq": null}), json!({"x": null}), false),
        (json!({"neq": null}), json!({"x": 0}), true),
        (json!({"neq": null}), json!({}), false),
        (json!({"neq": 5}), json!({"x": "5"}), true),
        (json!({"neq": 5}), json!({"x": 5.0}), false),
        (json!({"neq": [1]}), json!({"x": [1]}), false),
        (json!({"neq": [1]}), json!({"x": [2]}), true),
        (json!({"neq": {"a": 1}}), json!({"x": {"a": 1}}), false),
        (json!({"neq": {"a": 1}}), json!({"x": "{\"a\":1}"}), true),
    ]);
}

#[test]
fn gt() {
    run(&[
        (json!({"gt": 100}), json!({"x": 101}), true),
        (json!({"gt": 100}), json!({"x": 100.5}), true),
        (json!({"gt": 100}), json!({"x": 100}), false),
        (json!({"gt": 100}), json!({"x": 99}), false),
        (json!({"gt": -1}), json!({"x": 0}), true),
        (json!({"gt": 100}), json!({"x": "101"}), false),
        (json!({"gt": 0}), json!({"x": true}), false),
        (json!({"gt": 0}), json!({"x": null}), false),
        (json!({"gt": 0}), json!({"x": [1]}), false),
        (json!({"gt": 0}), json!({}), false),
    ]);
}

#[test]
fn gte() {
    run(&[
        (json!({"gte": 100}), json!({"x": 100}), true),
        (json!({"gte": 100}), json!({"x": 100.0}), true),
        (json!({"gte": 100}), json!({"x": 101}), true),
        (json!({"gte": 100}), json!({"x": 99.99}), false),
        (json!({"gte": 100}), json!({"x": "100"}), false),
        (json!({"gte": 0}), json!({"x": false}), false),
        (json!({"gte": 0}), json!({}), false),
    ]);
}

#[test]
fn lt() {
    run(&[
        (json!({"lt": 10}), json!({"x": 9}), true),
        (json!({"lt": 10}), json!({"x": -1e9}), true),
        (json!({"lt": 10}), json!({"x": 10}), false),
        (json!({"lt": 10}), json!({"x": 11}), false),
        (json!({"lt": 10}), json!({"x": "9"}), false),
        (json!({"lt": 10}), json!({"x": null}), false),
        (json!({"lt": 10}), json!({}), false),
    ]);
}

#[test]
fn lte() {
    run(&[
        (json!({"lte": 10}), json!({"x": 10}), true),
        (json!({"lte": 10}), json!({"x": 9.5}), true),
        (json!({"lte": 10}), json!({"x": 10.01}), false),
        (json!({"lte": 10}), json!({"x": "10"}), false),
        (json!({"lte": 10}), json!({"x": {}}), false),
        (json!({"lte": 10}), json!({}), false),
    ]);
}

#[test]
fn numeric_range_ands_the_bounds() {
    run(&[
        (json!({"gte": 10, "lt": 20}), json!({"x": 10}), true),
        (json!({"gte": 10, "lt": 20}), json!({"x": 19.9}), true),
        (json!({"gte": 10, "lt": 20}), json!({"x": 20}), false),
        (json!({"gte": 10, "lt": 20}), json!({"x": 9}), false),
        (json!({"gt": 20, "lt": 10}), json!({"x": 15}), false),
    ]);
}

#[test]
fn contains() {
    run(&[
        (
            json!({"contains": "prod"}),
            json!({"x": "my-prod-db"}),
            true,
        ),
        (json!({"contains": "prod"}), json!({"x": "prod"}), true),
        (json!({"contains": "prod"}), json!({"x": "PROD"}), false),
        (json!({"contains": "prod"}), json!({"x": "pro"}), false),
        (json!({"contains": ""}), json!({"x": ""}), true),
        (json!({"contains": "é"}), json!({"x": "café"}), true),
        // Strings only: no array membership, no number digits.
        (json!({"contains": "a"}), json!({"x": ["a"]}), false),
        (json!({"contains": "1"}), json!({"x": 123}), false),
        (json!({"contains": "a"}), json!({"x": {"a": 1}}), false),
        (json!({"contains": "a"}), json!({"x": null}), false),
        (json!({"contains": "a"}), json!({}), false),
    ]);
}

#[test]
fn regex() {
    run(&[
        // Unanchored search.
        (
            json!({"regex": "DROP"}),
            json!({"x": "please DROP TABLE users"}),
            true,
        ),
        (
            json!({"regex": "^DROP"}),
            json!({"x": "please DROP TABLE"}),
            false,
        ),
        (json!({"regex": "^DROP"}), json!({"x": "DROP TABLE"}), true),
        (
            json!({"regex": "(?i)drop\\s+table"}),
            json!({"x": "Drop   Table"}),
            true,
        ),
        (
            json!({"regex": "^[a-z]+@example\\.com$"}),
            json!({"x": "bob@example.com"}),
            true,
        ),
        (
            json!({"regex": "^[a-z]+@example\\.com$"}),
            json!({"x": "bob@example.org"}),
            false,
        ),
        (json!({"regex": "\\d{3}"}), json!({"x": "ab123"}), true),
        (json!({"regex": ""}), json!({"x": "anything"}), true),
        // Strings only.
        (json!({"regex": "1"}), json!({"x": 1}), false),
        (json!({"regex": "true"}), json!({"x": true}), false),
        (json!({"regex": "a"}), json!({"x": ["a"]}), false),
        (json!({"regex": ".*"}), json!({"x": null}), false),
        (json!({"regex": ".*"}), json!({}), false),
    ]);
}

#[test]
fn operators_on_one_path_are_anded() {
    run(&[
        (
            json!({"contains": "a", "regex": "b$"}),
            json!({"x": "ab"}),
            true,
        ),
        (
            json!({"contains": "a", "regex": "b$"}),
            json!({"x": "ba"}),
            false,
        ),
        (json!({"eq": "a", "neq": "b"}), json!({"x": "a"}), true),
        (json!({"eq": "a", "neq": "a"}), json!({"x": "a"}), false),
        (
            json!({"neq": "a", "contains": "b"}),
            json!({"x": "abc"}),
            true,
        ),
        (json!({"eq": 5, "gt": 1}), json!({"x": 5}), true),
        (json!({"eq": 5, "contains": "5"}), json!({"x": 5}), false),
    ]);
}

#[test]
fn paths_reach_nested_values_and_array_items() {
    let cases: &[(&str, Json, bool)] = &[
        ("a.b", json!({"a": {"b": 1}}), true),
        ("$.a.b", json!({"a": {"b": 1}}), true),
        ("items.1", json!({"items": [0, 1]}), true),
        ("items.2", json!({"items": [0, 1]}), false),
        ("a.b", json!({"a": 1}), false),
    ];
    for (path, arguments, want) in cases {
        let conditions = compile(&json!({ *path: {"eq": 1} }));
        let got = inputs_match(&conditions, &JsonCall::new("t").args(arguments.clone()));
        assert_eq!(got, *want, "{path} in {arguments}");
    }
    let whole = compile(&json!({ "$": {"eq": {"a": 1}} }));
    assert!(inputs_match(
        &whole,
        &JsonCall::new("t").args(json!({"a": 1}))
    ));
    assert!(!inputs_match(
        &whole,
        &JsonCall::new("t").args(json!({"a": 2}))
    ));
}

#[test]
fn input_requires_arguments() {
    let cases: &[(Json, bool, bool)] = &[
        // (input, call has arguments, matches)
        (json!({"x": {"neq": "a"}}), false, false),
        (json!({"x": {"eq": null}}), false, false),
        // An empty input map still requires the call to carry arguments.
        (json!({}), false, false),
        (json!({}), true, true),
    ];
    for (input, has_arguments, want) in cases {
        let call = if *has_arguments {
            JsonCall::new("t")
        } else {
            JsonCall::new("t").no_args()
        };
        assert_eq!(
            inputs_match(&compile(input), &call),
            *want,
            "{input} with arguments: {has_arguments}"
        );
    }
}

#[test]
fn every_input_path_must_hold() {
    let conditions = compile(&json!({ "to": {"contains": "@example.com"}, "amount": {"gt": 100} }));
    let cases: &[(Json, bool)] = &[
        (json!({"to": "a@example.com", "amount": 101}), true),
        (json!({"to": "a@example.com", "amount": 100}), false),
        (json!({"to": "a@other.com", "amount": 101}), false),
        (json!({"to": "a@example.com"}), false),
    ];
    for (arguments, want) in cases {
        assert_eq!(
            inputs_match(&conditions, &JsonCall::new("t").args(arguments.clone())),
            *want,
            "{arguments}"
        );
    }
}
