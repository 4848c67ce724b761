//! Request bodies of the SDK routes: parsed from bytes into a JSON object,
//! then read field by field so every 400 names the field at fault.
//!
//! Rules follow the original Helio (the published SDK is coded against
//! them): unknown fields are ignored, `evidence_data` / `value` may be any
//! JSON including `null` but must be present, names must be non-empty
//! strings. Additions: session ids are trimmed and bounded like the MCP
//! side's session header, names are bounded, and a TTL is capped.

use axum::extract::rejection::BytesRejection;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Map, Value};

/// Longest session id, in characters after trimming (the MCP side skips a
/// session header longer than this, so a longer id could never match).
pub(crate) const MAX_SESSION_CHARS: usize = 256;
/// Longest tool name, evidence key or context key, in characters.
pub(super) const MAX_NAME_CHARS: usize = 256;
/// Evidence TTL when the request names none.
pub(super) const DEFAULT_TTL_SECONDS: u64 = 300;
/// Longest evidence TTL: 7 days. Evidence is a short-lived attestation.
pub(super) const MAX_TTL_SECONDS: u64 = 7 * 24 * 60 * 60;

/// An error answer: a status and a JSON object with at least `error`.
#[derive(Debug)]
pub(super) struct ApiError {
    pub status: StatusCode,
    pub body: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, body: Value) -> Self {
        Self { status, body }
    }

    /// A 400 naming the field at fault.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            json!({ "error": message.into(), "code": "validation_error", "field": field }),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// The top-level object of a request body.
pub(super) struct Fields(Map<String, Value>);

impl Fields {
    /// Reads the body (413 past the size limit) and parses it as a JSON
    /// object.
    pub fn parse(body: Result<Bytes, BytesRejection>) -> Result<Self, ApiError> {
        let body = body.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    json!({ "error": "request_body_too_large" }),
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    json!({ "error": "Could not read the request body", "code": "invalid_body" }),
                )
            }
        })?;
        let Ok(text) = std::str::from_utf8(&body) else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                json!({ "error": "Invalid JSON: the body is not UTF-8", "code": "invalid_json" }),
            ));
        };
        // Read exactly, like a tool call's params: evidence is a governance
        // input, so a body read two ways (a key twice…) is refused.
        match crate::strict_json::parse(text) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                json!({ "error": "The request body must be a JSON object", "code": "invalid_json" }),
            )),
            Err(error) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                json!({ "error": format!("Invalid JSON: {error}"), "code": "invalid_json" }),
            )),
        }
    }

    /// `session_id`: a string, trimmed, non-empty, at most
    /// [`MAX_SESSION_CHARS`] characters.
    pub fn session_id(&self) -> Result<String, ApiError> {
        match self.0.get("session_id") {
            None => Err(ApiError::invalid("session_id", "session_id is required")),
            Some(Value::String(raw)) => session_id(raw).map(str::to_owned),
            Some(_) => Err(ApiError::invalid(
                "session_id",
                "session_id must be a string",
            )),
        }
    }

    /// A required non-empty string of at most [`MAX_NAME_CHARS`] characters.
    pub fn name(&self, field: &str) -> Result<String, ApiError> {
        match self.0.get(field) {
            None => Err(ApiError::invalid(field, format!("{field} is required"))),
            Some(Value::String(s)) if s.is_empty() => Err(ApiError::invalid(
                field,
                format!("{field} must be a non-empty string"),
            )),
            Some(Value::String(s)) if s.chars().count() > MAX_NAME_CHARS => Err(ApiError::invalid(
                field,
                format!("{field} must be at most {MAX_NAME_CHARS} characters"),
            )),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(ApiError::invalid(
                field,
                format!("{field} must be a string"),
            )),
        }
    }

    /// An optional string of at most `max` characters (absent or `null`:
    /// none).
    pub fn optional_text(&self, field: &str, max: usize) -> Result<Option<String>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
            Some(Value::String(_)) => Err(ApiError::invalid(
                field,
                format!("{field} must be at most {max} characters"),
            )),
            Some(_) => Err(ApiError::invalid(
                field,
                format!("{field} must be a string"),
            )),
        }
    }

    /// An object already read (a nested one).
    pub fn from_map(map: Map<String, Value>) -> Self {
        Self(map)
    }

    /// A field, taken out of the body (absent: none).
    pub fn take(&mut self, field: &str) -> Option<Value> {
        self.0.remove(field)
    }

    /// A field as sent, if it was.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.0.get(field)
    }

    /// The body's fields, given up.
    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }

    /// The whole body, as read.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// A required value of any JSON type (`null` included).
    pub fn take_value(&mut self, field: &str) -> Result<Value, ApiError> {
        self.0
            .remove(field)
            .ok_or_else(|| ApiError::invalid(field, format!("{field} is required")))
    }

    /// `ttl_seconds`: absent means [`DEFAULT_TTL_SECONDS`]; otherwise a
    /// positive integer (`5.0` counts, as in JSON it is the same number) of
    /// at most [`MAX_TTL_SECONDS`].
    pub fn ttl_seconds(&self) -> Result<u64, ApiError> {
        let Some(raw) = self.0.get("ttl_seconds") else {
            return Ok(DEFAULT_TTL_SECONDS);
        };
        let ttl = match raw {
            Value::Number(n) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
                    .map(|f| f as u64)
            }),
            _ => None,
        };
        match ttl {
            Some(ttl) if (1..=MAX_TTL_SECONDS).contains(&ttl) => Ok(ttl),
            _ => Err(ApiError::invalid(
                "ttl_seconds",
                format!(
                    "ttl_seconds must be a positive integer of at most {MAX_TTL_SECONDS} (7 days)"
                ),
            )),
        }
    }
}

/// Validates a session id (from a body or a path): trimmed, non-empty, at
/// most [`MAX_SESSION_CHARS`] characters.
pub(super) fn session_id(raw: &str) -> Result<&str, ApiError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(ApiError::invalid(
            "session_id",
            "session_id must be a non-empty string (whitespace only is not an id)",
        ));
    }
    if trimmed.chars().count() > MAX_SESSION_CHARS {
        return Err(ApiError::invalid(
            "session_id",
            format!("session_id must be at most {MAX_SESSION_CHARS} characters"),
        ));
    }
    Ok(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(body: &str) -> Fields {
        Fields::parse(Ok(Bytes::from(body.to_owned()))).expect("a JSON object")
    }

    fn message(error: ApiError) -> String {
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        error.body["error"]
            .as_str()
            .expect("an error message")
            .to_owned()
    }

    #[test]
    fn bodies_must_be_json_objects() {
        for body in ["", "{", "[1]", "\"s\"", "null"] {
            let error = Fields::parse(Ok(Bytes::from(body)))
                .err()
                .expect("rejected");
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(error.body["code"], "invalid_json", "{body}");
        }
    }

    #[test]
    fn session_ids_are_trimmed_and_bounded() {
        assert_eq!(
            fields(r#"{"session_id":"  s1 "}"#)
                .session_id()
                .expect("should be accepted"),
            "s1"
        );
        let max = "é".repeat(MAX_SESSION_CHARS);
        let body = json!({ "session_id": format!(" {max} ") }).to_string();
        assert_eq!(fields(&body).session_id().expect("should be accepted"), max);

        let long = json!({ "session_id": "x".repeat(MAX_SESSION_CHARS + 1) }).to_string();
        assert!(
            message(fields(&long).session_id().expect_err("should be rejected"))
                .contains("at most 256")
        );
        assert!(message(
            fields(r#"{"session_id":" \t "}"#)
                .session_id()
                .expect_err("should be rejected")
        )
        .contains("non-empty"));
        assert!(message(
            fields(r#"{"session_id":""}"#)
                .session_id()
                .expect_err("should be rejected")
        )
        .contains("non-empty"));
        assert_eq!(
            message(fields("{}").session_id().expect_err("should be rejected")),
            "session_id is required"
        );
        assert_eq!(
            message(
                fields(r#"{"session_id":7}"#)
                    .session_id()
                    .expect_err("should be rejected")
            ),
            "session_id must be a string"
        );
    }

    #[test]
    fn names_are_non_empty_bounded_strings() {
        assert_eq!(
            fields(r#"{"k":"v"}"#)
                .name("k")
                .expect("should be accepted"),
            "v"
        );
        assert_eq!(
            message(fields("{}").name("k").expect_err("should be rejected")),
            "k is required"
        );
        assert_eq!(
            message(
                fields(r#"{"k":""}"#)
                    .name("k")
                    .expect_err("should be rejected")
            ),
            "k must be a non-empty string"
        );
        assert_eq!(
            message(
                fields(r#"{"k":["v"]}"#)
                    .name("k")
                    .expect_err("should be rejected")
            ),
            "k must be a string"
        );
        let long = json!({ "k": "x".repeat(MAX_NAME_CHARS + 1) }).to_string();
        assert!(
            message(fields(&long).name("k").expect_err("should be rejected")).contains("at most")
        );
        let error = fields("{}")
            .name("tool_name")
            .expect_err("should be rejected");
        assert_eq!(error.body["field"], "tool_name");
        assert_eq!(error.body["code"], "validation_error");
    }

    #[test]
    fn values_may_be_null_but_must_be_present() {
        assert_eq!(
            fields(r#"{"v":null}"#)
                .take_value("v")
                .expect("should be accepted"),
            Value::Null
        );
        assert_eq!(
            message(
                fields("{}")
                    .take_value("v")
                    .expect_err("should be rejected")
            ),
            "v is required"
        );
    }

    #[test]
    fn integers_the_body_cannot_hold_exactly_are_refused_whole() {
        for bad in ["1e300", "18446744073709551615"] {
            let body = format!(r#"{{"session_id":"s","ttl_seconds":{bad}}}"#);
            let error = Fields::parse(Ok(Bytes::from(body))).err().expect("refused");
            assert_eq!(error.body["code"], "invalid_json", "{bad}");
            assert!(message(error).contains("$.ttl_seconds"), "{bad}");
        }
    }

    #[test]
    fn ttl_defaults_and_bounds() {
        assert_eq!(
            fields("{}").ttl_seconds().expect("should be accepted"),
            DEFAULT_TTL_SECONDS
        );
        assert_eq!(
            fields(r#"{"ttl_seconds":1}"#)
                .ttl_seconds()
                .expect("should be accepted"),
            1
        );
        assert_eq!(
            fields(r#"{"ttl_seconds":60.0}"#)
                .ttl_seconds()
                .expect("should be accepted"),
            60
        );
        assert_eq!(
            fields(&format!(r#"{{"ttl_seconds":{MAX_TTL_SECONDS}}}"#))
                .ttl_seconds()
                .expect("should be accepted"),
            MAX_TTL_SECONDS
        );
        for bad in ["0", "-5", "1.5", "\"60\"", "null", "true", "604801"] {
            let body = format!(r#"{{"ttl_seconds":{bad}}}"#);
            let text = message(fields(&body).ttl_seconds().expect_err("should be rejected"));
            assert!(
                text.contains("positive integer") && text.contains("7 days"),
                "{bad}: {text}"
            );
        }
    }
}
