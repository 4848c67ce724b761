//! Helio's built-in budgets stage: helio.yaml's top-level `budgets`, named
//! spend pots that calls to any contributing tool draw from, as a
//! component (world `observing-policy-stage`).
//!
//! The logic lives in [`engine`], which knows nothing of WebAssembly and is
//! unit-tested natively; the Rust SDK (`helio-plugin`) exports it as a
//! `helio:governance@0.2.0` stage.

#![deny(unsafe_code)]

pub mod engine;

helio_plugin::export_stage!(policy_match::Builtin<engine::Engine>);
