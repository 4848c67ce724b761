//! The stage chain every `tools/call` passes through, and what its verdict
//! means for the call.
//!
//! Order: plugins with `position: before_rules`, the built-in `rules` stage,
//! plugins with `position: after_rules`. Verdicts compose by strictness
//! (deny > require-approval > dry-run > allow); the first deny ends the
//! chain; a plugin with `may_loosen` can replace a stricter non-deny
//! decision with its `allow`. A stage that fails (trap, timeout, memory,
//! malformed verdict) blocks the call with `plugin_error`.
//!
//! Every stage that asks for an approval gets its own ticket, in chain order
//! (a rule's approver decides on the action, a budget's on the money); any
//! deny wins over them all.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::config::{self, Config, Issue, OnToolDrift, PluginPosition, ToolRevalidation};
use crate::plugins::checks::Described;
use crate::plugins::families::family_of;
use crate::plugins::{
    self, builtin, Check, Feedback, LoadError, Runtime, StageSpec, ToolCall, Verdict,
};
use crate::state::Hold;
use crate::tools::ToolDrift;
use crate::traces::StageRun;

mod outcome;

pub use outcome::{Approval, Denial, Outcome, Overage, Simulation};

struct ChainStage {
    stage: Arc<plugins::Stage>,
    may_loosen: bool,
    /// The built-in rule engine (whose verdict says whether a rule matched).
    is_rules: bool,
    /// Its series in `GET /metrics`, looked up once, not per call.
    meter: crate::metrics::StageMeter,
}

/// Time and memory bounds of the built-in stages.
const BUILTIN_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(50);
const BUILTIN_MEMORY: usize = 64 << 20;

/// A compiled, configured chain for one version of the configuration.
pub struct Pipeline {
    stages: Vec<ChainStage>,
    dry_run: bool,
    /// `flag_destructive: log`: a destructive tool that no rule matched is
    /// flagged in its audit record.
    flag_destructive: bool,
    /// What a call to a tool whose definition drifted gets.
    on_tool_drift: OnToolDrift,
    tool_revalidation: ToolRevalidation,
    environment: Option<Arc<str>>,
    rule_count: usize,
    /// Every key some rule's `evidence.requires` names: the only evidence
    /// the SDK sideband accepts.
    evidence_keys: Arc<BTreeSet<String>>,
    /// `["rules","budgets",…]`.
    stage_names: String,
    /// Routes held calls' tickets: the built-in router (the `approval`
    /// blocks of rules and budgets) or `approval.router`.
    router: Arc<plugins::Router>,
    /// `extractors`, for the stages' `tool-call.spend`; none when there are
    /// none.
    extractors: Option<Arc<plugins::Extractors>>,
    /// The configured budgets, for the operator views.
    budgets: Arc<[config::Budget]>,
    /// `policies.install`: what the adapter API's install scans answer.
    install: Arc<config::Install>,
    /// Spend rules' currencies by the rule's state id, for the operator
    /// views.
    spend_currencies: Arc<HashMap<String, String>>,
    /// SHA-256 (hex) of what decides: the environment, `policies`,
    /// `budgets` and the plugins with their configuration. An approval
    /// ticket records the version its call was held under.
    version: Arc<str>,
}

impl Pipeline {
    /// Loads every stage the configuration names. Problems come back as
    /// issues located by YAML path, like any other configuration error.
    pub fn build(config: &Config, runtime: &Arc<Runtime>) -> Result<Self, Vec<Issue>> {
        let mut issues = Vec::new();
        let mut stages = Vec::new();
        let plugin_stage =
            |index: usize, plugin: &config::PluginConfig, issues: &mut Vec<Issue>| {
                let spec = StageSpec {
                    name: plugin.name.clone(),
                    source: plugins::Source::File {
                        path: plugin.path.clone(),
                        sha256: plugin.sha256,
                    },
                    config_json: plugin.config.to_string(),
                    timeout: plugin.timeout,
                    memory_bytes: plugin.memory_bytes,
                };
                match runtime.load(&spec) {
                    Ok(stage) => Some(ChainStage {
                        meter: crate::metrics::get().stage_meter(&stage.name),
                        stage,
                        may_loosen: plugin.may_loosen,
                        is_rules: false,
                    }),
                    Err(error) => {
                        issues.extend(plugin_issues(&format!("plugins[{index}]"), "config", error));
                        None
                    }
                }
            };
        for (index, plugin) in config.plugins.iter().enumerate() {
            if plugin.position == PluginPosition::BeforeRules {
                stages.extend(plugin_stage(index, plugin, &mut issues));
            }
        }
        // The built-in stages: helio.yaml sections, each checked by its own
        // component; their configuration errors are located in that section.
        let mut builtin_stage =
            |name: &str, bytes: &'static [u8], config_json: Value, section: &str| {
                let spec = StageSpec {
                    name: name.into(),
                    source: plugins::Source::Builtin(bytes),
                    config_json: config_json.to_string(),
                    timeout: BUILTIN_TIMEOUT,
                    memory_bytes: BUILTIN_MEMORY,
                };
                match runtime.load(&spec) {
                    Ok(stage) => stages.push(ChainStage {
                        meter: crate::metrics::get().stage_meter(&stage.name),
                        stage,
                        may_loosen: false,
                        is_rules: name == "rules",
                    }),
                    // A failure that is not about one key is the section's.
                    Err(error) => issues.extend(plugin_issues(section, "", error).into_iter().map(
                        |mut issue| {
                            if issue.path.is_empty() {
                                issue.path = name.into();
                            }
                            issue
                        },
                    )),
                }
            };
        if rules_can_decide(config) {
            builtin_stage(
                "rules",
                builtin::RULES,
                json!({
                    "environment": config.environment,
                    "policies": config.policies_json,
                    "session": config.session.stage_json(),
                }),
                "policies",
            );
        }
        if !config.budgets.is_empty() {
            builtin_stage(
                "budgets",
                builtin::BUDGETS,
                json!({
                    "budgets": config.budgets_json,
                    "session": config.session.stage_json(),
                }),
                // The budgets stage reports paths from the root (`budgets[0]…`).
                "",
            );
        }
        for (index, plugin) in config.plugins.iter().enumerate() {
            if plugin.position == PluginPosition::AfterRules {
                stages.extend(plugin_stage(index, plugin, &mut issues));
            }
        }
        let extractors = load_extractors(config, runtime, &mut issues);
        let router = match load_router(config, runtime) {
            Ok(router) => Some(router),
            Err(more) => {
                issues.extend(more);
                None
            }
        };
        let (Some(router), true) = (router, issues.is_empty()) else {
            return Err(issues);
        };
        let stage_names = Value::from(
            stages
                .iter()
                .map(|s| s.stage.name.to_string())
                .collect::<Vec<_>>(),
        )
        .to_string();
        Ok(Self {
            router,
            extractors,
            version: policy_version(config).into(),
            stage_names,
            stages,
            dry_run: config.policies.dry_run,
            flag_destructive: config.policies.flag_destructive
                == Some(config::FlagDestructive::Log),
            on_tool_drift: config.policies.on_tool_drift,
            tool_revalidation: config.policies.tool_revalidation.clone(),
            environment: config.environment.as_deref().map(Arc::from),
            rule_count: config.policies.rules.len(),
            budgets: config.budgets.iter().cloned().collect(),
            install: Arc::new(config.policies.install.clone()),
            spend_currencies: Arc::new(
                config
                    .policies
                    .rules
                    .iter()
                    .enumerate()
                    .filter_map(|(i, rule)| {
                        Some((rule.state_id(i), rule.max_spend_currency.clone()?))
                    })
                    .collect(),
            ),
            evidence_keys: Arc::new(
                config
                    .policies
                    .rules
                    .iter()
                    .flat_map(|rule| rule.evidence_requires.iter().cloned())
                    .collect(),
            ),
        })
    }

    /// How many stages a call goes through.
    pub fn stage_count(&self) -> usize {
        self.stages.len()
    }

    /// The evidence keys the policy uses (the sideband's allowlist).
    pub fn evidence_keys(&self) -> &Arc<BTreeSet<String>> {
        &self.evidence_keys
    }

    pub fn rule_count(&self) -> usize {
        self.rule_count
    }

    /// `policies.tool_revalidation`.
    pub fn tool_revalidation(&self) -> &ToolRevalidation {
        &self.tool_revalidation
    }

    /// Runs the chain on one call (`drift`: how its tool's definition
    /// differs from the baseline, if it does). What the stages took from
    /// governance state comes back as holds, neither committed nor
    /// released: the caller decides (commit to forward, keep while a human
    /// decides, release otherwise).
    pub fn evaluate(
        &self,
        runtime: &Runtime,
        call: ToolCall,
        drift: Option<&ToolDrift>,
    ) -> Evaluation {
        let Some(drift) = drift else {
            return self.run_chain(runtime, call);
        };
        let mut evaluation = match self.on_tool_drift {
            OnToolDrift::Log => self.stricter_of_both(runtime, call, drift),
            // Nothing runs: no rule can make a changed tool safe to call.
            OnToolDrift::Block => {
                let (decision, feedback) = drift_refusal(&call.tool, drift, "deny");
                let denial = Denial::of_verdict(&decision, &feedback);
                match self.dry_run {
                    true => Evaluation {
                        outcome: Outcome::DryRun(Simulation::of_verdict(&Verdict::Deny(
                            decision, feedback,
                        ))),
                        ..Evaluation::blocked(denial)
                    },
                    false => Evaluation::blocked(denial),
                }
            }
            OnToolDrift::RequireApproval => {
                let (decision, feedback) = drift_refusal(&call.tool, drift, "require_approval");
                let asked = Verdict::RequireApproval {
                    decision,
                    channel: Some("dashboard".into()),
                    timeout_ms: None,
                    feedback: Some(feedback),
                };
                let mut evaluation = self.run_chain(runtime, call);
                evaluation.outcome = match evaluation.outcome {
                    _ if self.dry_run => Outcome::DryRun(Simulation::of_verdict(&asked)),
                    Outcome::Forward(_) => {
                        Outcome::RequireApproval(Approval::of_verdict(&asked).into_iter().collect())
                    }
                    Outcome::RequireApproval(mut approvals) => {
                        approvals.splice(0..0, Approval::of_verdict(&asked));
                        Outcome::RequireApproval(approvals)
                    }
                    outcome @ (Outcome::Block(_) | Outcome::DryRun(_)) => outcome,
                };
                evaluation
            }
        };
        evaluation.drift = Some(json!({
            "mode": self.on_tool_drift.as_str(),
            "aspects": drift.aspects(),
            "changes": drift.changes_json(),
        }));
        evaluation
    }

    /// `on_tool_drift: log`: the call is judged on the baseline's
    /// annotations and on the ones the tool now declares, and the stricter
    /// outcome stands. The second judgement runs first and gives back what
    /// it took, so the two never count the same call twice.
    fn stricter_of_both(&self, runtime: &Runtime, call: ToolCall, drift: &ToolDrift) -> Evaluation {
        let current = drift.current_annotations();
        if current == call.annotations {
            return self.run_chain(runtime, call);
        }
        let mut as_declared = call.clone();
        as_declared.annotations = current;
        let shadow = self.run_chain(runtime, as_declared);
        runtime.state().release(&shadow.holds);
        let mut evaluation = self.run_chain(runtime, call);
        if severity(&shadow.outcome) > severity(&evaluation.outcome) {
            evaluation.outcome = shadow.outcome;
        }
        // Destructive by either definition is flagged (`flag_destructive: log`).
        evaluation.flagged_destructive |= shadow.flagged_destructive;
        // What either judgement's stages flagged stays out of the record.
        evaluation.redact.extend(shadow.redact);
        evaluation
    }

    fn run_chain(&self, runtime: &Runtime, call: ToolCall) -> Evaluation {
        let mut evaluation = Evaluation::of(Outcome::Forward(None));
        let traced = crate::traces::enabled();
        let destructive = call.annotations.destructive_hint;
        let mut current: Option<Verdict> = None;
        // The stage whose verdict `current` is.
        let mut decider: Option<&Arc<str>> = None;
        let mut approvals: Vec<Approval> = Vec::new();
        for chain_stage in &self.stages {
            let started = std::time::Instant::now();
            let evaluated = runtime.evaluate(&chain_stage.stage, call.clone());
            let took = started.elapsed();
            chain_stage.meter.observe(took, evaluated.is_err());
            if traced {
                evaluation.stages.push(StageRun::of(
                    &chain_stage.stage.name,
                    started,
                    took,
                    &evaluated,
                ));
            }
            let verdict = match evaluated {
                Ok(evaluated) => {
                    if let Some(approval) = Approval::of_verdict(&evaluated.verdict) {
                        approvals.push(approval.with_overage(&evaluated.checks));
                    }
                    evaluation.holds.extend(evaluated.holds);
                    evaluation.checks.extend(evaluated.checks);
                    let decision = evaluated.verdict.decision();
                    evaluation.redact.extend(decision.redact.iter().cloned());
                    if decision.observe {
                        evaluation.observers.push(chain_stage.stage.clone());
                    }
                    evaluated.verdict
                }
                Err(failure) => {
                    tracing::error!(plugin = %chain_stage.stage.name, error = %failure, "policy stage failed; blocking the call");
                    // The operator's record has what failed; the agent only
                    // hears how (see `Denial::plugin_error`).
                    evaluation.decided_by = Some(json!({
                        "stage": &*chain_stage.stage.name,
                        "failure": failure.to_string(),
                    }));
                    evaluation.outcome = Outcome::Block(match failure {
                        plugins::Failure::StateUnavailable(_) => Denial::state_unavailable(),
                        plugins::Failure::Trap(_)
                        | plugins::Failure::Timeout(_)
                        | plugins::Failure::OutOfMemory(_)
                        | plugins::Failure::Malformed(_)
                        | plugins::Failure::Instantiate(_)
                        | plugins::Failure::StageError(_) => {
                            Denial::plugin_error(&chain_stage.stage.name, failure.kind())
                        }
                    });
                    return evaluation;
                }
            };
            if chain_stage.is_rules && self.flag_destructive && destructive {
                evaluation.flagged_destructive = verdict.decision().rule_index.is_none();
            }
            let loosens =
                current.is_some() && chain_stage.may_loosen && matches!(verdict, Verdict::Allow(_));
            if loosens {
                // Its allow stands for the stages before it, approvals too.
                approvals.clear();
            }
            let replace = match &current {
                None => true,
                Some(_) if loosens => true,
                Some(held) => verdict.strictness() > held.strictness(),
            };
            let is_deny = matches!(verdict, Verdict::Deny(..));
            if replace {
                decider = Some(&chain_stage.stage.name);
                current = Some(verdict);
            }
            if is_deny {
                break;
            }
        }
        if let (Some(stage), Some(verdict)) = (decider, &current) {
            evaluation.decided_by = decided_by(stage, verdict);
        }
        evaluation.outcome = match current {
            None => Outcome::Forward(None),
            Some(verdict) if self.dry_run && !is_grounding_refusal(&verdict) => {
                Outcome::DryRun(Simulation::of_verdict(&verdict))
            }
            Some(Verdict::Allow(decision)) => Outcome::Forward(Some(decision)),
            Some(verdict @ Verdict::DryRun(_)) => Outcome::DryRun(Simulation::of_verdict(&verdict)),
            Some(Verdict::Deny(decision, feedback)) => {
                Outcome::Block(Denial::of_verdict(&decision, &feedback))
            }
            Some(Verdict::RequireApproval { .. }) => Outcome::RequireApproval(approvals),
        };
        evaluation
    }

    /// The approval router of this configuration.
    pub fn router(&self) -> &Arc<plugins::Router> {
        &self.router
    }

    /// The spend extractors of this configuration, as calls carry them.
    pub fn extractors(&self) -> Option<&Arc<plugins::Extractors>> {
        self.extractors.as_ref()
    }

    /// The policy's version: see [`policy_version`].
    pub fn version(&self) -> &Arc<str> {
        &self.version
    }

    /// The configured environment, as stages see it on each call.
    pub fn environment(&self) -> Option<&Arc<str>> {
        self.environment.as_ref()
    }

    /// A scoped key (`<stage>/<key>`) as the stage that owns it described
    /// it (WIT `state.describe`); none for a stage not in this chain or a
    /// key of no described family.
    pub fn describe<'a>(&'a self, scoped_key: &'a str) -> Option<Described<'a>> {
        let (stage, key) = scoped_key.split_once('/')?;
        let owner = self.stages.iter().find(|s| &*s.stage.name == stage)?;
        let (family, bucket) = family_of(&owner.stage.families, key)?;
        Some(Described {
            stage,
            family,
            bucket,
        })
    }

    /// How long a pot of governance state may sit idle before it is
    /// collected (`StateMaintenance::forget_idle_pots`), as its stage
    /// described it; other pots are kept.
    pub fn pot_idle_ms(&self, scoped_key: &str) -> Option<u64> {
        self.describe(scoped_key)?.family.idle_ttl_ms
    }

    /// The configured budgets, in configuration order.
    pub fn budgets(&self) -> &[config::Budget] {
        &self.budgets
    }

    /// `policies.install` as configured now.
    pub fn install_policy(&self) -> &config::Install {
        &self.install
    }

    /// A spend rule's currency, by the rule's state id.
    pub fn spend_currency(&self, rule: &str) -> Option<&str> {
        self.spend_currencies.get(rule).map(String::as_str)
    }

    /// Each stage's name and the contract version it is built against, in
    /// chain order.
    pub fn stage_versions(&self) -> impl Iterator<Item = (&str, plugins::contract::Version)> {
        self.stages
            .iter()
            .map(|s| (&*s.stage.name, s.stage.version()))
    }

    /// The names of the chain's stages, as a JSON list (for the audit trail).
    pub fn stage_names(&self) -> &str {
        &self.stage_names
    }
}

/// The chain's answer for one call.
pub struct Evaluation {
    pub outcome: Outcome,
    /// What the stages took from governance state, still held.
    pub holds: Vec<Hold>,
    /// What the stages read or took from governance state (the audit's
    /// `evidence_chain`), whatever the outcome.
    pub checks: Vec<Check>,
    /// A destructive tool no rule matched, under `flag_destructive: log`.
    pub flagged_destructive: bool,
    /// The audit's `evidence_chain.tool_drift` for a call to a drifted tool.
    pub drift: Option<Value>,
    /// How each stage ran, in order (only with traces on).
    pub stages: Vec<StageRun>,
    /// The audit's `evidence_chain.decision`: the stage whose verdict
    /// stands and its explanation, or the stage that failed and how.
    pub decided_by: Option<Value>,
    /// Argument paths the stages flagged for redaction (any verdict).
    pub redact: Vec<String>,
    /// The stages that asked to observe how the call ends.
    pub observers: Vec<Arc<plugins::Stage>>,
}

impl Evaluation {
    /// A call blocked before any stage took anything.
    pub fn blocked(denial: Denial) -> Self {
        Self::of(Outcome::Block(denial))
    }

    /// Nothing decided yet: `outcome`, no stage has run.
    fn of(outcome: Outcome) -> Self {
        Self {
            outcome,
            holds: Vec::new(),
            checks: Vec::new(),
            flagged_destructive: false,
            drift: None,
            stages: Vec::new(),
            decided_by: None,
            redact: Vec::new(),
            observers: Vec::new(),
        }
    }
}

/// What the record keeps of the verdict that stands: which stage gave it
/// and its one-line explanation — when a control engaged (a verdict other
/// than allow, or a rule's allow); a call nothing objected to keeps no
/// chain.
fn decided_by(stage: &str, verdict: &Verdict) -> Option<Value> {
    let decision = verdict.decision();
    if matches!(verdict, Verdict::Allow(_)) && decision.rule.is_none() {
        return None;
    }
    Some(json!({ "stage": stage, "explanation": decision.explanation }))
}

impl StageRun {
    /// A stage's run for the call's trace, from what it returned.
    fn of(
        stage: &Arc<str>,
        started: std::time::Instant,
        took: std::time::Duration,
        evaluated: &Result<plugins::Evaluated, plugins::Failure>,
    ) -> Self {
        let (verdict, rule, reason, state_ops) = match evaluated {
            Ok(evaluated) => {
                let (verdict, reason) = match &evaluated.verdict {
                    Verdict::Allow(_) => ("allow", None),
                    Verdict::Deny(_, feedback) => ("deny", Some(feedback.reason.clone())),
                    Verdict::DryRun(_) => ("dry_run", None),
                    Verdict::RequireApproval { .. } => ("require_approval", None),
                };
                let rule = evaluated.verdict.decision().rule.clone();
                (verdict, rule, reason, evaluated.state_ops.clone())
            }
            Err(failure) => ("failed", None, Some(failure.to_string()), Vec::new()),
        };
        Self {
            stage: stage.clone(),
            started,
            took,
            verdict,
            rule,
            reason,
            state_ops,
        }
    }
}

/// How strict an outcome is: deny > require approval > dry run > forward.
fn severity(outcome: &Outcome) -> u8 {
    match outcome {
        Outcome::Forward(_) => 0,
        Outcome::DryRun(_) => 1,
        Outcome::RequireApproval(_) => 2,
        Outcome::Block(_) => 3,
    }
}

/// Why a call to a drifted tool is refused or held (`action`: `deny` or
/// `require_approval`).
fn drift_refusal(tool: &str, drift: &ToolDrift, action: &str) -> (plugins::Decision, Feedback) {
    let aspects = drift.aspects().join(", ");
    let feedback = Feedback {
        reason: "tool_definition_drift".into(),
        message: format!("Blocked: the upstream changed the definition of tool \"{tool}\" ({aspects}) since Helio first saw it, so it cannot be called until an operator reviews the change"),
        suggestion: Some("Do not retry: an operator must review the tool's new definition and accept it (POST /api/tools/accept on the operator API) before it can be called again.".into()),
        retry_allowed: false,
        extra: [("drifted_aspects".to_owned(), json!(drift.aspects()))]
            .into_iter()
            .collect(),
    };
    let decision = plugins::Decision {
        action: action.into(),
        rule: None,
        rule_index: None,
        explanation: format!("tool definition drift ({aspects})"),
        redact: Vec::new(),
        observe: false,
    };
    (decision, feedback)
}

/// A call refused because evidence or dependency rules need a session
/// identity and none resolved: denied even in a global dry run, as in the
/// original, since no simulation can say what the session would have held.
fn is_grounding_refusal(verdict: &Verdict) -> bool {
    matches!(verdict, Verdict::Deny(_, feedback)
        if feedback.reason == "policy_denied"
            && feedback.extra.get("session_unresolved") == Some(&Value::Bool(true)))
}

fn plugin_issues(base: &str, config_key: &str, error: LoadError) -> Vec<Issue> {
    let at = |suffix: &str| match (base.is_empty(), suffix.is_empty()) {
        (_, true) => base.to_owned(),
        (true, false) => suffix.to_owned(),
        (false, false) => format!("{base}.{suffix}"),
    };
    match error {
        LoadError::Config(errors) => errors
            .into_iter()
            .map(|(path, message)| {
                let inner = if config_key.is_empty() {
                    path
                } else if path.is_empty() {
                    config_key.to_owned()
                } else {
                    format!("{config_key}.{path}")
                };
                Issue {
                    path: at(&inner),
                    message,
                }
            })
            .collect(),
        LoadError::PinMismatch { .. } => vec![Issue {
            path: at("sha256"),
            message: error.to_string(),
        }],
        LoadError::Read { .. }
        | LoadError::NotWasm
        | LoadError::Compile(_)
        | LoadError::Imports(_)
        | LoadError::Version(_)
        | LoadError::World(..)
        | LoadError::Trap(_) => vec![Issue {
            path: at(if config_key.is_empty() { "" } else { "path" }),
            message: error.to_string(),
        }],
    }
}

/// The operator's `approval.router`, or the built-in router configured with
/// the `approval` blocks of rules and budgets; problems are located under
/// `approval.router` (or `approval` for the built-in's configuration).
fn load_router(config: &Config, runtime: &Runtime) -> Result<Arc<plugins::Router>, Vec<Issue>> {
    let (spec, base, key) = match &config.approval.router {
        Some(router) => (
            StageSpec {
                name: router
                    .path
                    .file_stem()
                    .map_or_else(|| "approval-router".into(), |s| s.to_string_lossy().into()),
                source: plugins::Source::File {
                    path: router.path.clone(),
                    sha256: router.sha256,
                },
                config_json: router.config.to_string(),
                timeout: router.timeout,
                memory_bytes: router.memory_bytes,
            },
            "approval.router",
            "config",
        ),
        None => (
            StageSpec {
                name: "approval-router".into(),
                source: plugins::Source::Builtin(builtin::APPROVAL_ROUTER),
                config_json: builtin_router_config(config).to_string(),
                timeout: BUILTIN_TIMEOUT,
                memory_bytes: BUILTIN_MEMORY,
            },
            "approval",
            "",
        ),
    };
    runtime
        .load_router(&spec)
        .map_err(|error| plugin_issues(base, key, error))
}

/// What the built-in router reads: the default timeout and each rule's and
/// budget's `approval` escalation.
fn builtin_router_config(config: &Config) -> Value {
    let block = |route: &Option<config::ApprovalRoute>| {
        route.as_ref().map(|r| {
            json!({
                "delegates": r.delegates,
                "escalation_after_ms": r.escalation_after.map(|d| d.as_millis() as u64),
            })
        })
    };
    json!({
        "default_timeout_ms": config.approval.timeout.as_millis() as u64,
        "rules": config.policies.rules.iter()
            .map(|rule| json!({ "name": rule.name, "approval": block(&rule.approval) }))
            .collect::<Vec<_>>(),
        "budgets": config.budgets.iter()
            .map(|budget| json!({ "name": budget.name, "approval": block(&budget.approval) }))
            .collect::<Vec<_>>(),
    })
}

/// Without rules, with `default: allow`, no `flag_destructive` and no global
/// dry run, the rules stage would allow every call: the chain leaves it out
/// rather than pay a component call for a fixed answer (audit-only mode).
fn rules_can_decide(config: &Config) -> bool {
    let p = &config.policies;
    !p.rules.is_empty()
        || p.default == config::DefaultDecision::Deny
        || p.flag_destructive.is_some()
        || p.dry_run
}

/// The chain in force, swapped whole on reload: each call takes one
/// snapshot and uses it throughout.
#[derive(Clone)]
pub struct Active(Arc<std::sync::RwLock<Arc<Pipeline>>>);

impl Active {
    pub fn new(pipeline: Pipeline) -> Self {
        Self(Arc::new(std::sync::RwLock::new(Arc::new(pipeline))))
    }

    pub fn current(&self) -> Arc<Pipeline> {
        match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn replace(&self, pipeline: Pipeline) {
        let pipeline = Arc::new(pipeline);
        match self.0.write() {
            Ok(mut guard) => *guard = pipeline,
            Err(poisoned) => *poisoned.into_inner() = pipeline,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;

/// Loads `extractors`; problems become issues at `extractors[<i>]`.
fn load_extractors(
    config: &Config,
    runtime: &Arc<Runtime>,
    issues: &mut Vec<Issue>,
) -> Option<Arc<plugins::Extractors>> {
    if config.extractors.is_empty() {
        return None;
    }
    let mut loaded = Vec::new();
    for (index, extractor) in config.extractors.iter().enumerate() {
        let spec = StageSpec {
            name: extractor.name.clone(),
            source: plugins::Source::File {
                path: extractor.path.clone(),
                sha256: extractor.sha256,
            },
            config_json: extractor.config.to_string(),
            timeout: extractor.timeout,
            memory_bytes: extractor.memory_bytes,
        };
        match runtime.load_extractor(&spec) {
            Ok(extractor) => loaded.push(extractor),
            Err(error) => issues.extend(plugin_issues(
                &format!("extractors[{index}]"),
                "config",
                error,
            )),
        }
    }
    Some(Arc::new(plugins::Extractors::new(runtime.clone(), loaded)))
}

/// SHA-256 (hex) over what decides calls, in canonical JSON: a changed rule,
/// budget, plugin, extractor or their configuration is a new version; a
/// changed port or log setting is not.
fn policy_version(config: &Config) -> String {
    use sha2::Digest;
    let plugins: Vec<Value> = config
        .plugins
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "path": p.path.display().to_string(),
                "sha256": p.sha256.map(hex::encode),
                "config": p.config,
                "may_loosen": p.may_loosen,
            })
        })
        .collect();
    let extractors: Vec<Value> = config
        .extractors
        .iter()
        .map(|e| {
            json!({
                "name": e.name,
                "path": e.path.display().to_string(),
                "sha256": e.sha256.map(hex::encode),
                "config": e.config,
            })
        })
        .collect();
    let decides = json!([
        config.environment,
        config.policies_json,
        config.budgets_json,
        plugins,
        extractors
    ]);
    hex::encode(sha2::Sha256::digest(decides.to_string().as_bytes()))
}
