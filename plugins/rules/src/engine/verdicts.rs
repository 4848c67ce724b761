//! The verdicts rules produce. None depends on the call, so each is built
//! once at configure time.

use super::{ApprovalRequest, Decision, DefaultPolicy, Feedback, Verdict};

/// A rule's `action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Action {
    Allow,
    #[default]
    Deny,
    RequireApproval,
    RateLimit,
    SpendLimit,
    DryRun,
}

impl Action {
    pub fn from_name(name: &str) -> Option<Action> {
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

/// What a rule's verdict depends on.
#[derive(Debug, Default)]
pub(crate) struct RuleSpec {
    pub index: usize,
    pub name: Option<String>,
    pub action: Action,
    pub approval_channel: Option<String>,
    pub approval_timeout_ms: Option<u64>,
    pub evidence: Vec<String>,
    pub requires: Vec<String>,
    pub feedback_message: Option<String>,
    pub feedback_suggestion: Option<String>,
}

const DENY_SUGGESTION: &str =
    "This call is not permitted by policy; do not retry it. Ask an operator if it is needed.";
const DEFAULT_DENY_SUGGESTION: &str = "No policy rule permits this call and the default policy is deny; do not retry it. Ask an operator to add a rule if the call is needed.";
const NOT_YET_ENFORCED_SUGGESTION: &str = "Do not retry this call: it is refused until Helio can enforce this rule. Ask an operator to change the rule if the call is needed.";

pub(crate) fn rule_verdict(spec: &RuleSpec, dry_run: bool) -> Verdict {
    // An empty name counts as none, as in the original (JavaScript falsiness).
    let name = spec.name.clone().filter(|n| !n.is_empty());
    let label = match &name {
        Some(n) => format!("\"{n}\""),
        None => format!("rules[{}]", spec.index),
    };
    let action = spec.action.as_str();
    let decision = |action: &str, explanation: String| Decision {
        action: action.to_owned(),
        rule: name.clone(),
        rule_index: Some(u32::try_from(spec.index).unwrap_or(u32::MAX)),
        explanation,
    };
    let explanation = format!("Matched {label} -> {action}");

    // Features this stage cannot enforce fail closed. Evidence and
    // dependency gates apply to every action but deny (as in the original);
    // rate and spend limits need the host's `state` interface, which the
    // policy-stage world does not import.
    let mut unsupported: Vec<&str> = Vec::new();
    if spec.action != Action::Deny {
        if !spec.evidence.is_empty() {
            unsupported.push("evidence");
        }
        if !spec.requires.is_empty() {
            unsupported.push("requires");
        }
    }
    let gated = !unsupported.is_empty();
    if matches!(spec.action, Action::RateLimit | Action::SpendLimit) {
        unsupported.push(action);
    }

    let verdict = if !unsupported.is_empty() {
        let list = word_list(&unsupported);
        let quoted = match &name {
            Some(n) => n.clone(),
            None => format!("rules[{}]", spec.index),
        };
        // A failed gate is reported as the deny it is (as the original
        // reports evidence and dependency failures); an unenforceable limit
        // keeps its own action.
        let decided = if gated { "deny" } else { action };
        Verdict::Deny(
            decision(
                decided,
                format!("{explanation}; refused: {list} not enforced yet"),
            ),
            Feedback {
                reason: "not_yet_enforced".into(),
                message: format!(
                    "Blocked: rule \"{quoted}\" uses {list}, which this version of Helio cannot enforce yet, so the call is refused rather than let through"
                ),
                suggestion: Some(NOT_YET_ENFORCED_SUGGESTION.into()),
                retry_allowed: false,
                extra_json: Some(not_yet_enforced_json(&unsupported)),
            },
        )
    } else {
        match spec.action {
            Action::Allow => Verdict::Allow(decision(action, explanation)),
            Action::DryRun => Verdict::DryRun(decision(action, explanation)),
            Action::Deny => {
                let feedback = Feedback {
                    reason: "policy_denied".into(),
                    message: spec
                        .feedback_message
                        .clone()
                        .unwrap_or_else(|| format!("Policy denied: {explanation}")),
                    suggestion: Some(
                        spec.feedback_suggestion
                            .clone()
                            .unwrap_or_else(|| DENY_SUGGESTION.into()),
                    ),
                    retry_allowed: false,
                    extra_json: Some(policy_reason(&explanation)),
                };
                Verdict::Deny(decision(action, explanation), feedback)
            }
            Action::RequireApproval => Verdict::RequireApproval(ApprovalRequest {
                decision: decision(action, explanation),
                channel: spec.approval_channel.clone(),
                timeout_ms: spec.approval_timeout_ms,
                feedback: spec.feedback_message.as_ref().map(|message| Feedback {
                    reason: "approval_required".into(),
                    message: message.clone(),
                    suggestion: spec.feedback_suggestion.clone(),
                    retry_allowed: true,
                    extra_json: None,
                }),
            }),
            Action::RateLimit | Action::SpendLimit => unreachable!("handled as unsupported above"),
        }
    };
    simulate(verdict, dry_run)
}

/// The verdict when no rule matched (and `flag_destructive` did not hold the call).
pub(crate) fn default_verdict(default: DefaultPolicy, dry_run: bool) -> Verdict {
    let action = match default {
        DefaultPolicy::Allow => "allow",
        DefaultPolicy::Deny => "deny",
    };
    let decision = Decision {
        action: action.into(),
        rule: None,
        rule_index: None,
        explanation: format!("No matching rule; applied default policy: {action}"),
    };
    let verdict = match default {
        DefaultPolicy::Allow => Verdict::Allow(decision),
        DefaultPolicy::Deny => {
            let feedback = Feedback {
                reason: "policy_denied".into(),
                message: format!("Policy denied: {}", decision.explanation),
                suggestion: Some(DEFAULT_DENY_SUGGESTION.into()),
                retry_allowed: false,
                extra_json: Some(policy_reason(&decision.explanation)),
            };
            Verdict::Deny(decision, feedback)
        }
    };
    simulate(verdict, dry_run)
}

/// `flag_destructive: require_approval` for an unmatched destructive tool.
pub(crate) fn flagged_destructive_verdict(dry_run: bool) -> Verdict {
    let verdict = Verdict::RequireApproval(ApprovalRequest {
        decision: Decision {
            action: "require_approval".into(),
            rule: None,
            rule_index: None,
            explanation: "No matching rule; destructive tool flagged for approval".into(),
        },
        channel: None,
        timeout_ms: None,
        feedback: None,
    });
    simulate(verdict, dry_run)
}

/// Global `dry_run`: every verdict becomes a simulation whose decision keeps
/// the action that would have applied (only `allow` would have forwarded).
fn simulate(verdict: Verdict, dry_run: bool) -> Verdict {
    if !dry_run || matches!(verdict, Verdict::DryRun(_)) {
        return verdict;
    }
    Verdict::DryRun(match verdict {
        Verdict::Allow(d) | Verdict::DryRun(d) | Verdict::Deny(d, _) => d,
        Verdict::RequireApproval(r) => r.decision,
    })
}

/// `{"policy_reason":"<explanation>"}`.
fn policy_reason(explanation: &str) -> String {
    let mut out = String::from("{\"policy_reason\":");
    push_json_string(&mut out, explanation);
    out.push('}');
    out
}

/// `{"not_yet_enforced":["<feature>",...]}`.
fn not_yet_enforced_json(features: &[&str]) -> String {
    let mut out = String::from("{\"not_yet_enforced\":[");
    for (i, feature) in features.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(&mut out, feature);
    }
    out.push_str("]}");
    out
}

/// Appends `s` as a JSON string literal. Written out rather than going
/// through serde_json's serializer, which would add several KB to the
/// component for two fixed shapes.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let n = u32::from(c) as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[n >> 4]));
                out.push(char::from(HEX[n & 0xf]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `a`, `a and b`, `a, b and c`.
fn word_list(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}
