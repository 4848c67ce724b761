//! CSV per RFC 4180, safe to open in a spreadsheet.
//!
//! Hand-written (a few lines, tested against Python's `csv` module in the
//! end-to-end tests) rather than a dependency: the rules needed are only
//! quoting and formula neutralising.
//!
//! - Fields are quoted when they hold `,`, `"`, CR or LF; quotes double.
//! - Lines end in CRLF.
//! - Null is an empty field; booleans are `true`/`false`; JSON columns are
//!   compact JSON text.
//! - Formula injection: a text cell starting with `=`, `+`, `-`, `@`, TAB or
//!   CR gets a leading `'`, so a spreadsheet shows it instead of running it.
//!   Numbers are left alone (`-3` is a number, not a formula).

use std::borrow::Cow;

use serde_json::Value;

use super::rows::Kind;
use super::Record;

/// A header line of `columns`.
pub fn write_header(out: &mut Vec<u8>, columns: &[&str]) {
    for (i, column) in columns.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_field(out, column, false);
    }
    out.extend_from_slice(b"\r\n");
}

/// One record as a line, its fields in `columns` order.
pub fn write_record(
    out: &mut Vec<u8>,
    columns: &[&str],
    kind: impl Fn(&str) -> Kind,
    record: &Record,
) {
    for (i, column) in columns.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let value = record.get(*column).unwrap_or(&Value::Null);
        let (text, is_text) = cell(value, kind(column));
        write_field(out, &text, is_text);
    }
    out.extend_from_slice(b"\r\n");
}

/// A value's text, and whether it is text (which may need neutralising)
/// rather than a number or boolean.
fn cell(value: &Value, kind: Kind) -> (Cow<'_, str>, bool) {
    match (value, kind) {
        (Value::Null, _) => (Cow::Borrowed(""), false),
        (Value::Bool(b), _) => (Cow::Borrowed(if *b { "true" } else { "false" }), false),
        (Value::Number(n), Kind::Plain | Kind::Bool) => (Cow::Owned(n.to_string()), false),
        (Value::String(s), Kind::Plain | Kind::Bool) => (Cow::Borrowed(s.as_str()), true),
        // JSON columns (and anything unexpected) as compact JSON text.
        (other, _) => (Cow::Owned(other.to_string()), true),
    }
}

/// Writes one field: neutralised if it is text that a spreadsheet would
/// run, quoted if it needs quoting.
pub fn write_field(out: &mut Vec<u8>, text: &str, is_text: bool) {
    let neutralise = is_text
        && text
            .bytes()
            .next()
            .is_some_and(|b| matches!(b, b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r'));
    let quote = text
        .bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'));
    if quote {
        out.push(b'"');
    }
    if neutralise {
        out.push(b'\'');
    }
    for b in text.bytes() {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    if quote {
        out.push(b'"');
    }
}
