//! Write a Helio policy stage in Rust: implement [`Stage`], export it with
//! [`export_stage!`], build for `wasm32-wasip2`, and name the `.wasm` in
//! helio.yaml's `plugins`.
//!
//! ```
//! use helio_plugin::{Call, ConfigError, Stage, StageError, State, Verdict};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Config {
//!     /// Argument names that must never carry an e-mail address.
//!     fields: Vec<String>,
//! }
//!
//! struct NoEmails(Config);
//!
//! impl Stage for NoEmails {
//!     type Config = Config;
//!
//!     fn new(config: Config) -> Result<Self, Vec<ConfigError>> {
//!         Ok(NoEmails(config))
//!     }
//!
//!     fn evaluate(&self, call: &Call, _state: &mut State) -> Result<Verdict, StageError> {
//!         for field in &self.0.fields {
//!             for (at, value) in call.arguments_at(&format!("**.{field}")) {
//!                 if value.as_str().is_some_and(|text| text.contains('@')) {
//!                     return Ok(Verdict::deny("pii_detected", "Blocked: an e-mail address")
//!                         .explain(format!("e-mail address at {at}"))
//!                         .redact(&at));
//!                 }
//!             }
//!         }
//!         Ok(Verdict::allow())
//!     }
//! }
//!
//! helio_plugin::export_stage!(NoEmails);
//!
//! // A native unit test: no WebAssembly, no Helio.
//! let stage = NoEmails::configure(r#"{"fields": ["to"]}"#).unwrap();
//! let mock = helio_plugin::MockCall::new("send")
//!     .arguments(serde_json::json!({"msg": {"to": "a@example.com"}}));
//! let verdict = stage.evaluate(&Call::mock(&mock), &mut State::memory(0)).unwrap();
//! assert_eq!(verdict.feedback().unwrap().reason, "pii_detected");
//! assert!(NoEmails::configure(r#"{"feilds": []}"#).is_err());
//! ```
//!
//! What the SDK does for you: the configuration is read into your
//! `Deserialize` type, and every unknown key or wrong type becomes a
//! configuration error with its path (reported by `helio validate`); the
//! stage instance is kept for you (no statics); a panic is written to
//! Helio's log with its message before the stage traps; calls and state
//! work natively in tests ([`MockCall`], [`State::memory`]); verdict
//! builders check the shape Helio requires.

#![deny(unsafe_code)]

mod call;
mod config;
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod host;
mod state;
mod verdict;

pub use call::{Annotations, Call, Era, MockCall, Spend, Value};
pub use config::{parse as parse_config, ConfigError};
pub use state::{Completion, EvidenceStatus, KeyFamily, RateWindow, SpendWindow, State};
pub use verdict::{Action, ApprovalRequest, Decision, Feedback, StageError, Verdict};

pub use serde;
pub use serde_json;

/// The contract version this SDK builds stages against.
pub const CONTRACT: &str = "helio:governance@0.2.0";

/// A policy stage.
pub trait Stage: Sized + 'static {
    /// The stage's configuration (helio.yaml's `config:` block), usually a
    /// `#[derive(Deserialize)]` struct.
    type Config: serde::de::DeserializeOwned;

    /// Builds the stage from its configuration; errors reject it.
    fn new(config: Self::Config) -> Result<Self, Vec<ConfigError>>;

    /// Decides on one call. `Err` blocks the call (`plugin_error`) and
    /// tells the operator why; a panic does the same and also discards the
    /// instance.
    fn evaluate(&self, call: &Call<'_>, state: &mut State) -> Result<Verdict, StageError>;

    /// The families of state keys this configuration uses (see
    /// [`KeyFamily`]); none by default.
    fn key_families(&self) -> Vec<KeyFamily> {
        Vec::new()
    }

    /// How a call whose verdict asked ([`Verdict::observe`]) ended: after
    /// the answer, off the call's path. Nothing by default.
    fn observe(&self, _call: &Call<'_>, _outcome: Outcome, _state: &mut State) {}

    /// Reads `config_json` and builds the stage: what Helio's `configure`
    /// runs, and what a test calls.
    fn configure(config_json: &str) -> Result<Self, Vec<ConfigError>> {
        Self::new(parse_config(config_json)?)
    }
}

/// How an observed call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub ending: Ending,
    /// From forwarding the call to its answer.
    pub took_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// A result that is not an error.
    Succeeded,
    /// A result with `isError: true`.
    ToolError,
    /// A JSON-RPC error.
    ProtocolError,
    /// No answer (unreachable, timed out, client gone).
    NoAnswer,
}

/// Writes to Helio's log, tagged with the stage's name (stderr in a native
/// test).
pub mod log {
    /// Severity.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Level {
        Debug,
        Info,
        Warn,
        Error,
    }

    pub fn write(level: Level, message: &str) {
        #[cfg(target_arch = "wasm32")]
        crate::host::log(level, message);
        #[cfg(not(target_arch = "wasm32"))]
        eprintln!("[{level:?}] {message}");
    }

    pub fn debug(message: &str) {
        write(Level::Debug, message)
    }

    pub fn info(message: &str) {
        write(Level::Info, message)
    }

    pub fn warn(message: &str) {
        write(Level::Warn, message)
    }

    pub fn error(message: &str) {
        write(Level::Error, message)
    }
}

/// Exports a [`Stage`] as the component's `helio:governance@0.2.0` stage
/// (world `observing-policy-stage`). Once per component; natively it only
/// checks that the type is a stage.
#[macro_export]
macro_rules! export_stage {
    ($stage:ty) => {
        // The export glue wit-bindgen generates is ABI code (`unsafe`).
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            use $crate::host::bindings::exports::helio::governance::{observer, stage};
            use $crate::host::bindings::helio::governance::types;

            struct Export;

            impl stage::Guest for Export {
                fn configure(
                    config_json: ::std::string::String,
                ) -> ::core::result::Result<(), ::std::vec::Vec<types::ConfigError>> {
                    $crate::host::configure::<$stage>(config_json)
                }

                fn evaluate(
                    call: &types::ToolCall,
                ) -> ::core::result::Result<types::Verdict, types::StageError> {
                    $crate::host::evaluate::<$stage>(call)
                }
            }

            impl observer::Guest for Export {
                fn observe(call: &types::ToolCall, outcome: observer::Outcome) {
                    $crate::host::observe::<$stage>(call, outcome)
                }
            }

            $crate::host::bindings::__export_observing_policy_stage!(Export with_types_in $crate::host::bindings);
        };
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() = || {
            fn is_a_stage<T: $crate::Stage>() {}
            is_a_stage::<$stage>();
        };
    };
}
