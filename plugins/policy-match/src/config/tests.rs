//! Reading configuration: durations, globs, input conditions, the session
//! block, and the paths errors are reported at.

use serde_json::{json, Value as Json};

use super::{Parser, SessionPolicy};

/// The errors from reading `value` as an `input` map at path `input`.
fn input_errors(value: Json) -> Vec<(String, String)> {
    let mut p = Parser::default();
    p.input(&value, "input");
    p.errors.into_iter().map(|e| (e.path, e.message)).collect()
}

#[test]
fn rejected_input_conditions() {
    let cases: Vec<(Json, Vec<(&str, &str)>)> = vec![
        (
            json!({ "amount": { "regex": "(unclosed" } }),
            vec![("input.amount.regex", "invalid regex \"(unclosed\"")],
        ),
        (
            json!({ "$.a.b": { "regex": "[z-a]" } }),
            vec![("input.$.a.b.regex", "invalid regex")],
        ),
        // regex-lite has no Unicode classes; the host's `regex` accepts them.
        (
            json!({ "name": { "regex": "\\p{Lu}" } }),
            vec![("input.name.regex", "invalid regex")],
        ),
        // Backreferences do not exist in a linear-time engine.
        (
            json!({ "q": { "regex": "(a)\\1" } }),
            vec![("input.q.regex", "invalid regex")],
        ),
        (
            json!({ "amount": {} }),
            vec![(
                "input.amount",
                "at least one condition operator is required",
            )],
        ),
        (
            json!({ "amount": { "gt": null } }),
            vec![(
                "input.amount",
                "at least one condition operator is required",
            )],
        ),
        (
            json!({ "amount": { "gt": "100" } }),
            vec![("input.amount.gt", "expected a number, found a string")],
        ),
        (
            json!({ "amount": { "contains": 1 } }),
            vec![("input.amount.contains", "expected a string")],
        ),
        // An unknown key explains the empty operator set on its own.
        (
            json!({ "amount": { "between": [1, 2] } }),
            vec![("input.amount", "unknown key \"between\"")],
        ),
        (
            json!({ "amount": 5 }),
            vec![("input.amount", "expected a mapping, found a number")],
        ),
        (
            json!([]),
            vec![("input", "expected a mapping, found a list")],
        ),
        (
            json!({ "a": { "regex": "(" }, "b": { "lt": "x", "gt": "y" } }),
            vec![
                ("input.a.regex", "invalid regex"),
                ("input.b.gt", "expected a number"),
                ("input.b.lt", "expected a number"),
            ],
        ),
    ];
    for (input, want) in &cases {
        let got = input_errors(input.clone());
        assert_eq!(got.len(), want.len(), "{input}: got {got:#?}");
        for ((path, message), (want_path, want_text)) in got.iter().zip(want) {
            assert_eq!(path, want_path, "{input}: {message}");
            assert!(
                message.contains(want_text),
                "{input}: {path}: {message:?} lacks {want_text:?}"
            );
        }
    }
}

#[test]
fn accepted_input_conditions() {
    for input in [
        // `eq: null` is a comparison with null, not an absent operator.
        json!({ "x": { "eq": null } }),
        json!({ "x": { "neq": null, "gt": null } }),
        json!({ "x": { "regex": "(?i)^[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}$" } }),
        json!({}),
    ] {
        assert_eq!(input_errors(input.clone()), Vec::new(), "{input}");
    }
}

#[test]
fn globs_report_at_their_path() {
    let mut p = Parser::default();
    assert!(p.glob(&json!("send_*"), "match.tool").is_some());
    assert!(p.glob(&json!("send_[ab"), "match.tool").is_none());
    assert!(p.glob(&json!(["a"]), "match.tool").is_none());
    let got: Vec<_> = p
        .errors
        .iter()
        .map(|e| (e.path.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, "match.tool");
    assert!(got[0].1.contains("unclosed character class"));
    assert_eq!(got[1], ("match.tool", "expected a string, found a list"));
}

#[test]
fn scalar_readers() {
    let mut p = Parser::default();
    assert_eq!(p.positive_integer(&json!(3), "a"), Some(3));
    assert_eq!(p.positive_integer(&json!(0), "b"), None);
    assert_eq!(p.positive_integer(&json!(1.5), "c"), None);
    assert_eq!(p.positive_integer(&json!("3"), "d"), None);
    assert_eq!(p.bool(&json!("false"), "e"), Some(false));
    assert_eq!(p.duration_ms(&json!("2m"), "f"), Some(120_000));
    assert_eq!(p.duration_ms(&json!("2 minutes"), "g"), None);
    let obj = json!({ "k": null });
    assert!(p.required(obj.as_object().unwrap(), "root", "k").is_none());
    let got: Vec<_> = p
        .errors
        .iter()
        .map(|e| (e.path.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("b", "expected a positive integer, found 0"),
            ("c", "expected a positive integer, found 1.5"),
            ("d", "expected a positive integer, found a string"),
            ("g", "invalid duration \"2 minutes\" (expected a whole number followed by s, m, h or d, e.g. \"30s\", \"5m\", \"1h\", \"2d\")"),
            ("root.k", "missing required key"),
        ]
    );
}

fn session(root: Json) -> (SessionPolicy, Vec<(String, String)>) {
    let mut p = Parser::default();
    let policy = p.session(root.as_object().unwrap());
    (
        policy,
        p.errors.into_iter().map(|e| (e.path, e.message)).collect(),
    )
}

#[test]
fn session_block() {
    let deny = SessionPolicy {
        anonymous: false,
        tried: "none".into(),
    };
    assert_eq!(session(json!({})), (deny.clone(), vec![]));
    assert_eq!(session(json!({ "session": null })), (deny.clone(), vec![]));
    assert_eq!(
        session(
            json!({ "session": { "on_unresolved": "anonymous", "tried": "header x-helio-session-id, legacy_header" } })
        ),
        (
            SessionPolicy {
                anonymous: true,
                tried: "header x-helio-session-id, legacy_header".into()
            },
            vec![]
        )
    );
    assert_eq!(
        session(json!({ "session": { "on_unresolved": "deny" } })),
        (deny.clone(), vec![])
    );
    let (policy, errors) =
        session(json!({ "session": { "on_unresolved": "allow", "tried": 3, "x": 1 } }));
    assert_eq!(policy, deny);
    let paths: Vec<_> = errors.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, ["session", "session.on_unresolved", "session.tried"]);
}

#[test]
fn session_buckets() {
    let deny = SessionPolicy::default();
    let anonymous = SessionPolicy {
        anonymous: true,
        tried: "header x-helio-session-id".into(),
    };
    assert_eq!(deny.bucket(Some("run-1")).as_deref(), Some("session:run-1"));
    assert_eq!(
        anonymous.bucket(Some("run-1")).as_deref(),
        Some("session:run-1")
    );
    assert_eq!(deny.bucket(None), None);
    assert_eq!(anonymous.bucket(None).as_deref(), Some("session:unknown"));
}
