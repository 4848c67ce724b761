//! The rule engine, independent of WebAssembly: configuration parsing and
//! compilation ([`Engine::from_json`]) and evaluation ([`Engine::evaluate`])
//! over a [`CallView`]. `lib.rs` adapts the host's `tool-call` resource to
//! [`CallView`] and these types to the WIT ones; everything else lives here
//! so it is unit-tested natively.
//!
//! Every verdict a rule can produce depends only on the configuration, so it
//! is built once in [`Engine::from_json`]; [`Engine::evaluate`] only matches
//! and hands back a reference to the prepared verdict.

mod conditions;
mod config;
mod verdicts;

#[cfg(test)]
mod tests;

use conditions::Rule;

/// A JSON value read from a tool call: the WIT `json-value` variant.
/// Arrays and objects arrive as their compact JSON text.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// JSON `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// Any JSON number.
    Number(f64),
    /// A JSON string.
    Text(String),
    /// An array or object, as JSON text.
    Structured(String),
}

/// The called tool's annotations, with the MCP defaults already substituted
/// by the host for hints the tool does not state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Annotations {
    /// `readOnlyHint` (MCP default false).
    pub read_only_hint: bool,
    /// `destructiveHint` (MCP default true).
    pub destructive_hint: bool,
    /// `idempotentHint` (MCP default false).
    pub idempotent_hint: bool,
    /// `openWorldHint` (MCP default true).
    pub open_world_hint: bool,
}

impl Default for Annotations {
    /// The MCP defaults: what an unannotated tool looks like.
    fn default() -> Self {
        Annotations {
            read_only_hint: false,
            destructive_hint: true,
            idempotent_hint: false,
            open_world_hint: true,
        }
    }
}

/// What the engine may ask about the call under evaluation. Each method is
/// called at most as often as the rules need it; implementations backed by
/// host calls should cache what they can (the tool name, annotations and
/// environment are asked for by many rules).
pub trait CallView {
    /// The tool's name.
    fn tool(&self) -> &str;
    /// The tool's annotations (MCP defaults substituted).
    fn annotations(&self) -> Annotations;
    /// The deployment label (helio.yaml's top-level `environment`), if set.
    fn environment(&self) -> Option<&str>;
    /// Whether the call carried `params.arguments` at all.
    fn has_arguments(&self) -> bool;
    /// The argument at `path` (`$`, `$.a.b`, `a.b`, `items.0`), if present.
    fn argument(&self, path: &str) -> Option<Value>;
    /// A metadata value supplied by a host adapter; always none on the MCP path.
    fn metadata(&self, key: &str) -> Option<String>;
}

/// The WIT `decision` record.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The action in helio.yaml's words (`allow`, `deny`, `dry_run`, …).
    pub action: String,
    /// The deciding rule's name, if it has one.
    pub rule: Option<String>,
    /// The deciding rule's index in `policies.rules`, if a rule decided.
    pub rule_index: Option<u32>,
    /// One human-readable line: why this verdict.
    pub explanation: String,
}

/// The WIT `feedback` record.
#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    /// Machine-readable reason (`policy_denied`, `not_yet_enforced`, …).
    pub reason: String,
    /// The error message.
    pub message: String,
    /// What the agent could do instead.
    pub suggestion: Option<String>,
    /// Whether retrying the same call later may succeed.
    pub retry_allowed: bool,
    /// Extra `data` fields, as the text of a JSON object.
    pub extra_json: Option<String>,
}

/// The WIT `approval-request` record.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalRequest {
    /// Who decided that approval is needed.
    pub decision: Decision,
    /// The rule's `approval.channel`; none means the host's default.
    pub channel: Option<String>,
    /// The rule's `approval.timeout` in milliseconds; none means `approval.timeout`.
    pub timeout_ms: Option<u64>,
    /// The rule's `feedback`, if it has one.
    pub feedback: Option<Feedback>,
}

/// The WIT `verdict` variant.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The call may proceed.
    Allow(Decision),
    /// Block the call with feedback.
    Deny(Decision, Feedback),
    /// Do not forward; answer with what would have happened.
    DryRun(Decision),
    /// Hold the call for a human approval.
    RequireApproval(ApprovalRequest),
}

impl Verdict {
    /// The decision inside any verdict.
    pub fn decision(&self) -> &Decision {
        match self {
            Verdict::Allow(d) | Verdict::DryRun(d) | Verdict::Deny(d, _) => d,
            Verdict::RequireApproval(r) => &r.decision,
        }
    }
}

/// The WIT `config-error` record. `path` is relative to `policies`
/// (`rules[2].match.input.amount.regex`); empty for the whole configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where, as a YAML-style path.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// `policies.default`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultPolicy {
    /// Unmatched calls proceed.
    Allow,
    /// Unmatched calls are blocked.
    Deny,
}

/// `policies.flag_destructive`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagDestructive {
    /// Log a warning and apply the default.
    Log,
    /// Hold for approval (unless the default is deny).
    RequireApproval,
}

/// The result of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation<'a> {
    /// The verdict, prepared at configure time.
    pub verdict: &'a Verdict,
    /// A line to write to the host log at `warn` level, if any
    /// (`flag_destructive: log`).
    pub warning: Option<String>,
}

/// A compiled rules configuration.
#[derive(Debug)]
pub struct Engine {
    rules: Vec<Rule>,
    default: DefaultPolicy,
    flag_destructive: Option<FlagDestructive>,
    dry_run: bool,
    environment: Option<String>,
    /// The verdict when no rule matched and nothing was flagged.
    default_verdict: Verdict,
    /// The verdict for `flag_destructive: require_approval` (when it applies).
    flagged_verdict: Verdict,
}

impl Engine {
    /// Parses and compiles the stage configuration
    /// `{"environment": <string|null>, "policies": {...}}`. Every problem is
    /// reported, not just the first.
    pub fn from_json(config_json: &str) -> Result<Engine, Vec<ConfigError>> {
        config::compile(config_json)
    }

    /// Decides on one call: the first rule whose conditions all hold decides;
    /// otherwise `flag_destructive` and then `default` apply.
    pub fn evaluate<'a>(&'a self, call: &impl CallView) -> Evaluation<'a> {
        if let Some(rule) = self.rules.iter().find(|rule| rule.conditions.matches(call)) {
            return Evaluation {
                verdict: &rule.verdict,
                warning: None,
            };
        }
        let mut warning = None;
        if let Some(flag) = self.flag_destructive {
            if call.annotations().destructive_hint {
                match flag {
                    FlagDestructive::Log => {
                        warning = Some(format!(
                            "destructive tool {} called with no matching rule (flag_destructive: log)",
                            call.tool()
                        ));
                    }
                    // A default of deny is stricter than holding for approval.
                    FlagDestructive::RequireApproval if self.default == DefaultPolicy::Allow => {
                        return Evaluation {
                            verdict: &self.flagged_verdict,
                            warning: None,
                        };
                    }
                    FlagDestructive::RequireApproval => {}
                }
            }
        }
        Evaluation {
            verdict: &self.default_verdict,
            warning,
        }
    }

    /// Number of compiled rules.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// `policies.default`.
    pub fn default_policy(&self) -> DefaultPolicy {
        self.default
    }

    /// `policies.flag_destructive`.
    pub fn flag_destructive(&self) -> Option<FlagDestructive> {
        self.flag_destructive
    }

    /// `policies.dry_run`.
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// The configured deployment label. Matching uses the call's own
    /// [`CallView::environment`]; this is informational.
    pub fn environment(&self) -> Option<&str> {
        self.environment.as_deref()
    }
}
