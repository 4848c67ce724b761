//! What the upstream's JSON-RPC answer to a forwarded call says, read once:
//! whether the call ran, and the error it reports. Settlement (refund or
//! not) and the audit record both take it from here.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::state::CallOutcome;

#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub outcome: CallOutcome,
    /// The JSON-RPC error's `message`, when the answer is an error.
    pub error_message: Option<String>,
    /// Whether the answer is a JSON-RPC error (not a result).
    pub rpc_error: bool,
}

impl Answer {
    pub fn read(message: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct Response<'a> {
            #[serde(borrow)]
            error: Option<&'a RawValue>,
            result: Option<ResultFlags>,
        }
        #[derive(Deserialize)]
        struct ResultFlags {
            #[serde(rename = "isError", default)]
            is_error: Option<bool>,
        }
        let Ok(response) = serde_json::from_slice::<Response<'_>>(message) else {
            return Self::unknown();
        };
        if let Some(error) = response.error {
            return Self {
                outcome: CallOutcome::Failed,
                error_message: error_message(error),
                rpc_error: true,
            };
        }
        let outcome = match response.result {
            Some(ResultFlags {
                is_error: Some(true),
            }) => CallOutcome::Failed,
            Some(_) => CallOutcome::Succeeded,
            None => CallOutcome::Unknown,
        };
        Self {
            outcome,
            error_message: None,
            rpc_error: false,
        }
    }

    fn unknown() -> Self {
        Self {
            outcome: CallOutcome::Unknown,
            error_message: None,
            rpc_error: false,
        }
    }
}

/// `error.message`, when the error is an object that has one.
fn error_message(error: &RawValue) -> Option<String> {
    #[derive(Deserialize)]
    struct ErrorObject<'a> {
        #[serde(borrow)]
        message: Option<Cow<'a, str>>,
    }
    let error: ErrorObject<'_> = serde_json::from_str(error.get()).ok()?;
    Some(error.message?.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(message: &str) -> (CallOutcome, Option<String>) {
        let answer = Answer::read(message.as_bytes());
        (answer.outcome, answer.error_message)
    }

    #[test]
    fn outcomes_and_error_messages() {
        use CallOutcome::{Failed, Succeeded, Unknown};
        assert_eq!(
            read(r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#),
            (Succeeded, None)
        );
        assert_eq!(
            read(r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":false}}"#),
            (Succeeded, None)
        );
        assert_eq!(
            read(r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}}"#),
            (Failed, None)
        );
        assert_eq!(
            read(r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"no \"x\""}}"#),
            (Failed, Some("no \"x\"".into()))
        );
        // An error that is not an object still says the call failed.
        assert_eq!(
            read(r#"{"jsonrpc":"2.0","id":1,"error":"broken"}"#),
            (Failed, None)
        );
        assert_eq!(read("not json"), (Unknown, None));
        assert_eq!(read(r#"{"jsonrpc":"2.0","id":1}"#), (Unknown, None));
    }
}
