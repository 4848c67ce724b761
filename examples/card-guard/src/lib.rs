//! card-guard: a Helio policy stage that blocks any tool call whose arguments
//! contain something that looks like a payment card number.
//!
//! The logic (config parsing, the digit-run scanner, Luhn, the JSON walk) is
//! plain Rust in this file so `cargo test` runs it natively. The WebAssembly
//! glue that Helio calls (`configure`, `evaluate`) is in `component.rs`, which
//! is only compiled for wasm32.

use serde_json::Value;

#[cfg(target_arch = "wasm32")]
mod component;

/// The stage's configuration (helio.yaml `plugins[].config`, as JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Argument paths to scan; `None` scans every string in the arguments.
    pub fields: Option<Vec<String>>,
    /// Shortest digit count that counts as a card number.
    pub min_digits: usize,
    /// Longest digit count that counts as a card number.
    pub max_digits: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            fields: None,
            min_digits: 13,
            max_digits: 19,
        }
    }
}

/// One problem in the configuration: where (`fields[1]`) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    pub path: String,
    pub message: String,
}

fn problem(path: impl Into<String>, message: impl Into<String>) -> ConfigProblem {
    ConfigProblem {
        path: path.into(),
        message: message.into(),
    }
}

/// Card numbers (ISO/IEC 7812 PANs) are 8 to 19 digits long.
const DIGITS_RANGE: std::ops::RangeInclusive<u64> = 8..=19;

/// Parses and checks the configuration, reporting every problem at once.
pub fn parse_config(json: &str) -> Result<Config, Vec<ConfigProblem>> {
    let value: Value = match serde_json::from_str(json) {
        Ok(v) => v,
        Err(e) => return Err(vec![problem("", format!("not valid JSON: {e}"))]),
    };
    let mut config = Config::default();
    let object = match value {
        Value::Null => return Ok(config),
        Value::Object(o) => o,
        _ => return Err(vec![problem("", "must be a mapping (or empty)")]),
    };
    let mut problems = Vec::new();
    let mut min_ok = true;
    let mut max_ok = true;
    for (key, value) in &object {
        match key.as_str() {
            "fields" => {
                if let Some(fields) = parse_fields(value, &mut problems) {
                    config.fields = Some(fields);
                }
            }
            "min_digits" | "max_digits" => {
                let n = value.as_u64().filter(|n| DIGITS_RANGE.contains(n));
                match n {
                    Some(n) if key == "min_digits" => config.min_digits = n as usize,
                    Some(n) => config.max_digits = n as usize,
                    None => {
                        if key == "min_digits" {
                            min_ok = false;
                        } else {
                            max_ok = false;
                        }
                        problems.push(problem(
                            key.as_str(),
                            "must be a whole number from 8 to 19 (card numbers are 8 to 19 digits long)",
                        ));
                    }
                }
            }
            other => problems.push(problem(
                other,
                "unknown key (expected fields, min_digits or max_digits)",
            )),
        }
    }
    if min_ok && max_ok && config.min_digits > config.max_digits {
        problems.push(problem(
            "min_digits",
            format!(
                "must not be greater than max_digits ({} > {})",
                config.min_digits, config.max_digits
            ),
        ));
    }
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems)
    }
}

fn parse_fields(value: &Value, problems: &mut Vec<ConfigProblem>) -> Option<Vec<String>> {
    let items = match value {
        Value::Null => return None,
        Value::Array(items) => items,
        _ => {
            problems.push(problem("fields", "must be a list of argument paths"));
            return None;
        }
    };
    if items.is_empty() {
        problems.push(problem(
            "fields",
            "must list at least one argument path (leave it out to scan every string)",
        ));
        return None;
    }
    let mut fields = Vec::with_capacity(items.len());
    let before = problems.len();
    for (i, item) in items.iter().enumerate() {
        let path = format!("fields[{i}]");
        match item.as_str() {
            None => problems.push(problem(
                path,
                "must be a string (an argument path such as `payment.card`)",
            )),
            Some(p) => match check_argument_path(p) {
                Err(message) => problems.push(problem(path, message)),
                Ok(()) if fields.iter().any(|f| f == p) => problems.push(problem(
                    path,
                    format!("duplicate of an earlier entry ({p:?})"),
                )),
                Ok(()) => fields.push(p.to_string()),
            },
        }
    }
    (problems.len() == before).then_some(fields)
}

/// Checks the syntax of a Helio argument path: `$`, `$.a.b` or `a.b`, with
/// numeric segments indexing arrays (`items.0`).
fn check_argument_path(path: &str) -> Result<(), String> {
    if path == "$" {
        return Ok(());
    }
    let rest = path.strip_prefix("$.").unwrap_or(path);
    if rest.is_empty() || rest.split('.').any(str::is_empty) {
        return Err(format!(
            "{path:?} is not an argument path (expected `$`, `a.b` or `$.a.b`, with no empty segments)"
        ));
    }
    Ok(())
}

/// Whether `digits` (ASCII digits) pass the Luhn check.
pub fn luhn_valid(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        debug_assert!(d.is_ascii_digit());
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// Whether `text` contains something that looks like a card number: a run of
/// `min..=max` ASCII digits, optionally split into groups by single spaces or
/// dashes (`4111 1111 1111 1111`, `4111-1111-1111-1111`), that passes Luhn
/// and is not all zeros. Runs are bounded by non-digits, so a 25-digit number
/// is not read as a 16-digit card; a grouped run longer than `max` is checked
/// at every group boundary (`4111 1111 1111 1111 0527` still matches).
pub fn contains_card_number(text: &str, min: usize, max: usize) -> bool {
    let b = text.as_bytes();
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        // A maximal run of digit groups joined by single separators.
        groups.clear();
        loop {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            groups.push((start, i));
            let joined =
                i + 1 < b.len() && matches!(b[i], b' ' | b'-') && b[i + 1].is_ascii_digit();
            if !joined {
                break;
            }
            i += 1;
        }
        if run_has_card(b, &groups, min, max) {
            return true;
        }
    }
    false
}

/// Checks every window of whole groups within `min..=max` digits. For each
/// last group, the Luhn sum is extended leftwards group by group (Luhn counts
/// from the rightmost digit), so the whole run costs O(groups × max).
fn run_has_card(b: &[u8], groups: &[(usize, usize)], min: usize, max: usize) -> bool {
    for last in 0..groups.len() {
        let (mut sum, mut count, mut nonzero) = (0u32, 0usize, false);
        for &(start, end) in groups[..=last].iter().rev() {
            if count + (end - start) > max {
                break;
            }
            for &d in b[start..end].iter().rev() {
                let mut v = u32::from(d - b'0');
                if count % 2 == 1 {
                    v *= 2;
                    if v > 9 {
                        v -= 9;
                    }
                }
                sum += v;
                count += 1;
                nonzero |= d != b'0';
            }
            if count >= min && nonzero && sum.is_multiple_of(10) {
                return true;
            }
        }
    }
    false
}

/// Where a card number was found. `path` never contains the number itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    /// JSON path of the string (`$.payment.note`, `$.items[0]`), or of the
    /// object whose key holds the number when `in_key`.
    pub path: String,
    /// The number was in an object key rather than a string value.
    pub in_key: bool,
}

impl Hit {
    /// How the location is described to people: `$.a.b` or `a key of $.a`.
    pub fn describe(&self) -> String {
        if self.in_key {
            format!("a key of {}", self.path)
        } else {
            self.path.clone()
        }
    }
}

/// Appends an object key to a JSON path: `.key` for plain keys, `["…"]`
/// (JSON-escaped) for anything else.
fn push_key(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
    if plain {
        format!("{path}.{key}")
    } else {
        format!("{path}[{}]", Value::String(key.to_string()))
    }
}

/// Walks every string value (and object key) under `value`, depth first in
/// document order, and returns the first card number's location.
pub fn find_in_json(value: &Value, path: &str, min: usize, max: usize) -> Option<Hit> {
    match value {
        Value::String(s) => contains_card_number(s, min, max).then(|| Hit {
            path: path.to_string(),
            in_key: false,
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| find_in_json(item, &format!("{path}[{i}]"), min, max)),
        Value::Object(members) => {
            for (key, item) in members {
                // Keys are checked before descending, so a key holding a
                // card number is reported (as "a key of <path>") and never
                // becomes part of a reported path.
                if contains_card_number(key, min, max) {
                    return Some(Hit {
                        path: path.to_string(),
                        in_key: true,
                    });
                }
                if let Some(hit) = find_in_json(item, &push_key(path, key), min, max) {
                    return Some(hit);
                }
            }
            None
        }
        // Numbers are not scanned: 13-digit millisecond timestamps and
        // numeric ids would pass Luhn one time in ten.
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

/// An argument as the host hands it over (`json-value`), reduced to what
/// this stage reads.
#[derive(Clone, Debug, PartialEq)]
pub enum Argument {
    /// `text(s)`: a JSON string.
    Text(String),
    /// `structured(json)`: an array or object as compact JSON text.
    Structured(String),
    /// `null`, a boolean or a number: nothing to scan.
    Scalar,
}

/// The display form of a configured argument path: always rooted at `$`.
fn display_field(field: &str) -> String {
    if field == "$" || field.starts_with("$.") {
        field.to_string()
    } else {
        format!("$.{field}")
    }
}

/// Scans one call: the whole arguments (`$`) or each configured field, read
/// through `argument` (the host's `tool-call.argument`).
pub fn scan_call(
    config: &Config,
    mut argument: impl FnMut(&str) -> Option<Argument>,
) -> Option<Hit> {
    let everything = ["$".to_string()];
    let fields = config.fields.as_deref().unwrap_or(&everything);
    let (min, max) = (config.min_digits, config.max_digits);
    for field in fields {
        let base = display_field(field);
        let hit = match argument(field) {
            None | Some(Argument::Scalar) => None,
            Some(Argument::Text(s)) => contains_card_number(&s, min, max).then_some(Hit {
                path: base,
                in_key: false,
            }),
            Some(Argument::Structured(json)) => match serde_json::from_str::<Value>(&json) {
                Ok(value) => find_in_json(&value, &base, min, max),
                // Not expected from the host; scan the raw text rather than
                // let anything through unscanned.
                Err(_) => contains_card_number(&json, min, max).then_some(Hit {
                    path: base,
                    in_key: false,
                }),
            },
        };
        if hit.is_some() {
            return hit;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const VISA: &str = "4111111111111111"; // a well-known test number
    const AMEX: &str = "378282246310005"; // 15 digits
    const DEFAULT_MIN: usize = 13;
    const DEFAULT_MAX: usize = 19;

    fn card(text: &str) -> bool {
        contains_card_number(text, DEFAULT_MIN, DEFAULT_MAX)
    }

    // ---- Luhn ----

    #[test]
    fn luhn_accepts_known_test_numbers() {
        for n in [
            VISA,
            AMEX,
            "5555555555554444",
            "6011111111111117",
            "4012888888881881",
            "79927398713",
        ] {
            assert!(luhn_valid(n.as_bytes()), "{n}");
        }
    }

    #[test]
    fn luhn_rejects_a_changed_digit_or_swap() {
        assert!(!luhn_valid(b"4111111111111112"));
        assert!(!luhn_valid(b"4111111111111121"));
        assert!(!luhn_valid(b"79927398710"));
        assert!(!luhn_valid(b""));
    }

    #[test]
    fn luhn_failures_are_not_card_numbers() {
        assert!(card(VISA));
        assert!(!card("4111111111111112"));
        assert!(!card("my order 1234567890123456 shipped"));
    }

    #[test]
    fn all_zeros_is_not_a_card_number() {
        assert!(luhn_valid(b"0000000000000000"));
        assert!(!card("0000000000000000"));
        assert!(!card("0000-0000-0000-0000"));
    }

    // ---- separators ----

    #[test]
    fn single_spaces_and_dashes_between_groups() {
        assert!(card("4111 1111 1111 1111"));
        assert!(card("4111-1111-1111-1111"));
        assert!(card("4111-1111 1111-1111"));
        assert!(card("3782 822463 10005"));
        assert!(card("4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1"));
    }

    #[test]
    fn other_separators_break_the_run() {
        assert!(!card("4111  1111  1111  1111")); // double spaces
        assert!(!card("4111--1111--1111--1111"));
        assert!(!card("4111.1111.1111.1111"));
        assert!(!card("4111/1111/1111/1111"));
        assert!(!card("4111 - 1111 - 1111 - 1111"));
    }

    #[test]
    fn leading_and_trailing_separators_are_not_part_of_the_run() {
        assert!(card("-4111111111111111-"));
        assert!(card(" 4111 1111 1111 1111 "));
    }

    // ---- boundaries ----

    #[test]
    fn digit_count_limits() {
        // 12 digits passing Luhn: too short by default.
        assert!(luhn_valid(b"123456789015"));
        assert!(!card("123456789015"));
        assert!(contains_card_number("123456789015", 12, 19));
        // 13 (the minimum) and 19 (the maximum) digits.
        assert!(luhn_valid(b"4222222222222"));
        assert!(card("4222222222222"));
        assert!(luhn_valid(b"6011000000000000001"));
        assert!(card("6011000000000000001"));
        // 20 digits passing Luhn: too long.
        assert!(luhn_valid(b"60110000000000000012"));
        assert!(!card("60110000000000000012"));
        // A narrower configured range.
        assert!(!contains_card_number(AMEX, 16, 16));
        assert!(contains_card_number(VISA, 16, 16));
    }

    #[test]
    fn a_card_inside_a_longer_digit_string_is_not_matched() {
        // The 16 card digits surrounded by more digits: a 25-digit number.
        assert!(!card(&format!("12345{VISA}6789")));
        assert!(!card(&format!("9{VISA}")));
    }

    #[test]
    fn letters_and_punctuation_bound_a_run() {
        assert!(card(&format!("card:{VISA}.")));
        assert!(card(&format!("x{VISA}y")));
        assert!(card(&format!("pay with ({VISA}), thanks")));
        assert!(card(&format!("line one\n{VISA}\nline two")));
    }

    #[test]
    fn grouped_runs_longer_than_the_maximum_are_checked_at_group_boundaries() {
        // Card followed by an expiry or CVC in the same grouped run.
        assert!(card("4111 1111 1111 1111 0527"));
        assert!(card("4111-1111-1111-1111-123"));
        // Preceded by another group.
        assert!(card("12 4111 1111 1111 1111"));
        // Groups never split: no window of whole groups passes Luhn.
        assert!(!card("4111111111111111999 1"));
    }

    #[test]
    fn several_candidates_in_one_string() {
        assert!(card(&format!("ref 1234567890123456, card {VISA}")));
        assert!(!card("ref 1234567890123456, other 1234567890123457"));
    }

    #[test]
    fn non_ascii_text_is_fine() {
        assert!(card(&format!("Karte: «{VISA}» — danke ✓")));
        assert!(!card("日本語のテキスト 12345"));
        assert!(!card(""));
    }

    // ---- the JSON walk ----

    fn find(value: &Value) -> Option<Hit> {
        find_in_json(value, "$", DEFAULT_MIN, DEFAULT_MAX)
    }

    fn at(path: &str) -> Option<Hit> {
        Some(Hit {
            path: path.into(),
            in_key: false,
        })
    }

    #[test]
    fn nested_objects_and_arrays() {
        let v = json!({
            "to": "a@example.com",
            "order": {"items": [{"sku": "A-1", "note": "ok"}, {"sku": "B-2", "note": format!("card {VISA}")}]}
        });
        assert_eq!(find(&v), at("$.order.items[1].note"));
    }

    #[test]
    fn top_level_strings_and_arrays() {
        assert_eq!(find(&json!({"card": VISA})), at("$.card"));
        assert_eq!(find(&json!([["x", AMEX]])), at("$[0][1]"));
        assert_eq!(find(&json!(VISA)), at("$"));
    }

    #[test]
    fn odd_keys_are_quoted() {
        let v = json!({"billing info": {"card.number": VISA}});
        assert_eq!(find(&v), at(r#"$["billing info"]["card.number"]"#));
        let v = json!({"": {"say \"hi\"": VISA}});
        assert_eq!(find(&v), at(r#"$[""]["say \"hi\""]"#));
    }

    #[test]
    fn numbers_booleans_and_nulls_are_not_scanned() {
        let v = json!({"ts": 4111111111111111u64, "ok": true, "none": null, "ids": [4111111111111111u64]});
        assert_eq!(find(&v), None);
    }

    #[test]
    fn clean_arguments_pass() {
        let v = json!({"query": "SELECT * FROM orders WHERE id = 42", "limit": 10, "tags": ["a", "b"],
                       "phone": "+1 555-123-4567", "uuid": "123e4567-e89b-12d3-a456-426614174000"});
        assert_eq!(find(&v), None);
    }

    #[test]
    fn a_card_number_in_a_key_is_reported_without_the_key() {
        let v = json!({"payments": {VISA: "pending"}});
        let hit = find(&v).expect("hit");
        assert_eq!(
            hit,
            Hit {
                path: "$.payments".into(),
                in_key: true
            }
        );
        assert_eq!(hit.describe(), "a key of $.payments");
        assert!(!hit.describe().contains("1111"));
    }

    #[test]
    fn reported_paths_never_contain_the_number() {
        let v = json!({"notes": [format!("{VISA}")], "x": {"4111-1111-1111-1111": 1}});
        let hit = find(&v).expect("hit");
        assert!(!hit.path.contains("4111"), "{hit:?}");
    }

    // ---- scanning a call, with and without configured fields ----

    /// Resolves an argument path the way Helio does: `$`, `$.a.b`, `a.b`,
    /// numeric segments index arrays; arrays/objects arrive as JSON text.
    fn host(args: &Value) -> impl FnMut(&str) -> Option<Argument> + '_ {
        move |path: &str| {
            let mut v = args;
            if path != "$" {
                for seg in path.strip_prefix("$.").unwrap_or(path).split('.') {
                    v = match v {
                        Value::Object(m) => m.get(seg)?,
                        Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
                        _ => return None,
                    };
                }
            }
            Some(match v {
                Value::String(s) => Argument::Text(s.clone()),
                Value::Array(_) | Value::Object(_) => Argument::Structured(v.to_string()),
                _ => Argument::Scalar,
            })
        }
    }

    fn config(json: &str) -> Config {
        parse_config(json).expect("valid config")
    }

    #[test]
    fn default_config_scans_everything() {
        let args = json!({"a": {"b": [1, {"c": format!("pay {VISA}")}]}});
        assert_eq!(scan_call(&config("{}"), host(&args)), at("$.a.b[1].c"));
        assert_eq!(
            scan_call(&config("{}"), host(&json!({"a": "nothing"}))),
            None
        );
    }

    #[test]
    fn configured_fields_limit_the_scan() {
        let args = json!({"memo": VISA, "payment": {"note": "fine", "card": {"pan": AMEX}}, "items": ["x", VISA]});
        // Only `payment.note`: clean.
        let c = config(r#"{"fields": ["payment.note"]}"#);
        assert_eq!(scan_call(&c, host(&args)), None);
        // A string field.
        let c = config(r#"{"fields": ["payment.note", "memo"]}"#);
        assert_eq!(scan_call(&c, host(&args)), at("$.memo"));
        // A structured field is walked; `$.` prefix accepted.
        let c = config(r#"{"fields": ["$.payment"]}"#);
        assert_eq!(scan_call(&c, host(&args)), at("$.payment.card.pan"));
        // Array index segments.
        let c = config(r#"{"fields": ["items.0", "items.1"]}"#);
        assert_eq!(scan_call(&c, host(&args)), at("$.items.1"));
        // Absent fields are skipped.
        let c = config(r#"{"fields": ["nope", "payment.missing.deeper"]}"#);
        assert_eq!(scan_call(&c, host(&args)), None);
    }

    #[test]
    fn configured_digit_range_applies() {
        let args = json!({"pan": AMEX});
        assert!(scan_call(&config("{}"), host(&args)).is_some());
        assert_eq!(
            scan_call(&config(r#"{"min_digits": 16}"#), host(&args)),
            None
        );
    }

    #[test]
    fn unparsable_structured_text_is_scanned_raw() {
        let hit = scan_call(&Config::default(), |_| {
            Some(Argument::Structured(format!("{{oops {VISA}")))
        });
        assert_eq!(hit, at("$"));
    }

    #[test]
    fn no_arguments_means_nothing_found() {
        assert_eq!(scan_call(&Config::default(), |_| None), None);
        assert_eq!(
            scan_call(&Config::default(), |_| Some(Argument::Scalar)),
            None
        );
    }

    // ---- configuration ----

    fn errors(json: &str) -> Vec<(String, String)> {
        parse_config(json)
            .expect_err("config should be rejected")
            .into_iter()
            .map(|p| (p.path, p.message))
            .collect()
    }

    fn paths(json: &str) -> Vec<String> {
        errors(json).into_iter().map(|(p, _)| p).collect()
    }

    #[test]
    fn empty_and_null_configs_use_defaults() {
        assert_eq!(config("{}"), Config::default());
        assert_eq!(config("null"), Config::default());
        assert_eq!(config(r#"{"fields": null}"#), Config::default());
    }

    #[test]
    fn full_config() {
        let c = config(r#"{"fields": ["$", "a.b"], "min_digits": 14, "max_digits": 16}"#);
        assert_eq!(
            c,
            Config {
                fields: Some(vec!["$".into(), "a.b".into()]),
                min_digits: 14,
                max_digits: 16
            }
        );
    }

    #[test]
    fn bad_fields_are_reported_by_index() {
        assert_eq!(
            paths(r#"{"fields": ["ok", 3, "a..b", "", "ok"]}"#),
            ["fields[1]", "fields[2]", "fields[3]", "fields[4]"]
        );
        assert_eq!(paths(r#"{"fields": "a.b"}"#), ["fields"]);
        assert_eq!(paths(r#"{"fields": []}"#), ["fields"]);
        assert_eq!(paths(r#"{"fields": ["$."]}"#), ["fields[0]"]);
    }

    #[test]
    fn bad_digit_limits() {
        assert_eq!(paths(r#"{"min_digits": "13"}"#), ["min_digits"]);
        assert_eq!(paths(r#"{"min_digits": 13.5}"#), ["min_digits"]);
        assert_eq!(paths(r#"{"max_digits": 25}"#), ["max_digits"]);
        assert_eq!(paths(r#"{"min_digits": 0}"#), ["min_digits"]);
        assert_eq!(paths(r#"{"min_digits": -1}"#), ["min_digits"]);
        let e = errors(r#"{"min_digits": 17, "max_digits": 15}"#);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0, "min_digits");
        assert!(e[0].1.contains("max_digits"), "{e:?}");
        // min > default max.
        assert_eq!(
            paths(r#"{"min_digits": 19, "max_digits": 18}"#),
            ["min_digits"]
        );
    }

    #[test]
    fn unknown_keys_and_wrong_shapes() {
        assert_eq!(paths(r#"{"feilds": ["a"]}"#), ["feilds"]);
        assert_eq!(paths(r#"[1]"#), [""]);
        assert_eq!(paths(r#"not json"#), [""]);
        // Every problem at once.
        assert_eq!(
            paths(r#"{"fields": [1], "max_digits": "x", "extra": 1}"#).len(),
            3
        );
    }
}
