//! The call under evaluation: backed by the host inside Helio, by JSON in
//! a native test ([`Call::mock`]). Both answer every question the same way.

use std::cell::OnceCell;

use serde_json::Value as Json;

/// A JSON value read from a call, as the contract passes it: numbers as
/// the text Helio read (parse them as decimals to compare amounts exactly),
/// arrays and objects as their compact JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Bool(bool),
    /// A number's text, e.g. `"12.5"`, `"1000.0"`, `"-3"`.
    Number(String),
    Text(String),
    /// An array or object, as compact JSON.
    Structured(String),
}

impl Value {
    /// The JSON value it stands for (numbers through `serde_json`, so an
    /// integer keeps every digit and a decimal is read as `f64`).
    pub fn to_json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(text) | Value::Structured(text) => {
                serde_json::from_str(text).unwrap_or(Json::Null)
            }
            Value::Text(text) => Json::String(text.clone()),
        }
    }

    /// The string, for a JSON string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(text) => Some(text),
            _ => None,
        }
    }

    /// The number's text, for a JSON number.
    pub fn as_number_text(&self) -> Option<&str> {
        match self {
            Value::Number(text) => Some(text),
            _ => None,
        }
    }

    /// The number as `f64` (approximate for long decimals).
    pub fn as_f64(&self) -> Option<f64> {
        self.as_number_text()?.parse().ok()
    }

    pub(crate) fn of_json(json: &Json) -> Value {
        match json {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => Value::Number(n.to_string()),
            Json::String(s) => Value::Text(s.clone()),
            other => Value::Structured(other.to_string()),
        }
    }
}

/// The called tool's MCP annotations, MCP defaults filled in by the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Annotations {
    pub read_only_hint: bool,
    pub destructive_hint: bool,
    pub idempotent_hint: bool,
    pub open_world_hint: bool,
    /// False when Helio has not seen the tool in any `tools/list`.
    pub known: bool,
}

impl Default for Annotations {
    /// What an unknown tool looks like: possibly destructive.
    fn default() -> Self {
        Annotations {
            read_only_hint: false,
            destructive_hint: true,
            idempotent_hint: false,
            open_world_hint: true,
            known: false,
        }
    }
}

/// The MCP revision family of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// 2025 revisions (`initialize`, `Mcp-Session-Id`).
    Handshake,
    /// 2026-07-28 and later.
    Stateless,
    /// Not over MCP (an adapter asked first).
    None,
}

/// What a spend extractor read from a call ([`Call::spend`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spend {
    /// An exact non-negative decimal (`"12.5"`).
    pub amount: String,
    /// The ISO 4217 code the call states, if it does.
    pub currency: Option<String>,
}

/// Most values [`Call::arguments_at`] answers with; more traps in Helio,
/// panics in a native test.
const MAX_ARGUMENTS_AT: usize = 10_000;

/// One tool call. Inside Helio every accessor asks the host (the answers
/// many conditions read — tool, annotations, session, environment, whether
/// there are arguments — once per call).
pub struct Call<'a> {
    source: Source<'a>,
    tool: OnceCell<String>,
    annotations: OnceCell<Annotations>,
    session: OnceCell<Option<String>>,
    environment: OnceCell<Option<String>>,
    has_arguments: OnceCell<bool>,
}

enum Source<'a> {
    #[cfg(target_arch = "wasm32")]
    Host(&'a crate::host::bindings::helio::governance::types::ToolCall),
    Mock(&'a MockCall),
}

impl<'a> Call<'a> {
    #[cfg(target_arch = "wasm32")]
    pub(crate) fn host(
        call: &'a crate::host::bindings::helio::governance::types::ToolCall,
    ) -> Self {
        Self::of(Source::Host(call))
    }

    fn of(source: Source<'a>) -> Self {
        Call {
            source,
            tool: OnceCell::new(),
            annotations: OnceCell::new(),
            session: OnceCell::new(),
            environment: OnceCell::new(),
            has_arguments: OnceCell::new(),
        }
    }

    /// A call for a native unit test: see [`MockCall`].
    pub fn mock(mock: &'a MockCall) -> Self {
        Self::of(Source::Mock(mock))
    }

    /// The tool's name.
    pub fn tool(&self) -> &str {
        self.tool.get_or_init(|| match &self.source {
            #[cfg(target_arch = "wasm32")]
            Source::Host(call) => call.tool(),
            Source::Mock(mock) => mock.tool.clone(),
        })
    }

    /// The governance session, when one resolved (never from arguments).
    pub fn session(&self) -> Option<&str> {
        self.session
            .get_or_init(|| match &self.source {
                #[cfg(target_arch = "wasm32")]
                Source::Host(call) => call.session(),
                Source::Mock(mock) => mock.session.clone(),
            })
            .as_deref()
    }

    pub fn annotations(&self) -> Annotations {
        *self.annotations.get_or_init(|| match &self.source {
            #[cfg(target_arch = "wasm32")]
            Source::Host(call) => {
                let a = call.annotations();
                Annotations {
                    read_only_hint: a.read_only_hint,
                    destructive_hint: a.destructive_hint,
                    idempotent_hint: a.idempotent_hint,
                    open_world_hint: a.open_world_hint,
                    known: a.known,
                }
            }
            Source::Mock(mock) => mock.annotations,
        })
    }

    /// helio.yaml's `environment`, if set.
    pub fn environment(&self) -> Option<&str> {
        self.environment
            .get_or_init(|| match &self.source {
                #[cfg(target_arch = "wasm32")]
                Source::Host(call) => call.environment(),
                Source::Mock(mock) => mock.environment.clone(),
            })
            .as_deref()
    }

    /// The agent, as `<name>@<version>`, when known.
    pub fn agent(&self) -> Option<String> {
        match &self.source {
            #[cfg(target_arch = "wasm32")]
            Source::Host(call) => call.agent(),
            Source::Mock(mock) => mock.agent.clone(),
        }
    }

    /// The door: `mcp` or an adapter's origin.
    pub fn origin(&self) -> String {
        match &self.source {
            #[cfg(target_arch = "wasm32")]
            Source::Host(call) => call.origin(),
            Source::Mock(mock) => mock.origin.clone(),
        }
    }

    pub fn era(&self) -> Era {
        match &self.source {
            #[cfg(target_arch = "wasm32")]
            Source::Host(call) => {
                use crate::host::bindings::helio::governance::types::Era as Wit;
                match call.era() {
                    Wit::Handshake => Era::Handshake,
                    Wit::Stateless => Era::Stateless,
                    Wit::None => Era::None,
                }
            }
            Source::Mock(mock) => mock.era,
        }
    }

    /// Whether the call carried `params.arguments` at all.
    pub fn has_arguments(&self) -> bool {
        *self.has_arguments.get_or_init(|| match &self.source {
            #[cfg(target_arch = "wasm32")]
            Source::Host(call) => call.has_arguments(),
            Source::Mock(mock) => mock.arguments.is_some(),
        })
    }

    /// The argument at `path` (`$`, `$.a.b`, `a.b`, `items.0`).
    pub fn argument(&self, path: &str) -> Option<Value> {
        match &self.source {
            #[cfg(target_arch = "wasm32")]
            Source::Host(call) => call.argument(path).map(crate::host::value),
            Source::Mock(mock) => {
                helio_syntax::argpath::get(mock.arguments.as_ref()?, path).map(Value::of_json)
            }
        }
    }

    /// Every value `path` names, with its concrete path: `*` is every
    /// member, `**` any depth (`**.to` is every member named `to`). More
    /// than 10,000 values trap: the call is blocked, never judged on part.
    pub fn arguments_at(&self, path: &str) -> Vec<(String, Value)> {
        match &self.source {
            #[cfg(target_arch = "wasm32")]
            Source::Host(call) => call
                .arguments_at(path)
                .into_iter()
                .map(|(at, value)| (at, crate::host::value(value)))
                .collect(),
            Source::Mock(mock) => match &mock.arguments {
                Some(arguments) if helio_syntax::argpath::is_valid(path) => {
                    let found =
                        helio_syntax::argpath::collect(arguments, path, MAX_ARGUMENTS_AT + 1);
                    assert!(
                        found.len() <= MAX_ARGUMENTS_AT,
                        "arguments_at({path:?}) names more than {MAX_ARGUMENTS_AT} values: Helio traps"
                    );
                    found
                        .into_iter()
                        .map(|(at, value)| (at, Value::of_json(value)))
                        .collect()
                }
                _ => Vec::new(),
            },
        }
    }

    /// The whole arguments object, parsed (none when the call has none).
    pub fn arguments(&self) -> Option<Json> {
        self.argument("$").map(|value| value.to_json())
    }

    /// What the spend extractor `extractor` (helio.yaml's `extractors`)
    /// reads from the call: none when it spends nothing; the reason (the
    /// operator's, not the agent's) when it cannot be read.
    pub fn spend(&self, extractor: &str) -> Result<Option<Spend>, String> {
        match &self.source {
            #[cfg(target_arch = "wasm32")]
            Source::Host(call) => call.spend(extractor).map(|read| {
                read.map(|s| Spend {
                    amount: s.amount,
                    currency: s.currency,
                })
            }),
            Source::Mock(mock) => match mock.spends.iter().find(|(name, _)| name == extractor) {
                Some((_, read)) => read.clone(),
                None => Err(format!(
                    "no spend extractor named \"{extractor}\" is configured"
                )),
            },
        }
    }

    /// A metadata value an adapter sent (`channel_id`, `sender_id`, …).
    pub fn metadata(&self, key: &str) -> Option<String> {
        match &self.source {
            #[cfg(target_arch = "wasm32")]
            Source::Host(call) => call.metadata(key),
            Source::Mock(mock) => match mock.metadata.get(key)? {
                Json::String(text) => Some(text.clone()),
                other => Some(other.to_string()),
            },
        }
    }
}

/// A call made up for a native unit test:
///
/// ```
/// use helio_plugin::{Call, MockCall};
/// let mock = MockCall::new("send_email")
///     .arguments(serde_json::json!({"to": "a@example.com"}))
///     .session("s1");
/// let call = Call::mock(&mock);
/// assert_eq!(call.tool(), "send_email");
/// ```
#[derive(Debug, Clone)]
pub struct MockCall {
    tool: String,
    arguments: Option<Json>,
    annotations: Annotations,
    session: Option<String>,
    environment: Option<String>,
    agent: Option<String>,
    origin: String,
    era: Era,
    metadata: serde_json::Map<String, Json>,
    spends: Vec<(String, Result<Option<Spend>, String>)>,
}

impl MockCall {
    /// A call of `tool` with no arguments, over MCP (handshake era), an
    /// unknown tool's annotations, no session.
    pub fn new(tool: &str) -> Self {
        MockCall {
            tool: tool.into(),
            arguments: None,
            annotations: Annotations::default(),
            session: None,
            environment: None,
            agent: None,
            origin: "mcp".into(),
            era: Era::Handshake,
            metadata: serde_json::Map::new(),
            spends: Vec::new(),
        }
    }

    /// What spend extractor `name` reads from this call.
    pub fn spend(mut self, name: &str, read: Result<Option<Spend>, String>) -> Self {
        self.spends.push((name.into(), read));
        self
    }

    pub fn arguments(mut self, arguments: Json) -> Self {
        self.arguments = Some(arguments);
        self
    }

    pub fn annotations(mut self, annotations: Annotations) -> Self {
        self.annotations = annotations;
        self
    }

    pub fn session(mut self, session: &str) -> Self {
        self.session = Some(session.into());
        self
    }

    pub fn environment(mut self, environment: &str) -> Self {
        self.environment = Some(environment.into());
        self
    }

    pub fn agent(mut self, agent: &str) -> Self {
        self.agent = Some(agent.into());
        self
    }

    /// An adapter's call: its origin, no MCP era.
    pub fn adapter(mut self, origin: &str, metadata: Json) -> Self {
        self.origin = origin.into();
        self.era = Era::None;
        if let Json::Object(metadata) = metadata {
            self.metadata = metadata;
        }
        self
    }

    pub fn era(mut self, era: Era) -> Self {
        self.era = era;
        self
    }
}
