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
//!
//! The same holds for the `Mcp-Param-*` headers of a `tools/call`, which
//! mirror the arguments the tool's input schema marks with `x-mcp-header`
//! ([`check_params`], after the official SDKs' server-side check).

use base64::Engine;
use http::{HeaderMap, HeaderValue};
use serde_json::Value;

use super::jsonrpc::{Envelope, Kind};
use super::upstream::{MCP_METHOD, MCP_NAME};
use crate::era::{claims_modern, MODERN};
use crate::tools::ParamHeader;

/// The revision whose clients must mirror method and name in headers.
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

/// Checks a `tools/call`'s `Mcp-Param-*` headers against its arguments,
/// for the arguments its tool's schema marks (`marks`). A header and its
/// argument must agree, or be absent together; from a client that does not
/// claim 2026-07-28, a missing header is fine. A header sent twice, or one
/// whose argument is absent, never agrees.
pub(super) fn check_params(
    headers: &HeaderMap,
    marks: &[ParamHeader],
    arguments: Option<&Value>,
) -> Result<(), Mismatch> {
    if marks.is_empty() {
        return Ok(());
    }
    let required = claims_modern(headers);
    for mark in marks {
        let name = format!("Mcp-Param-{}", mark.token);
        let mismatch = |what: &str| Mismatch {
            reason: format!(
                "{name} header {what} the body's argument \"{}\"",
                mark.path.join(".")
            ),
            method_header: headers.get(MCP_METHOD).map(lossy),
            name_header: headers.get(MCP_NAME).map(lossy),
        };
        let mut sent = headers.get_all(name.as_str()).iter();
        let header = sent.next();
        if sent.next().is_some() {
            return Err(mismatch("is sent more than once; it cannot stand for"));
        }
        let value = arguments
            .and_then(|args| mark.path.iter().try_fold(args, |node, key| node.get(key)))
            .filter(|v| !v.is_null());
        let rendered = value.and_then(render);
        match (header, value, rendered) {
            (None, None, _) | (None, Some(_), None) => {}
            (None, Some(_), Some(_)) if required => {
                return Err(mismatch("is missing; it must mirror"))
            }
            (None, Some(_), Some(_)) => {}
            (Some(_), None, _) => return Err(mismatch("is present, but the request omits")),
            (Some(_), Some(_), None) => return Err(mismatch("cannot stand for")),
            (Some(header), Some(value), Some(rendered)) => match decoded(header) {
                Some(text) if agrees(mark.integer, value, &rendered, &text) => {}
                Some(_) | None => return Err(mismatch("does not match")),
            },
        }
    }
    Ok(())
}

/// The `Mcp-Param-*` headers a 2026-07-28 client sends with a call whose
/// tool's schema marks arguments (`marks`): what Helio sends for a
/// handshake-era client it bridges. An argument with no header form (an
/// object, a value too long for a header) gets none.
pub(super) fn mirror_params(
    marks: &[ParamHeader],
    arguments: Option<&Value>,
) -> Vec<(http::HeaderName, HeaderValue)> {
    marks
        .iter()
        .filter_map(|mark| {
            let value = arguments
                .and_then(|args| mark.path.iter().try_fold(args, |node, key| node.get(key)))?;
            let text = render(value)?;
            let name = http::HeaderName::from_bytes(format!("mcp-param-{}", mark.token).as_bytes())
                .ok()?;
            Some((name, super::upstream::header_safe(&text)?))
        })
        .collect()
}

/// An argument as a client mirrors it: strings as they are, booleans as
/// `true`/`false`, numbers in JSON's notation; objects, arrays: no header.
fn render(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Whether a header's text agrees with its argument. An integer argument
/// compares as a number with a plain decimal header (`42` = `42.0`),
/// exactly, whatever its size.
fn agrees(integer: bool, value: &Value, rendered: &str, header: &str) -> bool {
    let whole = |text: &str| -> Option<String> {
        let (sign, digits) = match text.strip_prefix('-') {
            Some(rest) => ("-", rest),
            None => ("", text),
        };
        let (int, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let plain = !int.is_empty()
            && int.bytes().all(|b| b.is_ascii_digit())
            && fraction.bytes().all(|b| b == b'0');
        let int = int.trim_start_matches('0');
        plain.then(|| match int {
            "" => "0".to_owned(),
            int => format!("{sign}{int}"),
        })
    };
    if integer && value.is_number() {
        if let (Some(a), Some(b)) = (whole(rendered), whole(header)) {
            return a == b;
        }
    }
    header == rendered
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

    fn params_with(headers: &[(&str, &str)], arguments: serde_json::Value) -> Result<(), Mismatch> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        let marks = [
            ParamHeader {
                path: vec!["region".into()],
                token: "Region".into(),
                integer: false,
            },
            ParamHeader {
                path: vec!["opts".into(), "n".into()],
                token: "N".into(),
                integer: true,
            },
        ];
        check_params(&map, &marks, Some(&arguments))
    }

    #[test]
    fn param_headers_must_mirror_their_arguments() {
        use serde_json::json;
        const MODERN_CLIENT: (&str, &str) = ("mcp-protocol-version", "2026-07-28");
        let args = json!({"region": "eu-1", "opts": {"n": 42}});
        assert!(params_with(
            &[
                MODERN_CLIENT,
                ("mcp-param-region", "eu-1"),
                ("mcp-param-n", "42.0")
            ],
            args.clone()
        )
        .is_ok());
        assert!(params_with(&[("mcp-param-region", "=?base64?ZXUtMQ==?=")], args.clone()).is_ok());
        // An older client need not send them; a modern one must.
        assert!(params_with(&[], args.clone()).is_ok());
        let missing = params_with(&[MODERN_CLIENT, ("mcp-param-region", "eu-1")], args.clone());
        assert!(missing
            .expect_err("missing")
            .reason
            .contains("Mcp-Param-N header is missing"));
        for bad in [
            vec![("mcp-param-region", "us-1")],
            vec![("mcp-param-n", "43")],
            vec![("mcp-param-n", "4.2e1")],
            vec![("mcp-param-region", "eu-1"), ("mcp-param-region", "eu-1")],
            vec![("mcp-param-region", "=?base64?!!?=")],
        ] {
            assert!(params_with(&bad, args.clone()).is_err(), "{bad:?}");
        }
        // A header for an argument the body does not carry.
        assert!(params_with(&[("mcp-param-region", "eu-1")], json!({"opts": {}})).is_err());
        assert!(params_with(&[], json!({"region": null})).is_ok());
    }
}
