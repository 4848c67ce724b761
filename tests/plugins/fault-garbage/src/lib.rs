//! fault-garbage: returns a malformed verdict, which Helio must reject (block
//! the call with `plugin_error`), never act on. Config `{"mode": ...}`:
//!
//! - `bad-extra-json` (default): `deny` whose feedback `extra-json` is
//!   `not json {` (not JSON at all);
//! - `empty-reason`: `deny` with a valid `{}` extra but an empty `reason`;
//! - `array-extra-json`: `deny` whose `extra-json` is `[1,2]` (JSON, but
//!   not an object);
//! - `unknown-action`: `allow` whose decision's action is not one of
//!   Helio's action words (a malformed *allow* must not let the call through).
#![cfg(target_arch = "wasm32")] // the bindings only link as a component

wit_bindgen::generate!({ path: "../../../wit/since_v0.1.0", world: "policy-stage" });

use std::sync::atomic::{AtomicU8, Ordering};

use exports::helio::governance::stage::Guest;
use helio::governance::types::{ConfigError, Decision, Feedback, ToolCall, Verdict};

const MODES: [&str; 4] = [
    "bad-extra-json",
    "empty-reason",
    "array-extra-json",
    "unknown-action",
];

/// Index into MODES.
static MODE: AtomicU8 = AtomicU8::new(0);

struct FaultGarbage;

impl Guest for FaultGarbage {
    fn configure(config_json: String) -> Result<(), Vec<ConfigError>> {
        let config: serde_json::Value =
            serde_json::from_str(&config_json).map_err(|e| error("", &e.to_string()))?;
        let mode = match config.get("mode") {
            None | Some(serde_json::Value::Null) => 0,
            Some(serde_json::Value::String(s)) => match MODES.iter().position(|m| m == s) {
                Some(i) => i,
                None => {
                    return Err(error(
                        "mode",
                        &format!("unknown mode {s:?} (expected one of {})", MODES.join(", ")),
                    ))
                }
            },
            Some(_) => return Err(error("mode", "must be a string")),
        };
        MODE.store(mode as u8, Ordering::Relaxed);
        Ok(())
    }

    fn evaluate(_call: &ToolCall) -> Verdict {
        let mode = MODES[MODE.load(Ordering::Relaxed) as usize];
        let decision = Decision {
            action: "deny".into(),
            rule: Some("fault-garbage".into()),
            rule_index: None,
            explanation: format!("fault-garbage fixture ({mode})"),
        };
        let (reason, extra) = match mode {
            "empty-reason" => ("", "{}"),
            "array-extra-json" => ("fixture_garbage", "[1,2]"),
            "unknown-action" => {
                return Verdict::Allow(Decision {
                    action: "allow_maybe".into(),
                    ..decision
                })
            }
            _ => ("fixture_garbage", "not json {"),
        };
        Verdict::Deny((
            decision,
            Feedback {
                reason: reason.into(),
                message: "fault-garbage fixture".into(),
                suggestion: None,
                retry_allowed: false,
                extra_json: Some(extra.into()),
            },
        ))
    }
}

fn error(path: &str, message: &str) -> Vec<ConfigError> {
    vec![ConfigError {
        path: path.into(),
        message: message.into(),
    }]
}

export!(FaultGarbage);
