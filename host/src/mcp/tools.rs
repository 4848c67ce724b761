//! What Helio knows about the upstream's tools: their annotations, learned
//! from every `tools/list` it relays and from its own at start (priming).
//! A tool not seen yet gets the MCP defaults, which look destructive, so
//! destructive-guarding rules hold before priming succeeds.

use std::collections::HashMap;
use std::sync::RwLock;

use serde::Deserialize;

use crate::plugins::Annotations;

#[derive(Default)]
pub struct ToolCatalog {
    tools: RwLock<HashMap<String, Annotations>>,
}

#[derive(Deserialize)]
struct ListResponse {
    result: Option<ListResult>,
}

#[derive(Deserialize)]
struct ListResult {
    #[serde(default)]
    tools: Vec<ToolEntry>,
    #[serde(rename = "nextCursor")]
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct ToolEntry {
    name: String,
    #[serde(default)]
    annotations: Option<WireAnnotations>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireAnnotations {
    read_only_hint: Option<bool>,
    destructive_hint: Option<bool>,
    idempotent_hint: Option<bool>,
    open_world_hint: Option<bool>,
}

impl ToolCatalog {
    pub fn annotations(&self, tool: &str) -> Annotations {
        self.tools
            .read()
            .ok()
            .and_then(|tools| tools.get(tool).copied())
            .unwrap_or(Annotations::UNKNOWN)
    }

    pub fn len(&self) -> usize {
        self.tools.read().map_or(0, |tools| tools.len())
    }

    /// Learns from one `tools/list` response message (a page); returns the
    /// next cursor, if any. Messages that are not list results are ignored.
    pub fn observe(&self, message: &[u8]) -> Option<String> {
        let response: ListResponse = serde_json::from_slice(message).ok()?;
        let result = response.result?;
        if let Ok(mut tools) = self.tools.write() {
            for tool in result.tools {
                let wire = tool.annotations.unwrap_or_default();
                let defaults = Annotations::UNKNOWN;
                tools.insert(
                    tool.name,
                    Annotations {
                        read_only_hint: wire.read_only_hint.unwrap_or(defaults.read_only_hint),
                        destructive_hint: wire
                            .destructive_hint
                            .unwrap_or(defaults.destructive_hint),
                        idempotent_hint: wire.idempotent_hint.unwrap_or(defaults.idempotent_hint),
                        open_world_hint: wire.open_world_hint.unwrap_or(defaults.open_world_hint),
                        known: true,
                    },
                );
            }
        }
        result.next_cursor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_annotations_with_mcp_defaults() {
        let catalog = ToolCatalog::default();
        let cursor = catalog.observe(
            br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[
                {"name":"read","inputSchema":{},"annotations":{"readOnlyHint":true,"destructiveHint":false}},
                {"name":"bare","inputSchema":{}}
            ],"nextCursor":"p2"}}"#,
        );
        assert_eq!(cursor.as_deref(), Some("p2"));
        let read = catalog.annotations("read");
        assert!(
            read.known && read.read_only_hint && !read.destructive_hint && read.open_world_hint
        );
        let bare = catalog.annotations("bare");
        assert!(bare.known && bare.destructive_hint && !bare.read_only_hint);
        assert_eq!(catalog.annotations("never-listed"), Annotations::UNKNOWN);
        assert_eq!(
            catalog.observe(br#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"x"}}"#),
            None
        );
        assert_eq!(catalog.len(), 2);
    }
}
