//! The built-in stages, compiled from `plugins/` by `build.rs` and embedded.

/// The rule engine (`plugins/rules`).
pub const RULES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/helio_rules.wasm"));

/// The budgets stage (`plugins/budgets`): helio.yaml's top-level `budgets`.
pub const BUDGETS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/helio_budgets.wasm"));
