//! A row of `audit_records` as a JSON object.

use std::sync::LazyLock;

use rusqlite::types::ValueRef;
use rusqlite::Row;
use serde_json::{Number, Value};

use super::Record;
use crate::audit::schema::{BOOL_COLUMNS, COLUMNS, JSON_COLUMNS};

/// `id, timestamp, …`: every column, in [`COLUMNS`] order (the schema's
/// own constants, never request input).
pub static SELECT_COLUMNS: LazyLock<String> = LazyLock::new(|| COLUMNS.join(", "));

/// How a column's stored value becomes JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// JSON text, parsed back into a value.
    Json,
    /// 0/1, shown as a boolean.
    Bool,
    /// Text or a number, as stored.
    Plain,
}

pub fn kind(column: &str) -> Kind {
    if JSON_COLUMNS.contains(&column) {
        Kind::Json
    } else if BOOL_COLUMNS.contains(&column) {
        Kind::Bool
    } else {
        Kind::Plain
    }
}

/// The kinds of [`COLUMNS`], index for index.
static KINDS: LazyLock<Vec<Kind>> = LazyLock::new(|| COLUMNS.iter().map(|c| kind(c)).collect());

/// A row selected with [`SELECT_COLUMNS`] as a record.
pub fn record_from_row(row: &Row<'_>) -> Result<Record, rusqlite::Error> {
    let mut record = Record::new();
    for (i, (column, kind)) in COLUMNS.iter().zip(KINDS.iter()).enumerate() {
        let value = to_json(row.get_ref(i)?, *kind);
        record.insert((*column).to_owned(), value);
    }
    Ok(record)
}

fn to_json(value: ValueRef<'_>, kind: Kind) -> Value {
    match (value, kind) {
        (ValueRef::Null, _) => Value::Null,
        (ValueRef::Integer(n), Kind::Bool) => Value::Bool(n != 0),
        (ValueRef::Integer(n), _) => Value::from(n),
        (ValueRef::Real(x), _) => Number::from_f64(x).map_or(Value::Null, Value::Number),
        (ValueRef::Text(bytes), Kind::Json) => {
            let text = String::from_utf8_lossy(bytes);
            // Stored JSON that does not parse is still shown, as a string,
            // rather than failing the whole page.
            serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.into_owned()))
        }
        (ValueRef::Text(bytes) | ValueRef::Blob(bytes), _) => {
            Value::String(String::from_utf8_lossy(bytes).into_owned())
        }
    }
}
