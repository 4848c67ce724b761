//! Verdicts, built in one expression and checked the way the host checks
//! them: a deny's reason must be a `lower_snake_case` word and its message
//! not empty. A builder given a bad shape panics in a debug build (so a
//! unit test finds it); in a release build the host refuses the verdict as
//! malformed and blocks the call.
//!
//! ```
//! use helio_plugin::Verdict;
//! let v = Verdict::deny("pii_detected", "Blocked: the arguments contain a card number")
//!     .rule("no-cards")
//!     .suggest("Send the last four digits only.")
//!     .redact("**.card");
//! assert!(v.check().is_ok());
//! ```

use serde_json::{Map, Value};

/// What a verdict does, in helio.yaml's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
    DryRun,
    RequireApproval,
    RateLimit,
    SpendLimit,
    Budget,
}

/// Which rule decided and why, for the audit trail.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub action: Action,
    pub rule: Option<String>,
    pub rule_index: Option<u32>,
    /// One line for the audit record (`evidence_chain.decision`).
    pub explanation: String,
    /// Argument paths to mask in the call's audit record.
    pub redact: Vec<String>,
    /// Ask to be told how the call ends ([`crate::Stage::observe`]).
    pub observe: bool,
}

/// What the agent is told when a call is blocked or held.
#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    /// A `lower_snake_case` word agents key on (`pii_detected`).
    pub reason: String,
    pub message: String,
    pub suggestion: Option<String>,
    pub retry_allowed: bool,
    /// Extra fields of the error's `data` (Helio's own keys cannot be set).
    pub extra: Map<String, Value>,
}

/// A request to hold the call for a human.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalRequest {
    pub decision: Decision,
    /// A key of helio.yaml's `approval.channels`, or `dashboard`.
    pub channel: Option<String>,
    pub timeout_ms: Option<u64>,
    /// What the agent is told if it is denied or times out.
    pub feedback: Option<Feedback>,
}

/// A stage's verdict on one call. The strictest of the chain wins: deny >
/// require-approval > dry-run > allow.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Allow(Decision),
    Deny(Decision, Feedback),
    DryRun(Decision),
    RequireApproval(ApprovalRequest),
}

/// A stage that cannot decide (a dependency missing, an input it cannot
/// handle): the call is blocked as `plugin_error`, the message logged and
/// recorded for the operator (never shown to the agent), and the stage's
/// instance kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageError(pub String);

impl StageError {
    pub fn new(message: impl Into<String>) -> Self {
        StageError(message.into())
    }
}

impl<T: std::fmt::Display> From<T> for StageError {
    fn from(error: T) -> Self {
        StageError(error.to_string())
    }
}

/// Most redact paths one verdict may carry.
const MAX_REDACT_PATHS: usize = 64;
/// Every value of the arguments, at any depth.
const EVERYTHING: &str = "**.*";

fn decision(action: Action) -> Decision {
    Decision {
        action,
        rule: None,
        rule_index: None,
        explanation: String::new(),
        redact: Vec::new(),
        observe: false,
    }
}

fn feedback(reason: &str, message: &str) -> Feedback {
    let feedback = Feedback {
        reason: reason.into(),
        message: message.into(),
        suggestion: None,
        retry_allowed: false,
        extra: Map::new(),
    };
    if let Err(problem) = feedback.check() {
        debug_assert!(false, "{problem}");
    }
    feedback
}

impl Verdict {
    /// No objection.
    pub fn allow() -> Self {
        Verdict::Allow(decision(Action::Allow))
    }

    /// Block the call: `reason` a `lower_snake_case` word, `message` what
    /// the agent reads.
    pub fn deny(reason: &str, message: &str) -> Self {
        Verdict::Deny(decision(Action::Deny), feedback(reason, message))
    }

    /// Do not forward; answer with what would have happened.
    pub fn dry_run() -> Self {
        Verdict::DryRun(decision(Action::DryRun))
    }

    /// Hold the call for a human approval (default channel and timeout).
    pub fn require_approval() -> Self {
        Verdict::RequireApproval(ApprovalRequest {
            decision: decision(Action::RequireApproval),
            channel: None,
            timeout_ms: None,
            feedback: None,
        })
    }

    pub fn decision(&self) -> &Decision {
        match self {
            Verdict::Allow(d) | Verdict::Deny(d, _) | Verdict::DryRun(d) => d,
            Verdict::RequireApproval(r) => &r.decision,
        }
    }

    fn decision_mut(&mut self) -> &mut Decision {
        match self {
            Verdict::Allow(d) | Verdict::Deny(d, _) | Verdict::DryRun(d) => d,
            Verdict::RequireApproval(r) => &mut r.decision,
        }
    }

    fn feedback_mut(&mut self) -> Option<&mut Feedback> {
        match self {
            Verdict::Deny(_, f) => Some(f),
            Verdict::RequireApproval(r) => r.feedback.as_mut(),
            Verdict::Allow(_) | Verdict::DryRun(_) => None,
        }
    }

    /// The feedback a deny or an approval request carries.
    pub fn feedback(&self) -> Option<&Feedback> {
        match self {
            Verdict::Deny(_, f) => Some(f),
            Verdict::RequireApproval(r) => r.feedback.as_ref(),
            Verdict::Allow(_) | Verdict::DryRun(_) => None,
        }
    }

    /// The deciding rule's name.
    pub fn rule(mut self, name: &str) -> Self {
        self.decision_mut().rule = Some(name.into());
        self
    }

    /// The deciding rule's index in its list.
    pub fn rule_index(mut self, index: u32) -> Self {
        self.decision_mut().rule_index = Some(index);
        self
    }

    /// The action word recorded (e.g. [`Action::RateLimit`] for a deny by
    /// a rate limit).
    pub fn action(mut self, action: Action) -> Self {
        self.decision_mut().action = action;
        self
    }

    /// One line for the audit record: why this verdict.
    pub fn explain(mut self, explanation: impl Into<String>) -> Self {
        self.decision_mut().explanation = explanation.into();
        self
    }

    /// Masks `path` (argument-path grammar, `*` and `**` allowed) in the
    /// call's audit record. Checked by [`Verdict::check`]. Past the 64
    /// paths Helio takes, every value is masked (`**.*`) instead: more
    /// masking, never a malformed verdict.
    pub fn redact(mut self, path: &str) -> Self {
        let redact = &mut self.decision_mut().redact;
        if redact.len() == MAX_REDACT_PATHS || redact.first().is_some_and(|p| p == EVERYTHING) {
            *redact = vec![EVERYTHING.into()];
        } else {
            redact.push(path.into());
        }
        self
    }

    /// Asks to learn how the call ends ([`crate::Stage::observe`]).
    pub fn observe(mut self) -> Self {
        self.decision_mut().observe = true;
        self
    }

    /// What the agent could do instead (deny, or an approval's feedback).
    pub fn suggest(mut self, suggestion: &str) -> Self {
        if let Some(f) = self.feedback_mut() {
            f.suggestion = Some(suggestion.into());
        }
        self
    }

    /// Whether the same call may succeed later.
    pub fn retry_allowed(mut self, retry: bool) -> Self {
        if let Some(f) = self.feedback_mut() {
            f.retry_allowed = retry;
        }
        self
    }

    /// An extra field of the error's `data`.
    pub fn extra(mut self, key: &str, value: Value) -> Self {
        if let Some(f) = self.feedback_mut() {
            f.extra.insert(key.into(), value);
        }
        self
    }

    /// For an approval: the channel to notify first.
    pub fn channel(mut self, channel: &str) -> Self {
        if let Verdict::RequireApproval(r) = &mut self {
            r.channel = Some(channel.into());
        }
        self
    }

    /// For an approval: how long to wait.
    pub fn timeout_ms(mut self, timeout_ms: u64) -> Self {
        if let Verdict::RequireApproval(r) = &mut self {
            r.timeout_ms = Some(timeout_ms);
        }
        self
    }

    /// For an approval: what the agent is told if it is denied or expires.
    pub fn on_refusal(mut self, reason: &str, message: &str) -> Self {
        if let Verdict::RequireApproval(r) = &mut self {
            r.feedback = Some(feedback(reason, message));
        }
        self
    }

    /// Whether the host will accept this verdict's shape.
    pub fn check(&self) -> Result<(), String> {
        if let Some(f) = self.feedback() {
            f.check()?;
        }
        let redact = &self.decision().redact;
        if let Some(path) = redact.iter().find(|p| !helio_syntax::argpath::is_valid(p)) {
            return Err(format!("redact path \"{path}\" is not an argument path"));
        }
        if redact.len() > MAX_REDACT_PATHS {
            return Err(format!("at most {MAX_REDACT_PATHS} redact paths"));
        }
        Ok(())
    }
}

impl Feedback {
    /// Whether the host will accept this feedback's shape.
    pub fn check(&self) -> Result<(), String> {
        let word = !self.reason.is_empty()
            && self
                .reason
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !word {
            return Err(format!(
                "feedback reason \"{}\" is not a lower_snake_case word",
                self.reason
            ));
        }
        if self.message.trim().is_empty() {
            return Err("feedback message is empty".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_compose_and_check() {
        let v = Verdict::deny("pii_detected", "Blocked: a card number")
            .rule("no-cards")
            .explain("card number at $.card")
            .redact("card")
            .extra("field", Value::from("card"))
            .retry_allowed(true);
        assert!(v.check().is_ok());
        let Verdict::Deny(d, f) = &v else {
            unreachable!()
        };
        assert_eq!(
            (d.action, d.rule.as_deref()),
            (Action::Deny, Some("no-cards"))
        );
        assert!(f.retry_allowed && f.extra.contains_key("field"));
        let held = Verdict::require_approval()
            .channel("finance")
            .timeout_ms(60_000)
            .on_refusal("approval_denied", "Not approved");
        assert!(held.check().is_ok() && held.feedback().is_some());
        assert!(Verdict::allow().redact("a..b").check().is_err());
        let many = (0..70).fold(Verdict::allow(), |v, i| v.redact(&format!("a.{i}")));
        assert_eq!(many.decision().redact, ["**.*"]);
    }

    #[test]
    #[should_panic(expected = "lower_snake_case")]
    fn a_bad_reason_fails_a_debug_build() {
        let _ = Verdict::deny("PII Detected", "no");
    }
}
