//! What Helio's built-in policy stages (`rules`, `budgets`) share, so both
//! match calls and read their configuration the same way:
//!
//! - the engine-side view of the WIT contract: [`CallView`] (the
//!   `tool-call` resource), [`State`] (the `state` interface) and the
//!   verdict records ([`Verdict`], [`Decision`], [`Feedback`], …);
//! - matching: tool [`Glob`]s, `input` conditions ([`InputCondition`]),
//!   and the [`ToolIndex`] that picks the rules or contributors a tool
//!   name can select without walking them all;
//! - configuration parsing with paths ([`Parser`]), including `tool` globs,
//!   `input` conditions, durations and the `session` block;
//! - small text helpers for feedback: JSON objects with exact decimals,
//!   ISO-8601 timestamps, decimal arithmetic, fingerprints.
//!
//! Nothing here depends on WebAssembly, so it is tested natively. The
//! stages run on the Rust SDK (`helio-plugin`): [`Builtin`] makes an engine
//! an SDK stage, whose call and state serve as [`CallView`] and [`State`].

#![deny(unsafe_code)]

mod amount;
mod call;
mod config;
mod glob;
mod input;
mod sdk;
pub use sdk::{to_sdk, Builtin, StageEngine};
mod state;
pub mod text;
mod tool_index;
mod verdict;

pub use amount::{Amount, AmountSource};
pub use call::{argument_at, spend_amount, Annotations, CallView, Value};
pub use config::{join, kind, present, stage_root, ConfigError, Parser, SessionPolicy};
pub use glob::Glob;
pub use input::{inputs_match, json_eq, Expected, InputCondition, Operators};
pub use state::{Completion, EvidenceStatus, KeyFamily, RateWindow, SpendWindow, State};
pub use tool_index::{Candidates, ToolIndex};
pub use verdict::{ApprovalRequest, Decision, Feedback, Verdict};

#[cfg(any(test, feature = "testing"))]
pub use call::JsonCall;
#[cfg(any(test, feature = "testing"))]
pub use state::MemoryState;
