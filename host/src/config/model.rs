//! The typed configuration: what `helio.yaml` means once it has been read and
//! checked. Defaults are the original Helio's, so a file written for it means
//! the same thing here.

use std::fmt;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

#[derive(Debug, Clone)]
pub struct Config {
    pub upstream: Upstream,
    pub listen: Listen,
    /// Bounds every listener puts on its clients' connections.
    pub connections: Connections,
    pub environment: Option<String>,
    pub session: Session,
    pub policies: Policies,
    pub budgets: Vec<Budget>,
    pub approval: Approval,
    pub audit: Audit,
    pub dashboard: Dashboard,
    pub sdk: Sdk,
    /// OpenTelemetry traces (off unless `telemetry.otlp_endpoint` is set).
    pub telemetry: Telemetry,
    /// Third-party policy stages (WebAssembly components).
    pub plugins: Vec<PluginConfig>,
    /// Spend extractors (WebAssembly components) rules and budgets may
    /// name instead of a field path.
    pub extractors: Vec<ExtractorConfig>,
    /// The `policies` section as written (after `${VAR}`): the built-in rule
    /// engine's configuration.
    pub policies_json: serde_json::Value,
    /// The `budgets` section as written: the budgets stage's configuration.
    pub budgets_json: serde_json::Value,
    /// Digests of the restart-only sections as written, to detect a reload
    /// that changed one.
    pub restart_sections: Vec<(&'static str, [u8; 32])>,
    /// SHA-256 of the file's bytes as read (none for text parsed from
    /// elsewhere): hot reload compares the file against it.
    pub source_digest: Option<[u8; 32]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    StreamableHttp,
    Sse,
    Stdio,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::StreamableHttp => "streamable-http",
            Transport::Sse => "sse",
            Transport::Stdio => "stdio",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub url: String,
    pub transport: Transport,
    /// `auto`, `2025-06-18` or `2026-07-28`.
    pub protocol_version: String,
    pub command: Option<String>,
    pub args: Vec<String>,
    /// Environment variables set for a stdio server (on top of Helio's).
    pub env: Vec<(String, Secret<String>)>,
    /// A stdio server's working directory, resolved against helio.yaml's
    /// directory.
    pub cwd: Option<std::path::PathBuf>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Lower-case `x-*` caller headers copied upstream.
    pub forward_headers: Vec<HeaderName>,
    /// Static headers sent on every upstream request; they win over
    /// forwarded caller headers of the same name.
    pub headers: Vec<(HeaderName, Secret<HeaderValue>)>,
}

#[derive(Debug, Clone)]
pub struct Listen {
    pub port: u16,
    pub host: String,
    /// Exact serialized origins (`scheme://host[:port]`) allowed on `/mcp`.
    pub allowed_origins: Vec<String>,
}

/// `connections`: how long a client may take to send a request, and how
/// many connections each listener (MCP, operator API, SDK sideband) holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connections {
    /// A request head must arrive whole within this; an idle keep-alive
    /// connection is closed after it.
    pub header_timeout: Duration,
    /// A request body must arrive whole within this after its head.
    pub body_timeout: Duration,
    /// Connections one listener holds at once; past that it stops accepting.
    pub max_per_listener: usize,
}

impl Default for Connections {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            max_per_listener: 512,
        }
    }
}

/// The header Helio reads the session identity from by default.
pub const DEFAULT_IDENTITY_HEADER: &str = "x-helio-session-id";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    /// A caller header, lower-cased, always `x-*`.
    Header(String),
    /// `clientinfo:<name>@<version>` from `params._meta`.
    Meta,
    /// The verbatim `Mcp-Session-Id` header.
    LegacyHeader,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUnresolved {
    Deny,
    Anonymous,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub identity: Vec<IdentitySource>,
    pub on_unresolved: OnUnresolved,
}

impl Session {
    /// The identity sources as denial messages name them:
    /// `header x-helio-session-id, legacy_header (Mcp-Session-Id)`.
    pub fn describe(sources: &[IdentitySource]) -> String {
        let names: Vec<String> = sources
            .iter()
            .map(|s| match s {
                IdentitySource::Header(name) => format!("header {name}"),
                IdentitySource::Meta => "meta (clientInfo)".into(),
                IdentitySource::LegacyHeader => "legacy_header (Mcp-Session-Id)".into(),
            })
            .collect();
        names.join(", ")
    }

    /// The part of a stage's configuration that says how to treat calls
    /// without an identity.
    pub fn stage_json(&self) -> serde_json::Value {
        serde_json::json!({
            "on_unresolved": match self.on_unresolved {
                OnUnresolved::Deny => "deny",
                OnUnresolved::Anonymous => "anonymous",
            },
            "tried": Self::describe(&self.identity),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultDecision {
    Allow,
    Deny,
}

impl DefaultDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            DefaultDecision::Allow => "allow",
            DefaultDecision::Deny => "deny",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagDestructive {
    Log,
    RequireApproval,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnToolDrift {
    Block,
    RequireApproval,
    Log,
}

impl OnToolDrift {
    pub fn as_str(self) -> &'static str {
        match self {
            OnToolDrift::Block => "block",
            OnToolDrift::RequireApproval => "require_approval",
            OnToolDrift::Log => "log",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ToolRevalidation {
    pub enabled: bool,
    pub interval: Duration,
    pub max_advertised_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct Policies {
    pub default: DefaultDecision,
    pub flag_destructive: Option<FlagDestructive>,
    pub on_tool_drift: OnToolDrift,
    pub tool_revalidation: ToolRevalidation,
    pub dry_run: bool,
    pub hot_reload: bool,
    pub rules: Vec<Rule>,
    pub install: Install,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
    RequireApproval,
    RateLimit,
    SpendLimit,
    DryRun,
}

impl Action {
    pub const NAMES: &'static [&'static str] = &[
        "allow",
        "deny",
        "require_approval",
        "rate_limit",
        "spend_limit",
        "dry_run",
    ];

    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "allow" => Action::Allow,
            "deny" => Action::Deny,
            "require_approval" => Action::RequireApproval,
            "rate_limit" => Action::RateLimit,
            "spend_limit" => Action::SpendLimit,
            "dry_run" => Action::DryRun,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::RequireApproval => "require_approval",
            Action::RateLimit => "rate_limit",
            Action::SpendLimit => "spend_limit",
            Action::DryRun => "dry_run",
        }
    }
}

/// What the host needs to know of a rule: its approval routing and what it
/// implies for the other sections. The rule itself is the rules stage's:
/// it validates and compiles the whole of `policies` (`Pipeline::build`),
/// so the host reads these leniently and never reports the rule's schema.
#[derive(Debug, Clone, Default)]
pub struct Rule {
    pub name: Option<String>,
    /// None when the rule's `action` is not one (the stage reports it).
    pub action: Option<Action>,
    pub approval: Option<ApprovalRoute>,
    /// `evidence.requires`: the keys the SDK sideband accepts.
    pub evidence_requires: Vec<String>,
    /// `match.environment`.
    pub match_environment: Option<String>,
    /// `match.metadata` is set: the rule only matches on the sideband.
    pub gated_by_metadata: bool,
    /// `limits.key`.
    pub limits_key: Option<LimitKey>,
    /// `limits.max_spend.key`.
    pub max_spend_key: Option<LimitKey>,
    /// `limits.max_spend.currency` (a label the operator views show).
    pub max_spend_currency: Option<String>,
    /// `limits.max_spend.extractor`, checked against `extractors`.
    pub max_spend_extractor: Option<String>,
}

impl Rule {
    /// The rule as the rules stage names it in state keys: its name, or
    /// `#<index>` when unnamed.
    pub fn state_id(&self, index: usize) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => format!("#{index}"),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct MetadataCondition {
    pub eq: Option<String>,
    pub neq: Option<String>,
    pub contains: Option<String>,
    pub regex: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ApprovalRoute {
    pub channel: String,
    pub timeout: Option<Duration>,
    pub delegates: Vec<String>,
    pub escalation_after: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKey {
    Tool,
    /// One bucket for every caller (a Helio addition).
    Global,
    Agent,
    Session,
    SenderId,
}

#[derive(Debug, Clone)]
pub struct Feedback {
    pub message: String,
    pub suggestion: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Install {
    pub default: DefaultDecision,
    pub rules: Vec<InstallRule>,
}

#[derive(Debug, Clone)]
pub struct InstallRule {
    pub name: Option<String>,
    pub package_name: Option<String>,
    pub source: Option<String>,
    pub metadata: Vec<(String, MetadataCondition)>,
    pub deny: bool,
    pub feedback: Option<Feedback>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetKey {
    Global,
    Session,
    SenderId,
}

impl BudgetKey {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetKey::Global => "global",
            BudgetKey::Session => "session",
            BudgetKey::SenderId => "sender_id",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExceed {
    Deny,
    RequireApproval,
}

impl OnExceed {
    pub fn as_str(self) -> &'static str {
        match self {
            OnExceed::Deny => "deny",
            OnExceed::RequireApproval => "require_approval",
        }
    }
}

/// What the host needs to know of a budget (see [`Rule`]): the budgets
/// stage validates and compiles the rest.
#[derive(Debug, Clone)]
pub struct Budget {
    pub name: Option<String>,
    /// As written (a JSON number; the operator views show it exactly).
    pub limit: serde_json::Value,
    pub currency: String,
    /// As written: a duration or `session`.
    pub window: serde_json::Value,
    pub key: BudgetKey,
    pub on_exceed: OnExceed,
    pub approval: Option<ApprovalRoute>,
    /// The `extractor` each contributor names (by contributor index),
    /// checked against `extractors`.
    pub contributor_extractors: Vec<(usize, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutOutcome {
    Deny,
    Allow,
}

#[derive(Debug, Clone)]
pub enum Channel {
    Dashboard {
        name: Option<String>,
    },
    Webhook {
        name: Option<String>,
        url: String,
        secret: Option<Secret<String>>,
    },
    Slack {
        name: Option<String>,
        bot_token: Secret<String>,
        signing_secret: Secret<String>,
        channel: String,
        /// Slack user ids allowed to approve or deny from the message;
        /// unset: anyone who can press its buttons (the original's
        /// behaviour, warned about at start).
        approvers: Option<Vec<String>>,
        /// Slack's Web API base URL.
        api_url: String,
    },
}

impl Channel {
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Dashboard { .. } => "dashboard",
            Channel::Webhook { .. } => "webhook",
            Channel::Slack { .. } => "slack",
        }
    }

    pub fn name(&self) -> Option<&str> {
        match self {
            Channel::Dashboard { name }
            | Channel::Webhook { name, .. }
            | Channel::Slack { name, .. } => name.as_deref(),
        }
    }

    /// The key a rule's `approval.channel` names it by: `name`, else the type.
    pub fn key(&self) -> &str {
        self.name().unwrap_or(self.kind())
    }
}

#[derive(Debug, Clone)]
pub struct Approval {
    pub timeout: Duration,
    pub default_on_timeout: TimeoutOutcome,
    pub channels: Vec<Channel>,
    /// `approval.router`: the operator's approval router component; none
    /// for the built-in one.
    pub router: Option<RouterConfig>,
}

/// `approval.router`: a component of the `approval-router-plugin` world.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Resolved against the directory of the helio.yaml that named it.
    pub path: std::path::PathBuf,
    pub sha256: Option<[u8; 32]>,
    /// Handed to the router's `configure` as JSON.
    pub config: serde_json::Value,
    pub timeout: Duration,
    pub memory_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct Audit {
    pub path: String,
    pub retention: Duration,
    pub include_responses: bool,
    /// Argument paths whose values are masked before they are stored.
    pub redact: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Dashboard {
    pub enabled: bool,
    pub port: u16,
    pub host: String,
    pub api_secret: Option<Secret<String>>,
    pub allow_open_mode: bool,
    pub sse_heartbeat_interval: Duration,
    /// `GET /metrics` without the operator's credentials (for a scraper
    /// on a network the operator trusts).
    pub metrics_public: bool,
}

#[derive(Debug, Clone)]
pub struct Sdk {
    pub enabled: bool,
    pub port: u16,
    pub host: String,
    pub evaluation_ttl: Duration,
}

/// `telemetry`: where governed calls' traces go.
#[derive(Debug, Clone, Default)]
pub struct Telemetry {
    /// The OTLP/HTTP traces endpoint (`otlp_endpoint` with `/v1/traces`
    /// appended to a bare base URL); none: no traces.
    pub traces_url: Option<String>,
    /// `service.name` of every span.
    pub service_name: String,
    /// The share of calls without a sampled parent that are traced.
    pub sample_ratio: f64,
    /// Sent with every export (e.g. a vendor's API key).
    pub headers: Vec<(HeaderName, Secret<HeaderValue>)>,
    /// How long one export may take.
    pub export_timeout: Duration,
}

/// A value that must never reach a log line: `Debug` prints a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Config {
    /// The restart-only sections that differ between two loads.
    pub fn restart_required_changes(&self, newer: &Config) -> Vec<&'static str> {
        self.restart_sections
            .iter()
            .zip(&newer.restart_sections)
            .filter(|(a, b)| a.1 != b.1)
            .map(|(a, _)| a.0)
            .collect()
    }
}

/// Hosts the original treats as loopback for open-mode and warning checks.
pub fn is_loopback_host(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "localhost" | "::1")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginPosition {
    BeforeRules,
    AfterRules,
}

/// A spend extractor named in helio.yaml (`extractors`).
#[derive(Debug, Clone)]
pub struct ExtractorConfig {
    pub name: String,
    /// Resolved against the directory of the helio.yaml that named it.
    pub path: std::path::PathBuf,
    pub sha256: Option<[u8; 32]>,
    /// Handed to the extractor's `configure` as JSON.
    pub config: serde_json::Value,
    pub timeout: Duration,
    pub memory_bytes: usize,
}

/// A third-party policy stage named in helio.yaml.
#[derive(Debug, Clone)]
pub struct PluginConfig {
    pub name: String,
    /// Resolved against the directory of the helio.yaml that named it.
    pub path: std::path::PathBuf,
    pub sha256: Option<[u8; 32]>,
    pub position: PluginPosition,
    /// Whether its `allow` may replace a stricter decision made before it.
    pub may_loosen: bool,
    /// Handed to the plugin's `configure` as JSON.
    pub config: serde_json::Value,
    pub timeout: Duration,
    pub memory_bytes: usize,
}
