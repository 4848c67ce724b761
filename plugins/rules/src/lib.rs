//! Helio's built-in rules stage: `policies.rules`, `default`,
//! `flag_destructive`, evidence and dependency gates, and rate and spend
//! limits from helio.yaml, as a component (world `observing-policy-stage`).
//!
//! The logic lives in [`engine`], which knows nothing of WebAssembly and is
//! unit-tested natively; the Rust SDK (`helio-plugin`) exports it as a
//! `helio:governance@0.2.0` stage.

#![deny(unsafe_code)]

pub mod engine;

helio_plugin::export_stage!(policy_match::Builtin<engine::Engine>);
