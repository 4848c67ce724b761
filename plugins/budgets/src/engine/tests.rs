//! Native tests of the budgets engine, with [`Call`] standing in for the
//! host's `tool-call` and [`MemoryState`] for its `state` interface.

mod config_errors;
mod evaluate;
mod index;

use serde_json::{json, Value as Json};

pub(super) use policy_match::{JsonCall as Call, MemoryState};

use super::{Engine, Verdict};

/// The clock every test state starts at: 2026-11-23T00:00:00.000Z.
pub(super) const NOW: u64 = 1_795_392_000_000;

/// Compiles a whole stage configuration, panicking on config errors.
pub(super) fn compile(config: Json) -> Engine {
    Engine::from_json(&config.to_string())
        .unwrap_or_else(|errors| panic!("config rejected: {errors:?}\n{config:#}"))
}

/// Compiles `budgets` with no session block.
pub(super) fn engine(budgets: Json) -> Engine {
    compile(json!({ "budgets": budgets }))
}

/// The extra-json of a deny or approval request, parsed.
pub(super) fn extra(verdict: &Verdict) -> Json {
    let text = verdict
        .feedback()
        .and_then(|f| f.extra_json.as_deref())
        .unwrap_or_else(|| panic!("no extra-json in {verdict:?}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("extra-json {text:?}: {e}"))
}
