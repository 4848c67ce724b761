//! Argument paths, the one reader of the syntax helio.yaml uses for a rule's
//! `input` conditions and `limits` fields (through the `tool-call.argument`
//! import) and for `audit.redact`: `$` is the whole arguments value, `$.a.b`
//! and `a.b` walk object keys, numeric segments index arrays, and (in
//! redaction paths) `*` is every member and `**` any depth, none included
//! (`**.password` is every member named `password`, anywhere). For conditions, `__proto__`,
//! `constructor` and `prototype` never resolve, as in the original Helio;
//! redaction masks whatever a path names, those keys included (a secret
//! under any key stays out of the record).

use serde_json::Value;

/// The segments of `path` after the optional `$` and `.`; none for the
/// whole value (`$`, or an empty path).
pub fn segments(path: &str) -> Vec<&str> {
    let rest = path.strip_prefix('$').unwrap_or(path);
    let rest = rest.strip_prefix('.').unwrap_or(rest);
    if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('.').collect()
    }
}

/// Whether `path` is well formed: no empty segment (`a..b`, `a.`), and at
/// most one `**`, followed by something to find (a path that named every
/// value at every depth would name the whole arguments).
pub fn is_valid(path: &str) -> bool {
    let segments = segments(path);
    let deep = segments.iter().filter(|s| **s == ANY_DEPTH).count();
    !segments.contains(&"") && deep <= 1 && segments.last() != Some(&ANY_DEPTH)
}

/// The segment that stands for any number of levels (none included).
const ANY_DEPTH: &str = "**";

/// The value at `path` in `root`, if present.
pub fn get<'v>(root: &'v Value, path: &str) -> Option<&'v Value> {
    let mut current = root;
    for segment in segments(path) {
        current = child(current, segment)?;
    }
    Some(current)
}

/// One step down: an object's member or an array's element.
fn child<'v>(value: &'v Value, segment: &str) -> Option<&'v Value> {
    if is_forbidden(segment) {
        return None;
    }
    match value {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => items.get(segment.parse::<usize>().ok()?),
        _ => None,
    }
}

/// Runs `at` on every value `path` names in `root` (`*` fans out over the
/// members of an object or array, `**` over every depth). Every key counts
/// here, the ones [`get`] never resolves included.
pub fn for_each_mut(root: &mut Value, path: &str, at: &mut impl FnMut(&mut Value)) {
    visit_mut(root, &segments(path), at);
}

fn visit_mut(value: &mut Value, segments: &[&str], at: &mut impl FnMut(&mut Value)) {
    let Some((first, rest)) = segments.split_first() else {
        at(value);
        return;
    };
    if *first == ANY_DEPTH {
        // Here (no level), then in every member, still at any depth. What
        // `at` replaced is not searched again.
        visit_mut(value, rest, at);
        match value {
            Value::Object(map) => map.values_mut().for_each(|v| visit_mut(v, segments, at)),
            Value::Array(items) => items.iter_mut().for_each(|v| visit_mut(v, segments, at)),
            _ => {}
        }
        return;
    }
    let child = match value {
        Value::Object(map) if *first == "*" => {
            for child in map.values_mut() {
                visit_mut(child, rest, at);
            }
            return;
        }
        Value::Array(items) if *first == "*" => {
            for child in items {
                visit_mut(child, rest, at);
            }
            return;
        }
        Value::Object(map) => map.get_mut(*first),
        Value::Array(items) => first.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
        _ => None,
    };
    if let Some(child) = child {
        visit_mut(child, rest, at);
    }
}

/// Up to `limit` values `path` names in `root` (wildcards and any depth as
/// in [`for_each_mut`], every key counting), in document order, each with
/// its concrete path (`$.items.0.card`). A key the grammar cannot write
/// (empty, holding a `.`, or `*`/`**` itself) adds nothing to the path:
/// what lies under it is reported at its parent's path, so redacting the
/// path masks it (with its siblings) rather than missing it.
pub fn collect<'v>(root: &'v Value, path: &str, limit: usize) -> Vec<(String, &'v Value)> {
    let mut found = Vec::new();
    visit(
        root,
        &segments(path),
        &mut String::from("$"),
        &mut |at, value| {
            if found.len() < limit {
                found.push((at.to_owned(), value));
            }
            found.len() < limit
        },
    );
    found
}

/// Visits what `segments` names under `value` (at `at`); `found` answers
/// whether to go on. Returns false once told to stop.
fn visit<'v>(
    value: &'v Value,
    segments: &[&str],
    at: &mut String,
    found: &mut impl FnMut(&str, &'v Value) -> bool,
) -> bool {
    let Some((first, rest)) = segments.split_first() else {
        return found(at, value);
    };
    let deep = *first == ANY_DEPTH;
    if deep && !visit(value, rest, at, found) {
        return false;
    }
    let descend = |key: &str, child: &'v Value, at: &mut String, found: &mut _| {
        let len = at.len();
        if writable(key) {
            at.push('.');
            at.push_str(key);
        }
        let go_on = visit(child, if deep { segments } else { rest }, at, found);
        at.truncate(len);
        go_on
    };
    match value {
        Value::Object(map) if deep || *first == "*" => map
            .iter()
            .all(|(key, child)| descend(key, child, at, found)),
        Value::Array(items) if deep || *first == "*" => items
            .iter()
            .enumerate()
            .all(|(i, child)| descend(&i.to_string(), child, at, found)),
        _ if deep => true,
        Value::Object(map) => map
            .get(*first)
            .is_none_or(|child| descend(first, child, at, found)),
        Value::Array(items) => first
            .parse::<usize>()
            .ok()
            .and_then(|i| items.get(i))
            .is_none_or(|child| descend(first, child, at, found)),
        _ => true,
    }
}

/// Whether `key` can be a segment of a path.
fn writable(key: &str) -> bool {
    !key.is_empty() && !key.contains('.') && key != "*" && key != ANY_DEPTH
}

fn is_forbidden(segment: &str) -> bool {
    matches!(segment, "__proto__" | "constructor" | "prototype")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_resolve_one_way_everywhere() {
        let args = json!({"a": {"b": [10, {"c": "x"}]}, "n": 1.5, "constructor": 1});
        assert_eq!(get(&args, "$.a.b.0"), Some(&json!(10)));
        assert_eq!(get(&args, "a.b.1.c"), Some(&json!("x")));
        assert_eq!(get(&args, "n"), Some(&json!(1.5)));
        assert_eq!(get(&args, "$"), Some(&args));
        assert_eq!(get(&args, ""), Some(&args));
        for absent in [
            "a.b.9",
            "a.b.x",
            "n.x",
            "missing",
            "constructor",
            "a.__proto__",
        ] {
            assert_eq!(get(&args, absent), None, "{absent}");
        }
        assert!(is_valid("$.card.number") && is_valid("items.*.cvv") && is_valid("$"));
        assert!(is_valid("**.password") && is_valid("$.a.**.b.*"));
        assert!(!is_valid("a..b") && !is_valid("a.") && !is_valid("$.."));
        assert!(!is_valid("**") && !is_valid("a.**") && !is_valid("**.a.**.b"));
    }

    #[test]
    fn wildcards_fan_out_when_visiting() {
        let mut args = json!({"items": [{"cvv": 1}, {"cvv": 2}], "m": {"x": {"cvv": 3}}});
        let mut seen = Vec::new();
        for_each_mut(&mut args, "items.*.cvv", &mut |v| seen.push(v.clone()));
        for_each_mut(&mut args, "$.m.*.cvv", &mut |v| seen.push(v.clone()));
        assert_eq!(seen, vec![json!(1), json!(2), json!(3)]);
        // Any depth, none included; each value once.
        let mut args = json!({"password": "p0", "a": [{"password": "p1", "b": {"password": "p2"}}], "b": {"password": {"password": "p3"}}});
        let mut seen = Vec::new();
        for_each_mut(&mut args, "**.password", &mut |v| {
            seen.push(v.clone());
            *v = json!("masked");
        });
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert_eq!(seen[0], json!("p0"));
        assert!(!args.to_string().contains("p1") && !args.to_string().contains("p2"));
        assert!(!args.to_string().contains("p3"), "{args}");
        let mut seen = Vec::new();
        for_each_mut(&mut args, "a.**.b.password", &mut |v| seen.push(v.clone()));
        assert_eq!(seen, vec![json!("masked")]);
        // Collected read-only, with concrete paths, in document order.
        let args = json!({"to": "a", "cc": [{"to": "b"}], "m": {"x": {"to": "c"}}});
        let paths = |path, limit| {
            collect(&args, path, limit)
                .into_iter()
                .map(|(at, v)| format!("{at}={v}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            paths("**.to", 10),
            ["$.to=\"a\"", "$.cc.0.to=\"b\"", "$.m.x.to=\"c\""]
        );
        assert_eq!(paths("**.to", 2).len(), 2);
        assert_eq!(paths("cc.*.to", 10), ["$.cc.0.to=\"b\""]);
        assert_eq!(paths("m.x", 10), [r#"$.m.x={"to":"c"}"#]);
        assert_eq!(paths("$", 10).len(), 1);
        assert!(paths("missing.*", 10).is_empty());
        // Keys the grammar cannot write are reported at their parent.
        let args = json!({"a": {"x.y": "s1", "": "s2"}, "*": {"b": "s3"}});
        let found: Vec<(String, Value)> = collect(&args, "**.*", 10)
            .into_iter()
            .filter(|(_, v)| v.is_string())
            .map(|(at, v)| (at, v.clone()))
            .collect();
        let expected: Vec<(String, Value)> = vec![
            ("$.b".into(), json!("s3")),
            ("$.a".into(), json!("s2")),
            ("$.a".into(), json!("s1")),
        ];
        assert_eq!(found, expected);
        // A secret under a key conditions never read is still masked.
        let mut args = json!({"constructor": "s3cret"});
        for_each_mut(&mut args, "constructor", &mut |v| *v = json!("masked"));
        assert_eq!(args, json!({"constructor": "masked"}));
    }
}
