//! Header/body agreement (MCP 2026-07-28): the `Mcp-Method` and `Mcp-Name`
//! a client sends must say what its body says. Infrastructure in front of an
//! MCP server may route or filter on these headers, so a request whose
//! headers claim one call while its body makes another is refused, never
//! silently re-stamped.
//!
//! Rules, as the original Helio applies them: a request that claims the
//! 2026-07-28 revision (`MCP-Protocol-Version`) must carry `Mcp-Method`, and
//! `Mcp-Name` when its body names a tool, prompt or resource; from any client,
//! a header that is present must agree. Values in the `=?base64?…?=` form are
//! decoded first.

use base64::Engine;
use http::{HeaderMap, HeaderValue};

use super::jsonrpc::{Envelope, Kind};
use super::upstream::{MCP_METHOD, MCP_NAME, MCP_PROTOCOL_VERSION};

/// The revision whose clients must mirror method and name in headers.
const MODERN: &str = "2026-07-28";
/// Header values quoted in a refusal are cut here.
const QUOTED_CHARS: usize = 256;

/// Headers that disagree with the body.
#[derive(Debug)]
pub(super) struct Mismatch {
    /// What disagrees, quoting both sides.
    pub reason: String,
    /// The client's `Mcp-Method` and `Mcp-Name`, as sent (for the record).
    pub method_header: Option<String>,
    pub name_header: Option<String>,
}

/// Checks a message's `Mcp-Method`/`Mcp-Name` against its body, whose
/// name-bearing field is `body_name` ([`Envelope::target_name`]).
pub(super) fn check(
    headers: &HeaderMap,
    envelope: &Envelope<'_>,
    body_name: Option<&str>,
) -> Result<(), Mismatch> {
    let Some(method) = envelope.method.as_deref() else {
        return Ok(());
    };
    let method_header = headers.get(MCP_METHOD);
    let name_header = headers.get(MCP_NAME);
    let required = envelope.kind == Kind::Request && claims_modern(headers);
    if method_header.is_none() && name_header.is_none() && !required {
        return Ok(());
    }
    let mismatch = |reason: String| Mismatch {
        reason,
        method_header: method_header.map(lossy),
        name_header: name_header.map(lossy),
    };
    match method_header.map(decoded) {
        None if required => {
            return Err(mismatch(format!(
                "Mcp-Method header is missing; a {MODERN} request must mirror its method \"{}\"",
                quote(method)
            )))
        }
        None => {}
        Some(Some(header)) if header == method => {}
        Some(header) => {
            return Err(mismatch(format!(
                "Mcp-Method header \"{}\" does not match the body's method \"{}\"",
                quote(header.as_deref().unwrap_or("<unreadable>")),
                quote(method)
            )))
        }
    }
    match (name_header.map(decoded), body_name) {
        (None, Some(name)) if required => Err(mismatch(format!(
            "Mcp-Name header is missing; a {MODERN} {method} request must mirror \"{}\"",
            quote(name)
        ))),
        (None, _) => Ok(()),
        (Some(Some(header)), Some(name)) if header == name => Ok(()),
        (Some(header), Some(name)) => Err(mismatch(format!(
            "Mcp-Name header \"{}\" does not match the body's name \"{}\"",
            quote(header.as_deref().unwrap_or("<unreadable>")),
            quote(name)
        ))),
        (Some(header), None) => Err(mismatch(format!(
            "Mcp-Name header \"{}\" names something, but the {method} body names nothing",
            quote(header.as_deref().unwrap_or("<unreadable>"))
        ))),
    }
}

/// `MCP-Protocol-Version` claims the modern revision: at least one token,
/// and every token is it.
fn claims_modern(headers: &HeaderMap) -> bool {
    let mut tokens = headers
        .get_all(MCP_PROTOCOL_VERSION)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("\u{0}").split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .peekable();
    tokens.peek().is_some() && tokens.all(|t| t == MODERN)
}

/// A header's text, decoding the `=?base64?…?=` form; none when it is not
/// text.
fn decoded(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    match text
        .strip_prefix("=?base64?")
        .and_then(|t| t.strip_suffix("?="))
    {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok()),
        None => Some(text.to_owned()),
    }
}

fn lossy(value: &HeaderValue) -> String {
    quote(&String::from_utf8_lossy(value.as_bytes())).into_owned()
}

fn quote(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().count() <= QUOTED_CHARS {
        std::borrow::Cow::Borrowed(text)
    } else {
        std::borrow::Cow::Owned(text.chars().take(QUOTED_CHARS).chain(['…']).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderName;

    fn check_with(headers: &[(&str, &str)], body: &str) -> Result<(), Mismatch> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        let envelope = Envelope::parse(body.as_bytes()).expect("envelope");
        check(&map, &envelope, envelope.target_name().as_deref())
    }

    const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;

    #[test]
    fn agreeing_or_absent_headers_pass() {
        assert!(check_with(&[], CALL).is_ok());
        assert!(check_with(&[("mcp-method", "tools/call"), ("mcp-name", "echo")], CALL).is_ok());
        assert!(check_with(&[("mcp-name", "=?base64?ZWNobw==?=")], CALL).is_ok());
        assert!(check_with(
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "echo")
            ],
            CALL
        )
        .is_ok());
        // Older clients need not send them.
        assert!(check_with(&[("mcp-protocol-version", "2025-06-18")], CALL).is_ok());
        let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        assert!(check_with(
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/list")
            ],
            list
        )
        .is_ok());
        // A modern notification need not mirror.
        let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        assert!(check_with(&[("mcp-protocol-version", "2026-07-28")], note).is_ok());
    }

    #[test]
    fn disagreeing_or_missing_mirrors_are_refused() {
        let e = check_with(&[("mcp-method", "tools/list")], CALL).expect_err("method");
        assert!(e.reason.contains("\"tools/list\"") && e.reason.contains("\"tools/call\""));
        assert_eq!(e.method_header.as_deref(), Some("tools/list"));
        let e = check_with(&[("mcp-name", "read_only_tool")], CALL).expect_err("name");
        assert!(e.reason.contains("read_only_tool"), "{}", e.reason);
        let e = check_with(&[("mcp-protocol-version", "2026-07-28")], CALL).expect_err("missing");
        assert!(e.reason.contains("missing"), "{}", e.reason);
        let e = check_with(
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
            ],
            CALL,
        )
        .expect_err("missing name");
        assert!(
            e.reason.contains("Mcp-Name header is missing"),
            "{}",
            e.reason
        );
        let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        assert!(check_with(&[("mcp-name", "echo")], list).is_err());
        let long = "x".repeat(1000);
        let e = check_with(&[("mcp-method", &long)], CALL).expect_err("long");
        assert!(e.reason.len() < 400, "values are quoted short");
    }
}
