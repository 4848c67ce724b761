//! `${NAME}` interpolation from the environment, applied to every string value
//! in the document before the schema is checked.

use yaml_serde::Value;

use super::reader::{Path, Reader};

/// Replaces `${NAME}` in every string value, recursively. `$NAME` without
/// braces is literal. An unset variable is an error naming it and the key.
pub fn interpolate(
    r: &mut Reader,
    value: &mut Value,
    path: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) {
    match value {
        Value::String(s) => {
            if s.contains("${") {
                if let Some(replaced) = substitute(r, s, path, lookup) {
                    *s = replaced;
                }
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(r, item, &path.index(i), lookup);
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                let child = match key.as_str() {
                    Some(k) => path.key(k),
                    None => path.clone(),
                };
                interpolate(r, item, &child, lookup);
            }
        }
        Value::Tagged(tagged) => interpolate(r, &mut tagged.value, path, lookup),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn substitute(
    r: &mut Reader,
    text: &str,
    path: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut ok = true;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            // An unterminated `${` is literal text.
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let name = &after[..end];
        if !is_var_name(name) {
            r.error(
                path,
                format!("unsupported interpolation \"${{{name}}}\": only ${{NAME}} with NAME made of letters, digits and _ is supported"),
            );
            ok = false;
        } else {
            match lookup(name) {
                Some(value) => out.push_str(&value),
                None => {
                    r.error(path, format!("environment variable \"{name}\" is not set"));
                    ok = false;
                }
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    ok.then_some(out)
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> (Option<String>, Vec<String>) {
        let mut r = Reader::new();
        let lookup = |name: &str| match name {
            "TOKEN" => Some("s3cret".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let out = substitute(&mut r, text, &Path::root().key("k"), &lookup);
        let issues = r.into_issues();
        (out, issues.into_iter().map(|i| i.to_string()).collect())
    }

    #[test]
    fn substitutes_and_reports() {
        assert_eq!(run("Bearer ${TOKEN}").0.as_deref(), Some("Bearer s3cret"));
        assert_eq!(run("${TOKEN}${TOKEN}").0.as_deref(), Some("s3crets3cret"));
        assert_eq!(run("a${EMPTY}b").0.as_deref(), Some("ab"));
        assert_eq!(run("$TOKEN").0.as_deref(), Some("$TOKEN"));
        assert_eq!(run("cost ${").0.as_deref(), Some("cost ${"));
        let (out, issues) = run("${MISSING}");
        assert_eq!(out, None);
        assert_eq!(
            issues,
            vec!["k: environment variable \"MISSING\" is not set"]
        );
        let (out, issues) = run("${X:-y}");
        assert_eq!(out, None);
        assert!(
            issues[0].contains("unsupported interpolation"),
            "{issues:?}"
        );
    }
}
