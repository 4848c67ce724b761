//! Which agent is calling, for the audit trail's `agent_id`: the client's
//! `clientInfo`, as it stated it in `initialize` (remembered for the MCP
//! session the upstream then assigned) or in a call's own `_meta`.
//!
//! An agent can claim any name here; `agent_id` says who the client says it
//! is. It is never used to govern (sessions are, see `identity`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::upstream::MCP_SESSION_ID;

/// MCP sessions whose agent is remembered; the oldest are forgotten first.
const MAX_SESSIONS: usize = 65_536;
/// Longest agent label kept.
const MAX_LABEL_CHARS: usize = 200;

#[derive(Default)]
pub(super) struct Agents {
    known: Mutex<Known>,
}

#[derive(Default)]
struct Known {
    by_session: HashMap<Box<str>, Arc<str>>,
    order: VecDeque<Box<str>>,
}

/// `clientInfo` as MCP defines it (`initialize` params, `_meta`).
#[derive(Deserialize)]
pub(super) struct ClientInfo {
    pub name: Option<String>,
    pub version: Option<String>,
}

impl ClientInfo {
    /// `name@version`, or `name`; none without a usable name.
    fn label(&self) -> Option<Arc<str>> {
        let name = self
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())?;
        let label = match self.version.as_deref().map(str::trim) {
            Some(version) if !version.is_empty() => format!("{name}@{version}"),
            _ => name.to_owned(),
        };
        Some(
            label
                .chars()
                .take(MAX_LABEL_CHARS)
                .collect::<String>()
                .into(),
        )
    }
}

/// A request's `params._meta`, as far as Helio reads it.
#[derive(Deserialize)]
pub(super) struct Meta {
    #[serde(rename = "io.modelcontextprotocol/clientInfo")]
    pub client_info: Option<ClientInfo>,
}

/// The `clientInfo` a request carries in `params._meta`
/// (`io.modelcontextprotocol/clientInfo`), if any.
pub(super) fn meta_client_info(params: Option<&RawValue>) -> Option<ClientInfo> {
    #[derive(Deserialize)]
    struct Params {
        #[serde(rename = "_meta")]
        meta: Option<Meta>,
    }
    let params: Params = serde_json::from_str(params?.get()).ok()?;
    params.meta?.client_info
}

/// The agent an `initialize` request introduces (`params.clientInfo`).
pub(super) fn of_initialize(params: Option<&RawValue>) -> Option<Arc<str>> {
    #[derive(Deserialize)]
    struct Params {
        #[serde(rename = "clientInfo")]
        client_info: Option<ClientInfo>,
    }
    let params: Params = serde_json::from_str(params?.get()).ok()?;
    params.client_info?.label()
}

impl Agents {
    /// The upstream assigned `session` to the client that introduced
    /// itself as `agent`.
    pub fn remember(&self, session: &HeaderValue, agent: Arc<str>) {
        let Ok(session) = session.to_str() else {
            return;
        };
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = known.by_session.get_mut(session) {
            *existing = agent;
            return;
        }
        known.by_session.insert(session.into(), agent);
        known.order.push_back(session.into());
        while known.order.len() > MAX_SESSIONS {
            if let Some(oldest) = known.order.pop_front() {
                known.by_session.remove(&oldest);
            }
        }
    }

    /// The client ended its MCP session (`DELETE /mcp`).
    pub fn forget(&self, headers: &HeaderMap) {
        if let Some(session) = session_of(headers) {
            let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            known.by_session.remove(session);
        }
    }

    /// The agent making a call: what the call itself states (`_meta`)
    /// first, then its session's `initialize`.
    pub fn of_call(&self, headers: &HeaderMap, stated: Option<&ClientInfo>) -> Option<Arc<str>> {
        if let Some(label) = stated.and_then(ClientInfo::label) {
            return Some(label);
        }
        let session = session_of(headers)?;
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.by_session.get(session).cloned()
    }
}

fn session_of(headers: &HeaderMap) -> Option<&str> {
    headers.get(MCP_SESSION_ID).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.into()).expect("json")
    }

    fn with_session(id: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(MCP_SESSION_ID, HeaderValue::from_str(id).expect("header"));
        headers
    }

    #[test]
    fn initialize_introduces_the_agent_of_its_session() {
        let agent = of_initialize(Some(&raw(
            r#"{"protocolVersion":"2025-06-18","clientInfo":{"name":"claude-code","version":"1.0.3"}}"#,
        )))
        .expect("agent");
        assert_eq!(&*agent, "claude-code@1.0.3");
        let agents = Agents::default();
        agents.remember(&HeaderValue::from_static("s-1"), agent);
        assert_eq!(
            agents.of_call(&with_session("s-1"), None).as_deref(),
            Some("claude-code@1.0.3")
        );
        assert_eq!(agents.of_call(&with_session("s-2"), None), None);
        assert_eq!(agents.of_call(&HeaderMap::new(), None), None);
        agents.forget(&with_session("s-1"));
        assert_eq!(agents.of_call(&with_session("s-1"), None), None);
    }

    #[test]
    fn a_calls_own_meta_wins_and_labels_are_bounded() {
        let agents = Agents::default();
        agents.remember(&HeaderValue::from_static("s"), "first@1".into());
        let meta = raw(
            r#"{"name":"t","_meta":{"io.modelcontextprotocol/clientInfo":{"name":"  bot ","version":""}}}"#,
        );
        let stated = meta_client_info(Some(&meta));
        assert_eq!(
            agents
                .of_call(&with_session("s"), stated.as_ref())
                .as_deref(),
            Some("bot")
        );
        let long = format!(r#"{{"clientInfo":{{"name":"{}"}}}}"#, "x".repeat(500));
        let agent = of_initialize(Some(&raw(&long))).expect("agent");
        assert_eq!(agent.chars().count(), MAX_LABEL_CHARS);
        assert_eq!(
            of_initialize(Some(&raw(r#"{"clientInfo":{"name":" "}}"#))),
            None
        );
        assert_eq!(of_initialize(Some(&raw(r#"{"clientInfo":7}"#))), None);
    }

    #[test]
    fn the_oldest_sessions_are_forgotten_first() {
        let agents = Agents::default();
        for i in 0..=MAX_SESSIONS {
            let id = HeaderValue::from_str(&format!("s{i}")).expect("header");
            agents.remember(&id, "a".into());
        }
        assert_eq!(agents.of_call(&with_session("s0"), None), None);
        assert!(agents.of_call(&with_session("s1"), None).is_some());
        let known = agents.known.lock().expect("lock");
        assert_eq!(known.by_session.len(), MAX_SESSIONS);
    }
}
