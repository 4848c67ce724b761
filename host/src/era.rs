//! The two MCP revision families as they meet in Helio, and what the bridge
//! between them changes: a 2026-07-28 client (no `initialize`, no session,
//! an envelope in `_meta`) in front of a server Helio knows only speaks the
//! handshake era. One place for the revision's name, how a request claims
//! it, the `server/discover` answer Helio gives for such a server, the
//! envelope such a server refuses, and what its results lack.

use http::HeaderMap;
use serde_json::{json, Value};

/// The stateless revision.
pub const MODERN: &str = "2026-07-28";

/// The `_meta` keys a 2026-07-28 request carries in place of the handshake.
pub const ENVELOPE_KEYS: [&str; 4] = [
    "io.modelcontextprotocol/protocolVersion",
    "io.modelcontextprotocol/clientCapabilities",
    "io.modelcontextprotocol/clientInfo",
    "io.modelcontextprotocol/logLevel",
];

/// The methods whose 2026-07-28 results carry cache directives.
const CACHEABLE: [&str; 5] = [
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
];

/// `MCP-Protocol-Version` claims the 2026-07-28 revision: at least one
/// token, and every token is it.
pub fn claims_modern(headers: &HeaderMap) -> bool {
    let mut tokens = headers
        .get_all(http::HeaderName::from_static("mcp-protocol-version"))
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("\u{0}").split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .peekable();
    tokens.peek().is_some() && tokens.all(|t| t == MODERN)
}

/// The `server/discover` result for a handshake-era server, from its
/// `initialize` result: its capabilities, instructions and `serverInfo`.
pub fn discover_result(init: &Value) -> Value {
    let mut result = json!({
        "supportedVersions": [MODERN],
        "capabilities": init.get("capabilities").cloned().unwrap_or_else(|| json!({})),
        "resultType": "complete",
        "ttlMs": 0,
        "cacheScope": "private",
        "_meta": { "io.modelcontextprotocol/serverInfo": init.get("serverInfo") },
    });
    if let Some(instructions) = init.get("instructions") {
        result["instructions"] = instructions.clone();
    }
    result
}

/// Takes the 2026-07-28 envelope out of a request's params (a
/// handshake-era server refuses a request that carries it); an emptied
/// `_meta` goes too.
pub fn strip_envelope(params: &mut Value) {
    let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut) else {
        return;
    };
    meta.retain(|key, _| !ENVELOPE_KEYS.contains(&key.as_str()));
    if meta.is_empty() {
        if let Some(params) = params.as_object_mut() {
            params.remove("_meta");
        }
    }
}

/// The client's info and capabilities from a request's envelope, for the
/// `initialize` Helio makes on its behalf.
pub fn envelope_client(params: Option<&Value>) -> (Option<Value>, Option<Value>) {
    let meta = params.and_then(|p| p.get("_meta"));
    let field = |key: &str| meta.and_then(|m| m.get(key)).cloned();
    (
        field("io.modelcontextprotocol/clientInfo"),
        field("io.modelcontextprotocol/clientCapabilities"),
    )
}

/// Completes a handshake-era server's result to `method` for a 2026-07-28
/// client: `resultType: "complete"`; on list and read results the cache
/// directives as that revision's clients default them (`ttlMs: 0`,
/// immediately stale; `cacheScope: "private"`, never shared); and the
/// server's `serverInfo` (from its `initialize` result) stamped in `_meta`,
/// where such clients learn who they talk to.
pub fn complete(result: &mut Value, method: &str, server_info: Option<&Value>) {
    let Some(result) = result.as_object_mut() else {
        return;
    };
    if let Some(info) = server_info {
        let meta = result.entry("_meta").or_insert_with(|| json!({}));
        if let Some(meta) = meta.as_object_mut() {
            meta.entry("io.modelcontextprotocol/serverInfo")
                .or_insert_with(|| info.clone());
        }
    }
    result
        .entry("resultType")
        .or_insert_with(|| "complete".into());
    if CACHEABLE.contains(&method) {
        result.entry("ttlMs").or_insert_with(|| 0.into());
        result
            .entry("cacheScope")
            .or_insert_with(|| "private".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_goes_and_results_are_completed() {
        let mut params = json!({"name": "t", "_meta": {
            "io.modelcontextprotocol/protocolVersion": MODERN, "progressToken": 3}});
        strip_envelope(&mut params);
        assert_eq!(params, json!({"name": "t", "_meta": {"progressToken": 3}}));
        let mut bare = json!({"_meta": {"io.modelcontextprotocol/clientInfo": {}}});
        strip_envelope(&mut bare);
        assert_eq!(bare, json!({}));
        let mut listed = json!({"tools": [], "ttlMs": 5});
        complete(&mut listed, "tools/list", None);
        assert_eq!(
            listed,
            json!({"tools": [], "ttlMs": 5, "resultType": "complete", "cacheScope": "private"})
        );
        let mut called = json!({"content": []});
        complete(&mut called, "tools/call", Some(&json!({"name": "s"})));
        assert_eq!(
            called,
            json!({"content": [], "resultType": "complete",
                   "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "s"}}})
        );
    }

    #[test]
    fn only_a_pure_2026_claim_counts() {
        let headers = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("mcp-protocol-version", v.parse().expect("value"));
            h
        };
        assert!(claims_modern(&headers("2026-07-28")));
        assert!(!claims_modern(&headers("2026-07-28, 2025-06-18")));
        assert!(!claims_modern(&HeaderMap::new()));
    }
}
