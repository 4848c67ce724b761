//! The verdicts that depend only on the configuration, built once at
//! configure time.

use policy_match::text::JsonObject;

use super::rule::Label;
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
    pub const NAMES: &'static [&'static str] = &[
        "allow",
        "deny",
        "require_approval",
        "rate_limit",
        "spend_limit",
        "dry_run",
    ];

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

/// A rule's `approval` block.
#[derive(Debug, Clone, Default)]
pub(crate) struct Approval {
    pub channel: Option<String>,
    pub timeout_ms: Option<u64>,
}

const DENY_SUGGESTION: &str =
    "This call is not permitted by policy; do not retry it. Ask an operator if it is needed.";
const DEFAULT_DENY_SUGGESTION: &str = "No policy rule permits this call and the default policy is deny; do not retry it. Ask an operator to add a rule if the call is needed.";

pub(crate) fn allow(label: &Label) -> Verdict {
    Verdict::Allow(label.decision("allow", label.matched()))
}

/// Per-rule `action: dry_run`: answer with what would have happened.
pub(crate) fn dry_run(label: &Label) -> Verdict {
    Verdict::DryRun(label.decision("dry_run", label.matched()))
}

pub(crate) fn deny(label: &Label) -> Verdict {
    let explanation = label.matched();
    let feedback = Feedback {
        reason: "policy_denied".into(),
        message: label.message(|| format!("Policy denied: {explanation}")),
        suggestion: label.suggestion(|| DENY_SUGGESTION.into()),
        retry_allowed: false,
        extra_json: Some(policy_reason(&explanation)),
    };
    Verdict::Deny(label.decision("deny", explanation), feedback)
}

/// Carries the rule's route, and its feedback only when it has a
/// `feedback` block.
pub(crate) fn require_approval(label: &Label, approval: &Approval) -> Verdict {
    Verdict::RequireApproval(ApprovalRequest {
        decision: label.decision("require_approval", label.matched()),
        channel: approval.channel.clone(),
        timeout_ms: approval.timeout_ms,
        feedback: label.feedback_message.as_ref().map(|message| Feedback {
            reason: "approval_required".into(),
            message: message.clone(),
            suggestion: label.feedback_suggestion.clone(),
            retry_allowed: true,
            extra_json: None,
        }),
    })
}

/// The verdict when no rule matched (and `flag_destructive` did not hold the call).
pub(crate) fn default_verdict(default: DefaultPolicy) -> Verdict {
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
    match default {
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
    }
}

/// `flag_destructive: require_approval` for an unmatched destructive tool.
pub(crate) fn flagged_destructive_verdict() -> Verdict {
    Verdict::RequireApproval(ApprovalRequest {
        decision: Decision {
            action: "require_approval".into(),
            rule: None,
            rule_index: None,
            explanation: "No matching rule; destructive tool flagged for approval".into(),
        },
        channel: None,
        timeout_ms: None,
        feedback: None,
    })
}

/// `{"policy_reason":"<explanation>"}`.
fn policy_reason(explanation: &str) -> String {
    JsonObject::new()
        .string("policy_reason", explanation)
        .finish()
}
