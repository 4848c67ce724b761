//! The built-in stages, compiled from `plugins/` by `build.rs` and embedded.

/// The rule engine (`plugins/rules`).
pub const RULES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/helio_rules.wasm"));

/// The budgets stage (`plugins/budgets`): helio.yaml's top-level `budgets`.
pub const BUDGETS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/helio_budgets.wasm"));

/// The approval router (`plugins/approval-router`): the `approval` blocks
/// of rules and budgets, unless helio.yaml names a router of its own.
pub const APPROVAL_ROUTER: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/helio_approval_router.wasm"));
