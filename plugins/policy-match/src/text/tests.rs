use serde_json::{json, Value as Json};

use super::*;

#[test]
fn iso_timestamps() {
    let cases: &[(u64, &str)] = &[
        (0, "1970-01-01T00:00:00.000Z"),
        (946_684_799_999, "1999-12-31T23:59:59.999Z"),
        // 2000 is a leap year (divisible by 400), 2100 is not (by 100).
        (951_782_400_000, "2000-02-29T00:00:00.000Z"),
        (1_709_210_096_789, "2024-02-29T12:34:56.789Z"),
        (1_795_392_000_000, "2026-11-23T00:00:00.000Z"),
        (4_107_542_399_999, "2100-02-28T23:59:59.999Z"),
        (4_107_542_400_000, "2100-03-01T00:00:00.000Z"),
        (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
    ];
    for (ms, want) in cases {
        assert_eq!(iso_utc(*ms), *want, "{ms}");
    }
}

#[test]
fn decimals_from_f64_never_use_exponents() {
    let cases: &[(f64, &str)] = &[
        (0.0, "0"),
        (-0.0, "0"),
        (12.5, "12.5"),
        (100.0, "100"),
        (0.1, "0.1"),
        (1e21, "1000000000000000000000"),
        (1e-7, "0.0000001"),
        (99.99, "99.99"),
    ];
    for (value, want) in cases {
        let text = decimal(*value);
        assert_eq!(text, *want, "{value}");
        assert!(is_plain_decimal(&text), "{text}");
    }
}

#[test]
fn exact_saturating_subtraction() {
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("100", "99.9", Some("0.1")),
        ("100", "40", Some("60")),
        ("12.50", "2.5", Some("10")),
        ("0.3", "0.1", Some("0.2")),
        ("1", "0.001", Some("0.999")),
        ("5", "5.00", Some("0")),
        ("5", "7", Some("0")),
        (
            "1000000000000000000000",
            "0.5",
            Some("999999999999999999999.5"),
        ),
        ("007", "2", Some("5")),
        ("1e3", "1", None),
        ("-1", "1", None),
        ("1.", "1", None),
        (".5", "1", None),
    ];
    for (a, b, want) in cases {
        assert_eq!(decimal_saturating_sub(a, b).as_deref(), *want, "{a} - {b}");
    }
}

#[test]
fn json_numbers_and_plain_decimals() {
    for ok in ["0", "12", "12.50", "-1", "1e5", "1.5E-3", "0.0"] {
        assert!(is_json_number(ok), "{ok}");
    }
    for bad in [
        "", "-", "01", "1.", ".5", "+1", "1e", "NaN", "inf", "1 ", "0x1",
    ] {
        assert!(!is_json_number(bad), "{bad}");
    }
    for ok in ["0", "12", "12.50", "007"] {
        assert!(is_plain_decimal(ok), "{ok}");
    }
    for bad in ["", "-1", "1e5", "1.", ".5", "1.2.3", " 1", "١"] {
        assert!(!is_plain_decimal(bad), "{bad}");
    }
}

#[test]
fn objects_are_valid_json_with_exact_decimals() {
    let text = JsonObject::new()
        .string("name", "q\"uote\n\u{1}")
        .decimal("spent", "12.50")
        .decimal("bad", "12,5")
        .opt_decimal("some", Some("0.5"))
        .opt_decimal("absent", None)
        .u64("n", 7)
        .bool("flag", true)
        .opt_string("none", None)
        .strings("list", &["a".into(), "b".into()])
        .objects(
            "items",
            vec![JsonObject::new().u64("x", 1), JsonObject::new()],
        )
        .finish();
    assert!(text.contains("\"spent\":12.50"), "{text}");
    let parsed: Json = serde_json::from_str(&text).unwrap();
    assert_eq!(
        parsed,
        json!({
            "name": "q\"uote\n\u{1}", "spent": 12.5, "bad": null, "some": 0.5, "absent": null, "n": 7, "flag": true,
            "none": null, "list": ["a", "b"], "items": [{"x": 1}, {}]
        })
    );
    assert_eq!(JsonObject::new().finish(), "{}");
}

#[test]
fn fingerprints_are_fnv1a_of_canonical_json() {
    assert_eq!(
        fingerprint(&json!({"max_calls": 5, "window": "1m"})),
        "069d524abcd842ca"
    );
    // Key order as written does not matter; values do.
    let a: Json = serde_json::from_str(r#"{"window":"1m","max_calls":5}"#).unwrap();
    assert_eq!(fingerprint(&a), "069d524abcd842ca");
    assert_ne!(
        fingerprint(&json!({"max_calls": 6, "window": "1m"})),
        "069d524abcd842ca"
    );
}

#[test]
fn seconds_round_up() {
    assert_eq!(seconds_until(1_000, 1_000), 0);
    assert_eq!(seconds_until(1_000, 1_001), 1);
    assert_eq!(seconds_until(1_000, 61_000), 60);
    assert_eq!(seconds_until(5_000, 1_000), 0);
}

#[test]
fn word_lists() {
    assert_eq!(word_list::<&str>(&[]), "");
    assert_eq!(word_list(&["a"]), "a");
    assert_eq!(word_list(&["a", "b"]), "a and b");
    assert_eq!(word_list(&["a", "b", "c"]), "a, b and c");
}

#[test]
fn state_keys_stay_within_the_host_limit() {
    let short = "rate:r:0123456789abcdef:tool:send".to_owned();
    assert_eq!(state_key(short.clone()), short);
    let exact = "k".repeat(MAX_STATE_KEY);
    assert_eq!(state_key(exact.clone()), exact);
    let long = format!("rate:r:fp:tool:{}", "é".repeat(400));
    let bounded = state_key(long.clone());
    assert!(bounded.len() <= MAX_STATE_KEY, "{}", bounded.len());
    assert!(bounded.starts_with("rate:r:fp:tool:é"));
    // Distinct long keys stay distinct, and the same key maps the same way.
    let other = format!("{long}x");
    assert_ne!(state_key(other), bounded);
    assert_eq!(state_key(long), bounded);
    assert_eq!(bounded.rsplit('~').next().map(str::len), Some(16));
}
