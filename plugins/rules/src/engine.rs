//! The rule engine, independent of WebAssembly: configuration parsing and
//! compilation ([`Engine::from_json`]) and evaluation ([`Engine::evaluate`])
//! over a [`CallView`] and a [`State`]. `lib.rs` adapts the host's
//! `tool-call` resource and `state` imports to these traits and the
//! verdicts to the WIT ones; everything else lives here so it is
//! unit-tested natively.
//!
//! Verdicts that depend only on the configuration (allow, deny,
//! require_approval, dry_run, the default) are built once in
//! [`Engine::from_json`] and handed back by reference. Evidence and
//! dependency gates and rate and spend limits ask the host's state per call.
//!
//! Rules are indexed by their tool condition at configure
//! ([`policy_match::ToolIndex`]), so a call is tested against the rules its
//! tool can select, in rule order, not against every rule: a policy of
//! thousands of rules for distinct tools costs a call about what ten do.

mod conditions;
mod config;
mod gates;
mod limits;
mod rule;
mod verdicts;

#[cfg(test)]
mod tests;

use std::borrow::Cow;

pub use policy_match::{
    Annotations, ApprovalRequest, CallView, Completion, ConfigError, Decision, EvidenceStatus,
    Feedback, KeyFamily, RateWindow, SpendWindow, State, Value, Verdict,
};
use policy_match::{SessionPolicy, ToolIndex};
use rule::{Rule, Then};

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
    /// The verdict: prepared at configure time, or built for this call when
    /// a gate or limit decided.
    pub verdict: Cow<'a, Verdict>,
    /// A line to write to the host log at `warn` level, if any
    /// (`flag_destructive: log`).
    pub warning: Option<String>,
}

/// A compiled rules configuration.
#[derive(Debug)]
pub struct Engine {
    rules: Vec<Rule>,
    /// The rules by the tool names their `match.tool` selects.
    by_tool: ToolIndex,
    default: DefaultPolicy,
    flag_destructive: Option<FlagDestructive>,
    dry_run: bool,
    environment: Option<String>,
    session: SessionPolicy,
    /// Configuration the stage accepts but cannot honour as written, to log
    /// once at configure.
    warnings: Vec<String>,
    /// The verdict when no rule matched and nothing was flagged.
    default_verdict: Verdict,
    /// The verdict for `flag_destructive: require_approval` (when it applies).
    flagged_verdict: Verdict,
}

impl Engine {
    /// Parses and compiles the stage configuration
    /// `{"environment": <string|null>, "policies": {...}, "session": {...}}`.
    /// Every problem is reported, not just the first.
    pub fn from_json(config_json: &str) -> Result<Engine, Vec<ConfigError>> {
        config::compile(config_json)
    }

    /// Decides on one call: the first rule whose conditions all hold decides
    /// (after its evidence and dependency gates, and its rate or spend
    /// limit); otherwise `flag_destructive` and then `default` apply.
    ///
    /// Global `dry_run` does not change the verdict: the host turns the real
    /// verdict into the dry-run report and releases whatever this call took
    /// from the state.
    pub fn evaluate<'a>(&'a self, call: &impl CallView, state: &mut impl State) -> Evaluation<'a> {
        let rule = self
            .by_tool
            .candidates(call.tool())
            .map(|index| &self.rules[index])
            .find(|rule| rule.conditions.match_beyond_tool(call));
        self.conclude(rule, call, state)
    }

    /// [`Engine::evaluate`] by walking every rule: what the index must
    /// agree with.
    #[cfg(test)]
    fn evaluate_by_walk<'a>(
        &'a self,
        call: &impl CallView,
        state: &mut impl State,
    ) -> Evaluation<'a> {
        let rule = self.rules.iter().find(|rule| rule.conditions.matches(call));
        self.conclude(rule, call, state)
    }

    /// The verdict once the first matching rule, if any, is known.
    fn conclude<'a>(
        &'a self,
        rule: Option<&'a Rule>,
        call: &impl CallView,
        state: &mut impl State,
    ) -> Evaluation<'a> {
        if let Some(rule) = rule {
            return Evaluation {
                verdict: rule.decide(call, state, &self.session),
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
                            verdict: Cow::Borrowed(&self.flagged_verdict),
                            warning: None,
                        };
                    }
                    FlagDestructive::RequireApproval => {}
                }
            }
        }
        Evaluation {
            verdict: Cow::Borrowed(&self.default_verdict),
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

    /// `policies.dry_run`. Informational: the host applies it.
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// The configured deployment label. Matching uses the call's own
    /// [`CallView::environment`]; this is informational.
    pub fn environment(&self) -> Option<&str> {
        self.environment.as_deref()
    }

    /// Warnings about the configuration, to log once after `configure`.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The rate windows and spend ledgers of the rules with limits, for the
    /// host's views (spend ledgers always have a window: nothing to collect).
    pub fn key_families(&self) -> Vec<KeyFamily> {
        self.rules
            .iter()
            .filter_map(|rule| {
                let (kind, prefix) = match &rule.then {
                    Then::Rate(limit) => ("rate", &limit.prefix),
                    Then::Spend(limit) => ("spend", &limit.prefix),
                    Then::Verdict(_) => return None,
                };
                Some(KeyFamily {
                    prefix: prefix.clone(),
                    kind: kind.into(),
                    name: rule.label.state_id(),
                    idle_ttl_ms: None,
                })
            })
            .collect()
    }
}

impl policy_match::StageEngine for Engine {
    fn from_json(config_json: &str) -> Result<Self, Vec<ConfigError>> {
        Engine::from_json(config_json)
    }

    fn warnings(&self) -> &[String] {
        Engine::warnings(self)
    }

    /// The verdict, and the `flag_destructive: log` line when it applies.
    fn decide(&self, call: &impl CallView, state: &mut impl State) -> (Verdict, Option<String>) {
        let evaluation = self.evaluate(call, state);
        (evaluation.verdict.into_owned(), evaluation.warning)
    }

    fn key_families(&self) -> Vec<KeyFamily> {
        Engine::key_families(self)
    }
}
