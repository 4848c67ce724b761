//! Where a spend limit or a budget reads a call's amount: an argument path
//! (`field`, a JSON number there) or a spend extractor component
//! (`extractor`, named under helio.yaml's `extractors`).

use serde_json::{Map, Value as Json};

use crate::config::{join, present, Parser};
use crate::{spend_amount, CallView};

/// The source of a call's amount, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmountSource {
    /// The argument path of a JSON number.
    Field(String),
    /// A spend extractor's name.
    Extractor(String),
}

/// What a call spends, read from its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Amount {
    /// An exact non-negative decimal.
    Spends(String),
    /// The extractor says the call spends nothing.
    Nothing,
    /// The amount cannot be used; the operator's reason, when there is one
    /// beyond "not a non-negative number" (never shown to the agent).
    Invalid(Option<String>),
}

impl AmountSource {
    /// Exactly one of `field` and `extractor` of `obj`, at `path`.
    pub fn parse(p: &mut Parser, obj: &Map<String, Json>, path: &str) -> Option<Self> {
        match (present(obj, "field"), present(obj, "extractor")) {
            (Some(field), None) => p.string(field, &join(path, "field")).map(Self::Field),
            (None, Some(name)) => p
                .string(name, &join(path, "extractor"))
                .map(Self::Extractor),
            (Some(_), Some(_)) => {
                p.error(path, "give field or extractor, not both");
                None
            }
            (None, None) => {
                p.error(
                    &join(path, "field"),
                    "missing required key (the argument path of the amount; or name a spend extractor in \"extractor\" instead)",
                );
                None
            }
        }
    }

    /// As messages name it: `field "amount"`, `spend extractor "items"`.
    pub fn describe(&self) -> String {
        match self {
            Self::Field(field) => format!("field \"{field}\""),
            Self::Extractor(name) => format!("spend extractor \"{name}\""),
        }
    }

    /// The key and value feedback's `data` names the source by.
    pub fn data(&self) -> (&'static str, &str) {
        match self {
            Self::Field(field) => ("field", field),
            Self::Extractor(name) => ("extractor", name),
        }
    }

    /// What to tell an agent whose amount could not be read.
    pub fn invalid_suggestion(&self) -> String {
        match self {
            Self::Field(field) => {
                format!(
                    "Send \"{field}\" as a non-negative JSON number (not a string), then retry."
                )
            }
            Self::Extractor(_) => "Check the call's amounts and currency, then retry.".into(),
        }
    }

    /// The call's amount, counted in `currency`: an extractor's amount in
    /// another currency is invalid, never counted as if it were this one.
    pub fn read(&self, call: &impl CallView, currency: &str) -> Amount {
        match self {
            Self::Field(field) => match spend_amount(call, field) {
                Some(amount) => Amount::Spends(amount),
                None => Amount::Invalid(None),
            },
            Self::Extractor(name) => match call.spend(name) {
                Ok(None) => Amount::Nothing,
                Ok(Some((_, Some(stated)))) if !stated.eq_ignore_ascii_case(currency) => {
                    Amount::Invalid(Some(format!(
                        "the call's amount is in {stated}; this limit counts {currency}"
                    )))
                }
                Ok(Some((amount, _))) => Amount::Spends(amount),
                Err(why) => Amount::Invalid(Some(why)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::JsonCall;
    use serde_json::json;

    #[test]
    fn fields_and_extractors_read_amounts_in_the_limits_currency() {
        let call = JsonCall::new("pay")
            .args(json!({"amount": 12.5}))
            .extracted("cents", Ok(Some(("12.34", Some("usd")))))
            .extracted("euros", Ok(Some(("5", Some("EUR")))))
            .extracted("none", Ok(None))
            .extracted("broken", Err("no line items"));
        let field = AmountSource::Field("amount".into());
        assert_eq!(field.read(&call, "USD"), Amount::Spends("12.5".into()));
        assert_eq!(
            AmountSource::Field("x".into()).read(&call, "USD"),
            Amount::Invalid(None)
        );
        let extractor = |name: &str| AmountSource::Extractor(name.into());
        assert_eq!(
            extractor("cents").read(&call, "USD"),
            Amount::Spends("12.34".into())
        );
        assert!(
            matches!(extractor("euros").read(&call, "USD"), Amount::Invalid(Some(why)) if why.contains("EUR"))
        );
        assert_eq!(extractor("none").read(&call, "USD"), Amount::Nothing);
        assert_eq!(
            extractor("broken").read(&call, "USD"),
            Amount::Invalid(Some("no line items".into()))
        );
        assert!(matches!(
            extractor("missing").read(&call, "USD"),
            Amount::Invalid(Some(_))
        ));
    }
}
