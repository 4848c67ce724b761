//! Native, table-driven tests of the engine. [`Call`] stands in for the
//! host's `tool-call` resource and [`MemoryState`] for its `state`
//! interface.

mod config_errors;
mod gates;
mod index;
mod limits;
mod matching;
mod verdicts;

use serde_json::{json, Value as Json};

pub(super) use policy_match::{JsonCall as Call, MemoryState};

use super::{Decision, Engine, Verdict};

/// The clock every test state starts at: 2026-11-23T00:00:00.000Z.
pub(super) const NOW: u64 = 1_795_392_000_000;

/// Compiles `policies` (with no environment), panicking on config errors.
pub(super) fn engine(policies: Json) -> Engine {
    engine_in(None, policies)
}

pub(super) fn engine_in(environment: Option<&str>, policies: Json) -> Engine {
    compile(json!({ "environment": environment, "policies": policies }))
}

/// Compiles a whole stage configuration, panicking on config errors.
pub(super) fn compile(config: Json) -> Engine {
    Engine::from_json(&config.to_string())
        .unwrap_or_else(|errors| panic!("config rejected: {errors:?}\n{config:#}"))
}

/// The verdict for `call`, against an empty state.
pub(super) fn decide(engine: &Engine, call: &Call) -> Verdict {
    decide_in(engine, call, &mut MemoryState::at(NOW))
}

/// The verdict for `call` against `state`.
pub(super) fn decide_in(engine: &Engine, call: &Call, state: &mut MemoryState) -> Verdict {
    engine.evaluate(call, state).verdict.into_owned()
}

/// The index of the rule that decided, if any.
pub(super) fn matched(engine: &Engine, call: &Call) -> Option<u32> {
    decide(engine, call).decision().rule_index
}

pub(super) fn decision(
    action: &str,
    rule: Option<&str>,
    index: Option<u32>,
    explanation: &str,
) -> Decision {
    Decision {
        action: action.into(),
        rule: rule.map(Into::into),
        rule_index: index,
        explanation: explanation.into(),
    }
}

/// The extra-json of a deny, parsed.
pub(super) fn extra(verdict: &Verdict) -> Json {
    let text = verdict
        .feedback()
        .and_then(|f| f.extra_json.as_deref())
        .unwrap_or_else(|| panic!("no extra-json in {verdict:?}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("extra-json {text:?}: {e}"))
}
