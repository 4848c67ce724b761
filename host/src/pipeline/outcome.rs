//! What the chain's verdict means for a call, typed: the governance core
//! acts on it, the audit records it, and each door renders it for its
//! wire. The JSON an agent reads (`data` of a blocked call, a dry run's
//! report) is built from these types in one place each.

use serde_json::{json, Map, Value};

use crate::plugins::{Check, Decision, Feedback, Verdict};
use crate::state::Decimal;

/// What the chain says should happen to a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Forward it; the decision that let it through (none when no stage
    /// ran) is kept for the audit.
    Forward(Option<Decision>),
    Block(Denial),
    /// Answer with a simulated result; do not forward.
    DryRun(Simulation),
    /// Humans must approve it first: one ticket per stage that asked, in
    /// chain order (never empty).
    RequireApproval(Vec<Approval>),
}

/// A blocked call: why, which rule, and what the agent can do about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Denial {
    /// The machine-readable reason (`policy_denied`, `rate_limited`, …).
    pub reason: String,
    /// What the agent is told.
    pub message: String,
    pub rule: Option<String>,
    pub rule_index: Option<u32>,
    /// The action that applied (`deny`, `rate_limit`, …).
    pub action: String,
    pub suggestion: Option<String>,
    pub retry_allowed: bool,
    /// Further `data` fields (missing evidence, the failed stage, …); never
    /// one of the fields above.
    pub extra: Map<String, Value>,
}

/// A call that was simulated (dry run): nothing was forwarded and no state
/// was kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Simulation {
    /// What the agent gets: what would have happened.
    pub report: Value,
    /// The rule that would have applied.
    pub rule: Option<String>,
    pub rule_index: Option<u32>,
}

/// A call a stage wants a human to approve.
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    pub decision: Decision,
    /// The approval channel the stage asked for, if any.
    pub channel: Option<String>,
    pub timeout_ms: Option<u64>,
    pub feedback: Option<Feedback>,
    /// The spend the asking stage was refused: approving the call
    /// authorises it, charged as approved overage.
    pub overage: Vec<Overage>,
}

/// A spend reservation a stage was refused (its ledger was full) before it
/// asked for an approval.
#[derive(Debug, Clone, PartialEq)]
pub struct Overage {
    /// The scoped ledger key (`<stage>/<key>`).
    pub key: String,
    pub amount: Decimal,
    pub window_ms: Option<u64>,
}

impl Approval {
    /// What a `require-approval` verdict asks for.
    pub fn of_verdict(verdict: &Verdict) -> Option<Self> {
        let Verdict::RequireApproval {
            decision,
            channel,
            timeout_ms,
            feedback,
        } = verdict
        else {
            return None;
        };
        Some(Self {
            decision: decision.clone(),
            channel: channel.clone(),
            timeout_ms: *timeout_ms,
            feedback: feedback.clone(),
            overage: Vec::new(),
        })
    }

    /// With the spend reservations the stage was refused while deciding
    /// (`checks`: its state operations).
    pub fn with_overage(mut self, checks: &[Check]) -> Self {
        self.overage = checks
            .iter()
            .filter_map(|check| match check {
                Check::Spend {
                    key,
                    amount,
                    window_ms,
                    window,
                    ..
                } if !window.allowed => Some(Overage {
                    key: key.clone(),
                    amount: *amount,
                    window_ms: *window_ms,
                }),
                Check::Spend { .. }
                | Check::Rate { .. }
                | Check::Evidence { .. }
                | Check::Completion { .. } => None,
            })
            .collect();
        self
    }

    /// The budgets a budget ticket is about (`budgets[]` of its feedback),
    /// in configuration order; empty for other approvals.
    pub fn breached_budgets(&self) -> &[Value] {
        match self.feedback.as_ref().map(|f| f.extra.get("budgets")) {
            Some(Some(Value::Array(budgets))) if self.is_budget() => budgets,
            _ => &[],
        }
    }

    /// Whether a budget asked (its ticket lists the breached budgets and
    /// fails closed on a timeout).
    pub fn is_budget(&self) -> bool {
        self.feedback
            .as_ref()
            .is_some_and(|f| f.reason == "budget_exceeded")
    }
}

impl Denial {
    /// The block a stage's verdict describes.
    pub fn of_verdict(decision: &Decision, feedback: &Feedback) -> Self {
        Self {
            reason: feedback.reason.clone(),
            message: feedback.message.clone(),
            rule: decision.rule.clone(),
            rule_index: decision.rule_index,
            action: decision.action.clone(),
            suggestion: feedback.suggestion.clone(),
            retry_allowed: feedback.retry_allowed,
            extra: feedback.extra.clone(),
        }
    }

    /// A block Helio decides itself (no rule applied): `action: deny`.
    fn by_helio(reason: &str, message: String, suggestion: String, retry_allowed: bool) -> Self {
        Self {
            reason: reason.into(),
            message,
            rule: None,
            rule_index: None,
            action: "deny".into(),
            suggestion: Some(suggestion),
            retry_allowed,
            extra: Map::new(),
        }
    }

    fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.into(), value);
        self
    }

    /// The `data` of the JSON-RPC error: the fields agents are coded
    /// against, then the extra fields.
    pub fn data(&self) -> Value {
        let mut data = Map::new();
        data.insert("blocked".into(), Value::Bool(true));
        data.insert("reason".into(), self.reason.clone().into());
        data.insert("rule".into(), self.rule.clone().into());
        data.insert("rule_index".into(), self.rule_index.into());
        data.insert("action".into(), self.action.clone().into());
        data.insert("suggestion".into(), self.suggestion.clone().into());
        data.insert("retry_allowed".into(), self.retry_allowed.into());
        for (key, value) in &self.extra {
            data.insert(key.clone(), value.clone());
        }
        Value::Object(data)
    }

    /// A policy stage failed (trap, timeout, memory, malformed verdict); `how` says how in words fit for the agent (never a
    /// trap's text).
    pub fn plugin_error(plugin: &str, how: impl std::fmt::Display) -> Self {
        Self::by_helio(
            "plugin_error",
            format!("Blocked: policy stage \"{plugin}\" failed ({how}), so the call is refused rather than let through unchecked"),
            "The call itself may be fine: a policy stage failed while checking it. Retry later; an operator has been alerted in Helio's log.".into(),
            true,
        )
        .with("plugin", plugin.into())
    }

    /// The governance state could not be read or written: refused rather
    /// than let through uncounted.
    pub fn state_unavailable() -> Self {
        Self::by_helio(
            "state_unavailable",
            "Blocked: Helio could not record this call's rate or spend in its state store, so the call is refused rather than let through uncounted".into(),
            "The call itself may be fine: retry later; an operator has been alerted in Helio's log.".into(),
            true,
        )
    }

    /// A call that needs an approval where nobody can give one (no
    /// operator API to resolve tickets): refused rather than let through.
    pub fn approval_unavailable() -> Self {
        Self::by_helio(
            "approval_unavailable",
            "Blocked: this call needs a human approval and this Helio has no operator API to collect one, so it is refused rather than let through".into(),
            "An operator must enable the dashboard (with dashboard.api_secret) to approve such calls.".into(),
            false,
        )
    }

    /// A budget's ticket that ended without approval: the budget's own
    /// block (`budget_exceeded` with every breached budget), plus how it
    /// ended.
    fn budget_unapproved(approval: &Approval, extra: Map<String, Value>) -> Option<Self> {
        let feedback = approval
            .feedback
            .as_ref()
            .filter(|_| approval.is_budget())?;
        let mut denial = Self::of_verdict(&approval.decision, feedback);
        denial.action = "budget".into();
        denial.extra.extend(extra);
        Some(denial)
    }

    /// A held call an operator denied; their reason, if they gave one,
    /// is the agent's feedback.
    pub fn approval_denied(approval: &Approval, by: Option<&str>, why: Option<&str>) -> Self {
        let ended = Map::from_iter([
            ("denied_by".to_owned(), Value::from(by)),
            ("denial_reason".to_owned(), Value::from(why)),
        ]);
        if let Some(mut denial) = Self::budget_unapproved(approval, ended) {
            // Denied by a human: the same call will not pass on a retry.
            denial.retry_allowed = false;
            denial.message = match why {
                Some(why) => format!("{} (an operator denied the overage: {why})", denial.message),
                None => format!("{} (an operator denied the overage)", denial.message),
            };
            return denial;
        }
        let message = match why {
            Some(why) => format!("Blocked: an operator denied this call: {why}"),
            None => "Blocked: an operator denied this call".into(),
        };
        Self {
            reason: "approval_denied".into(),
            message,
            rule: approval.decision.rule.clone(),
            rule_index: approval.decision.rule_index,
            action: approval.decision.action.clone(),
            suggestion: why.map(str::to_owned),
            retry_allowed: false,
            extra: Map::new(),
        }
    }

    /// A held call nobody decided on in time, where the timeout denies
    /// (`approval.default_on_timeout: deny`).
    pub fn approval_timeout(approval: &Approval, waited_ms: u64) -> Self {
        let ended = Map::from_iter([("timeout_seconds".to_owned(), Value::from(waited_ms / 1000))]);
        if let Some(mut denial) = Self::budget_unapproved(approval, ended) {
            denial.message = format!(
                "{} (no operator approved the overage within {} s)",
                denial.message,
                waited_ms / 1000
            );
            return denial;
        }
        Self {
            reason: "approval_timeout".into(),
            message: format!(
                "Blocked: this call needed a human approval and none came within {} s",
                waited_ms / 1000
            ),
            rule: approval.decision.rule.clone(),
            rule_index: approval.decision.rule_index,
            action: approval.decision.action.clone(),
            suggestion: Some("Ask an operator to watch for the approval, then retry.".into()),
            retry_allowed: true,
            extra: Map::new(),
        }
    }

    /// A held call whose client went away before it was resolved: not
    /// forwarded (nobody would read the answer).
    pub fn client_disconnected(approval: &Approval) -> Self {
        Self {
            reason: "client_disconnected".into(),
            message: "Blocked: the client went away while this call waited for an approval, so it was not forwarded".into(),
            rule: approval.decision.rule.clone(),
            rule_index: approval.decision.rule_index,
            action: approval.decision.action.clone(),
            suggestion: Some("Retry the call.".into()),
            retry_allowed: true,
            extra: Map::new(),
        }
    }

    /// A held call whose approval can no longer come (Helio is shutting
    /// down): not forwarded.
    pub fn shutdown_cancelled(approval: &Approval) -> Self {
        Self {
            reason: "shutdown_cancelled".into(),
            message: "Blocked: Helio shut down while this call waited for an approval, so it was not forwarded".into(),
            rule: approval.decision.rule.clone(),
            rule_index: approval.decision.rule_index,
            action: approval.decision.action.clone(),
            suggestion: Some("Retry the call once Helio is back.".into()),
            retry_allowed: true,
            extra: Map::new(),
        }
    }
}

impl Simulation {
    /// What would have happened, from the verdict that would have applied.
    pub fn of_verdict(verdict: &Verdict) -> Self {
        let decision = verdict.decision();
        let reason = match verdict {
            Verdict::Deny(_, feedback) => feedback.reason.as_str(),
            Verdict::Allow(_) | Verdict::DryRun(_) | Verdict::RequireApproval { .. } => "",
        };
        let mut report = json!({
            "dry_run": true,
            // A stage may simulate itself, keeping the action that would have applied.
            "would_forward": match verdict {
                Verdict::Allow(_) => true,
                Verdict::DryRun(d) => matches!(d.action.as_str(), "allow" | "rate_limit" | "spend_limit"),
                Verdict::Deny(..) | Verdict::RequireApproval { .. } => false,
            },
            "policy_decision": decision.action,
            "matched_rule": decision.rule,
            "evidence_satisfied": !matches!(reason, "evidence_missing" | "evidence_expired" | "dependency_missing"),
            "limits_ok": !matches!(reason, "rate_limited" | "spend_limited" | "budget_exceeded"),
        });
        if !reason.is_empty() {
            report["reason"] = reason.into();
        }
        if reason == "session_unresolved" {
            report["session_unresolved"] = true.into();
        }
        Self {
            report,
            rule: decision.rule.clone(),
            rule_index: decision.rule_index,
        }
    }
}
