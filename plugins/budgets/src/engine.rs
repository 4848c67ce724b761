//! The budgets engine, independent of WebAssembly: configuration parsing
//! ([`Engine::from_json`]) and evaluation ([`Engine::evaluate`]) over a
//! [`CallView`] and a [`State`].
//!
//! A budget is a named pot. Each of its contributors names calls (a tool
//! glob and optional `input` conditions) and the argument holding the
//! amount; the first contributor that matches a call supplies the amount,
//! and a call draws from every budget with a matching contributor.
//! Amounts are reserved in the host's ledger under
//! `budget:<name>:<fp>:<bucket>`; the host commits them if the call is
//! forwarded and releases them otherwise (including when a later stage
//! blocks it), so this stage never undoes a reservation itself.

mod budget;
mod config;
mod outcome;

#[cfg(test)]
mod tests;

use policy_match::{spend_amount, SessionPolicy};
pub use policy_match::{
    Annotations, ApprovalRequest, CallView, ConfigError, Decision, Feedback, SpendWindow, State,
    Value, Verdict,
};

use budget::{Budget, Charge};

/// A compiled budgets configuration.
#[derive(Debug)]
pub struct Engine {
    budgets: Vec<Budget>,
    session: SessionPolicy,
    /// Configuration the stage accepts but cannot honour as written, to log
    /// once at configure.
    warnings: Vec<String>,
}

impl Engine {
    /// Parses the stage configuration
    /// `{"session": {...}, "budgets": [<helio.yaml budgets>]}`. Every problem
    /// is reported, not just the first.
    pub fn from_json(config_json: &str) -> Result<Engine, Vec<ConfigError>> {
        config::compile(config_json)
    }

    /// Charges the call to every budget it contributes to, all or nothing
    /// as far as the verdict goes: any invalid amount or breach of a
    /// deny budget blocks the call (and the host releases whatever was
    /// reserved), breaches of approval budgets only hold it for approval.
    pub fn evaluate(&self, call: &impl CallView, state: &mut impl State) -> Verdict {
        let applicable: Vec<(&Budget, &str)> = self
            .budgets
            .iter()
            .filter_map(|budget| Some((budget, budget.field_for(call)?)))
            .collect();
        if applicable.is_empty() {
            return outcome::no_budget_applies();
        }
        // Every bucket is resolved before anything is reserved, so a call
        // blocked for want of a session touches no ledger.
        let mut keyed = Vec::with_capacity(applicable.len());
        for (budget, field) in applicable {
            let Some(bucket) = budget.bucket(call.session(), &self.session) else {
                return outcome::session_unresolved(budget, &self.session);
            };
            keyed.push((budget, field, bucket));
        }
        let charges: Vec<Charge> = keyed
            .into_iter()
            .map(|(budget, field, bucket)| {
                budget.charge(state, &bucket, field, spend_amount(call, field))
            })
            .collect();
        outcome::verdict(&charges, state.now_ms())
    }

    /// Number of budgets.
    pub fn budget_count(&self) -> usize {
        self.budgets.len()
    }

    /// Warnings about the configuration, to log once after `configure`.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

impl policy_match::StageEngine for Engine {
    fn from_json(config_json: &str) -> Result<Self, Vec<ConfigError>> {
        Engine::from_json(config_json)
    }

    fn warnings(&self) -> &[String] {
        Engine::warnings(self)
    }

    fn decide(&self, call: &impl CallView, state: &mut impl State) -> (Verdict, Option<String>) {
        (self.evaluate(call, state), None)
    }
}
