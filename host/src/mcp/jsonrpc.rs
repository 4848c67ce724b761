//! The JSON-RPC envelope: parsed only as far as routing and governance need,
//! so the original bytes can be forwarded untouched (ids of any type, `_meta`,
//! unknown fields and methods all survive).

use std::borrow::Cow;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

/// JSON-RPC 2.0 error codes Helio itself produces.
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// Helio's blocked-call code; agents key on `data.blocked` + `data.reason`.
    pub const BLOCKED: i64 = -32001;
    /// MCP 2026-07-28: the request's headers contradict its body.
    pub const HEADER_MISMATCH: i64 = -32020;
}

/// What kind of message a POST carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Notification,
    /// A client's answer to a server-initiated request (sampling, elicitation…).
    Response,
}

/// A borrowed view of one JSON-RPC message.
#[derive(Debug)]
pub struct Envelope<'a> {
    pub kind: Kind,
    /// The raw id, exactly as sent (`1`, `"abc"`, `null`).
    pub id: Option<&'a RawValue>,
    pub method: Option<Cow<'a, str>>,
    pub params: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

/// Keeps a present-but-null member as `Some("null")`, so `"id": null` is not
/// mistaken for an absent id.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Why a body is not an acceptable JSON-RPC message.
#[derive(Debug, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Not JSON at all (-32700).
    Parse,
    /// JSON, but not a single JSON-RPC 2.0 message (-32600).
    Invalid(&'static str),
}

impl<'a> Envelope<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, EnvelopeError> {
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'[') {
            // Batches were removed from MCP in 2025-06-18; each message must be
            // governed on its own.
            return if serde_json::from_slice::<&RawValue>(body).is_ok() {
                Err(EnvelopeError::Invalid(
                    "batch requests are not supported; send one JSON-RPC message per POST",
                ))
            } else {
                Err(EnvelopeError::Parse)
            };
        }
        if first != Some(&b'{') {
            return if serde_json::from_slice::<&RawValue>(body).is_ok() {
                Err(EnvelopeError::Invalid(
                    "a JSON-RPC message must be a JSON object",
                ))
            } else {
                Err(EnvelopeError::Parse)
            };
        }
        let raw: RawEnvelope<'a> = serde_json::from_slice(body).map_err(|e| {
            if e.is_data() {
                EnvelopeError::Invalid("malformed JSON-RPC message")
            } else {
                EnvelopeError::Parse
            }
        })?;
        if raw.jsonrpc.map(RawValue::get) != Some("\"2.0\"") {
            return Err(EnvelopeError::Invalid("\"jsonrpc\" must be \"2.0\""));
        }
        if let Some(id) = raw.id {
            let text = id.get();
            let valid = text == "null"
                || text.starts_with('"')
                || text.starts_with('-')
                || text.as_bytes().first().is_some_and(u8::is_ascii_digit);
            if !valid {
                return Err(EnvelopeError::Invalid(
                    "\"id\" must be a string, a number or null",
                ));
            }
        }
        let method = match raw.method {
            None => None,
            // Borrow when the name has no escapes (always, in practice).
            Some(m) => match serde_json::from_str::<&str>(m.get()) {
                Ok(s) => Some(Cow::Borrowed(s)),
                Err(_) => match serde_json::from_str::<String>(m.get()) {
                    Ok(s) => Some(Cow::Owned(s)),
                    Err(_) => return Err(EnvelopeError::Invalid("\"method\" must be a string")),
                },
            },
        };
        let kind = match (
            method.is_some(),
            raw.id,
            raw.result.is_some() || raw.error.is_some(),
        ) {
            (true, Some(_), false) => Kind::Request,
            (true, None, false) => Kind::Notification,
            (false, Some(_), true) if raw.result.is_some() != raw.error.is_some() => Kind::Response,
            _ => {
                return Err(EnvelopeError::Invalid(
                    "not a JSON-RPC request, notification or response",
                ))
            }
        };
        Ok(Envelope {
            kind,
            id: raw.id,
            method,
            params: raw.params,
        })
    }

    /// The name an MCP method acts on: `params.name` for `tools/call` and
    /// `prompts/get`, `params.uri` for `resources/read`.
    pub fn target_name(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Named {
            name: Option<String>,
            uri: Option<String>,
        }
        let field = match self.method.as_deref()? {
            "tools/call" | "prompts/get" => |n: Named| n.name,
            "resources/read" => |n: Named| n.uri,
            _ => return None,
        };
        let named: Named = serde_json::from_str(self.params?.get()).ok()?;
        field(named)
    }
}

/// True when a message (e.g. one SSE event's data) is the response to `id`.
pub fn is_response_to(message: &[u8], id: &RawValue) -> bool {
    match Envelope::parse(message) {
        Ok(env) if env.kind == Kind::Response => env.id.is_some_and(|got| same_id(got, id)),
        _ => false,
    }
}

/// Ids compare as JSON values, so `"a"` written as `"\u0061"` still matches.
fn same_id(a: &RawValue, b: &RawValue) -> bool {
    a.get() == b.get()
        || matches!(
            (
                serde_json::from_str::<serde_json::Value>(a.get()),
                serde_json::from_str::<serde_json::Value>(b.get()),
            ),
            (Ok(x), Ok(y)) if x == y
        )
}

#[derive(Serialize)]
struct ErrorResponse<'a> {
    jsonrpc: &'static str,
    /// Omitted (never `null`) when the request had no usable id.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a RawValue>,
    error: ErrorObject<'a>,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    code: i64,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a serde_json::Value>,
}

/// Serializes a JSON-RPC error response.
pub fn error_body(
    id: Option<&RawValue>,
    code: i64,
    message: &str,
    data: Option<&serde_json::Value>,
) -> Bytes {
    let response = ErrorResponse {
        jsonrpc: "2.0",
        id,
        error: ErrorObject {
            code,
            message,
            data,
        },
    };
    // Serializing plain strings, numbers and already-valid JSON cannot fail.
    Bytes::from(serde_json::to_vec(&response).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(body: &str) -> Result<Kind, EnvelopeError> {
        Envelope::parse(body.as_bytes()).map(|e| e.kind)
    }

    #[test]
    fn classifies_messages() {
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
            Ok(Kind::Request)
        );
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","id":"a-1","method":"x/y","params":{}}"#),
            Ok(Kind::Request)
        );
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#),
            Ok(Kind::Request)
        );
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Ok(Kind::Notification)
        );
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","id":7,"result":{}}"#),
            Ok(Kind::Response)
        );
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","id":7,"error":{"code":1,"message":"x"}}"#),
            Ok(Kind::Response)
        );
    }

    #[test]
    fn rejects_what_is_not_one_message() {
        assert_eq!(kind("{nope"), Err(EnvelopeError::Parse));
        assert_eq!(kind(""), Err(EnvelopeError::Parse));
        assert!(matches!(kind("[]"), Err(EnvelopeError::Invalid(m)) if m.contains("batch")));
        assert!(matches!(kind("42"), Err(EnvelopeError::Invalid(_))));
        assert!(matches!(
            kind(r#"{"id":1,"method":"ping"}"#),
            Err(EnvelopeError::Invalid(_))
        ));
        assert!(matches!(
            kind(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#),
            Err(EnvelopeError::Invalid(_))
        ));
        assert!(matches!(
            kind(r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#),
            Err(EnvelopeError::Invalid(_))
        ));
        assert!(matches!(
            kind(r#"{"jsonrpc":"2.0","id":1,"method":5}"#),
            Err(EnvelopeError::Invalid(_))
        ));
        assert!(matches!(
            kind(r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#),
            Err(EnvelopeError::Invalid(_))
        ));
    }

    #[test]
    fn ids_keep_their_exact_text() {
        let body = br#"{"jsonrpc":"2.0","id": 1.50 ,"method":"ping"}"#;
        let env = Envelope::parse(body).expect("valid");
        assert_eq!(env.id.map(RawValue::get), Some("1.50"));
    }

    #[test]
    fn target_names() {
        let call = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"lookup_order","arguments":{}}}"#;
        assert_eq!(
            Envelope::parse(call)
                .expect("valid")
                .target_name()
                .as_deref(),
            Some("lookup_order")
        );
        let read =
            br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a"}}"#;
        assert_eq!(
            Envelope::parse(read)
                .expect("valid")
                .target_name()
                .as_deref(),
            Some("file:///a")
        );
        let list = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        assert_eq!(Envelope::parse(list).expect("valid").target_name(), None);
    }

    #[test]
    fn response_matching() {
        let id: Box<RawValue> = RawValue::from_string("\"a\"".into()).expect("json");
        assert!(is_response_to(
            br#"{"jsonrpc":"2.0","id":"\u0061","result":{}}"#,
            &id
        ));
        assert!(!is_response_to(
            br#"{"jsonrpc":"2.0","id":"b","result":{}}"#,
            &id
        ));
        assert!(!is_response_to(
            br#"{"jsonrpc":"2.0","id":"a","method":"sampling/createMessage"}"#,
            &id
        ));
    }

    #[test]
    fn error_bodies_omit_missing_ids() {
        let body = error_body(None, code::PARSE_ERROR, "Parse error", None);
        assert_eq!(
            &body[..],
            br#"{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"}}"#
        );
        let id: Box<RawValue> = RawValue::from_string("\"x\"".into()).expect("json");
        let body = error_body(Some(&id), -32603, "m", Some(&serde_json::json!({"a": 1})));
        assert_eq!(
            &body[..],
            br#"{"jsonrpc":"2.0","id":"x","error":{"code":-32603,"message":"m","data":{"a":1}}}"#
        );
    }
}
