//! The params of a `tools/call`, read once and exactly: what governance
//! decides on is what the upstream will read, or the call is refused.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::strict_json::{self, Unreadable};
use crate::traces::{TraceContext, TraceHeaders};

use super::agents::{ClientInfo, Meta};

/// The parts of `tools/call` params governance reads.
pub(super) struct CallParams<'a> {
    pub name: String,
    /// `params.arguments`, read exactly (absent or `null`: none).
    pub arguments: Option<Arc<Value>>,
    /// `params.arguments` as the client sent it, for the audit record.
    pub raw_arguments: Option<&'a str>,
    /// The `clientInfo` the call states in its `_meta`.
    pub client_info: Option<ClientInfo>,
    /// The W3C trace context in its `_meta` (`traceparent`, `tracestate`).
    pub trace: Option<TraceContext>,
}

/// Why a `tools/call` cannot be governed.
#[derive(Debug)]
pub(super) enum ParamsError {
    /// No `params.name`, or not a non-empty string.
    Nameless,
    /// The params cannot be read exactly as an upstream would read them.
    Unreadable(Unreadable),
}

impl<'a> CallParams<'a> {
    pub fn parse(params: Option<&'a RawValue>) -> Result<Self, ParamsError> {
        let params = params.ok_or(ParamsError::Nameless)?;
        let Value::Object(mut parsed) =
            strict_json::parse(params.get()).map_err(ParamsError::Unreadable)?
        else {
            return Err(ParamsError::Nameless);
        };
        let name = match parsed.remove("name") {
            Some(Value::String(name)) if !name.is_empty() => name,
            _ => return Err(ParamsError::Nameless),
        };
        let arguments = parsed
            .remove("arguments")
            .filter(|a| !a.is_null())
            .map(Arc::new);
        // A `_meta` that is not what MCP defines states no clientInfo; it
        // never makes the call nameless.
        let meta = parsed.get("_meta");
        let client_info = meta
            .and_then(|meta| Meta::deserialize(meta).ok())
            .and_then(|meta| meta.client_info);
        let trace = meta.and_then(|meta| {
            let traceparent = meta.get("traceparent")?.as_str()?;
            let tracestate = meta.get("tracestate").and_then(Value::as_str);
            TraceContext::new(traceparent, tracestate)
        });
        Ok(Self {
            name,
            raw_arguments: arguments.as_ref().and_then(|_| raw_arguments(Some(params))),
            arguments,
            client_info,
            trace,
        })
    }
}

/// The text of `params.arguments` exactly as sent.
pub(super) fn raw_arguments(params: Option<&RawValue>) -> Option<&str> {
    #[derive(Deserialize)]
    struct Wire<'a> {
        #[serde(borrow)]
        arguments: Option<&'a RawValue>,
    }
    let wire: Wire<'_> = serde_json::from_str(params?.get()).ok()?;
    wire.arguments.map(RawValue::get)
}

/// The tool name of params that could not be governed, for the record:
/// read leniently, since it only labels a refusal.
pub(super) fn stated_name(params: Option<&RawValue>) -> Option<String> {
    #[derive(Deserialize)]
    struct Named {
        name: Option<String>,
    }
    let named: Named = serde_json::from_str(params?.get()).ok()?;
    named.name.filter(|n| !n.is_empty())
}

/// `message` (a `tools/call`) with `params._meta.traceparent` and
/// `tracestate` set to `trace`; everything else, the arguments' text
/// included, as sent. None when its params or `_meta` are not objects.
pub(super) fn with_trace_meta(message: &[u8], trace: &TraceHeaders) -> Option<Bytes> {
    type Members = BTreeMap<String, Box<RawValue>>;
    let mut message: Members = serde_json::from_slice(message).ok()?;
    let mut params: Members = serde_json::from_str(message.get("params")?.get()).ok()?;
    let mut meta: Members = match params.get("_meta") {
        Some(meta) => serde_json::from_str(meta.get()).ok()?,
        None => Members::new(),
    };
    let text = |value: &str| serde_json::value::to_raw_value(value).ok();
    meta.insert("traceparent".into(), text(&trace.traceparent)?);
    match &trace.tracestate {
        Some(state) => meta.insert("tracestate".into(), text(state)?),
        None => meta.remove("tracestate"),
    };
    params.insert("_meta".into(), serde_json::value::to_raw_value(&meta).ok()?);
    message.insert(
        "params".into(),
        serde_json::value::to_raw_value(&params).ok()?,
    );
    serde_json::to_vec(&message).ok().map(Bytes::from)
}

/// The `_meta.progressToken` a request carries (a string or an integer, as
/// MCP defines it), to tag progress notifications about it.
pub(super) fn progress_token(params: Option<&RawValue>) -> Option<Box<RawValue>> {
    #[derive(Deserialize)]
    struct Params<'a> {
        #[serde(rename = "_meta", borrow)]
        meta: Option<ProgressMeta<'a>>,
    }
    #[derive(Deserialize)]
    struct ProgressMeta<'a> {
        #[serde(rename = "progressToken", borrow)]
        progress_token: Option<&'a RawValue>,
    }
    let params: Params<'_> = serde_json::from_str(params?.get()).ok()?;
    let token = params.meta?.progress_token?;
    let text = token.get();
    let usable = text.starts_with('"') || text.bytes().all(|b| b.is_ascii_digit() || b == b'-');
    usable.then(|| token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).expect("json")
    }

    fn headers(traceparent: &str, tracestate: Option<&str>) -> TraceHeaders {
        TraceHeaders {
            traceparent: traceparent.into(),
            tracestate: tracestate.map(Into::into),
        }
    }

    #[test]
    fn a_traced_call_carries_its_context_in_meta_and_its_arguments_as_sent() {
        let sent = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"pay","arguments":{"amount": 1.50, "n":12345678901234567890},"_meta":{"progressToken":3,"traceparent":"client","tracestate":"a=1"}}}"#;
        let traced = with_trace_meta(sent, &headers("00-ours-01", None)).expect("rewritten");
        let text = std::str::from_utf8(&traced).expect("UTF-8");
        assert!(text.contains(r#""arguments":{"amount": 1.50, "n":12345678901234567890}"#));
        let message: Value = serde_json::from_slice(&traced).expect("JSON");
        assert_eq!(
            message["params"]["_meta"],
            serde_json::json!({"progressToken": 3, "traceparent": "00-ours-01"})
        );
        assert_eq!(
            (message["id"].clone(), message["method"].clone()),
            (7.into(), "tools/call".into())
        );

        let bare = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}"#;
        let traced = with_trace_meta(bare, &headers("00-x-01", Some("v=1"))).expect("rewritten");
        let message: Value = serde_json::from_slice(&traced).expect("JSON");
        assert_eq!(
            message["params"]["_meta"],
            serde_json::json!({"traceparent": "00-x-01", "tracestate": "v=1"})
        );
        // No object to put it in: the message goes as it is (headers only).
        for odd in [
            &br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","_meta":[1]}}"#
                [..],
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
        ] {
            assert!(with_trace_meta(odd, &headers("00-x-01", None)).is_none());
        }
    }

    #[test]
    fn the_calls_trace_context_is_read_from_meta() {
        let params = raw(
            r#"{"name":"t","_meta":{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","tracestate":"k=v"}}"#,
        );
        let call = CallParams::parse(Some(&params)).expect("named");
        assert_eq!(
            call.trace,
            TraceContext::new(
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                Some("k=v")
            )
        );
        let params = raw(r#"{"name":"t","_meta":{"traceparent":7}}"#);
        assert_eq!(CallParams::parse(Some(&params)).expect("named").trace, None);
    }

    #[test]
    fn the_stated_client_info_comes_from_the_same_parse_and_never_unnames_a_call() {
        let text = r#"{"name":"echo","arguments":{"a":1},"_meta":{"io.modelcontextprotocol/clientInfo":{"name":"bot","version":"2"}}}"#;
        let params = raw(text);
        let call = CallParams::parse(Some(&params)).expect("named");
        assert_eq!(call.name, "echo");
        assert_eq!(call.raw_arguments, Some(r#"{"a":1}"#));
        assert_eq!(
            call.arguments.as_deref(),
            Some(&serde_json::json!({"a": 1}))
        );
        let info = call.client_info.expect("client info");
        assert_eq!(info.name.as_deref(), Some("bot"));
        for meta in ["5", r#"{"io.modelcontextprotocol/clientInfo":{"name":7}}"#] {
            let params = raw(&format!(r#"{{"name":"echo","_meta":{meta}}}"#));
            let call = CallParams::parse(Some(&params)).expect("still named");
            assert_eq!(call.name, "echo");
            assert!(call.client_info.is_none());
            assert!(call.arguments.is_none() && call.raw_arguments.is_none());
        }
    }

    #[test]
    fn nameless_and_unreadable_params_are_told_apart() {
        for text in [
            r#"{"arguments":{}}"#,
            r#"{"name":""}"#,
            r#"{"name":5}"#,
            "[1]",
        ] {
            let params = raw(text);
            assert!(
                matches!(CallParams::parse(Some(&params)), Err(ParamsError::Nameless)),
                "{text}"
            );
        }
        assert!(matches!(
            CallParams::parse(None),
            Err(ParamsError::Nameless)
        ));
        let cases = [
            (
                r#"{"name":"echo","arguments":{"env":"prod","pad":1e400}}"#,
                "$.arguments.pad",
            ),
            (
                r#"{"name":"echo","arguments":{"s":"\ud800"}}"#,
                "$.arguments.s",
            ),
            (
                r#"{"name":"echo","arguments":{"env":"dev","env":"prod"}}"#,
                "$.arguments.env",
            ),
            (
                r#"{"name":"echo","arguments":{},"_meta":{"x":-1e999}}"#,
                "$._meta.x",
            ),
            (r#"{"name":"a","name":"b"}"#, "$.name"),
        ];
        for (text, path) in cases {
            let params = raw(text);
            match CallParams::parse(Some(&params)) {
                Err(ParamsError::Unreadable(why)) => assert_eq!(why.path, path, "{text}"),
                Err(other) => panic!("{text}: {other:?}"),
                Ok(_) => panic!("{text}: accepted"),
            }
        }
        assert_eq!(
            stated_name(Some(&raw(r#"{"name":"echo","arguments":{"pad":1e400}}"#))).as_deref(),
            Some("echo"),
            "the record of a refused call still names its tool"
        );
    }

    #[test]
    fn progress_tokens_are_strings_or_integers() {
        let token = |params: &str| {
            let raw = RawValue::from_string(params.to_owned()).expect("raw");
            progress_token(Some(&raw)).map(|t| t.get().to_owned())
        };
        assert_eq!(
            token(r#"{"_meta":{"progressToken":"abc"}}"#).as_deref(),
            Some(r#""abc""#)
        );
        assert_eq!(
            token(r#"{"_meta":{"progressToken":7}}"#).as_deref(),
            Some("7")
        );
        assert_eq!(token(r#"{"_meta":{"progressToken":{"x":1}}}"#), None);
        assert_eq!(token(r#"{"_meta":{}}"#), None);
        assert_eq!(token(r#"{"name":"x"}"#), None);
    }
}
