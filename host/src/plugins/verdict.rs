//! Verdicts as the rest of Helio sees them, checked on the way in: a plugin
//! that returns something malformed fails the call closed. Both contract
//! versions' verdicts arrive here.

use super::bindings::v1::helio::governance::types as v1;
use super::bindings::v2::helio::governance::types as v2;

/// The action words of helio.yaml; anything else is malformed (0.1 sends
/// the word; 0.2 an enum, which cannot be anything else).
const ACTIONS: &[&str] = &[
    "allow",
    "deny",
    "require_approval",
    "rate_limit",
    "budget",
    "spend_limit",
    "dry_run",
];

/// Keys Helio sets in a blocked call's `data`; a plugin cannot override them.
const RESERVED_DATA_KEYS: &[&str] = &[
    "blocked",
    "reason",
    "rule",
    "rule_index",
    "action",
    "suggestion",
    "retry_allowed",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub action: String,
    pub rule: Option<String>,
    pub rule_index: Option<u32>,
    pub explanation: String,
    /// Argument paths the stage flagged, to redact from the audit record.
    pub redact: Vec<String>,
    /// Whether the stage asked to observe how the call ends.
    pub observe: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    pub reason: String,
    pub message: String,
    pub suggestion: Option<String>,
    pub retry_allowed: bool,
    /// Extra `data` fields (never one of the reserved keys).
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Allow(Decision),
    Deny(Decision, Feedback),
    DryRun(Decision),
    RequireApproval {
        decision: Decision,
        channel: Option<String>,
        timeout_ms: Option<u64>,
        feedback: Option<Feedback>,
    },
}

impl Verdict {
    pub fn decision(&self) -> &Decision {
        match self {
            Verdict::Allow(d) | Verdict::Deny(d, _) | Verdict::DryRun(d) => d,
            Verdict::RequireApproval { decision, .. } => decision,
        }
    }

    /// deny > require-approval > dry-run > allow.
    pub fn strictness(&self) -> u8 {
        match self {
            Verdict::Allow(_) => 0,
            Verdict::DryRun(_) => 1,
            Verdict::RequireApproval { .. } => 2,
            Verdict::Deny(..) => 3,
        }
    }
}

macro_rules! convert_verdict {
    ($wit:ident, $decision:ident) => {
        impl TryFrom<$wit::Verdict> for Verdict {
            type Error = String;

            fn try_from(verdict: $wit::Verdict) -> Result<Self, String> {
                let feedback = |f: $wit::Feedback| {
                    feedback(
                        f.reason,
                        f.message,
                        f.suggestion,
                        f.retry_allowed,
                        f.extra_json,
                    )
                };
                Ok(match verdict {
                    $wit::Verdict::Allow(d) => Verdict::Allow($decision(d)?),
                    $wit::Verdict::Deny((d, f)) => Verdict::Deny($decision(d)?, feedback(f)?),
                    $wit::Verdict::DryRun(d) => Verdict::DryRun($decision(d)?),
                    $wit::Verdict::RequireApproval(request) => Verdict::RequireApproval {
                        decision: $decision(request.decision)?,
                        channel: request.channel,
                        timeout_ms: request.timeout_ms,
                        feedback: request.feedback.map(feedback).transpose()?,
                    },
                })
            }
        }
    };
}

// The two versions' verdicts have the same shape in different generated
// types; only their decisions differ.
convert_verdict!(v1, decision_v1);
convert_verdict!(v2, decision_v2);

fn decision_v1(d: v1::Decision) -> Result<Decision, String> {
    if !ACTIONS.contains(&d.action.as_str()) {
        return Err(format!(
            "unknown action \"{}\" (expected one of {})",
            d.action,
            ACTIONS.join(", ")
        ));
    }
    Ok(Decision {
        action: d.action,
        rule: d.rule,
        rule_index: d.rule_index,
        explanation: d.explanation,
        redact: Vec::new(),
        observe: false,
    })
}

/// Most argument paths one verdict may ask to redact.
const MAX_REDACT_PATHS: usize = 64;

fn decision_v2(d: v2::Decision) -> Result<Decision, String> {
    if d.redact.len() > MAX_REDACT_PATHS {
        return Err(format!(
            "asked to redact {} argument paths; the limit is {MAX_REDACT_PATHS}",
            d.redact.len()
        ));
    }
    if let Some(path) = d
        .redact
        .iter()
        .find(|p| !helio_syntax::argpath::is_valid(p))
    {
        return Err(format!("redact path \"{path}\" is not an argument path"));
    }
    Ok(Decision {
        action: action_word(d.action).into(),
        rule: d.rule,
        rule_index: d.rule_index,
        explanation: d.explanation,
        redact: d.redact,
        observe: d.observe,
    })
}

/// helio.yaml's word for a 0.2 action.
fn action_word(action: v2::Action) -> &'static str {
    match action {
        v2::Action::Allow => "allow",
        v2::Action::Deny => "deny",
        v2::Action::DryRun => "dry_run",
        v2::Action::RequireApproval => "require_approval",
        v2::Action::RateLimit => "rate_limit",
        v2::Action::SpendLimit => "spend_limit",
        v2::Action::Budget => "budget",
    }
}

/// The 0.2 action for helio.yaml's word (what a router is told); none for
/// a word no verdict carries.
pub(super) fn action_of(word: &str) -> Option<v2::Action> {
    Some(match word {
        "allow" => v2::Action::Allow,
        "deny" => v2::Action::Deny,
        "dry_run" => v2::Action::DryRun,
        "require_approval" => v2::Action::RequireApproval,
        "rate_limit" => v2::Action::RateLimit,
        "spend_limit" => v2::Action::SpendLimit,
        "budget" => v2::Action::Budget,
        _ => return None,
    })
}

fn feedback(
    reason: String,
    message: String,
    suggestion: Option<String>,
    retry_allowed: bool,
    extra_json: Option<String>,
) -> Result<Feedback, String> {
    let reason_ok = !reason.is_empty()
        && reason
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !reason_ok {
        return Err(format!(
            "feedback reason \"{reason}\" is not a lower_snake_case word"
        ));
    }
    if message.trim().is_empty() {
        return Err("feedback message is empty".into());
    }
    let extra = match extra_json {
        None => serde_json::Map::new(),
        Some(text) => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Object(mut map)) => {
                map.retain(|k, _| !RESERVED_DATA_KEYS.contains(&k.as_str()));
                map
            }
            Ok(_) => return Err("feedback extra-json is not a JSON object".into()),
            Err(e) => return Err(format!("feedback extra-json is not valid JSON ({e})")),
        },
    };
    Ok(Feedback {
        reason,
        message,
        suggestion,
        retry_allowed,
        extra,
    })
}
