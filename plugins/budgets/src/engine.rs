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
//!
//! Contributors of all budgets are indexed by their tool glob at configure
//! ([`policy_match::ToolIndex`]), so a call is tested against the
//! contributors its tool can select, not against every budget's.

mod budget;
mod config;
mod outcome;

#[cfg(test)]
mod tests;

use policy_match::{Amount, AmountSource, SessionPolicy, ToolIndex};
pub use policy_match::{
    Annotations, ApprovalRequest, CallView, ConfigError, Decision, Feedback, KeyFamily,
    SpendWindow, State, Value, Verdict,
};

use budget::{Budget, BudgetKey, Charge, Window};

/// `idle_ttl` when a per-session budget does not set it (the original's
/// 24 h); also how long a pot of a budget no longer configured as it was
/// (removed, or its limit, currency, window or key changed) is kept idle.
pub const DEFAULT_IDLE_TTL_MS: u64 = 24 * 60 * 60 * 1000;

/// A compiled budgets configuration.
#[derive(Debug)]
pub struct Engine {
    budgets: Vec<Budget>,
    /// Every budget's contributors, budget by budget and in order within
    /// each, by the tool names their `match.tool` selects.
    by_tool: ToolIndex,
    /// The (budget, contributor) each item of `by_tool` is.
    contributors: Vec<(usize, usize)>,
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
        self.charge_all(self.applicable(call), call, state)
    }

    /// [`Engine::evaluate`] by testing every budget's contributors: what the
    /// index must agree with.
    #[cfg(test)]
    fn evaluate_by_walk(&self, call: &impl CallView, state: &mut impl State) -> Verdict {
        self.charge_all(self.applicable_by_walk(call), call, state)
    }

    /// The budgets the call draws from, in order, each with where its first
    /// matching contributor reads the amount.
    fn applicable(&self, call: &impl CallView) -> Vec<(&Budget, &AmountSource)> {
        let mut applicable: Vec<(&Budget, &AmountSource)> = Vec::new();
        let mut last_drawn = None;
        for item in self.by_tool.candidates(call.tool()) {
            let (b, c) = self.contributors[item];
            // Candidates come budget by budget; a budget's first match
            // supplies the amount, its later contributors are not asked.
            if last_drawn == Some(b) {
                continue;
            }
            let budget = &self.budgets[b];
            let contributor = &budget.contributors[c];
            if contributor.match_beyond_tool(call) {
                applicable.push((budget, &contributor.source));
                last_drawn = Some(b);
            }
        }
        applicable
    }

    #[cfg(test)]
    fn applicable_by_walk(&self, call: &impl CallView) -> Vec<(&Budget, &AmountSource)> {
        self.budgets
            .iter()
            .filter_map(|budget| Some((budget, budget.source_for(call)?)))
            .collect()
    }

    /// Charges the call to the budgets it draws from.
    fn charge_all(
        &self,
        applicable: Vec<(&Budget, &AmountSource)>,
        call: &impl CallView,
        state: &mut impl State,
    ) -> Verdict {
        if applicable.is_empty() {
            return outcome::no_budget_applies();
        }
        // Every bucket is resolved before anything is reserved, so a call
        // blocked for want of a session touches no ledger.
        let mut keyed = Vec::with_capacity(applicable.len());
        for (budget, source) in applicable {
            let Some(bucket) = budget.bucket(call, &self.session) else {
                return outcome::session_unresolved(budget, &self.session);
            };
            keyed.push((budget, source, bucket));
        }
        let charges: Vec<Charge> = keyed
            .into_iter()
            .filter_map(|(budget, source, bucket)| {
                let (amount, why) = match source.read(call, &budget.currency) {
                    // An extractor that finds no spend: nothing to draw.
                    Amount::Nothing => return None,
                    Amount::Spends(amount) => (Some(amount), None),
                    Amount::Invalid(why) => (None, why),
                };
                Some(budget.charge(state, &bucket, source, amount, why))
            })
            .collect();
        if charges.is_empty() {
            return outcome::no_budget_applies();
        }
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

    /// Each budget's pots, for the host's views; per-session pots that
    /// never replenish are collected after the budget's `idle_ttl`. Pots of
    /// budgets no longer configured as they were fall to the catch-all
    /// `budget:` family, listed as retired and collected after a day idle.
    pub fn key_families(&self) -> Vec<KeyFamily> {
        let retired = KeyFamily {
            prefix: "budget:".into(),
            kind: "retired-budget".into(),
            name: String::new(),
            idle_ttl_ms: Some(DEFAULT_IDLE_TTL_MS),
        };
        let current = self.budgets.iter().map(|budget| {
            let per_session_pot =
                budget.window == Window::Session && budget.key == BudgetKey::Session;
            KeyFamily {
                prefix: budget.prefix.clone(),
                kind: "budget".into(),
                name: budget.name.clone(),
                idle_ttl_ms: per_session_pot
                    .then(|| budget.idle_ttl_ms.unwrap_or(DEFAULT_IDLE_TTL_MS)),
            }
        });
        std::iter::once(retired).chain(current).collect()
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

    fn key_families(&self) -> Vec<KeyFamily> {
        Engine::key_families(self)
    }
}
