//! The component's edge (wasm32 only): the `helio:governance@0.2.0`
//! bindings, and what [`crate::export_stage!`] calls — configure, evaluate
//! and observe for the one stage type a component exports, with its
//! instance kept here rather than in a static of the author's.

#![allow(unsafe_code)] // the bindings wit-bindgen generates

use std::any::Any;
use std::cell::RefCell;

use crate::{Call, ConfigError, Ending, Outcome, Stage, StageError, State, Verdict};

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "observing-policy-stage",
        pub_export_macro: true,
        export_macro_name: "__export_observing_policy_stage",
        default_bindings_module: "helio_plugin::host::bindings",
    });
}

use bindings::exports::helio::governance::observer as wit_observer;
use bindings::helio::governance::types as wit;

thread_local! {
    /// The configured stage. A rejected configuration leaves the previous
    /// one in place (a bad reload changes nothing).
    static STAGE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// `configure`: reads the configuration, builds the stage, describes its
/// key families, and installs the panic hook.
pub fn configure<T: Stage>(config_json: String) -> Result<(), Vec<wit::ConfigError>> {
    install_panic_hook();
    let stage = T::configure(&config_json).map_err(|errors| {
        errors
            .into_iter()
            .map(|ConfigError { path, message }| wit::ConfigError { path, message })
            .collect::<Vec<_>>()
    })?;
    let families =
        stage
            .key_families()
            .into_iter()
            .map(|f| bindings::helio::governance::state::KeyFamily {
                prefix: f.prefix,
                kind: f.kind,
                name: f.name,
                idle_ttl_ms: f.idle_ttl_ms,
            });
    bindings::helio::governance::state::describe(&families.collect::<Vec<_>>());
    STAGE.with(|cell| *cell.borrow_mut() = Some(Box::new(stage)));
    Ok(())
}

/// `evaluate`: the configured stage's verdict on `call`.
pub fn evaluate<T: Stage>(call: &wit::ToolCall) -> Result<wit::Verdict, wit::StageError> {
    STAGE.with(|cell| {
        let stage = cell.borrow();
        let Some(stage) = stage.as_ref().and_then(|s| s.downcast_ref::<T>()) else {
            return Err(wit::StageError {
                message: "evaluate before a successful configure".into(),
            });
        };
        match stage.evaluate(&Call::host(call), &mut State::host()) {
            Ok(verdict) => Ok(verdict_to_wit(verdict)),
            Err(StageError(message)) => Err(wit::StageError { message }),
        }
    })
}

/// `observe`: tells the configured stage how a call ended.
pub fn observe<T: Stage>(call: &wit::ToolCall, outcome: wit_observer::Outcome) {
    STAGE.with(|cell| {
        let stage = cell.borrow();
        if let Some(stage) = stage.as_ref().and_then(|s| s.downcast_ref::<T>()) {
            let outcome = Outcome {
                ending: match outcome.ending {
                    wit_observer::Ending::Succeeded => Ending::Succeeded,
                    wit_observer::Ending::ToolError => Ending::ToolError,
                    wit_observer::Ending::ProtocolError => Ending::ProtocolError,
                    wit_observer::Ending::NoAnswer => Ending::NoAnswer,
                },
                took_ms: outcome.took_ms,
            };
            stage.observe(&Call::host(call), outcome, &mut State::host());
        }
    })
}

/// A panic is written to Helio's log with its message and place before the
/// stage traps. (Rust's default hook reads `RUST_BACKTRACE`, an environment
/// Helio does not give plugins, so its own failure would hide the panic.)
fn install_panic_hook() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = info.payload_as_str().unwrap_or("(no message)");
            let at = match info.location() {
                Some(at) => format!(" at {}:{}:{}", at.file(), at.line(), at.column()),
                None => String::new(),
            };
            crate::log::error(&format!("panicked{at}: {message}"));
        }));
    });
}

pub(crate) fn value(value: wit::JsonValue) -> crate::Value {
    match value {
        wit::JsonValue::Null => crate::Value::Null,
        wit::JsonValue::Boolean(b) => crate::Value::Bool(b),
        wit::JsonValue::Number(text) => crate::Value::Number(text),
        wit::JsonValue::Text(text) => crate::Value::Text(text),
        wit::JsonValue::Structured(text) => crate::Value::Structured(text),
    }
}

pub(crate) fn log(level: crate::log::Level, message: &str) {
    use crate::log::Level;
    let level = match level {
        Level::Debug => wit::Level::Debug,
        Level::Info => wit::Level::Info,
        Level::Warn => wit::Level::Warn,
        Level::Error => wit::Level::Error,
    };
    bindings::helio::governance::host::log(level, message);
}

fn decision(d: crate::Decision) -> wit::Decision {
    use crate::Action;
    wit::Decision {
        action: match d.action {
            Action::Allow => wit::Action::Allow,
            Action::Deny => wit::Action::Deny,
            Action::DryRun => wit::Action::DryRun,
            Action::RequireApproval => wit::Action::RequireApproval,
            Action::RateLimit => wit::Action::RateLimit,
            Action::SpendLimit => wit::Action::SpendLimit,
            Action::Budget => wit::Action::Budget,
        },
        rule: d.rule,
        rule_index: d.rule_index,
        explanation: d.explanation,
        redact: d.redact,
        observe: d.observe,
    }
}

fn feedback(f: crate::Feedback) -> wit::Feedback {
    wit::Feedback {
        reason: f.reason,
        message: f.message,
        suggestion: f.suggestion,
        retry_allowed: f.retry_allowed,
        extra_json: (!f.extra.is_empty()).then(|| serde_json::Value::Object(f.extra).to_string()),
    }
}

fn verdict_to_wit(verdict: Verdict) -> wit::Verdict {
    match verdict {
        Verdict::Allow(d) => wit::Verdict::Allow(decision(d)),
        Verdict::Deny(d, f) => wit::Verdict::Deny((decision(d), feedback(f))),
        Verdict::DryRun(d) => wit::Verdict::DryRun(decision(d)),
        Verdict::RequireApproval(r) => wit::Verdict::RequireApproval(wit::ApprovalRequest {
            decision: decision(r.decision),
            channel: r.channel,
            timeout_ms: r.timeout_ms,
            feedback: r.feedback.map(feedback),
        }),
    }
}
