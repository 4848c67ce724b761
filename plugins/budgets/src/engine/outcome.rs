//! The verdict from a call's charges, and its feedback.

use policy_match::text::{self, JsonObject};
use policy_match::SessionPolicy;

use super::budget::{Budget, Charge, OnExceed, Outcome, Window};
use super::{ApprovalRequest, Decision, Feedback, Verdict};

/// The decision of this stage (no rule decided).
fn decision(action: &str, explanation: String) -> Decision {
    Decision {
        action: action.to_owned(),
        rule: None,
        rule_index: None,
        explanation,
    }
}

pub(crate) fn no_budget_applies() -> Verdict {
    Verdict::Allow(decision("allow", "no budget applies".into()))
}

/// A per-session budget applies to a call without a session identity, and
/// `on_unresolved` is `deny`.
pub(crate) fn session_unresolved(budget: &Budget, session: &SessionPolicy) -> Verdict {
    let extra = JsonObject::new()
        .string("control", "budget")
        .string("tried", &session.tried)
        .finish();
    Verdict::Deny(
        decision(
            "budget",
            format!("Budget \"{}\" is per session and no session identity resolved", budget.name),
        ),
        Feedback {
            reason: "session_unresolved".into(),
            message: format!(
                "Blocked: budget \"{}\" is kept per session, and no session identity was resolved (tried: {})",
                budget.name, session.tried
            ),
            suggestion: Some(SessionPolicy::SUGGESTION.into()),
            retry_allowed: true,
            extra_json: Some(extra),
        },
    )
}

/// Allow when every charge fits; deny when any amount is invalid or a deny
/// budget is exceeded; otherwise (only approval budgets exceeded) hold for
/// approval.
pub(crate) fn verdict(charges: &[Charge], now_ms: u64) -> Verdict {
    let breached: Vec<&Charge> = charges
        .iter()
        .filter(|c| c.outcome != Outcome::Charged)
        .collect();
    let Some(first) = breached.first() else {
        return Verdict::Allow(decision("allow", charged(charges)));
    };
    // A budget on a duration window refills; a session pot never does.
    let retry_allowed = breached
        .iter()
        .all(|c| matches!(c.budget.window, Window::Sliding { .. }));
    let feedback = Feedback {
        reason: "budget_exceeded".into(),
        message: message(first, breached.len()),
        suggestion: Some(suggestion(first, now_ms)),
        retry_allowed,
        extra_json: Some(
            JsonObject::new()
                .objects("budgets", breached.iter().map(|c| entry(c)).collect())
                .finish(),
        ),
    };
    let explanation = explain(&breached);
    let blocks = breached
        .iter()
        .any(|c| c.outcome == Outcome::Invalid || c.budget.on_exceed == OnExceed::Deny);
    if blocks {
        return Verdict::Deny(decision("budget", explanation), feedback);
    }
    // Routed as the first breached budget (configuration order) says; one
    // without an `approval` block takes the host's default route.
    let approval = first.budget.approval.clone().unwrap_or_default();
    Verdict::RequireApproval(ApprovalRequest {
        decision: decision(
            "require_approval",
            format!("{explanation}; held for approval"),
        ),
        channel: approval.channel,
        timeout_ms: approval.timeout_ms,
        feedback: Some(feedback),
    })
}

/// `Charged budget "a" (global): 42.5 of 100 USD spent; budget "b" (…): …`.
fn charged(charges: &[Charge]) -> String {
    let parts: Vec<String> = charges
        .iter()
        .map(|c| {
            format!(
                "budget \"{}\" ({}): {} of {} {} spent",
                c.budget.name,
                c.bucket,
                c.spent.as_deref().unwrap_or("?"),
                c.budget.limit,
                c.budget.currency
            )
        })
        .collect();
    format!("Charged {}", parts.join("; "))
}

fn explain(breached: &[&Charge]) -> String {
    let parts: Vec<String> = breached
        .iter()
        .map(|c| match c.outcome {
            Outcome::Invalid => {
                let mut part = format!(
                    "budget \"{}\": invalid amount for {}",
                    c.budget.name,
                    c.source.describe()
                );
                if let Some(error) = &c.error {
                    part.push_str(&format!(" ({error})"));
                }
                part
            }
            _ => format!(
                "budget \"{}\" ({}) exceeded: {} of {} {} spent, this call needs {}",
                c.budget.name,
                c.bucket,
                c.spent.as_deref().unwrap_or("?"),
                c.budget.limit,
                c.budget.currency,
                c.amount.as_deref().unwrap_or("?")
            ),
        })
        .collect();
    let mut text = parts.join("; ");
    if let Some(first) = text.get(..1) {
        text.replace_range(..1, &first.to_ascii_uppercase());
    }
    text
}

/// What is left in the pot, exactly; none if the spend is unknown.
fn remaining(charge: &Charge) -> Option<String> {
    let spent = charge.spent.as_deref()?;
    text::decimal_saturating_sub(&charge.budget.limit, spent)
}

/// Names the first breached budget and what is left in it.
fn message(first: &Charge, breaches: usize) -> String {
    let budget = first.budget;
    let mut message = match first.outcome {
        Outcome::Invalid => format!(
            "Budget \"{}\" denied: invalid amount for {}",
            budget.name,
            first.source.describe()
        ),
        _ => format!(
            "Budget \"{}\" exceeded: {} {} left of {} {} ({} window), this call needs {}",
            budget.name,
            remaining(first).as_deref().unwrap_or("?"),
            budget.currency,
            budget.limit,
            budget.currency,
            budget.window.text(),
            first.amount.as_deref().unwrap_or("?")
        ),
    };
    if breaches > 1 {
        let others = breaches - 1;
        let noun = if others == 1 { "budget" } else { "budgets" };
        message.push_str(&format!(" (and {others} more {noun}, listed in budgets)"));
    }
    message
}

fn suggestion(first: &Charge, now_ms: u64) -> String {
    let budget = first.budget;
    if first.outcome == Outcome::Invalid {
        return first.source.invalid_suggestion();
    }
    let left = remaining(first).unwrap_or_else(|| "0".into());
    match (&budget.window, first.reset_at_ms) {
        (Window::Session, _) => format!(
            "At most {left} {} can be spent in this session; its budget does not replenish. Reduce the amount or ask an operator.",
            budget.currency
        ),
        (Window::Sliding { .. }, Some(at)) => format!(
            "At most {left} {} can be spent now: reduce the amount, or wait {}s (until {}) for earlier spend to leave the window.",
            budget.currency,
            text::seconds_until(now_ms, at),
            text::iso_utc(at)
        ),
        (Window::Sliding { .. }, None) => format!(
            "At most {left} {} can be spent now: reduce the amount.",
            budget.currency
        ),
    }
}

/// One breached budget in `budgets[]`.
fn entry(charge: &Charge) -> JsonObject {
    let budget = charge.budget;
    let mut entry = JsonObject::new()
        .string("name", &budget.name)
        .decimal("limit", &budget.limit)
        .opt_decimal("spent", charge.spent.as_deref())
        .opt_decimal("remaining", remaining(charge).as_deref())
        .opt_decimal("attempted_amount", charge.amount.as_deref())
        .string("currency", &budget.currency)
        .string("window", budget.window.text())
        .string("on_exceed", budget.on_exceed.as_str())
        .opt_string("reset_at", charge.reset_at_ms.map(text::iso_utc).as_deref());
    if charge.outcome == Outcome::Invalid {
        entry = entry.string("reason", "invalid_amount");
    }
    entry
}
