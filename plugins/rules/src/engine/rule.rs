//! One compiled rule and how it decides a call it matched.

use std::borrow::Cow;

use policy_match::SessionPolicy;

use super::conditions::Conditions;
use super::gates::Gates;
use super::limits::{RateLimit, SpendLimit};
use super::{CallView, Decision, State, Verdict};

/// A compiled rule.
#[derive(Debug)]
pub(crate) struct Rule {
    pub conditions: Conditions,
    pub label: Label,
    /// Evidence and dependency gates (always empty on deny rules: a deny
    /// needs no grounding).
    pub gates: Gates,
    pub then: Then,
}

/// What a rule does once its gates pass.
#[derive(Debug)]
pub(crate) enum Then {
    /// A verdict that depends only on the configuration.
    Verdict(Verdict),
    /// `action: rate_limit`.
    Rate(RateLimit),
    /// `action: spend_limit`.
    Spend(SpendLimit),
}

impl Rule {
    /// The verdict on a call this rule matched.
    pub fn decide<'a>(
        &'a self,
        call: &impl CallView,
        state: &mut impl State,
        session: &SessionPolicy,
    ) -> Cow<'a, Verdict> {
        if let Some(blocked) = self.gates.check(&self.label, call, &*state, session) {
            return Cow::Owned(blocked);
        }
        match &self.then {
            Then::Verdict(verdict) => Cow::Borrowed(verdict),
            Then::Rate(limit) => Cow::Owned(limit.enforce(&self.label, call, state, session)),
            Then::Spend(limit) => Cow::Owned(limit.enforce(&self.label, call, state, session)),
        }
    }
}

/// Who a rule is, for decisions, feedback and state keys.
#[derive(Debug, Clone, Default)]
pub(crate) struct Label {
    /// The rule's name; an empty name counts as none, as in the original
    /// (JavaScript falsiness).
    pub name: Option<String>,
    pub index: u32,
    /// The action as written (`allow`, `rate_limit`, …).
    pub action: &'static str,
    /// The rule's `feedback.message`, which replaces generated messages.
    pub feedback_message: Option<String>,
    /// The rule's `feedback.suggestion`, which replaces generated suggestions.
    pub feedback_suggestion: Option<String>,
}

impl Label {
    pub fn new(index: usize, name: Option<String>, action: &'static str) -> Label {
        Label {
            name: name.filter(|n| !n.is_empty()),
            index: u32::try_from(index).unwrap_or(u32::MAX),
            action,
            feedback_message: None,
            feedback_suggestion: None,
        }
    }

    /// The name, or `rules[i]`, for messages (`rule "<quoted>"`).
    pub fn quoted(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => format!("rules[{}]", self.index),
        }
    }

    /// `Matched "<name>" -> <action>` (or `Matched rules[i] -> …`).
    pub fn matched(&self) -> String {
        match &self.name {
            Some(n) => format!("Matched \"{n}\" -> {}", self.action),
            None => format!("Matched rules[{}] -> {}", self.index, self.action),
        }
    }

    /// The rule in state keys: its name, or `#<index>` when unnamed. Names
    /// are stable across edits of other rules; indexes are the fallback.
    pub fn state_id(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => format!("#{}", self.index),
        }
    }

    /// A decision by this rule.
    pub fn decision(&self, action: &str, explanation: String) -> Decision {
        Decision {
            action: action.to_owned(),
            rule: self.name.clone(),
            rule_index: Some(self.index),
            explanation,
        }
    }

    /// The rule's message, or `generated`.
    pub fn message(&self, generated: impl FnOnce() -> String) -> String {
        self.feedback_message.clone().unwrap_or_else(generated)
    }

    /// The rule's suggestion, or `generated`.
    pub fn suggestion(&self, generated: impl FnOnce() -> String) -> Option<String> {
        Some(self.feedback_suggestion.clone().unwrap_or_else(generated))
    }
}
