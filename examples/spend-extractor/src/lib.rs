//! spend-extractor: reads what a call spends where a field path cannot —
//! amounts in minor units (cents), summed over a list of line items, with
//! the currency stated in another field — for helio.yaml's spend limits and
//! budgets (`extractor:` instead of `field:`). Exact: it sums whole minor
//! units and never goes through a float.
//!
//! Configuration:
//!
//! ```yaml
//! items: items            # argument path of the list of line items (omit: the call is one item)
//! price: unit_price_cents # in each item (or the call): a whole number of minor units
//! quantity: qty           # in each item: a whole number, default 1 when absent
//! minor_units: 2          # digits after the decimal point (2: cents; 0: yen)
//! currency: currency      # argument path of the ISO 4217 code (optional)
//! ```

use serde::Deserialize;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub items: Option<String>,
    pub price: String,
    #[serde(default)]
    pub quantity: Option<String>,
    #[serde(default = "cents")]
    pub minor_units: u32,
    #[serde(default)]
    pub currency: Option<String>,
}

fn cents() -> u32 {
    2
}

/// A JSON value as the call offers it: a number's text, a string, or other.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    Number(String),
    Text(String),
    Other,
}

/// The call, as the logic reads it: `at(path)` for the call's arguments,
/// `items(path)` for the list's elements (as JSON text).
pub trait Arguments {
    fn at(&self, path: &str) -> Option<Field>;
    fn list(&self, path: &str) -> Option<Vec<serde_json::Value>>;
}

/// The amount (a decimal string) and currency, none when nothing is spent.
pub fn extract(
    config: &Config,
    call: &impl Arguments,
) -> Result<Option<(String, Option<String>)>, String> {
    let currency = match &config.currency {
        None => None,
        Some(path) => match call.at(path) {
            Some(Field::Text(code))
                if code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic()) =>
            {
                Some(code.to_ascii_uppercase())
            }
            Some(_) => return Err(format!("{path} is not a three-letter currency code")),
            None => None,
        },
    };
    let total: u128 = match &config.items {
        // The call is one item: its price must be there.
        None => match call.at(&config.price) {
            None => return Err(format!("{} is missing", config.price)),
            Some(price) => whole(&price, &config.price)?,
        },
        Some(path) => {
            // No list: the call buys nothing. A list that is not one: unusable.
            let items = match call.at(path) {
                None => return Ok(None),
                Some(_) => call
                    .list(path)
                    .ok_or_else(|| format!("{path} is not a list of line items"))?,
            };
            let mut total: u128 = 0;
            for (i, item) in items.iter().enumerate() {
                let field = |key: &str| item.get(key).map(json_field);
                let price = field(&config.price)
                    .ok_or_else(|| format!("{path}[{i}] has no {}", config.price))?;
                let price = whole(&price, &format!("{path}[{i}].{}", config.price))?;
                let quantity = match config
                    .quantity
                    .as_deref()
                    .and_then(|q| field(q).map(|f| (q, f)))
                {
                    Some((q, f)) => whole(&f, &format!("{path}[{i}].{q}"))?,
                    None => 1,
                };
                total = price
                    .checked_mul(quantity)
                    .and_then(|line| total.checked_add(line))
                    .ok_or("the total is too large")?;
            }
            total
        }
    };
    Ok(Some((decimal(total, config.minor_units), currency)))
}

fn json_field(value: &serde_json::Value) -> Field {
    match value {
        serde_json::Value::Number(n) => Field::Number(n.to_string()),
        serde_json::Value::String(s) => Field::Text(s.clone()),
        _ => Field::Other,
    }
}

/// A whole, non-negative number of units.
fn whole(field: &Field, at: &str) -> Result<u128, String> {
    match field {
        Field::Number(text) if text.bytes().all(|b| b.is_ascii_digit()) => {
            text.parse().map_err(|_| format!("{at} is too large"))
        }
        _ => Err(format!("{at} is not a whole, non-negative number")),
    }
}

/// `1234` minor units with 2 digits: `"12.34"`.
fn decimal(units: u128, digits: u32) -> String {
    let text = format!("{units:0>width$}", width = digits as usize + 1);
    let (whole, fraction) = text.split_at(text.len() - digits as usize);
    match fraction.is_empty() {
        true => whole.to_owned(),
        false => format!("{whole}.{fraction}"),
    }
}

#[cfg(target_arch = "wasm32")]
mod component;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    struct Json(Value);

    impl Arguments for Json {
        fn at(&self, path: &str) -> Option<Field> {
            self.0
                .pointer(&format!("/{}", path.replace('.', "/")))
                .map(json_field)
        }
        fn list(&self, path: &str) -> Option<Vec<Value>> {
            self.0
                .pointer(&format!("/{}", path.replace('.', "/")))?
                .as_array()
                .cloned()
        }
    }

    fn config(json: Value) -> Config {
        serde_json::from_value(json).expect("config")
    }

    #[test]
    fn line_items_in_minor_units_sum_exactly() {
        let c = config(
            json!({"items": "items", "price": "cents", "quantity": "qty", "currency": "currency"}),
        );
        let call =
            Json(json!({"currency": "eur", "items": [{"cents": 1999, "qty": 3}, {"cents": 1}]}));
        assert_eq!(
            extract(&c, &call),
            Ok(Some(("59.98".into(), Some("EUR".into()))))
        );
        assert_eq!(extract(&c, &Json(json!({"other": 1}))), Ok(None));
        // Present but not a list: never read as "spends nothing".
        assert!(extract(&c, &Json(json!({"items": {"0": {"cents": 999}}}))).is_err());
        assert!(extract(&c, &Json(json!({"items": [{"cents": 1.5}]}))).is_err());
        assert!(extract(&c, &Json(json!({"items": [{"qty": 1}]}))).is_err());
        let yen = config(json!({"price": "amount", "minor_units": 0}));
        assert_eq!(
            extract(&yen, &Json(json!({"amount": 500}))),
            Ok(Some(("500".into(), None)))
        );
        assert!(extract(&yen, &Json(json!({"other": 1}))).is_err());
        assert_eq!(decimal(5, 2), "0.05");
    }
}
