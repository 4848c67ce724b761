//! CSV per RFC 4180 (the `csv` crate), safe to open in a spreadsheet.
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
    write_rows(
        out,
        std::iter::once(columns.iter().map(|c| Cow::Borrowed(*c))),
    );
}

/// Records as lines, their fields in `columns` order.
pub fn write_records(
    out: &mut Vec<u8>,
    columns: &[&str],
    kind: impl Fn(&str) -> Kind,
    records: &[Record],
) {
    write_rows(
        out,
        records.iter().map(|record| {
            columns.iter().map(|column| {
                let value = record.get(*column).unwrap_or(&Value::Null);
                let (text, is_text) = cell(value, kind(column));
                neutralised(text, is_text)
            })
        }),
    );
}

fn write_rows<'a, R, F>(out: &mut Vec<u8>, rows: R)
where
    R: Iterator<Item = F>,
    F: Iterator<Item = Cow<'a, str>>,
{
    let mut writer = ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::CRLF)
        .from_writer(out);
    for row in rows {
        // Writing to memory cannot fail; a field is any text.
        let _ = writer.write_record(row.map(Field));
    }
    let _ = writer.flush();
}

/// A field's text as the bytes the writer takes.
struct Field<'a>(Cow<'a, str>);

impl AsRef<[u8]> for Field<'_> {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
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

/// A text cell a spreadsheet would run as a formula gets a leading `'`.
fn neutralised(text: Cow<'_, str>, is_text: bool) -> Cow<'_, str> {
    let formula = is_text
        && text
            .bytes()
            .next()
            .is_some_and(|b| matches!(b, b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r'));
    if formula {
        Cow::Owned(format!("'{text}"))
    } else {
        text
    }
}
