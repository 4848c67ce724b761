//! The governance session identity of a `tools/call`: who the evidence,
//! completed calls and session-keyed limits belong to. Taken from the
//! sources in `session.identity`, first one with a usable value wins; never
//! from tool arguments, and never sent upstream.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::HeaderMap;

use crate::config::IdentitySource;
use crate::govern::SessionIdentity;

use super::agents::ClientInfo;

use super::upstream::MCP_SESSION_ID;

/// Longest identity value accepted; longer values are skipped.
const MAX_IDENTITY_CHARS: usize = 256;

pub struct Identity {
    sources: Vec<IdentitySource>,
    warned_unusable: AtomicBool,
}

impl Identity {
    pub fn new(sources: &[IdentitySource]) -> Self {
        Self {
            sources: sources.to_vec(),
            warned_unusable: AtomicBool::new(false),
        }
    }

    /// The identity of a call with these headers and the `clientInfo` its
    /// `params._meta` states, and the source it came from (`header`,
    /// `meta`, `legacy_header`).
    pub fn resolve(
        &self,
        headers: &HeaderMap,
        client_info: Option<&ClientInfo>,
    ) -> Option<SessionIdentity> {
        for source in &self.sources {
            let (candidate, label) = match source {
                IdentitySource::Header(name) => (header(headers, name), "header"),
                IdentitySource::LegacyHeader => {
                    (header(headers, MCP_SESSION_ID.as_str()), "legacy_header")
                }
                IdentitySource::Meta => (client_info.and_then(meta_identity), "meta"),
            };
            let Some(candidate) = candidate else { continue };
            let trimmed = candidate.trim();
            if trimmed.is_empty() || trimmed.chars().count() > MAX_IDENTITY_CHARS {
                if !self.warned_unusable.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "skipped a session identity that is empty or longer than {MAX_IDENTITY_CHARS} characters; trying the next source (logged once)"
                    );
                }
                continue;
            }
            return Some(SessionIdentity {
                id: Arc::from(trimmed),
                source: label,
            });
        }
        None
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `clientinfo:<name>@<version|unknown>` from `params._meta`.
fn meta_identity(info: &ClientInfo) -> Option<String> {
    let name = info.name.as_deref().filter(|n| !n.trim().is_empty())?;
    let version = info
        .version
        .as_deref()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or("unknown");
    Some(format!("clientinfo:{name}@{version}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde_json::value::RawValue;

    /// The clientInfo that params state in `_meta`, read as the relay reads it.
    fn raw(s: &str) -> Option<ClientInfo> {
        let params = RawValue::from_string(s.into()).expect("json");
        super::super::agents::meta_client_info(Some(&params))
    }

    #[test]
    fn first_usable_source_wins() {
        let identity = Identity::new(&[
            IdentitySource::Header("x-helio-session-id".into()),
            IdentitySource::Meta,
            IdentitySource::LegacyHeader,
        ]);
        let mut headers = HeaderMap::new();
        headers.insert("mcp-session-id", HeaderValue::from_static("legacy-1"));
        let meta = raw(
            r#"{"name":"t","_meta":{"io.modelcontextprotocol/clientInfo":{"name":"agent","version":"2.1"}}}"#,
        );
        assert_eq!(
            identity
                .resolve(&headers, meta.as_ref())
                .map(|s| s.id)
                .as_deref(),
            Some("clientinfo:agent@2.1")
        );
        assert_eq!(
            identity.resolve(&headers, None).map(|s| s.id).as_deref(),
            Some("legacy-1")
        );
        headers.insert("X-Helio-Session-Id", HeaderValue::from_static("  run-7  "));
        assert_eq!(
            identity
                .resolve(&headers, meta.as_ref())
                .map(|s| s.id)
                .as_deref(),
            Some("run-7")
        );
        // Empty and oversized values are skipped, not used.
        headers.insert("x-helio-session-id", HeaderValue::from_static("   "));
        assert_eq!(
            identity.resolve(&headers, None).map(|s| s.id).as_deref(),
            Some("legacy-1")
        );
        let long = "a".repeat(257);
        headers.insert(
            "x-helio-session-id",
            HeaderValue::from_str(&long).expect("header"),
        );
        assert_eq!(
            identity.resolve(&headers, None).map(|s| s.id).as_deref(),
            Some("legacy-1")
        );
        let exactly = "b".repeat(256);
        headers.insert(
            "x-helio-session-id",
            HeaderValue::from_str(&exactly).expect("header"),
        );
        assert_eq!(
            identity.resolve(&headers, None).map(|s| s.id).as_deref(),
            Some(exactly.as_str())
        );
    }

    #[test]
    fn never_from_arguments_and_none_when_nothing_resolves() {
        let identity = Identity::new(&[IdentitySource::Header("x-helio-session-id".into())]);
        let params = raw(
            r#"{"name":"t","arguments":{"x-helio-session-id":"forged","session_id":"forged"}}"#,
        );
        assert_eq!(
            identity
                .resolve(&HeaderMap::new(), params.as_ref())
                .map(|s| s.id),
            None
        );
        let meta_only = Identity::new(&[IdentitySource::Meta]);
        let versionless = raw(r#"{"_meta":{"io.modelcontextprotocol/clientInfo":{"name":"a"}}}"#);
        assert_eq!(
            meta_only
                .resolve(&HeaderMap::new(), versionless.as_ref())
                .map(|s| s.id)
                .as_deref(),
            Some("clientinfo:a@unknown")
        );
    }
}
