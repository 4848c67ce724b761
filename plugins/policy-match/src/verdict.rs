//! The WIT verdict records, engine-side.

/// The WIT `decision` record.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The action in helio.yaml's words (`allow`, `deny`, `dry_run`, …).
    pub action: String,
    /// The deciding rule's name, if it has one.
    pub rule: Option<String>,
    /// The deciding rule's index in its list, if a rule decided.
    pub rule_index: Option<u32>,
    /// One human-readable line: why this verdict.
    pub explanation: String,
}

/// The WIT `feedback` record.
#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    /// Machine-readable reason (`policy_denied`, `rate_limited`, …).
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
    /// The approval channel; none means the host's default.
    pub channel: Option<String>,
    /// How long to wait in milliseconds; none means `approval.timeout`.
    pub timeout_ms: Option<u64>,
    /// What the agent is told if the approval is denied or times out.
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

    /// The feedback a deny or an approval request carries, if any.
    pub fn feedback(&self) -> Option<&Feedback> {
        match self {
            Verdict::Deny(_, f) => Some(f),
            Verdict::RequireApproval(r) => r.feedback.as_ref(),
            Verdict::Allow(_) | Verdict::DryRun(_) => None,
        }
    }
}
