//! Verdicts as the rest of Helio sees them, checked on the way in: a plugin
//! that returns something malformed fails the call closed.

use super::bindings::helio::governance::types as wit;

/// The action words of helio.yaml; anything else is malformed.
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

impl TryFrom<wit::Verdict> for Verdict {
    type Error = String;

    fn try_from(verdict: wit::Verdict) -> Result<Self, String> {
        Ok(match verdict {
            wit::Verdict::Allow(d) => Verdict::Allow(decision(d)?),
            wit::Verdict::Deny((d, f)) => Verdict::Deny(decision(d)?, feedback(f)?),
            wit::Verdict::DryRun(d) => Verdict::DryRun(decision(d)?),
            wit::Verdict::RequireApproval(request) => Verdict::RequireApproval {
                decision: decision(request.decision)?,
                channel: request.channel,
                timeout_ms: request.timeout_ms,
                feedback: request.feedback.map(feedback).transpose()?,
            },
        })
    }
}

fn decision(d: wit::Decision) -> Result<Decision, String> {
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
    })
}

fn feedback(f: wit::Feedback) -> Result<Feedback, String> {
    let reason_ok = !f.reason.is_empty()
        && f.reason
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !reason_ok {
        return Err(format!(
            "feedback reason \"{}\" is not a lower_snake_case word",
            f.reason
        ));
    }
    if f.message.trim().is_empty() {
        return Err("feedback message is empty".into());
    }
    let extra = match f.extra_json {
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
        reason: f.reason,
        message: f.message,
        suggestion: f.suggestion,
        retry_allowed: f.retry_allowed,
        extra,
    })
}
