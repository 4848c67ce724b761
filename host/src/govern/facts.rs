//! What a door knows about a call when it hands it to the core: read once,
//! in the door's own terms, and never re-read from the wire by the core.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use crate::plugins::Annotations;
use crate::tools::ToolDrift;
use crate::traces::TraceContext;

/// The door a call came through (the audit's `origin`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Door {
    /// An MCP client, through the MCP listener.
    Mcp,
    /// An agent framework that runs its tools in-process and asks the
    /// adapter API first; its origin slug (`^[a-z0-9_-]{1,64}$`).
    Adapter(Arc<str>),
}

impl Door {
    /// The audit's `origin`.
    pub fn origin(&self) -> std::borrow::Cow<'static, str> {
        match self {
            Door::Mcp => "mcp".into(),
            Door::Adapter(origin) => origin.to_string().into(),
        }
    }
}

/// The MCP revision family a call was made under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// 2025 revisions: `initialize` and `Mcp-Session-Id`.
    Handshake,
    /// 2026-07-28 and later: stateless, results carry a `resultType`.
    Stateless,
}

impl Era {
    /// The era a client's stated protocol version(s) belong to.
    pub fn of(protocol_version: Option<&str>) -> Self {
        let stateless = protocol_version
            .is_some_and(|v| v.split(',').map(str::trim).any(|v| v == "2026-07-28"));
        if stateless {
            Era::Stateless
        } else {
            Era::Handshake
        }
    }
}

/// Whose governance session a call belongs to (evidence, completed calls,
/// session-keyed limits), and where that came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionIdentity {
    pub id: Arc<str>,
    /// `header`, `meta`, `legacy_header`, or `transport` (the legacy `/sse`
    /// stream's own id, when no configured source gave one).
    pub source: &'static str,
}

/// A `tools/call` a door has read exactly and hands to the core.
pub struct CallFacts<'a> {
    pub door: Door,
    /// When the door received the call.
    pub received: Instant,
    /// The protocol version the client stated.
    pub protocol_version: Option<&'a str>,
    pub tool: Arc<str>,
    /// The arguments, read exactly ([`crate::strict_json`]).
    pub arguments: Option<Arc<Value>>,
    /// The same arguments as the client sent them, for the audit record.
    pub raw_arguments: Option<&'a str>,
    /// The tool's annotations as the upstream first declared them (its
    /// baseline).
    pub annotations: Annotations,
    /// How the tool's definition now differs from its baseline, if it does.
    pub drift: Option<Arc<ToolDrift>>,
    pub identity: Option<SessionIdentity>,
    /// The agent making the call (its `clientInfo`), when known.
    pub agent: Option<Arc<str>>,
    /// What an adapter said of the call's context (a JSON object), for the
    /// stages (`tool-call.metadata`) and the audit record; none on the MCP
    /// door.
    pub metadata: Option<Arc<serde_json::Map<String, Value>>>,
    /// The W3C trace context the caller sent, continued by the call's trace.
    pub trace: Option<TraceContext>,
}

impl CallFacts<'_> {
    pub fn era(&self) -> Era {
        Era::of(self.protocol_version)
    }
}

/// A call a door refused before any stage could see it (an unreadable
/// body, a disallowed Origin, headers that contradict the body): recorded,
/// never forwarded.
pub struct Refused<'a> {
    pub door: Door,
    pub received: Instant,
    pub protocol_version: Option<&'a str>,
    /// The tool the call names, or a `<placeholder>` saying why none.
    pub tool_name: &'a str,
    /// The audit's `block_reason`.
    pub reason: &'static str,
    /// What the record keeps of the input (JSON, already redacted).
    pub tool_input: String,
    pub identity: Option<&'a SessionIdentity>,
    pub agent: Option<&'a str>,
}
